/** Run the memscope CLI in-process with stdout and stderr captured (for CLI tests). */
import { vi } from 'vitest';
import { main } from '../../src/cli/main.ts';

/** `main(argv)` with its output captured; the spies are restored afterwards. */
export async function runCli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    return { code: await main(argv), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}
