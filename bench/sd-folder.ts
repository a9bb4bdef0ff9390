/**
 * Stable Diffusion from a diffusers pipeline folder vs from an ONNX export, on this machine's CPU
 * (`npm run bench -- sd-folder`, issue 19 figures), and Wen et al.'s optimisation step on the
 * same SD-sized U-Net.
 *
 * Models, both SD 1.x-sized (859,520,964 parameters, random weights):
 * - export: `writeSdUnet` (bench/sd.ts), the `sd` bench's model — memscope's U-Net with its
 *   weights in `weights.pb` (ONNX external data, as the legacy exporter writes);
 * - folder: `unet/diffusion_pytorch_model.safetensors` with SD 1.5's state-dict keys and shapes
 *   (test/fixtures/sd-state-dicts.json; seeded uniform values), opened as memscope opens a diffusers
 *   folder: `buildUnetGraph` from SD 1.5's `unet/config.json`, every weight an external-data
 *   initializer into the safetensors, linear weights transposed by graph ops folded at load.
 * - folder, fused: the same folder U-Net with onnxruntime's fused `com.microsoft.MultiHeadAttention`
 *   (`fusedAttention`; what `memscope` samples a folder with).
 * Each model runs in its own child process (so that peak RSS is its own): session load seconds,
 * then `MEMSCOPE_BENCH_SDF_CALLS` (default 2) U-Net calls at batch 2 (cond + uncond, 4×64×64
 * latents = 512², 77×768 context), the child's peak RSS (`process.resourceUsage().maxRSS`).
 * Children alternate export, folder, fused, export, folder, fused so that background load hits both alike;
 * each path's figure is the median over its calls. Seconds per 512² image with 50 steps of CFG =
 * 50 × the median call (U-Net only; text encoder and VAE not included).
 *
 * Wen et al.: a child builds the Wen loss around the folder's U-Net (`graph/wen-loss.ts`, 1 seed:
 * one conditional row through forward + backward) and its gradient graph, opens it, and times one
 * optimisation step (one gradient call; ε_u is one plain forward row, cached across steps) and
 * reports its peak RSS — or that it was killed (memory) with the signal.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSession, defaultThreads } from '../src/graph/session.ts';
import { writeWenLossModels } from '../src/graph/wen-loss.ts';
import { readSafetensorsIndex } from '../src/io/safetensors.ts';
import { unetConfigFromDiffusers } from '../src/sd/diffusers/config.ts';
import { buildUnetGraph } from '../src/sd/diffusers/folder.ts';
import { SD1_UNET_CONFIG, SD1_UNET_PARAMS, WEIGHT_SEED, writeSdUnet } from './sd.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/** Write SD 1.5's U-Net state dict (keys and shapes of the manifest) as one safetensors file with seeded uniform values in ±0.02, one tensor at a time. */
function writeSd15Safetensors(path: string, keys: Record<string, number[]>): number {
  const names = Object.keys(keys).sort();
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const n of names) {
    const bytes = 4 * keys[n]!.reduce((a, d) => a * d, 1);
    header[n] = { dtype: 'F32', shape: keys[n], data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let h = Buffer.from(JSON.stringify(header));
  h = Buffer.concat([h, Buffer.alloc((8 - ((8 + h.length) % 8)) % 8, 0x20)]);
  const fd = openSync(path, 'w');
  let pos = 0;
  const put = (b: Uint8Array): void => {
    let done = 0;
    while (done < b.byteLength) done += writeSync(fd, b, done, b.byteLength - done, pos + done);
    pos += b.byteLength;
  };
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    put(len);
    put(h);
    let s = 0x9e3779b9;
    for (const n of names) {
      const v = new Float32Array(keys[n]!.reduce((a, d) => a * d, 1));
      for (let i = 0; i < v.length; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        v[i] = (s / 2 ** 32 - 0.5) * 0.04;
      }
      put(new Uint8Array(v.buffer));
    }
  } finally {
    closeSync(fd);
  }
  return pos;
}

interface ChildResult {
  readonly loadSeconds: number;
  readonly callSeconds: number[];
  readonly maxRssMB: number;
}

