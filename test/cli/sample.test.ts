import { runCli } from '../helpers/cli.ts';
import { describe, it, expect, vi, afterEach } from 'vitest';
import { mkdtemp, readdir, readFile, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeNpy, encodeNpy } from '../../src/io/npy.ts';
import { GraphBuilder } from '../../src/graph/builder.ts';

const run = runCli;

afterEach(() => vi.restoreAllMocks());

describe('memscope sample: bad input', () => {
  it.each([
    [['--sampler', 'foo'], /--sampler.*ddim.*dpmpp2m.*euler/s],
    [['--steps', '0'], /--steps/],
    [['--steps', '-3'], /--steps/],
    [['--steps', 'many'], /--steps/],
    [['--guidance', 'magic:3'], /--guidance "magic:3".*constant:λ/s],
    [['--seeds', '5-3'], /--seeds/],
    [['--prompts', 'caption:999'], /--prompts.*caption:999/],
    [['--condition', 'caption:0'], /--condition is now --prompts/],
    [['--record', 'x_t'], /--record: unknown quantity "x_t"/],
    [['--bogus', '1'], /bogus/],
    [['--model', 'weights.bin'], /--model: expected 'testbed', .*a trained model directory with model\.json .*got "weights\.bin"/],
    [['--eta', '0.5', '--sampler', 'euler'], /--eta: only the ddim sampler/],
  ])('%j → exit 2 with an error naming the argument, nothing written', async (args, re) => {
    const dir = await mkdtemp(join(tmpdir(), 'memscope-cli-'));
    const out = join(dir, 'res');
    const r = await run(['sample', ...args, '--out', out, '--steps', args.includes('--steps') ? args[args.indexOf('--steps') + 1]! : '2']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(re);
    expect(await readdir(dir)).toEqual([]);
  });

  it('unknown command and --help', async () => {
    expect((await run(['frobnicate'])).err).toMatch(/unknown command "frobnicate"; expected one of demo, sample/);
    const h = await run(['sample', '--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/Examples:/);
  });

  it('a model that returns NaN fails with a clear error and leaves no partial results', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memscope-cli-'));
    const b = new GraphBuilder({ name: 'nan' });
    const x = b.input('sample', 'float32', ['B', 1, 4, 4]);
    b.input('timestep', 'int64', ['B']);
    const nan = b.op('Div', [b.op('Sub', [x, x]), b.op('Sub', [x, x])]); // 0/0
    b.output(nan, 'float32', ['B', 1, 4, 4], 'out_sample');
    await writeFile(join(dir, 'nan.onnx'), b.toBytes());
    const r = await run(['sample', '--model', join(dir, 'nan.onnx'), '--steps', '3', '--guidance', 'none', '--out', join(dir, 'res')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/non-finite|NaN/);
    expect((await readdir(dir)).sort()).toEqual(['nan.onnx']);
  });

  it('a condition array of the wrong shape is rejected naming --cond', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memscope-cli-'));
    const b = new GraphBuilder({ name: 'ehs' });
    const x = b.input('sample', 'float32', ['B', 1, 4, 4]);
    b.input('timestep', 'float32', ['B']);
    const e = b.input('encoder_hidden_states', 'float32', ['B', 3, 5]);
    const m = b.op('ReduceMean', [e], { axes: [1, 2], keepdims: 1 });
    b.output(b.op('Add', [x, b.op('Unsqueeze', [m, b.constI64([3])])]), 'float32', ['B', 1, 4, 4], 'out_sample');
    await writeFile(join(dir, 'ehs.onnx'), b.toBytes());
    await writeFile(join(dir, 'cond.npy'), encodeNpy({ dims: [2, 3, 7], data: new Float32Array(42) }));
    const r = await run(['sample', '--model', join(dir, 'ehs.onnx'), '--cond', join(dir, 'cond.npy'), '--steps', '2', '--out', join(dir, 'res')]);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/cond/);
    expect((await readdir(dir)).sort()).toEqual(['cond.npy', 'ehs.onnx']);
  });
});

describe('memscope sample: testbed run', () => {
  it('writes config, samples, grid, guidance record and the trajectory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memscope-cli-'));
    const out = join(dir, 'res');
    const r = await run(['sample', '--prompts', 'caption:0,class:1', '--seeds', '3,4', '--steps', '6', '--guidance', 'og+dtp:7.5', '--trajectory', '--record', 'xHat0', '--out', out]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(`${out}/report.html`);
    const files = (await readdir(out)).sort();
    expect(files).toEqual(['.memscope-results.json', 'config.json', 'd_t.png', 'd_t.svg', 'd_t.vl.json', 'grid.png', 'guidance.json', 'noise.npy', 'report.html', 'run.json', 'samples.npy', 'trajectory.npy', 'xHat0.npy']);
    const cfg = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(cfg).toMatchObject({ sampler: 'ddim', steps: 6, guidance: 'og+dtp:7.5', seeds: [3, 4] });
    const traj = decodeNpy(await readFile(join(out, 'trajectory.npy')));
    expect(traj.dims).toEqual([7, 4, 1, 28, 28]);
    const samples = decodeNpy(await readFile(join(out, 'samples.npy')));
    expect(Array.from(traj.data.subarray(6 * 4 * 784))).toEqual(Array.from(samples.data)); // last trajectory entry is x_0
    const g = JSON.parse(await readFile(join(out, 'guidance.json'), 'utf8'));
    expect(g.t).toHaveLength(6);
    expect(g.s[0]).toEqual([-7.5, -7.5, -7.5, -7.5]); // opposite guidance before any switch
    expect(g.rows.map((x: { seed: number }) => x.seed)).toEqual([3, 4, 3, 4]);
    expect((await stat(join(out, 'grid.png'))).size).toBeGreaterThan(100);
  });
});

