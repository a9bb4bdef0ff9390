/**
 * Issue 14 §1 for `memscope train`: the default --out is runs/train/<scenario> (rerunning resumes),
 * and a folder that holds a finished model without checkpoints, a folder of other files or a file
 * is refused (exit 2) before any graph is built, with what was there intact byte for byte. (The
 * shipped models/ folder is covered on a temporary package copy in test/io/results-safety.test.ts.)
 */
import { runCli } from '../helpers/cli.ts';
import { describe, it, expect } from 'vitest';
import { mkdtemp, mkdir, readdir, readFile, writeFile, cp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const TINY = ['--scenario', 'duplication', '--batch-size', '4', '--captions', '4', '--duplicates', '2', '--channels', '8,8', '--checkpoint-every', '1'];

async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        out.set(relative(dir, p), 'dir');
        await walk(p);
      } else out.set(relative(dir, p), (await readFile(p)).toString('base64'));
    }
  };
  await walk(dir);
  return out;
}

describe('memscope train --out', () => {
  it('defaults to runs/train/<scenario>; the same command resumes; finished models without checkpoints, user folders and files are refused', async () => {
    const root = await mkdtemp(join(tmpdir(), 'memscope-train-out-'));
    const cwd = process.cwd();
    process.chdir(root);
    try {
      const a = await runCli(['train', ...TINY, '--steps', '1']);
      expect(a.code).toBe(0);
      expect(a.err).toMatch(/trained 1 steps \(fresh start\)/);
      expect(a.out.trim()).toBe(join('runs', 'train', 'duplication', 'model.json'));
      expect(JSON.parse(await readFile(join(root, 'runs/train/duplication/model.json'), 'utf8')).training.steps).toBe(1);
      // the same command with more steps continues from the checkpoint
      const b = await runCli(['train', ...TINY, '--steps', '2']);
      expect(b.code).toBe(0);
      expect(b.err).toMatch(/trained 2 steps \(resumed from step 1\)/);

      // fewer steps than the checkpoint holds: refused naming --steps
      const c = await runCli(['train', ...TINY, '--steps', '1']);
      expect(c.code).toBe(2);
      expect(c.err).toMatch(/--steps 1: the run in "runs\/train\/duplication" is already at step 2; pass --steps 2 or more to continue it/);

      // a finished model whose checkpoints are gone (as a shipped model): refused, not retrained from step 0
      await cp(join(root, 'runs/train/duplication'), join(root, 'finished'), { recursive: true });
      await rm(join(root, 'finished', 'checkpoints'), { recursive: true });
      await writeFile(join(root, 'file.bin'), Buffer.from([0, 1, 2]));
      await mkdir(join(root, 'mine'));
      await writeFile(join(root, 'mine', 'notes.txt'), 'mine\n');
      await cp(join(root, 'finished'), join(root, 'other-scenario'), { recursive: true });
      const before = await snapshot(root);
      const cases: [string[], RegExp][] = [
        [['--out', 'finished', '--steps', '5'], /--out "finished" holds a finished duplication model \(2 steps\) and no checkpoint to resume from .*so training there would start again from step 0 and replace it\. Give a new folder, e\.g\. --out runs\/train\/duplication-2\. Nothing was written\./],
        [['--out', 'mine', '--steps', '1'], /--out "mine" holds files that are not a memscope training run \(notes\.txt\)/],
        [['--out', 'file.bin', '--steps', '1'], /--out "file\.bin" is a file \(3 bytes\), not a model folder/],
        [['--out', 'file.bin/m', '--steps', '1'], /--out "file\.bin\/m" cannot be created: .*file\.bin is a file, not a folder/],
      ];
      for (const [args, re] of cases) {
        const r = await runCli(['train', ...TINY, ...args]);
        expect(r.err, args.join(' ')).toMatch(re);
        expect(r.code).toBe(2);
      }
      const d = await runCli(['train', '--scenario', 'class', '--channels', '8,8', '--steps', '1', '--out', 'other-scenario']);
      expect(d.code).toBe(2);
      expect(d.err).toMatch(/--out "other-scenario" holds a trained duplication model, not class/);
      expect(await snapshot(root)).toEqual(before);
    } finally {
      process.chdir(cwd);
    }
  }, 300_000);
});
