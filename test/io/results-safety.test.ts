/**
 * Issue 14 §1: results never destroy anything. Every case runs in a fresh temporary folder (or a
 * temporary copy of the package), never on the checkout; each refusal states its message fragment
 * and exit code and checks that what was there is intact, byte for byte.
 */
import { runCli } from '../helpers/cli.ts';
import { describe, it, expect, afterEach, vi } from 'vitest';
import { mkdtemp, mkdir, readdir, readFile, readlink, lstat, writeFile, symlink, cp } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { GraphBuilder } from '../../src/graph/builder.ts';
import { checkResultsTarget, withResultsDir, RESULTS_MARKER } from '../../src/io/results.ts';
import { packageRoot } from '../../src/data/paths.ts';

const DEAD = 99_999_999; // above Linux's pid_max (≤ 4,194,304): never a live process

afterEach(() => vi.restoreAllMocks());

/** Every entry under `dir` (recursively): files by content, links by target, folders as 'dir'. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const rel = relative(dir, p);
      if (e.isSymbolicLink()) out.set(rel, `link:${await readlink(p)}`);
      else if (e.isDirectory()) {
        out.set(rel, 'dir');
        await walk(p);
      } else out.set(rel, (await readFile(p)).toString('base64'));
    }
  };
  await walk(dir);
  return out;
}

async function tmp(prefix = 'memscope-safety-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A tiny ONNX noise predictor (ε = 0.1·x): sampling it takes milliseconds and needs no data. */
async function tinyModel(dir: string): Promise<string> {
  const b = new GraphBuilder({ name: 'tiny' });
  const x = b.input('sample', 'float32', ['B', 1, 4, 4]);
  b.input('timestep', 'int64', ['B']);
  b.output(b.op('Mul', [x, b.constF32(0.1)]), 'float32', ['B', 1, 4, 4], 'out_sample');
  const p = join(dir, 'tiny.onnx');
  await writeFile(p, b.toBytes());
  return p;
}

const sampleArgs = (model: string, out: string, seeds = '0'): string[] => ['sample', '--model', model, '--steps', '2', '--guidance', 'none', '--seeds', seeds, '--out', out];

/** A folder that looks like a project: sources, a README, a package.json, a model file. */
async function projectLike(root: string): Promise<void> {
  await mkdir(join(root, 'src'), { recursive: true });
  await mkdir(join(root, 'models', 'mine'), { recursive: true });
  await writeFile(join(root, 'src', 'index.ts'), 'export const x = 1;\n');
  await writeFile(join(root, 'README.md'), '# my project\n');
  await writeFile(join(root, 'package.json'), '{"name":"mine"}\n');
  await writeFile(join(root, 'models', 'mine', 'weights.bin'), Buffer.from([1, 2, 3, 4, 5]));
}