/** Child: open `model` and time `calls` batch-2 U-Net calls at 512². */
async function childUnet(model: string, calls: number): Promise<ChildResult> {
  const t0 = performance.now();
  const s = await createSession(model, { threads: defaultThreads() });
  const loadSeconds = (performance.now() - t0) / 1000;
  const sample = { dims: [2, 4, 64, 64], data: Float32Array.from({ length: 2 * 4 * 64 * 64 }, (_, i) => Math.sin(i)) };
  const ctx = { dims: [2, 77, 768], data: Float32Array.from({ length: 2 * 77 * 768 }, (_, i) => 0.5 * Math.cos(i)) };
  const callSeconds: number[] = [];
  for (let k = 0; k < calls; k++) {
    const t = performance.now();
    await s.run({ sample, timestep: { dims: [2], data: new Float32Array([801 - 20 * k, 801 - 20 * k]) }, encoder_hidden_states: ctx });
    callSeconds.push((performance.now() - t) / 1000);
  }
  await s.release();
  return { loadSeconds, callSeconds, maxRssMB: process.resourceUsage().maxRSS / 1024 };
}

/** Child: Wen et al.'s loss + gradient graph around `model` for 1 seed at 512²; one optimisation step. */
async function childWen(model: string): Promise<Record<string, unknown>> {
  const tb = performance.now();
  const m = writeWenLossModels(model, { seeds: 1, latent: [4, 64, 64], context: [77, 768], timestepDims: [1] });
  const buildSeconds = (performance.now() - tb) / 1000;
  try {
    const tl = performance.now();
    const g = await createSession(m.gradientPath, { threads: defaultThreads(), externalData: m.files.inMemoryData() });
    const loadSeconds = (performance.now() - tl) / 1000;
    const feeds = {
      sample: { dims: [1, 4, 64, 64], data: Float32Array.from({ length: 4 * 64 * 64 }, (_, i) => Math.sin(i)) },
      timestep: { dims: [1], data: new Float32Array([981]) },
      'wen/embedding': { dims: [1, 77, 768], data: Float32Array.from({ length: 77 * 768 }, (_, i) => 0.5 * Math.cos(i)) },
      'wen/out_u': { dims: [1, 4, 64, 64], data: new Float32Array(4 * 64 * 64) },
    };
    const ts = performance.now();
    const out = await g.run(feeds);
    const stepSeconds = (performance.now() - ts) / 1000;
    const grad = out['grad/wen/embedding']!.data;
    let norm = 0;
    for (const v of grad) norm += v * v;
    await g.release();
    return { buildSeconds, loadSeconds, stepSeconds, gradNorm: Math.sqrt(norm), maxRssMB: process.resourceUsage().maxRSS / 1024 };
  } finally {
    m.files.dispose();
  }
}

function runChild(args: string[]): { ok: true; value: Record<string, unknown> } | { ok: false; why: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...args], { encoding: 'utf8', cwd: root, maxBuffer: 1 << 24 });
  if (r.status !== 0) return { ok: false, why: r.signal !== null ? `killed by ${r.signal} (out of memory?)` : `exit ${r.status}: ${r.stderr.slice(-500)}` };
  const line = r.stdout.trim().split('\n').pop()!;
  return { ok: true, value: JSON.parse(line) as Record<string, unknown> };
}

