/**
 * The evaluation-model conversion scripts (issue 20 §1, `scripts/convert/*.py`) on stand-ins with
 * the official checkpoints' interfaces (`test/helpers/convert_standins.py`; Debian's python3-torch,
 * installed by `.ci/run`): each export is checked against torch by onnxruntime-node and its manifest
 * records the source's sha256 (recomputed here with node's crypto); memscope loads each result and
 * records the manifest; an export that differs from torch (a branch frozen by tracing) is refused and
 * removed; bad flags exit 2 naming the flag.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { sscdDescriptor } from '../../src/metrics/descriptor.ts';
import { checkProtocolModel, PROTOCOLS } from '../../src/analysis/protocols.ts';
import { clipPathsFromDir, loadClip } from '../../src/metrics/clip.ts';
import { loadInceptionFeatures } from '../../src/metrics/inception.ts';
import { writeTinySdExport } from '../helpers/tiny-sd-export.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const SCRIPTS = join(ROOT, 'scripts', 'convert');
const STANDINS = join(ROOT, 'test', 'helpers', 'convert_standins.py');

/** A python3 that imports torch and numpy (Debian's is /usr/bin/python3; a pyenv shim may shadow it), or null. */
function findPython(): string | null {
  for (const p of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(p, ['-c', 'import torch, numpy'], { encoding: 'utf8' });
    if (r.status === 0) return p;
  }
  return null;
}
const PY = findPython();
// CI installs python3-torch: there a missing torch is a failure, not a skip
if (PY === null && process.env['CI'] === 'true') throw new Error('python3 with torch and numpy is missing (.ci/run installs python3-torch python3-numpy)');