describe('--out that memscope must not replace is refused before any work (exit 2), everything intact', () => {
  it('--out . and --out .. from a project folder', async () => {
    const root = await tmp();
    const proj = join(root, 'proj');
    await projectLike(proj);
    const before = await snapshot(root);
    const cwd = process.cwd();
    process.chdir(proj);
    try {
      // --model names a file that does not exist: had memscope loaded the model first, the error would be about --model
      const a = await runCli(sampleArgs(join(root, 'missing.onnx'), '.'));
      expect(a.code).toBe(2);
      expect(a.err).toMatch(/--out "\." is the current directory\. memscope replaces only a missing path, an empty folder or a results folder it wrote itself/);
      const b = await runCli(sampleArgs(join(root, 'missing.onnx'), '..'));
      expect(b.code).toBe(2);
      expect(b.err).toMatch(/--out "\.\." contains the current directory/);
    } finally {
      process.chdir(cwd);
    }
    expect(await snapshot(root)).toEqual(before);
  });

  it('a folder of the user\'s own files', async () => {
    const root = await tmp();
    const mine = join(root, 'mine');
    await mkdir(join(mine, 'sub'), { recursive: true });
    await writeFile(join(mine, 'notes.txt'), 'do not lose me\n');
    await writeFile(join(mine, 'sub', 'data.csv'), 'a,b\n1,2\n');
    const before = await snapshot(root);
    const r = await runCli(sampleArgs(join(root, 'missing.onnx'), mine));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--out ".*mine" is a folder memscope did not write \(no \.memscope-results\.json; it holds notes\.txt, sub\)/);
    expect(await snapshot(root)).toEqual(before); // and no hidden partial folder beside it
  });

  it('a regular file', async () => {
    const root = await tmp();
    const file = join(root, 'results.txt');
    await writeFile(file, 'twelve bytes');
    const before = await snapshot(root);
    const r = await runCli(sampleArgs(join(root, 'missing.onnx'), file));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--out ".*results\.txt" is a file \(12 bytes\), not a results folder/);
    expect(await snapshot(root)).toEqual(before);
  });

  it('a broken symbolic link, a path below a file: found before the model is loaded, no raw ENOTDIR', async () => {
    const root = await tmp();
    await symlink(join(root, 'gone', 'target'), join(root, 'link'));
    await writeFile(join(root, 'file'), 'x');
    const before = await snapshot(root);
    const a = await runCli(sampleArgs(join(root, 'missing.onnx'), join(root, 'link')));
    expect(a.code).toBe(2);
    expect(a.err).toMatch(/--out ".*link" is a broken symbolic link \(to .*gone\/target, which does not exist\)/);
    const b = await runCli(sampleArgs(join(root, 'missing.onnx'), join(root, 'file', 'res')));
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/--out ".*file\/res" cannot be created: .*file is a file, not a folder/);
    expect(b.err).not.toMatch(/ENOTDIR/);
    expect(await snapshot(root)).toEqual(before); // no partial folder: the refusal came before any work
  });

  it('a memscope result that also holds a file of the user\'s', async () => {
    const root = await tmp();
    const model = await tinyModel(root);
    const out = join(root, 'res');
    expect((await runCli(sampleArgs(model, out))).code).toBe(0);
    await writeFile(join(out, 'my-notes.md'), 'mine\n');
    const before = await snapshot(root);
    const r = await runCli(sampleArgs(model, out, '1'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/is a memscope results folder that also holds files memscope did not write \(my-notes\.md\)/);
    expect(await snapshot(root)).toEqual(before);
  });

  it('a user folder at OUT.work (once the resume cache of evaluate and analyze; they keep their units in the store now) is never touched', async () => {
    const root = await tmp();
    const work = join(root, 'ev.work');
    await mkdir(work);
    await writeFile(join(work, 'thesis.tex'), '\\documentclass{article}\n');
    const before = await snapshot(root);
    for (const argv of [['evaluate', '--model', join(root, 'missing'), '--out', join(root, 'ev')]]) {
      const r = await runCli(argv);
      expect(r.code).toBe(2);
      expect(r.err).toMatch(/--model: .*missing/);
      expect(r.err).not.toMatch(/resume cache/);
    }
    // analyze kim keeps its units in the results store, not in OUT.work: the folder is not its business
    const r = await runCli(['analyze', 'kim', '--model', join(root, 'missing'), '--out', join(root, 'ev')]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--model: expected 'testbed'/);
    expect(await snapshot(root)).toEqual(before);
  });
});

describe('what memscope may replace', () => {
  it('a previous memscope result is replaced by the new one, leaving nothing behind', async () => {
    const root = await tmp();
    const model = await tinyModel(root);
    const out = join(root, 'res');
    expect((await runCli(sampleArgs(model, out, '0'))).code).toBe(0);
    const first = JSON.parse(await readFile(join(out, RESULTS_MARKER), 'utf8'));
    expect(first).toMatchObject({ format: 'memscope-results', version: 1, command: 'sample' });
    // the marker lists exactly the other files of the folder
    expect(first.files).toEqual((await readdir(out)).filter((f) => f !== RESULTS_MARKER).sort());
    const r = await runCli(sampleArgs(model, out, '7'));
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).seeds).toEqual([7]);
    expect((await readdir(root)).sort()).toEqual(['res', 'tiny.onnx']);
  });

  it('an empty folder and a missing path (with missing parents) are written', async () => {
    const root = await tmp();
    const model = await tinyModel(root);
    await mkdir(join(root, 'empty'));
    expect((await runCli(sampleArgs(model, join(root, 'empty')))).code).toBe(0);
    expect((await runCli(sampleArgs(model, join(root, 'a', 'b', 'c')))).code).toBe(0);
    expect(await readdir(join(root, 'empty'))).toContain(RESULTS_MARKER);
    expect(await readdir(join(root, 'a', 'b', 'c'))).toContain('samples.npy');
  });
});

