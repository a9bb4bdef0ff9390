/**
 * `memscope study run SPEC.yaml`: the spec expands into models × samplers × (guidance + analyses)
 * runs, all into one store and one results folder; a rerun of the file computes no unit; a bad
 * spec exits 2 naming the file and the key.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { planStudyFile, StudyFileSchema } from '../../src/cli/study.ts';

const root = mkdtempSync(join(tmpdir(), 'memscope-study-file-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('memscope study run', () => {
  it('plans one run per model × sampler × guidance plus each analysis per model × sampler', () => {
    const f = StudyFileSchema.parse({ models: ['testbed', 'models/duplication'], samplers: ['ddim', 'dpmpp2m', 'euler'], guidance: ['constant:7.5', 'dtp', 'og+dtp'], analyses: ['kim', 'transition'] });
    const runs = planStudyFile(f);
    expect(runs).toHaveLength(2 * 3 * (3 + 2));
    expect(runs.filter((r) => r.command === 'sample')).toHaveLength(18);
    expect(new Set(runs.map((r) => r.name)).size).toBe(runs.length);
    expect(runs[0]).toEqual({ name: 'testbed/ddim/sample-constant_7.5', command: 'sample', args: ['--model', 'testbed', '--sampler', 'ddim', '--steps', '50', '--guidance', 'constant:7.5'] });
  });

  it('runs every combination into one store; a rerun computes nothing', async () => {
    const spec = join(root, 'study.yaml');
    writeFileSync(spec, 'models: testbed\nprompts: caption:0,class:1\nseeds: 0-1\nsteps: 5\nguidance: [constant:7.5, dtp]\n');
    const store = join(root, 'store');
    const out = join(root, 'out');
    const a = await runCli(['study', 'run', spec, '--store', store, '--out', out]);
    expect(a.err).not.toMatch(/Error/);
    expect(a.code).toBe(0);
    const study = JSON.parse(readFileSync(join(out, 'study.json'), 'utf8')) as { runs: { name: string }[] };
    expect(study.runs.map((r) => r.name)).toEqual(['testbed/ddim/sample-constant_7.5', 'testbed/ddim/sample-dtp']);
    const first = JSON.parse(readFileSync(join(out, 'testbed/ddim/sample-dtp/run.json'), 'utf8')) as { computed: number; reused: number };
    expect(first).toMatchObject({ computed: 4, reused: 0 });
    const b = await runCli(['study', 'run', spec, '--store', store, '--out', out]);
    expect(b.code).toBe(0);
    for (const r of study.runs) expect(JSON.parse(readFileSync(join(out, r.name, 'run.json'), 'utf8'))).toMatchObject({ computed: 0, reused: 4 });
  }, 120_000);

  it('refuses a bad spec before any work, naming the file and the key', async () => {
    const bad = join(root, 'bad.yaml');
    writeFileSync(bad, 'models: testbed\nsampler: ddim\n');
    const r = await runCli(['study', 'run', bad, '--out', join(root, 'never')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/SPEC: .*bad\.yaml: unknown key "sampler" \(did you mean "samplers"\?\)/);
    const r2 = await runCli(['study', 'go', bad]);
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(/expected "run SPEC.yaml"/);
  });
});
