/**
 * `--sampler auto` (issue 19 §3): the sampler of the scheduler class the model's own
 * `scheduler_config.json` names. On a tiny Stable Diffusion export the project writes (a
 * `PNDMScheduler` config, as SD 1.x ships), `auto` plans exactly the units of `--sampler pndm` (a
 * second run computes nothing); another class maps to its sampler, a class memscope lacks is refused
 * by name (exit 2) before any work.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinySdExport } from '../helpers/tiny-sd-export.ts';
import { runCli } from '../helpers/cli.ts';

let root = '';
let exportDir = '';

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'memscope-sampler-auto-'));
  exportDir = join(root, 'export');
  writeTinySdExport(exportDir);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A copy of the export whose scheduler config names `cls`. */
function withClass(cls: string): string {
  const dir = join(root, `export-${cls}`);
  cpSync(exportDir, dir, { recursive: true });
  const path = join(dir, 'scheduler', 'scheduler_config.json');
  writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), _class_name: cls }));
  return dir;
}

const run = (model: string, sampler: string, out: string) =>
  runCli(['sample', '--model', model, '--prompt', 'a cat', '--seeds', '0-1', '--steps', '4', '--sampler', sampler, '--store', join(root, 'store'), '--out', join(root, out)]);

describe('--sampler auto', () => {
  it("takes the export's PNDMScheduler as pndm: the same units as --sampler pndm", async () => {
    const a = await run(exportDir, 'auto', 'auto');
    expect(a.code, a.err).toBe(0);
    expect(a.err).toMatch(/--sampler auto: .*PNDMScheduler → pndm/);
    const cfg = JSON.parse(readFileSync(join(root, 'auto', 'config.json'), 'utf8')) as { sampler: string };
    expect(cfg.sampler).toBe('pndm');
    const p = await run(exportDir, 'pndm', 'pndm');
    expect(p.code, p.err).toBe(0);
    expect(JSON.parse(readFileSync(join(root, 'pndm', 'run.json'), 'utf8'))).toMatchObject({ computed: 0, reused: 2 });
    // run.json records the flag as typed: a rerun from it resolves again
    expect(JSON.parse(readFileSync(join(root, 'auto', 'run.json'), 'utf8')).flags.sampler).toBe('auto');
  });

  it('maps another class to its sampler, and refuses one memscope lacks by name (exit 2)', async () => {
    const u = await run(withClass('UniPCMultistepScheduler'), 'auto', 'unipc');
    expect(u.code, u.err).toBe(0);
    expect(JSON.parse(readFileSync(join(root, 'unipc', 'config.json'), 'utf8')).sampler).toBe('unipc');
    const l = await run(withClass('LMSDiscreteScheduler'), 'auto', 'lms');
    expect(l.code).toBe(2);
    expect(l.err).toMatch(/--sampler auto: .* is configured for LMSDiscreteScheduler, which memscope does not implement; give one of ddim, dpmpp2m, euler, euler-ancestral, pndm, unipc, heun-edm/);
  });
});