describe('leftovers of killed writes', () => {
  /** A finished result folder as memscope writes it (marker listing its files). */
  async function result(dir: string, content: string, createdAt = '2025-01-01T00:00:00.000Z'): Promise<void> {
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'report.html'), content);
    await writeFile(join(dir, RESULTS_MARKER), JSON.stringify({ format: 'memscope-results', version: 1, command: 'sample', memscopeVersion: '0.1.0', createdAt, files: ['report.html'] }));
  }

  it('killed while writing (partial without marker) and after the swap (.old left): both removed by the next run, OUT kept', async () => {
    const root = await tmp();
    const out = join(root, 'res');
    await result(out, 'A');
    await mkdir(join(root, `.res.partial-${DEAD}-100-0`));
    await writeFile(join(root, `.res.partial-${DEAD}-100-0`, 'samples.npy'), 'half');
    await result(join(root, `.res.partial-${DEAD}-90-0.old`), 'older');
    // a partial of a live process (another run writing the same --out) is left alone
    const live = join(root, `.res.partial-${process.ppid}-200-0`);
    await mkdir(live);
    const notes: string[] = [];
    await checkResultsTarget(out, { log: (m) => notes.push(m) });
    expect((await readdir(root)).sort()).toEqual([`.res.partial-${process.ppid}-200-0`, 'res']);
    expect(await readFile(join(out, 'report.html'), 'utf8')).toBe('A');
    expect(notes).toHaveLength(2);
    expect(notes.every((n) => /removed .*\.res\.partial-99999999-.*left by an interrupted run/.test(n))).toBe(true);
  });

  it('killed between the two renames (OUT missing): the finished partial is restored as OUT, the .old removed', async () => {
    const root = await tmp();
    const out = join(root, 'res');
    await result(join(root, `.res.partial-${DEAD}-300-1`), 'new result', '2025-02-01T00:00:00.000Z');
    await result(join(root, `.res.partial-${DEAD}-300-1.old`), 'previous result');
    await mkdir(join(root, `.res.partial-${DEAD}-200-0`)); // an older unfinished write
    const expected = await snapshot(join(root, `.res.partial-${DEAD}-300-1`));
    const notes: string[] = [];
    await checkResultsTarget(out, { log: (m) => notes.push(m) });
    expect(await readdir(root)).toEqual(['res']);
    expect(await snapshot(out)).toEqual(expected);
    expect(notes[0]).toMatch(/restored .*res from \.res\.partial-99999999-300-1, left by an interrupted run \(its finished result\)/);
  });

  it('OUT missing with only the previous result and an unfinished partial: the .old is restored', async () => {
    const root = await tmp();
    const out = join(root, 'res');
    await result(join(root, `.res.partial-${DEAD}-400-0.old`), 'previous');
    await mkdir(join(root, `.res.partial-${DEAD}-400-0`));
    await writeFile(join(root, `.res.partial-${DEAD}-400-0`, 'samples.npy'), 'half');
    const expected = await snapshot(join(root, `.res.partial-${DEAD}-400-0.old`));
    await checkResultsTarget(out, { log: () => {} });
    expect(await readdir(root)).toEqual(['res']);
    expect(await snapshot(out)).toEqual(expected);
  });

  it('a .old left by an older memscope (which renamed anything aside, no marker) is restored, and then not replaced', async () => {
    const root = await tmp();
    const out = join(root, 'res');
    await mkdir(join(root, `.res.partial-${DEAD}-400.old`));
    await writeFile(join(root, `.res.partial-${DEAD}-400.old`, 'thesis.tex'), 'mine');
    await mkdir(join(root, `.res.partial-${DEAD}-400`));
    await expect(checkResultsTarget(out, { log: () => {} })).rejects.toThrow(/--out ".*res" is a folder memscope did not write \(no \.memscope-results\.json; it holds thesis\.tex\)/);
    expect(await readdir(root)).toEqual(['res']);
    expect(await readFile(join(out, 'thesis.tex'), 'utf8')).toBe('mine');
  });

  it('the CLI cleans and recovers on its next run for the same --out', async () => {
    const root = await tmp();
    const model = await tinyModel(root);
    const out = join(root, 'res');
    await result(join(root, `.res.partial-${DEAD}-500-0`), 'finished but not swapped');
    await mkdir(join(root, `.res.partial-${DEAD}-600-0`));
    const r = await runCli(sampleArgs(model, out, '3'));
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/memscope: restored .*res from \.res\.partial-99999999-500-0/);
    expect(r.err).toMatch(/memscope: removed .*\.res\.partial-99999999-600-0/);
    expect((await readdir(root)).sort()).toEqual(['res', 'tiny.onnx']);
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).seeds).toEqual([3]);
  });

  it('a failing write leaves OUT as it was and no partial folder', async () => {
    const root = await tmp();
    const out = join(root, 'res');
    await result(out, 'A');
    const before = await snapshot(root);
    await expect(withResultsDir(out, async (dir) => {
      await writeFile(join(dir, 'half.npy'), 'x');
      throw new Error('boom');
    })).rejects.toThrow('boom');
    expect(await snapshot(root)).toEqual(before);
  });

  it('OUT turned into a user folder during the run: not touched, the finished results kept and named', async () => {
    const root = await tmp();
    const out = join(root, 'res');
    const err = await withResultsDir(out, async (dir) => {
      await writeFile(join(dir, 'report.html'), 'r');
      await mkdir(out);
      await writeFile(join(out, 'mine.txt'), 'mine');
    }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/--out ".*res" is a folder memscope did not write .*\(it changed while memscope ran\); nothing there was touched\. The finished results are in .*\.res\.partial-/);
    expect(await readFile(join(out, 'mine.txt'), 'utf8')).toBe('mine');
    expect(await readdir(out)).toEqual(['mine.txt']);
  });
});