describe('memscope sample: generic ONNX model with condition arrays', () => {
  it('samples every row of --cond (a single [L, E] row is one condition) with the uncond row as e_∅', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'memscope-cli-'));
    // ε = 0.1·sample + mean(encoder_hidden_states)·t/1000: d_t = 16·((mean_c − mean_u)·t/1000)² exactly.
    const b = new GraphBuilder({ name: 'ehs' });
    const x = b.input('sample', 'float32', ['B', 1, 4, 4]);
    const ts = b.input('timestep', 'int64', ['B']);
    const e = b.input('encoder_hidden_states', 'float32', ['B', 3, 5]);
    const m = b.op('ReduceMean', [e], { axes: [1, 2], keepdims: 1 });
    const tf = b.op('Reshape', [b.op('Div', [b.op('Cast', [ts], { to: 1 }), b.constF32(1000)]), b.constI64([-1, 1, 1, 1])]);
    b.output(b.op('Add', [b.op('Mul', [x, b.constF32(0.1)]), b.op('Mul', [b.op('Unsqueeze', [m, b.constI64([3])]), tf])]), 'float32', ['B', 1, 4, 4], 'out_sample');
    await writeFile(join(dir, 'm.onnx'), b.toBytes());
    await writeFile(join(dir, 'cond.npy'), encodeNpy({ dims: [3, 5], data: new Float32Array(15).fill(0.5) }));
    await writeFile(join(dir, 'uncond.npy'), encodeNpy({ dims: [1, 3, 5], data: new Float32Array(15).fill(0.25) }));
    const out = join(dir, 'res');
    const r = await run(['sample', '--model', join(dir, 'm.onnx'), '--cond', join(dir, 'cond.npy'), '--uncond', join(dir, 'uncond.npy'), '--steps', '4', '--guidance', 'dtp:7.5', '--seeds', '0-1', '--trajectory', '--out', out]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const g = JSON.parse(await readFile(join(out, 'guidance.json'), 'utf8'));
    expect(g.d).toHaveLength(4);
    g.d.forEach((row: number[], i: number) => row.forEach((v) => expect(v).toBeCloseTo((g.t[i] / 1000) ** 2, 5)));
    // d_t falls monotonically with t: no local minimum, so DTP never switches and s stays 0.
    expect(g.switchSteps).toEqual([null, null]);
    expect(g.s.flat().every((v: number) => v === 0)).toBe(true);
    expect(decodeNpy(await readFile(join(out, 'trajectory.npy'))).dims).toEqual([5, 2, 1, 4, 4]);
  });
});
