/**
 * `memscope evaluate --protocol` (issue 20 §2): a protocol needs an SSCD export and refuses one
 * converted from another checkpoint before any work; with it, the descriptor takes the protocol's
 * preprocessing, and each method's protocol numbers agree with the per-sample similarities the
 * same run writes (computed another way: numpy's percentile from evaluate.json's similarities).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { GraphBuilder } from '../../src/graph/builder.ts';
import { sscdManifest } from '../helpers/eval-manifest.ts';

let dir: string;
let sscd: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memscope-protocol-cli-'));
  // an SSCD stand-in: [B, 3, H, W] → 2×2 average pool of each channel → [B, 12]
  const b = new GraphBuilder();
  b.input('x', 'float32', ['B', 3, 'H', 'W']);
  const pooled = b.op('AveragePool', ['x'], { kernel_shape: [112, 112], strides: [112, 112] });
  b.output(b.op('Flatten', [pooled], { axis: 1 }), 'float32', ['B', 12], 'descriptor');
  sscd = join(dir, 'sscd_disc_large.onnx');
  await writeFile(sscd, b.toBytes());
  await writeFile(join(dir, 'sscd_disc_large.manifest.json'), JSON.stringify(sscdManifest('sscd_disc_large')));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const RUN = ['evaluate', '--model', 'testbed', '--prompts', 'caption:0-1', '--methods', 'cfg', '--seeds', '0-2', '--steps', '4'];

describe('evaluate --protocol', () => {
  it('refuses a protocol without an SSCD descriptor, an unknown name and another checkpoint, before any work', async () => {
    const out = join(dir, 'refused');
    const a = await runCli([...RUN, '--protocol', 'wen', '--out', out]);
    expect(a.code).toBe(2);
    expect(a.err).toContain('--protocol wen: needs --descriptor sscd:FILE (sscd_disc_large exported to ONNX');
    const b = await runCli([...RUN, '--protocol', 'dcr', '--descriptor', `sscd:${sscd}`, '--out', out]);
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/--protocol.*"dcr".*wen.*somepalli.*nemo.*kim/s);
    const c = await runCli([...RUN, '--protocol', 'nemo', '--descriptor', `sscd:${sscd}`, '--out', out]);
    expect(c.code).toBe(2);
    expect(c.err).toMatch(/--protocol nemo: .* used sscd_disc_mixup, but .*sscd_disc_large\.onnx was converted from sscd_disc_large/);
    // the export is checked before the model is opened (a gated run would otherwise sample its calibration first): a model folder that does not exist is not reached
    const d = await runCli(['evaluate', '--model', join(dir, 'no-such-model'), '--prompts', 'caption:0-1', '--protocol', 'nemo', '--descriptor', `sscd:${sscd}`, '--out', out]);
    expect(d.code).toBe(2);
    expect(d.err).toMatch(/--protocol nemo: .* used sscd_disc_mixup/);
    expect(existsSync(out)).toBe(false);
  });

  it('somepalli: the descriptor takes DCR preprocessing and the numbers match the run\'s own similarities', async () => {
    const out = join(dir, 'somepalli');
    const r = await runCli([...RUN, '--protocol', 'somepalli', '--descriptor', `sscd:${sscd}`, '--threshold', '0.9', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const settings = JSON.parse(await readFile(join(out, 'settings.json'), 'utf8'));
    expect(settings.protocol.name).toBe('somepalli');
    expect(settings.descriptor.preprocessing).toContain('center crop 224x224');
    expect(settings.descriptor.preprocessing).toContain('mean (0.5, 0.5, 0.5)');
    expect(settings.descriptor.manifest.checkpoint).toBe('sscd_disc_large');
    const ev = JSON.parse(await readFile(join(out, 'evaluate.json'), 'utf8'));
    const row = ev.rows[0];
    const sims: number[] = ev.similarities?.cfg ?? row.similarities;
    expect(sims).toHaveLength(6);
    const sorted = [...sims].sort((x, y) => x - y);
    const pos = 5 * 0.95;
    const p95 = sorted[4]! + (sorted[5]! - sorted[4]!) * (pos - 4);
    expect(row.protocol.somepalli.p95).toBeCloseTo(p95, 6);
    expect(row.protocol.somepalli.above.value).toBeCloseTo(sims.filter((v) => v > 0.5).length / 6, 12);
    const md = await readFile(join(out, 'evaluate.md'), 'utf8');
    expect(md).toContain('protocol somepalli (Somepalli et al. 2023, somepago/DCR@6c03709');
    expect(md).toMatch(/cfg \[somepalli\]: sim_95pc \d\.\d{4}/);
  });
});