describe('in a temporary copy of the package: the package folder and its shipped models/', () => {
  it('sample / validate / train refuse them (exit 2), the copy intact', async () => {
    const root = await tmp('memscope-pkgcopy-');
    const pkg = join(root, 'memscope');
    const real = packageRoot();
    await mkdir(pkg);
    for (const f of ['package.json', 'bin', 'src']) await cp(join(real, f), join(pkg, f), { recursive: true });
    await symlink(join(real, 'node_modules'), join(pkg, 'node_modules'));
    await symlink(join(real, 'data'), join(pkg, 'data'));
    // shipped models as the package has them: no checkpoints/
    await mkdir(join(pkg, 'models', 'duplication', 'validation'), { recursive: true });
    await writeFile(join(pkg, 'models', 'duplication', 'model.json'), JSON.stringify({ format: 'memscope-trained-model', version: 1, scenario: 'duplication', training: { steps: 2200 } }));
    await writeFile(join(pkg, 'models', 'duplication', 'weights.safetensors'), Buffer.from([9, 8, 7]));
    await writeFile(join(pkg, 'models', 'duplication', 'validation', 'validation.json'), '{}');
    await writeFile(join(pkg, 'README.md'), '# memscope\n');
    const driver = join(pkg, 'driver.mjs');
    await writeFile(
      driver,
      `import { register } from 'tsx/esm/api';
register();
const { main } = await import('./src/cli/main.ts');
const results = [];
for (const argv of JSON.parse(process.argv[2])) {
  let err = '';
  const w = process.stderr.write;
  process.stderr.write = (s) => ((err += String(s)), true);
  const code = await main(argv);
  process.stderr.write = w;
  results.push({ code, err });
}
process.stdout.write(JSON.stringify(results));
`,
    );
    const before = await snapshot(pkg);
    const missing = join(root, 'missing.onnx');
    const cases: [string[], RegExp][] = [
      [['sample', '--model', missing, '--out', '.'], /--out "\." is the memscope package folder\. memscope replaces only/],
      [['sample', '--model', missing, '--out', pkg], /is the memscope package folder/],
      [['sample', '--model', missing, '--out', root], /--out ".*memscope-pkgcopy-\w+" contains the memscope package folder/],
      [['sample', '--model', missing, '--out', 'src'], /--out "src" is a folder memscope did not write \(no \.memscope-results\.json; it holds analysis, /],
      [['sample', '--model', missing, '--out', 'models/duplication'], /--out "models\/duplication" is inside memscope's shipped models folder \(.*memscope\/models\); results never go there/],
      [['sample', '--model', missing, '--out', 'models/new-results'], /is inside memscope's shipped models folder/],
      [['validate', '--model', 'models/duplication', '--out', 'models/duplication/validation'], /--out "models\/duplication\/validation" is inside memscope's shipped models folder/],
      [['train', '--scenario', 'duplication', '--steps', '2', '--channels', '8,8,8', '--out', 'models/duplication'], /--out "models\/duplication" is inside memscope's shipped models folder .*; training there would replace a shipped model\. Give another folder \(default runs\/train\/duplication\), or pass --into-models/],
      [['train', '--scenario', 'duplication', '--steps', '2', '--channels', '8,8,8', '--out', 'models/duplication', '--into-models'], /--out "models\/duplication" holds a finished duplication model \(2200 steps\) and no checkpoint to resume from/],
      [['train', '--scenario', 'classifier', '--out', 'models/classifier'], /is inside memscope's shipped models folder/],
    ];
    const { stdout } = await promisify(execFile)(process.execPath, [driver, JSON.stringify(cases.map((c) => c[0]))], { cwd: pkg, maxBuffer: 1 << 24 });
    const results = JSON.parse(stdout) as { code: number; err: string }[];
    results.forEach((r, i) => {
      expect(r.err, JSON.stringify(cases[i]![0])).toMatch(cases[i]![1]);
      expect(r.code).toBe(2);
    });
    expect(await snapshot(pkg)).toEqual(before);
    expect((await lstat(join(pkg, 'runs')).catch(() => null))).toBeNull();
  }, 180_000);
});
