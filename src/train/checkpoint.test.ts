import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { packageRoot } from '../data/paths.ts';
import { listCheckpoints, loadCheckpoint, loadLatestCheckpoint, memscopeVersion, writeCheckpoint, type Checkpoint } from './checkpoint.ts';
import type { ParamSpec } from '../models/params.ts';

const specs: ParamSpec[] = [
  { name: 'w', dims: [2, 3], init: { kind: 'normal', std: 0.02 } },
  { name: 'b', dims: [3], init: { kind: 'zeros' }, noDecay: true },
  { name: 'frozen', dims: [1], init: { kind: 'ones' } },
];

function make(step: number): Checkpoint {
  const w = Float32Array.from([1, 2, 3, 4, 5, 6].map((x) => x * step + 0.1));
  const b = Float32Array.from([NaN, -0, 1e-40]);
  return {
    step,
    specs,
    params: new Map([['w', w], ['b', b], ['frozen', Float32Array.from([1])]]),
    optimizer: { params: new Map([['w', { step, m: w.map((x) => x / 3), v: w.map((x) => x * x) }], ['b', { step: step - 1, m: b.slice(), v: new Float32Array(3) }]]) },
    ema: { updates: step, values: new Map([['w', w.map((x) => x / 7)], ['b', b.slice()], ['frozen', Float32Array.from([0.5])]]) },
    rng: { dataOrder: { epoch: 2, position: step } },
    config: { lr: 0.1, nested: { a: [1, 2] } },
    lossHistory: Array.from({ length: step }, (_, i) => 1 / (i + 3)),
    elapsedSeconds: 12.5 + step,
  };
}

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'memscope-ckpt-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('checkpoints', () => {
  it('round-trip exactly: params, EMA, optimizer moments and steps, rng, config, losses, version', async () => {
    const ck = make(5);
    const path = await writeCheckpoint(dir, ck);
    expect(path).toBe(join(dir, 'step-5'));
    expect((await readdir(path)).sort()).toEqual(['ema.safetensors', 'optim.safetensors', 'state.json', 'weights.safetensors']);
    const back = await loadCheckpoint(path);
    expect(back.step).toBe(5);
    expect(back.specs).toEqual(specs);
    for (const [n, v] of ck.params) expect(bits(back.params.get(n)!)).toEqual(bits(v));
    for (const [n, v] of ck.ema!.values) expect(bits(back.ema!.values.get(n)!)).toEqual(bits(v));
    expect(back.ema!.updates).toBe(5);
    expect([...back.optimizer.params.keys()].sort()).toEqual(['b', 'w']); // "frozen" never had state
    for (const [n, s] of ck.optimizer.params) {
      const r = back.optimizer.params.get(n)!;
      expect(r.step).toBe(s.step);
      expect(bits(r.m)).toEqual(bits(s.m));
      expect(bits(r.v)).toEqual(bits(s.v));
    }
    expect(back.rng).toEqual(ck.rng);
    expect(back.config).toEqual(ck.config);
    expect(back.lossHistory).toEqual(ck.lossHistory);
    expect(back.elapsedSeconds).toBe(17.5);
    const version = (JSON.parse(await readFile(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version;
    expect(back.memscopeVersion).toBe(version);
    expect(memscopeVersion()).toBe(version);
  });

  it('keeps the newest K, points latest at the newest, replaces a rewritten step', async () => {
    for (const s of [1, 2, 3, 4, 5]) await writeCheckpoint(dir, make(s));
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([4, 5]);
    expect(await readFile(join(dir, 'latest'), 'utf8')).toBe('step-5\n');
    for (const s of [6, 7, 8]) await writeCheckpoint(dir, make(s), { keep: 3 });
    expect((await listCheckpoints(dir)).map((c) => c.step)).toEqual([6, 7, 8]);
    const again = { ...make(8), elapsedSeconds: 99 };
    await writeCheckpoint(dir, again, { keep: 3 });
    expect((await loadLatestCheckpoint(dir))!.elapsedSeconds).toBe(99);
    expect((await readdir(dir)).filter((n) => n.startsWith('.'))).toEqual([]);
    const noEma = { ...make(9), ema: null };
    await writeCheckpoint(dir, noEma);
    const back = (await loadLatestCheckpoint(dir))!;
    expect(back.ema).toBeNull();
    expect(await readdir(back.path)).not.toContain('ema.safetensors');
  });

  it('loadLatestCheckpoint ignores temporary and incomplete directories; null when there is none', async () => {
    expect(await loadLatestCheckpoint(join(dir, 'missing'))).toBeNull();
    expect(await loadLatestCheckpoint(dir)).toBeNull();
    await writeCheckpoint(dir, make(3));
    // a killed writer's temporary directory (complete-looking contents) and a step dir without state.json
    const deadTmp = join(dir, '.step-9.tmp-99999999-0');
    await mkdir(deadTmp);
    for (const f of ['weights.safetensors', 'optim.safetensors', 'state.json']) await writeFile(join(deadTmp, f), 'garbage');
    await mkdir(join(dir, 'step-12'));
    await writeFile(join(dir, 'step-12', 'weights.safetensors'), 'partial');
    await writeFile(join(dir, 'step-13'), 'not a directory');
    const latest = (await loadLatestCheckpoint(dir))!;
    expect(latest.step).toBe(3);
    expect(latest.path).toBe(join(dir, 'step-3'));
    // the next write removes the dead writer's leftovers
    await writeCheckpoint(dir, make(4));
    expect(await readdir(dir)).not.toContain('.step-9.tmp-99999999-0');
  });

  it('a damaged complete-looking checkpoint is an error that names the file', async () => {
    const path = await writeCheckpoint(dir, make(2));
    await writeFile(join(path, 'weights.safetensors'), new Uint8Array(4));
    await expect(loadLatestCheckpoint(dir)).rejects.toThrow(/weights\.safetensors: file is 4 bytes/);
    await writeFile(join(path, 'state.json'), '{"format":"other"}');
    await expect(loadCheckpoint(path)).rejects.toThrow(/not a memscope-checkpoint file/);
    await writeFile(join(path, 'state.json'), '{');
    await expect(loadCheckpoint(path)).rejects.toThrow(/cannot read state\.json/);
  });

  it('rejects inconsistent input', async () => {
    const ck = make(1);
    await expect(writeCheckpoint(dir, { ...ck, params: new Map([['w', new Float32Array(6)]]) })).rejects.toThrow(/no value for parameter "b"/);
    await expect(writeCheckpoint(dir, { ...ck, lossHistory: [NaN] })).rejects.toThrow(/non-finite/);
    await expect(writeCheckpoint(dir, ck, { keep: 0 })).rejects.toThrow(/keep/);
    expect(await listCheckpoints(dir)).toEqual([]);
  });
});