function py(args: string[]): { code: number; out: string; err: string } {
  // no __pycache__ beside the scripts (they ship in the package)
  const r = spawnSync(PY!, args, { encoding: 'utf8', cwd: dir, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}
const sha = (f: string): string => createHash('sha256').update(readFileSync(f)).digest('hex');
const manifestOf = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'memscope-convert-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(PY === null)('conversion scripts on stand-ins', () => {
  it('sscd_to_onnx: TorchScript → ONNX within 1e-4 of torch, manifest with the sha256, usable by --protocol wen', async () => {
    const ts = join(dir, 'sscd_disc_large.torchscript.pt');
    expect(py([STANDINS, 'sscd', ts]).code).toBe(0);
    const onnx = join(dir, 'sscd', 'sscd_disc_large.onnx');
    const r = py([join(SCRIPTS, 'sscd_to_onnx.py'), '--torchscript', ts, '--out', onnx]);
    expect(r.code, r.err).toBe(0);
    const m = manifestOf(join(dir, 'sscd', 'sscd_disc_large.manifest.json'));
    expect(m).toMatchObject({ format: 'memscope-eval-model/1', kind: 'sscd', checkpoint: 'sscd_disc_large', source: { file: 'sscd_disc_large.torchscript.pt', sha256: sha(ts) } });
    expect(m.check.inputs).toBe(3);
    expect(m.check.maxAbsDiff).toBeLessThan(1e-4);
    expect(m.check.runtime).toMatch(/^onnxruntime-node/);
    expect(m.extra).toMatchObject({ dim: 12, checkSizes: [224, 288, 320] });
    const d = await sscdDescriptor(onnx, PROTOCOLS.wen.sscd);
    expect(d.info.dim).toBe(12);
    expect(d.info.manifest?.source.sha256).toBe(sha(ts));
    expect(checkProtocolModel(PROTOCOLS.wen, d.info)).toEqual({ error: null, warning: null });
    expect(checkProtocolModel(PROTOCOLS.nemo, d.info).error).toMatch(/used sscd_disc_mixup/);
    const e = await d.embed({ dims: [2, 1, 28, 28], data: new Float32Array(2 * 784).map((_, i) => Math.sin(i)) });
    expect(e.dims).toEqual([2, 12]);
    await d.dispose?.();
  });

  it('clip_to_onnx: both towers and the tokenizer in the --clip layout, each with its manifest', async () => {
    const sd = writeTinySdExport(join(dir, 'sd'));
    expect(sd.vocabSize).toBeGreaterThan(2);
    const out = join(dir, 'clip');
    const r = py([join(SCRIPTS, 'clip_to_onnx.py'), '--module', `${STANDINS}:clip_standin`, '--tokenizer', join(dir, 'sd', 'tokenizer'), '--checkpoint', 'stand-in ViT', '--out', out]);
    expect(r.code, r.err).toBe(0);
    for (const [f, kind] of [['vision_model', 'clip-vision'], ['text_model', 'clip-text']] as const) {
      const m = manifestOf(join(out, `${f}.manifest.json`));
      expect(m).toMatchObject({ kind, checkpoint: 'stand-in ViT', source: { sha256: sha(STANDINS) }, extra: { imageSize: 32, contextLength: 77, dim: 6 } });
      expect(m.check.maxAbsDiff).toBeLessThan(1e-4);
    }
    const clip = await loadClip(clipPathsFromDir(out));
    expect(clip.image.info.manifest?.kind).toBe('clip-vision');
    expect(clip.text.info.manifest?.kind).toBe('clip-text');
    const t = await clip.text.embed(['a photo']);
    expect(t.dims).toEqual([1, 6]);
    await clip.dispose();
  });

  it('inception_to_onnx: pool features with the pytorch-fid convention recorded; a wrong convention is refused', async () => {
    const onnx = join(dir, 'inception', 'pt_inception.onnx');
    const r = py([join(SCRIPTS, 'inception_to_onnx.py'), '--module', `${STANDINS}:inception_standin`, '--out', onnx]);
    expect(r.code, r.err).toBe(0);
    const m = manifestOf(join(dir, 'inception', 'pt_inception.manifest.json'));
    expect(m).toMatchObject({ kind: 'inception', extra: { dim: 4, convention: 'pytorch-fid' } });
    expect(m.check.maxAbsDiff).toBeLessThan(1e-4);
    const f = await loadInceptionFeatures(onnx);
    expect(f.manifest?.extra['convention']).toBe('pytorch-fid');
    expect((await f.features({ dims: [2, 3, 40, 40], data: new Float32Array(2 * 3 * 1600).fill(0.25) })).dims).toEqual([2, 4]);
    await f.dispose();
    await expect(loadInceptionFeatures(onnx, { convention: 'torchvision' })).rejects.toThrow(/converted for the pytorch-fid convention .* use --inception-convention pytorch-fid/);
  });

  it('refuses an export that differs from torch (removed, no manifest) and bad flags, exit 2', () => {
    const onnx = join(dir, 'branchy', 'b.onnx');
    const r = py([join(SCRIPTS, 'inception_to_onnx.py'), '--module', `${STANDINS}:inception_branchy`, '--out', onnx]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/the ONNX export differs from the torch model by 0\.\d+ > 0\.0001 on 2 random inputs; .*b\.onnx removed, no manifest written/);
    expect(existsSync(onnx)).toBe(false);
    expect(existsSync(join(dir, 'branchy', 'b.manifest.json'))).toBe(false);
    const missing = py([join(SCRIPTS, 'sscd_to_onnx.py'), '--torchscript', join(dir, 'nope.pt'), '--out', join(dir, 'x.onnx')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('--torchscript: ');
    expect(missing.err).toContain('nope.pt does not exist');
    const sizes = py([join(SCRIPTS, 'sscd_to_onnx.py'), '--torchscript', STANDINS, '--out', join(dir, 'x.onnx'), '--sizes', '224,big']);
    expect(sizes.code).toBe(2);
    expect(sizes.err).toContain("--sizes: expected positive integers separated by commas, got '224,big'");
    const two = py([join(SCRIPTS, 'clip_to_onnx.py'), '--hf', dir, '--module', `${STANDINS}:clip_standin`, '--out', join(dir, 'c')]);
    expect(two.code).toBe(2);
    expect(two.err).toContain('give exactly one of --hf DIR, --open-clip MODEL');
  });
});
