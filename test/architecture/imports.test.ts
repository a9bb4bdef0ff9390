/**
 * The import rules of docs/ARCHITECTURE.md, checked with dependency-cruiser's API against
 * `.dependency-cruiser.cjs`: src/ has no violation, and a planted tree that breaks every rule
 * (a low layer importing a high one, a cycle, onnx-proto outside graph/, training code imported
 * by a study, a domain import in engine/, a test helper imported by the package, an unlisted
 * folder) has each one reported.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cruise, type ICruiseOptions, type ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';

const CONFIG = './.dependency-cruiser.cjs';

async function run(files: string[], options: ICruiseOptions, tsConfig?: string): Promise<ICruiseResult> {
  const res = await cruise(files, { ...options, validate: true }, {}, tsConfig === undefined ? {} : { tsConfig: extractTSConfig(tsConfig) });
  return res.output as ICruiseResult;
}

function describeViolations(r: ICruiseResult): string[] {
  return r.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}${v.cycle ? ` (cycle ${v.cycle.map((c) => c.name).join(' → ')})` : ''}`);
}

describe('import rules (.dependency-cruiser.cjs, docs/ARCHITECTURE.md)', () => {
  let options: ICruiseOptions;
  beforeAll(async () => {
    options = await extractDepcruiseOptions(CONFIG);
  });

  it('src/ breaks none of them', async () => {
    const r = await run(['src'], options, 'tsconfig.json');
    expect(describeViolations(r)).toEqual([]);
    // the cruise saw the whole package, type-only imports included
    expect(r.summary.totalCruised).toBeGreaterThan(150);
    const graphSession = r.modules.find((m) => m.source === 'src/graph/session.ts');
    expect(graphSession?.dependencies.some((d) => d.module === 'onnxruntime-node')).toBe(true);
  });

  describe('a planted tree that breaks each rule', () => {
    let root: string;
    let cwd: string;
    let violations: ICruiseResult['summary']['violations'];

    beforeAll(async () => {
      root = await mkdtemp(join(tmpdir(), 'memscope-arch-'));
      const files: Record<string, string> = {
        // tensor (layer 1) imports cli (the top layer), and cli imports tensor: an upward arrow and a cycle
        'src/tensor/tensor.ts': "import { main } from '../cli/main.ts';\nexport const t = main;\n",
        'src/cli/main.ts': "import { t } from '../tensor/tensor.ts';\nexport const main = (): unknown => t;\n",
        'src/tensor/ops.ts': "import type { T } from '../models/unet.ts';\nexport const t2 = 1;\nexport type U = T;\n",
        'src/models/unet.ts': "export type T = number;\n",
        // onnx-proto outside graph/
        'src/metrics/x.ts': "import p from 'onnx-proto';\nexport const x = p;\n",
        'src/graph/builder.ts': "import p from 'onnx-proto';\nexport const b = p;\n",
        // a study importing training code
        'src/study/s.ts': "import { tr } from '../train/t.ts';\nexport const s = tr;\n",
        'src/train/t.ts': 'export const tr = 1;\n',
        // engine importing a domain folder
        'src/engine/runner.ts': "import { d } from '../denoisers/d.ts';\nexport const r = d;\n",
        'src/denoisers/d.ts': 'export const d = 1;\n',
        // the package importing a test helper
        'src/io/h.ts': "import { h } from '../../test/helpers/h.ts';\nexport const io = h;\n",
        'test/helpers/h.ts': 'export const h = 1;\n',
        // a folder without a layer
        'src/widgets/w.ts': "import { t2 } from '../tensor/ops.ts';\nexport const w = t2;\n",
        'src/report/r.ts': "import { w } from '../widgets/w.ts';\nexport const r = w;\n",
        // a fake onnx-proto package
        'node_modules/onnx-proto/package.json': JSON.stringify({ name: 'onnx-proto', version: '0.0.0', main: 'index.js' }),
        'node_modules/onnx-proto/index.js': 'module.exports = {};\n',
      };
      for (const [rel, text] of Object.entries(files)) {
        await mkdir(dirname(join(root, rel)), { recursive: true });
        await writeFile(join(root, rel), text);
      }
      cwd = process.cwd();
      process.chdir(root); // rules match paths relative to the cruise's working directory, as in the repository
      try {
        violations = (await run(['src'], { ...options, tsConfig: {} })).summary.violations;
      } finally {
        process.chdir(cwd);
      }
    });
    afterAll(async () => {
      await rm(root, { recursive: true, force: true });
    });

    const reported = (rule: string, from: string, to?: string): boolean => violations.some((v) => v.rule.name === rule && v.from === from && (to === undefined || v.to === to));

    it('reports the low layer importing a high layer', () => {
      expect(reported('layer-tensor', 'src/tensor/tensor.ts', 'src/cli/main.ts')).toBe(true);
      // a type-only import counts as well
      expect(reported('layer-tensor', 'src/tensor/ops.ts', 'src/models/unet.ts')).toBe(true);
    });

    it('reports the cycle', () => {
      const cycles = violations.filter((v) => v.rule.name === 'no-circular');
      // dependency-cruiser reports each cycle once, from one of its modules, with the whole cycle
      expect(cycles).toHaveLength(1);
      expect(cycles[0]!.cycle!.map((c) => c.name).sort()).toEqual(['src/cli/main.ts', 'src/tensor/tensor.ts']);
    });

    it('reports onnx-proto outside graph/ and allows it inside', () => {
      expect(reported('onnx-only-in-graph', 'src/metrics/x.ts')).toBe(true);
      expect(violations.some((v) => v.from === 'src/graph/builder.ts')).toBe(false);
    });

    it('reports training code imported outside the CLI', () => {
      expect(reported('only-cli-imports-train', 'src/study/s.ts', 'src/train/t.ts')).toBe(true);
    });

    it('reports a domain import in engine/', () => {
      expect(reported('domain-free-engine-and-store', 'src/engine/runner.ts', 'src/denoisers/d.ts')).toBe(true);
      expect(reported('layer-engine', 'src/engine/runner.ts', 'src/denoisers/d.ts')).toBe(true);
    });

    it('reports the package importing a test helper', () => {
      expect(reported('src-not-test-or-bench', 'src/io/h.ts', 'test/helpers/h.ts')).toBe(true);
    });

    it('reports a folder that has no layer, importing and imported', () => {
      expect(reported('unknown-folder', 'src/widgets/w.ts', 'src/tensor/ops.ts')).toBe(true);
      expect(reported('unknown-folder-imported', 'src/report/r.ts', 'src/widgets/w.ts')).toBe(true);
    });

    it('reports nothing else', () => {
      const expected = new Set(['layer-tensor', 'layer-engine', 'unknown-folder-imported', 'no-circular', 'onnx-only-in-graph', 'only-cli-imports-train', 'domain-free-engine-and-store', 'src-not-test-or-bench', 'unknown-folder']);
      expect(violations.filter((v) => !expected.has(v.rule.name)).map((v) => `${v.rule.name}: ${v.from} → ${v.to}`)).toEqual([]);
    });
  });
});
