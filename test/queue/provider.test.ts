/**
 * `memscope worker --provider cuda` (issue 18 §4): where onnxruntime cannot run the CUDA
 * execution provider (no provider libraries — this project's `.npmrc` skips their download — or no
 * GPU), the worker refuses before it touches the queue, with exit code 2 and a message naming the
 * flag, the reason and how to install the provider. On a machine with a working CUDA provider the
 * same command gets past the check and fails on the (unreachable) queue instead.
 */
import { describe, it, expect } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { probeExecutionProvider } from '../../src/graph/session.ts';

describe('memscope worker --provider', () => {
  it('cuda: refused (exit 2, naming the flag and the fix) where onnxruntime has no CUDA provider; else it goes on to the queue', async () => {
    const why = await probeExecutionProvider('cuda');
    const r = await runCli(['worker', '--queue', 'redis://127.0.0.1:1/0', '--provider', 'cuda']);
    expect(r.code).toBe(2);
    if (why !== null) {
      expect(r.err).toMatch(/--provider cuda: this onnxruntime-node installation cannot run the CUDA execution provider \(.+\); fetch the provider with ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node/);
      expect(r.err).not.toMatch(/--queue: cannot reach/);
    } else {
      expect(r.err).toMatch(/--queue: cannot reach Redis at redis:\/\/127\.0\.0\.1:1\/0/);
    }
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it('cpu always passes the check; an unknown provider is refused by name', async () => {
    expect(await probeExecutionProvider('cpu')).toBeNull();
    const r = await runCli(['worker', '--queue', 'redis://127.0.0.1:1/0', '--provider', 'tpu']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--provider/);
    expect(r.err).toMatch(/cpu.*cuda|"cpu" \| "cuda"/);
  });
});
