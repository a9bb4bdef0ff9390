/**
 * `memscope <command> --config OUT/run.json` (issue 15 §3) for every command that writes run.json:
 * run.json records the flags the run was made from; a rerun from it into another folder reproduces
 * OUT's files byte for byte from the store (computing nothing), apart from the timing and date
 * fields listed in {@link VARYING}; a flag typed beside --config overrides the recorded one; a
 * run.json of another command, a file that is not JSON and a bad recorded value exit 2 naming --config.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { PATH_FLAGS } from '../../src/cli/study-run.ts';

/** Tiny runs of every command on the testbed (validate needs a trained model: the shipped one, relative to the package root). */
const COMMANDS: Record<string, readonly string[]> = {
  'analyze kim': ['analyze', 'kim', '--model', 'testbed', '--prompts', 'caption:0,class:0', '--seeds', '0-1', '--scales', '1', '--steps', '4', '--descriptor', 'pixel', '--k-scales', '0,1'],
  curves: ['curves', '--model', 'testbed', '--prompts', 'caption:0,class:0', '--seeds', '0-1', '--steps', '4', '--scale', '3'],
  sweep: ['sweep', '--model', 'testbed', '--prompts', 'caption:0', '--steps', '4', '--every', '2', '--descriptor', 'pixel'],
  detect: ['detect', '--model', 'testbed', '--prompts', 'caption:0,class:0', '--seeds', '0-1', '--steps', '4'],
  evaluate: ['evaluate', '--model', 'testbed', '--prompts', 'caption:0-1', '--methods', 'cfg', '--seeds', '0-1', '--steps', '4', '--descriptor', 'pixel'],
  transition: ['transition', '--model', 'testbed', '--prompts', 'caption:0', '--seeds', '0', '--steps', '4', '--every', '2', '--descriptor', 'pixel'],
  validate: ['validate', '--model', 'models/duplication', '--prompts', 'caption:0', '--seeds', '0-1', '--steps', '4'],
};

/** The argv that names `command` (`analyze kim` is two words). */
const head = (command: string): string[] => command.split(' ');

/**
 * What may differ between a run and its rerun from the store — JSON keys (anywhere in the file)
 * and HTML text: when each file was written and how many units were computed or reused (run.json,
 * the results marker, kim.json's `timing.cachedBatches` and its report's "N units reused"), and
 * the wall time of the reduce step (`seconds` of curves.json / sweep.json and their reports).
 */
const VARYING = {
  'run.json': ['createdAt', 'computed', 'reused'],
  '.memscope-results.json': ['createdAt'],
  'kim.json': ['cachedBatches'],
  'curves.json': ['seconds'],
  'sweep.json': ['seconds'],
} as Record<string, readonly string[]>;
const VARYING_HTML: readonly RegExp[] = [/\d+ units reused/g, /[\d.e+-]+ s\.<\/p>/g];

function dropKeys(x: unknown, keys: readonly string[]): unknown {
  if (Array.isArray(x)) return x.map((v) => dropKeys(v, keys));
  if (x === null || typeof x !== 'object') return x;
  return Object.fromEntries(Object.entries(x).filter(([k]) => !keys.includes(k)).map(([k, v]) => [k, dropKeys(v, keys)]));
}

/** Every file under `a` equals the same file under `b`: byte for byte, or (listed in VARYING) apart from those fields. */
async function expectSameResults(a: string, b: string, label: string): Promise<void> {
  const files = (await readdir(a, { recursive: true })).map(String).sort();
  expect((await readdir(b, { recursive: true })).map(String).sort(), label).toEqual(files);
  for (const f of files) {
    let x: Buffer;
    try {
      x = await readFile(join(a, f));
    } catch {
      continue; // a folder
    }
    const y = await readFile(join(b, f));
    if (x.equals(y)) continue;
    const keys = VARYING[f.split('/').pop()!];
    if (keys !== undefined) {
      expect(dropKeys(JSON.parse(y.toString('utf8')), keys), `${label} ${f}`).toEqual(dropKeys(JSON.parse(x.toString('utf8')), keys));
    } else if (f.endsWith('.html')) {
      const norm = (s: string): string => VARYING_HTML.reduce((t, re) => t.replace(re, '…'), s);
      expect(norm(y.toString('utf8')), `${label} ${f}`).toBe(norm(x.toString('utf8')));
    } else expect.fail(`${label}: ${f} differs between the run and its rerun from --config`);
  }
}

