/**
 * Bad input across the commands (issue 14 §2): every case exits with code 2 BEFORE any work, with
 * one message that names the flag, the value and what is allowed; nothing is left next to --out
 * (no results folder, no `.work`, no partial folders) and a previous result at --out is intact.
 * The tests state the messages at the CLI level (runCli), so they carry over to another parser.
 */
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { writeTinySdExport } from '../helpers/tiny-sd-export.ts';
import { GraphBuilder } from '../../src/graph/builder.ts';
import { decodeNpy } from '../../src/io/npy.ts';
import { RESULTS_MARKER } from '../../src/io/results.ts';

let root: string;
let exportDir: string;
let onnx: string;
/** Files of the previous result at --out, with their contents. */
const PREVIOUS: Record<string, string> = {
  'config.json': '{"command":"sample","note":"an earlier run"}\n',
  'report.html': '<p>earlier</p>\n',
  // a memscope result (its marker lists what it wrote), so --out may be replaced: only the bad input stops the run
  [RESULTS_MARKER]: JSON.stringify({ format: 'memscope-results', version: 1, command: 'sample', memscopeVersion: '0.1.0', createdAt: '2026-12-01T00:00:00.000Z', files: ['config.json', 'report.html'] }) + '\n',
};

/** Every file under `dir` (relative path → contents), for before/after comparisons. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(join(d, e.name), r);
      else out[r] = readFileSync(join(d, e.name)).toString('base64');
    }
  };
  walk(dir, '');
  return out;
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'memscope-bad-input-'));
  exportDir = join(root, 'export');
  writeTinySdExport(exportDir, { variant: 'optimum', seed: 3 });
  mkdirSync(join(root, 'prev'));
  for (const [f, t] of Object.entries(PREVIOUS)) writeFileSync(join(root, 'prev', f), t);
  writeFileSync(join(root, 'header.csv'), 'caption,image,label\n');
  // Latin-1 "Café" on line 3: 'caption\n' (8 bytes) + 'a cat\n' (6) + 'Caf' (3) → 0xE9 at byte offset 17
  writeFileSync(join(root, 'latin1.csv'), Buffer.concat([Buffer.from('caption\na cat\nCaf'), Buffer.from([0xe9]), Buffer.from(' au lait\n')]));
  writeFileSync(join(root, 'long.csv'), `caption\n${'x'.repeat(10_001)}\n`);
  writeFileSync(join(root, 'garbage.onnx'), 'not a protobuf');
  writeFileSync(join(root, 'bad.json'), '{ "beta_start": ');
  writeFileSync(join(root, 'bad.npy'), 'xx');
  mkdirSync(join(root, 'notamodel'));
  writeFileSync(join(root, 'notamodel', 'model.json'), '{"hello": 1}');
  // ε = 0.1·sample: a tiny valid noise model
  const b = new GraphBuilder({ name: 'tiny' });
  const x = b.input('sample', 'float32', ['B', 1, 4, 4]);
  b.input('timestep', 'float32', ['B']);
  b.output(b.op('Mul', [x, b.constF32(0.1)]), 'float32', ['B', 1, 4, 4], 'out_sample');
  onnx = join(root, 'tiny.onnx');
  writeFileSync(onnx, b.toBytes());
}, 60_000);

afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Run `args --out ROOT/prev`; expect exit 2, `re` on stderr, and nothing created or changed anywhere under ROOT. */
async function refused(args: string[], re: RegExp): Promise<string> {
  const before = snapshot(root);
  const r = await runCli([...args, '--out', join(root, 'prev')]);
  expect(r.err).toMatch(re);
  expect(r.code).toBe(2);
  expect(r.out).toBe('');
  // one message, not a schema dump: at most the message and the "(see --help)" line, no JSON
  const lines = r.err.trim().split('\n').filter((l) => !/^\(see memscope /.test(l) && !/skipped: /.test(l));
  expect(lines).toHaveLength(1);
  expect(r.err).not.toMatch(/"code":|^\s*[[{]\s*$/m);
  expect(snapshot(root)).toEqual(before);
  return r.err;
}

describe('issue 14 §2: the listed cases', () => {
  it('train --channels 0,0,0: one line naming --channels, its value and what is allowed (no zod dump)', async () => {
    await refused(['train', '--scenario', 'duplication', '--channels', '0,0,0'], /^memscope train: --channels: each width must be a multiple of 8 between 8 and 1024 .*got "0,0,0"/);
    await refused(['train', '--scenario', 'duplication', '--channels', '33,64'], /--channels: each width must be a multiple of 8 .*got "33,64" \(33 not allowed\)/);
    await refused(['train', '--scenario', 'duplication', '--channels', '8,8,8,8,8,8,8'], /--channels: at most 6 levels .*got 7/);
    await refused(['train', '--scenario', 'duplication', '--channels', '32,,64'], /--channels: expected comma-separated positive integers, e\.g\. 32,64,64, got "32,,64"/);
  });

  it.each([
    [['--eta=5'], /--eta: expected a number in \[0, 1\] \(DDIM's η.*got "5"/],
    [['--eta', '1.5'], /--eta: expected a number in \[0, 1\].*got "1\.5"/],
    [['--eta', '-0.5'], /--eta: expected a number in \[0, 1\].*got "-0\.5"/],
    [['--eta', 'nan'], /--eta: expected a number in \[0, 1\].*got "nan"/],
    [['--steps', '-3'], /--steps: expected an integer in 1\.\.1000, got "-3"/],
    [['--steps', '0'], /--steps: expected an integer in 1\.\.1000, got "0"/],
    [['--steps', '1e3'], /--steps: expected an integer in 1\.\.1000, got "1e3"/],
    [['--batch-size', '-1'], /--batch-size: expected a positive integer, got "-1"/],
    [['--eta', '0.5', '--sampler', 'euler'], /--eta: only the ddim sampler takes η \(got --sampler euler\)/],
  ])('sample %j: out-of-range numbers are refused up front', async (args, re) => {
    await refused(['sample', '--model', onnx, ...args], re);
  });

  it('evaluate --prompts caption:0 --seeds 0: the Fréchet minimum is checked before sampling, nothing left next to --out', async () => {
    await refused(
      ['evaluate', '--model', 'models/duplication', '--prompts', 'caption:0', '--seeds', '0', '--methods', 'cfg'],
      /--seeds: the Fréchet distance needs at least 2 samples per method; --prompts caption:0 gives 1 prompt and --seeds 0 1 seed \(1 sample\); give at least 2 seeds or 2 prompts/,
    );
  });

  it('a prompt CSV with only a header: the error names the file and says it has no rows (not --prompt-limit)', async () => {
    const err = await refused(['sample', '--model', exportDir, '--prompt-set', join(root, 'header.csv')], /--prompt-set: readPromptSet: ".*header\.csv": has no rows: a header \("caption", "image", "label"\) but no prompts below it/);
    expect(err).not.toMatch(/prompt-limit/);
    await refused(['detect', '--model', exportDir, '--prompt-set', join(root, 'header.csv')], /header\.csv": has no rows/);
  });

  it.each([
    [['sample', '--scheduler-config', 'ROOT/missing.json'], /^memscope sample: --scheduler-config: .*missing\.json: scheduler config not found/],
    [['sample', '--scheduler-config', 'ROOT/bad.json'], /^memscope sample: --scheduler-config: .*bad\.json: not valid JSON/],
    [['sample', '--model', 'ROOT/garbage.onnx'], /^memscope sample: --model: .*garbage\.onnx/],
    [['sample', '--model', 'ROOT/missing.onnx'], /^memscope sample: --model: .*missing\.onnx does not exist or is not a file/],
    [['sample', '--model', 'ROOT/notamodel'], /^memscope sample: --model: .*notamodel\/model\.json is not a memscope trained-model file/],
    [['sample', '--model', 'ROOT/tiny.onnx', '--cond', 'ROOT/bad.npy'], /^memscope sample: --cond: not a \.npy file \(bad magic\)/],
    [['export', '--model', 'ROOT/missing'], /^memscope export: --model: .*missing is not a trained memscope model \(no model\.json\)/],
    [['validate', '--model', 'ROOT/missing'], /^memscope validate: --model: .*missing is not a trained memscope model/],
    [['geometry', '--model', 'ROOT/missing'], /^memscope geometry: --model: cannot load the trained model in .*missing/],
  ])('runtime input error %j exits 2 naming the flag', async (args, re) => {
    await refused(args.map((a) => a.replace('ROOT', root)), re);
  });

  it('a prompt longer than 10,000 characters is refused (not copied into config.json and report.html)', async () => {
    await refused(['sample', '--model', exportDir, '--prompt', 'y'.repeat(3_400_000)], /--prompt: the prompt has 3,400,000 characters; at most 10,000 are accepted/);
    await refused(['sample', '--model', exportDir, '--prompt', 'y'.repeat(10_001)], /--prompt: the prompt has 10,001 characters; at most 10,000 are accepted \(the text encoder reads only its first 77 tokens\)/);
    await refused(['sample', '--model', exportDir, '--prompt', 'a cat', '--negative-prompt', 'z'.repeat(20_000)], /--negative-prompt: the prompt has 20,000 characters; at most 10,000/);
    await refused(['sample', '--model', exportDir, '--prompt-set', join(root, 'long.csv')], /--prompt-set: .*long\.csv": caption at row 1 \(line 2\) \(column "caption"\): the prompt has 10,001 characters/);
  });

  it('a non-UTF-8 prompt file: the error names the file and the byte offset of the first invalid sequence', async () => {
    await refused(['sample', '--model', exportDir, '--prompt-set', join(root, 'latin1.csv')], /--prompt-set: .*latin1\.csv": not valid UTF-8: invalid byte sequence at byte offset 17 \(line 3; bytes e9 20 61 75\)/);
  });
});

describe('did you mean, missing values, repeated and stray arguments', () => {
  it.each([
    [['sample', '--samplr', 'ddim'], /^memscope sample: unknown flag --samplr \(did you mean --sampler\?\)/],
    [['sample', '--seed', '3'], /unknown flag --seed \(did you mean --seeds\?\)/],
    [['evaluate', '--thresold', '0.5'], /unknown flag --thresold \(did you mean --threshold\?\)/],
    [['sample', '--xyzzy', '1'], /unknown flag --xyzzy; see --help for the flags of this command/],
    [['sample', '--sampler', 'dpmpp3m'], /--sampler: "dpmpp3m" is not a sampler memscope implements; expected ddim, dpmpp2m, euler, euler-ancestral, pndm, unipc, heun-edm or auto .*\(did you mean "dpmpp2m"\?\)/],
    [['sample', '--sampler', 'lms'], /--sampler: "lms" is not a sampler memscope implements/],
    [['train', '--scenario', 'duplicaton'], /--scenario: "duplicaton" is not one of duplication, small-set, class, .* \(did you mean "duplication"\?\)/],
    [['sample', '--guidance', 'dpt:7.5'], /--guidance "dpt:7\.5": unknown schedule "dpt" \(did you mean "dtp"\?\)/],
    [['sample', '--guidance', 'stp:700'], /--guidance "stp:700": a number after ":" is the guidance scale λ.*write stp@700 for τ = 700/],
    [['sample', '--model', 'ROOT/tiny.onnx', '--prediction-type', 'eps'], /--prediction-type: "eps" is not one of epsilon, v_prediction, sample \(did you mean "epsilon"\?\)/],
    [['sample', '--record', 'xhat0'], /--record: unknown quantity "xhat0" \(did you mean "xHat0"\?\)/],
    [['evaluate', '--methods', 'cfg,dpt'], /--methods: unknown method "dpt" \(did you mean "dtp"\?\)/],
    [['sample', '--provider', 'gpu'], /--provider: "gpu" is not one of cpu, cuda/],
    [['sample', '--steps'], /--steps: missing value/],
    [['sample', '--steps', '--seeds', '0'], /--steps: missing value \(found the flag --seeds after it\)/],
    [['sample', '--trajectory=yes'], /--trajectory: a switch, takes no value \(got "yes"\)/],
    [['sample', '--steps', '2', '--steps', '3'], /--steps: given twice \("2" and "3"\); give it once/],
    [['sample', 'steps', '3'], /unexpected argument "steps" \(did you mean --steps\?\); flags start with --/],
    [['sample', '--shape', '0,4,4'], /--shape: expected comma-separated positive integers .*got "0,4,4"/],
    [['sample', '--shape', '4,4,4'], /--shape: only for --model PATH\.onnx/],
    [['sample', '--model', ''], /--model: empty value/],
    [['export'], /^memscope export: --model: required/],
    [['sample', '--seeds', '5-3'], /--seeds/],
    [['geometry', '--sigma-min', '2', '--sigma-max', '1'], /--sigma-max: expected a number > --sigma-min = 2, got 1/],
    [['analyze', 'kim', '--threshold', '2'], /--threshold: expected a number in \[-1, 1\], got "2"/],
    [['curves', '--fraction', '0'], /--fraction: expected a number in \(0, 1\], got "0"/],
    [['train', '--scenario', 'classifier', '--channels', '8,8'], /--channels: not used by --scenario classifier; only by duplication, small-set/],
    [['train', '--scenario', 'class', '--duplicates', '5'], /--duplicates: not used by --scenario class; only by duplication/],
    [['train', '--scenario', 'duplication', '--band', '1-2'], /--band: not used by --scenario duplication; only by edm-small-undertrained/],
    [['analyze', 'kmi'], /expected a suite name: kim \(got "kmi"\) \(did you mean "kim"\?\)/],
  ])('%j', async (args, re) => {
    await refused(args.map((a) => a.replace('ROOT', root)), re);
  });

  it('an unknown command suggests the nearest (also after help)', async () => {
    for (const argv of [['sampel'], ['help', 'sampel']]) {
      const r = await runCli(argv);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/unknown command "sampel" \(did you mean "sample"\?\); expected one of demo, sample/);
    }
  });
});

describe('sampler spellings', () => {
  it('DPMSolverMultistepScheduler, dpm++2m and dpmpp-2m run the dpmpp2m sampler (same samples as --sampler dpmpp2m)', async () => {
    const run = async (name: string, out: string): Promise<Float32Array> => {
      const r = await runCli(['sample', '--model', onnx, '--sampler', name, '--steps', '3', '--guidance', 'none', '--seeds', '0-1', '--out', join(root, out)]);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(readFileSync(join(root, out, 'config.json'), 'utf8')).sampler).toBe('dpmpp2m');
      return decodeNpy(readFileSync(join(root, out, 'samples.npy'))).data;
    };
    const ref = await run('dpmpp2m', 'ref');
    for (const [i, name] of ['DPMSolverMultistepScheduler', 'dpm++2m', 'dpmpp-2m'].entries()) expect(await run(name, `s${i}`)).toEqual(ref);
  });

  it("euler's trajectory.npy is x/√(σ²+1) (√(1−ᾱ)·noise at the first step), not diffusers' latents σ·noise, as --help says", async () => {
    const out = join(root, 'euler');
    const r = await runCli(['sample', '--model', onnx, '--sampler', 'EulerDiscreteScheduler', '--steps', '3', '--guidance', 'none', '--seeds', '0', '--trajectory', '--out', out]);
    expect(r.code).toBe(0);
    const traj = decodeNpy(readFileSync(join(out, 'trajectory.npy')));
    const noise = decodeNpy(readFileSync(join(out, 'noise.npy'))).data;
    const ab = JSON.parse(readFileSync(join(out, 'guidance.json'), 'utf8')).alphaBar[0] as number;
    const sigma = Math.sqrt((1 - ab) / ab);
    expect(sigma).toBeGreaterThan(10); // SD 1.x: σ_max ≈ 14.6, so the two conventions differ by a factor ≈ 15
    for (let k = 0; k < 16; k++) expect(traj.data[k]!).toBeCloseTo(Math.sqrt(1 - ab) * noise[k]!, 4);
    const help = (await runCli(['sample', '--help'])).out;
    expect(help).toMatch(/for euler that is\s+sample\/√\(σ²\+1\), not diffusers' latents/);
  });
});

describe('--help', () => {
  it('geometry --help shows the Stable Diffusion flags once', async () => {
    const h = (await runCli(['geometry', '--help'])).out;
    expect(h.match(/^Stable Diffusion \(/gm)).toHaveLength(1);
    expect(h.match(/^ {2}--prompt-set FILE/gm)).toHaveLength(1);
    expect(h.match(/^ {2}--held-out DIR/gm)).toHaveLength(1);
  });

  it('evaluate --help gives the shapes of samples-<method>.npy on the testbed and on exports', async () => {
    const h = (await runCli(['evaluate', '--help'])).out;
    expect(h).toMatch(/\[prompts·seeds, 1, 28, 28\] on the testbed and trained models/);
    expect(h).toMatch(/VAE-decoded RGB images \[prompts·seeds, 3, H, W\]/);
  });
});