const median = (v: readonly number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** The `sd-folder` bench (see the module note). */
export async function benchSdFolder(): Promise<Record<string, unknown>> {
  const calls = Number(process.env['MEMSCOPE_BENCH_SDF_CALLS'] ?? 2);
  const loadStart = os.loadavg().map(r3);
  const dir = mkdtempSync(join(tmpdir(), 'memscope-bench-sdf-'));
  try {
    const manifest = JSON.parse(readFileSync(join(root, 'test', 'fixtures', 'sd-state-dicts.json'), 'utf8')) as { sd1: { unet: { config: Record<string, unknown>; keys: Record<string, number[]> } } };
    process.stderr.write(`bench sd-folder: writing the export and the folder U-Net (2 × 3.4 GB) in ${dir}…\n`);
    mkdirSync(join(dir, 'export'));
    const exp = writeSdUnet(join(dir, 'export'), SD1_UNET_CONFIG, WEIGHT_SEED);
    mkdirSync(join(dir, 'folder', 'unet'), { recursive: true });
    const st = join(dir, 'folder', 'unet', 'diffusion_pytorch_model.safetensors');
    const stBytes = writeSd15Safetensors(st, manifest.sd1.unet.keys);
    const tg = performance.now();
    const cfg = unetConfigFromDiffusers(manifest.sd1.unet.config, 'unet/config.json', 77);
    const graph = buildUnetGraph(cfg, [{ index: readSafetensorsIndex(st), location: basename(st), rel: 'unet/diffusion_pytorch_model.safetensors' }]);
    const folderModel = join(dir, 'folder', 'unet', 'model.onnx');
    writeFileSync(folderModel, graph);
    const fusedModel = join(dir, 'folder', 'unet', 'model-fused-attention.onnx');
    writeFileSync(fusedModel, buildUnetGraph(cfg, [{ index: readSafetensorsIndex(st), location: basename(st), rel: 'unet/diffusion_pytorch_model.safetensors' }], new Map(), { fusedAttention: true }));
    const graphSeconds = (performance.now() - tg) / 1000;
    const runs: Record<'export' | 'folder' | 'folderFused', ChildResult[]> = { export: [], folder: [], folderFused: [] };
    const models = { export: exp.modelPath, folder: folderModel, folderFused: fusedModel };
    for (let round = 0; round < 2; round++) {
      for (const which of ['export', 'folder', 'folderFused'] as const) {
        process.stderr.write(`bench sd-folder: ${which} (round ${round + 1})…\n`);
        const r = runChild(['child-unet', models[which], String(calls)]);
        if (!r.ok) throw new Error(`bench sd-folder: the ${which} child failed: ${r.why}`);
        runs[which].push(r.value as unknown as ChildResult);
      }
    }
    const summary = (rs: ChildResult[]): Record<string, number> => {
      const c = median(rs.flatMap((r) => r.callSeconds));
      return { loadSeconds: r3(median(rs.map((r) => r.loadSeconds))), secondsPerCall: r3(c), secondsPer512Image50StepsCfg: r3(50 * c), peakRssGB: r3(Math.max(...rs.map((r) => r.maxRssMB)) / 1024) };
    };
    const e = summary(runs.export);
    const f = summary(runs.folder);
    const ff = summary(runs.folderFused);
    process.stderr.write('bench sd-folder: Wen et al. step (1 seed, 512²)…\n');
    const wen = runChild(['child-wen', folderModel]);
    return {
      what: 'SD 1.x-sized U-Net (859,520,964 parameters, random weights) at 512² on this CPU: from a diffusers folder (safetensors + memscope graph) vs from an ONNX export (weights.pb), each in its own process, alternating; and one Wen et al. optimisation step on the folder U-Net',
      params: SD1_UNET_PARAMS,
      threads: defaultThreads(),
      callsPerChild: calls,
      files: { exportWeightsGB: r3(exp.dataBytes / 2 ** 30), folderSafetensorsGB: r3(stBytes / 2 ** 30), folderGraphSeconds: r3(graphSeconds) },
      export: e,
      folder: f,
      folderFused: ff,
      folderOverExport: { secondsPerCall: r3(f['secondsPerCall']! / e['secondsPerCall']!), peakRss: r3(f['peakRssGB']! / e['peakRssGB']!) },
      fusedOverDecomposed: { secondsPerCall: r3(ff['secondsPerCall']! / f['secondsPerCall']!), peakRss: r3(ff['peakRssGB']! / f['peakRssGB']!) },
      wen: wen.ok ? { ...wen.value, note: 'one optimisation step = one gradient call (forward + backward of one conditional row); ε_u is one forward row per x_T, cached' } : { failed: wen.why },
      rounds: runs,
      loadavg: { start: loadStart, end: os.loadavg().map(r3) },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'child-unet') {
  const r = await childUnet(process.argv[3]!, Number(process.argv[4]));
  process.stdout.write(`${JSON.stringify(r)}\n`);
} else if (process.argv[2] === 'child-wen') {
  const r = await childWen(process.argv[3]!);
  process.stdout.write(`${JSON.stringify(r)}\n`);
}