const readJson = async (p: string): Promise<Record<string, unknown>> => JSON.parse(await readFile(p, 'utf8')) as Record<string, unknown>;

let root: string;
let store: string;
const savedStoreEnv = process.env['MEMSCOPE_STORE'];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'memscope-config-'));
  store = join(root, 'store');
  // a rerun that lost run.json's store would land here, not in the package's runs/store
  process.env['MEMSCOPE_STORE'] = join(root, 'default-store');
});

afterAll(async () => {
  if (savedStoreEnv === undefined) delete process.env['MEMSCOPE_STORE'];
  else process.env['MEMSCOPE_STORE'] = savedStoreEnv;
  await rm(root, { recursive: true, force: true });
});

describe('--config OUT/run.json', () => {
  it.each(Object.keys(COMMANDS))('%s: records its flags; a rerun from run.json into another folder computes nothing and writes the same files', async (command) => {
    const dir = join(root, command.replace(' ', '-'));
    const a = await runCli([...COMMANDS[command]!, '--store', store, '--out', join(dir, 'a')]);
    expect(a.code, a.err).toBe(0);
    const runA = await readJson(join(dir, 'a', 'run.json'));
    const typed = COMMANDS[command]!.slice(head(command).length);
    const flags: Record<string, string> = {};
    for (let i = 0; i < typed.length; i += 2) flags[typed[i]!.slice(2)] = typed[i + 1]!;
    expect(runA['flags']).toEqual(flags);
    expect(runA['cwd']).toBe(process.cwd());
    expect(runA['computed']).toBeGreaterThan(0);

    const b = await runCli([...head(command), '--config', join(dir, 'a', 'run.json'), '--out', join(dir, 'b')]);
    expect(b.code, b.err).toBe(0);
    const runB = await readJson(join(dir, 'b', 'run.json'));
    expect([runB['computed'], runB['reused'], runB['store']]).toEqual([0, (runA['units'] as unknown[]).length, store]);
    expect(runB['flags']).toEqual(flags);
    await expectSameResults(join(dir, 'a'), join(dir, 'b'), command);
  });

  it('a flag typed beside --config overrides the recorded one; without --out the rerun re-renders the folder holding run.json; --dry-run counts the stored units', async () => {
    const dir = join(root, 'curves');
    const config = join(dir, 'a', 'run.json');
    const runA = await readJson(config);
    const c = await runCli(['curves', '--config', config, '--seeds', '0-2', '--out', join(dir, 'c')]);
    expect(c.code, c.err).toBe(0);
    const runC = await readJson(join(dir, 'c', 'run.json'));
    // 3 modes × 2 prompts × the new seed 2
    expect([runC['computed'], runC['reused']]).toEqual([6, 12]);
    expect(runC['flags']).toEqual({ ...(runA['flags'] as object), seeds: '0-2' });
    expect((runC['spec'] as { seeds: number[] }).seeds).toEqual([0, 1, 2]);

    const dry = await runCli(['curves', '--config', join(dir, 'c', 'run.json'), '--dry-run']);
    expect(dry.code, dry.err).toBe(0);
    expect(dry.out).toMatch(/units: 18 \(18 already in the store, 0 to compute\)/);

    const before = await readFile(join(dir, 'c', 'curves.json'), 'utf8');
    const again = await runCli(['curves', '--config', join(dir, 'c', 'run.json')]);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toContain(join(dir, 'c', 'report.html'));
    const runAgain = await readJson(join(dir, 'c', 'run.json'));
    expect([runAgain['computed'], runAgain['reused']]).toEqual([0, 18]);
    expect(dropKeys(JSON.parse(await readFile(join(dir, 'c', 'curves.json'), 'utf8')), ['seconds'])).toEqual(dropKeys(JSON.parse(before), ['seconds']));
    expect(await readdir(root)).not.toContain('default-store');
  });

  it('from another folder: recorded relative paths are rebased onto the folder they were typed in', async () => {
    const dir = join(root, 'validate');
    const cwd = process.cwd();
    const v1 = await readJson(join(dir, 'a', 'validation.json'));
    process.chdir(root);
    try {
      const r = await runCli(['validate', '--config', join(dir, 'a', 'run.json'), '--out', join(dir, 'elsewhere')]);
      expect(r.code, r.err).toBe(0);
    } finally {
      process.chdir(cwd);
    }
    const run = await readJson(join(dir, 'elsewhere', 'run.json'));
    expect(run['computed']).toBe(0);
    expect(run['cwd']).toBe(root);
    expect((run['flags'] as Record<string, string>)['model']).toBe(resolve(cwd, 'models/duplication'));
    const v2 = await readJson(join(dir, 'elsewhere', 'validation.json'));
    expect(v2['model']).toBe(resolve(cwd, 'models/duplication'));
    expect(dropKeys(v2, ['model', 'seconds'])).toEqual(dropKeys(v1, ['model', 'seconds']));
  });

  it('refuses, with exit 2 naming --config: another command\'s run.json, a file that is not JSON or not a run.json, a bad recorded value', async () => {
    const curves = join(root, 'curves', 'a', 'run.json');
    const out = join(root, 'refused');
    const wrong = await runCli(['detect', '--config', curves, '--out', out]);
    expect(wrong.code).toBe(2);
    expect(wrong.err).toContain(`memscope detect: --config: ${curves} is the run.json of memscope curves, not of memscope detect`);
    const kim = await runCli(['analyze', 'kim', '--config', curves, '--out', out]);
    expect(kim.code).toBe(2);
    expect(kim.err).toMatch(/--config: .* is the run\.json of memscope curves, not of memscope analyze kim/);

    await writeFile(join(root, 'notjson.json'), '{ "format": ');
    const nj = await runCli(['curves', '--config', join(root, 'notjson.json'), '--out', out]);
    expect(nj.code).toBe(2);
    expect(nj.err).toMatch(/--config: .*notjson\.json is not valid JSON/);

    await writeFile(join(root, 'other.json'), '{"format": "something-else"}');
    const other = await runCli(['curves', '--config', join(root, 'other.json'), '--out', out]);
    expect(other.code).toBe(2);
    expect(other.err).toMatch(/--config: .*other\.json is not a memscope run\.json/);

    const missing = await runCli(['sweep', '--config', join(root, 'nope.json'), '--out', out]);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/--config: .*nope\.json/);

    const run = await readJson(curves);
    await writeFile(join(root, 'badsteps.json'), JSON.stringify({ ...run, flags: { ...(run['flags'] as object), steps: 'four' } }));
    const bad = await runCli(['curves', '--config', join(root, 'badsteps.json'), '--out', out]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--config: .*badsteps\.json records --steps: expected an integer in 1\.\.1000, got "four"/);
    // typed on the command line, the same value is the command line's error
    const typed = await runCli(['curves', '--config', curves, '--steps', 'four', '--out', out]);
    expect(typed.code).toBe(2);
    expect(typed.err).toMatch(/^memscope curves: --steps: expected an integer in 1\.\.1000, got "four"/);

    await writeFile(join(root, 'unknown.json'), JSON.stringify({ ...run, flags: { ...(run['flags'] as object), sampel: 'ddim' } }));
    const unknown = await runCli(['curves', '--config', join(root, 'unknown.json'), '--out', out]);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/--config: .*unknown\.json records the flag --sampel, which memscope curves does not take/);
    expect(await readdir(root)).not.toContain('refused');
  });

  it('rebases the path inside each flag value: --model unless a keyword, --descriptor entries learned:DIR / sscd:PATH, plain files', () => {
    expect(PATH_FLAGS['model']!('testbed', '/w')).toBe('testbed');
    expect(PATH_FLAGS['model']!('default', '/w')).toBe('default');
    expect(PATH_FLAGS['model']!('models/duplication', '/w')).toBe('/w/models/duplication');
    expect(PATH_FLAGS['model']!('/abs/unet.onnx', '/w')).toBe('/abs/unet.onnx');
    expect(PATH_FLAGS['descriptor']!('pixel,learned,learned:d/desc,sscd:/m/sscd.onnx,sscd:sscd.onnx', '/w')).toBe('pixel,learned,learned:/w/d/desc,sscd:/m/sscd.onnx,sscd:/w/sscd.onnx');
    expect(PATH_FLAGS['prompt-set']!('../p.csv', '/w/x')).toBe('/w/p.csv');
  });

  it('every command that writes run.json lists --config in its --help', async () => {
    for (const command of [...Object.keys(COMMANDS), 'sample']) {
      const h = await runCli([...head(command), '--help']);
      expect(h.out, command).toMatch(/^ {2}--config (FILE|OUT\/run\.json) /m);
    }
  });
});
