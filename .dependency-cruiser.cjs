/**
 * memscope's import rules (docs/ARCHITECTURE.md), checked by dependency-cruiser:
 *
 *   npx depcruise src --config .dependency-cruiser.cjs      (also run by `npm test`:
 *                                                           test/architecture/imports.test.ts)
 *
 * LAYERS is ordered bottom to top: a folder of src/ may import its own layer and the layers below
 * it, never one above it. Folders that do not exist yet (store) are listed so that their place is
 * fixed before the code arrives. Test files (*.test.ts, *.test-helpers.ts) are not part of the
 * architecture and are not cruised: a test may import any layer and test/helpers/.
 */

/** Bottom → top. */
const LAYERS = [
  'tensor', // Tensor type and elementwise ops
  'random', // PRNGs (torch mt19937 + Box–Muller, mulberry32), NormalSource, seeds
  'graph', // ONNX graph builder, sessions (onnxruntime-node), autodiff, shape inference, graph surgery
  'linalg', // eigen solvers (Jacobi, EISPACK tred2/tql2, ml-matrix) and their disk cache
  'schedules', // β / ᾱ schedules, scheduler configs, timesteps
  'text', // CLIP + word tokenizers, did-you-mean
  'data', // datasets, prompt sets, index sampling, package paths
  'io', // npy, safetensors, atomic writes, results folders, version, user-input errors
  'engine', // Study / Unit / Runner / stores (domain-free)
  'store', // the SQLite results store (domain-free)
  'queue', // the queue-backed runner and worker loop on BullMQ + Redis (domain-free)
  'samplers', // DDIM, Euler, DPM++ 2M, Heun–EDM
  'record', // step recorders
  'models', // network definitions built as ONNX graphs (U-Net, text encoder, classifier, descriptor, EDM), model folders
  'optim', // AdamW, gradient clipping, warm-up
  'denoisers', // analytic, empirical, Gaussian, mixture, ONNX, trained, swap
  'guidance', // CFG and guidance schedules
  'metrics', // copy detection, descriptors, ROC, Fréchet, CLIP, Inception; metric interfaces
  'analysis', // Kim et al., transition points, Wen et al., geometry, PCA, verdicts
  'report', // Vega-Lite figure specs → SVG / PNG, HTML sections
  'mitigate', // mitigation methods
  'sd', // Stable Diffusion exports: loader, pipeline, attention hooks
  'train', // training (CLI only)
  'study', // the studies behind the commands
  'serve', // the dashboard server (Hono on 127.0.0.1) and the browser code it serves
  'cli', // commands
];

/** Folders whose code knows nothing of diffusion: they may import only these. */
const DOMAIN_FREE = ['engine', 'store', 'queue'];
const DOMAIN_FREE_MAY_IMPORT = ['engine', 'store', 'queue', 'tensor', 'random', 'io'];

const alt = (xs) => `(${xs.join('|')})`;

/** One rule per layer: nothing below it imports it. */
const layerRules = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${layer}`,
  comment: `src/${layer}/ is layer ${i + 1} of ${LAYERS.length}: it may import only ${LAYERS.slice(0, i + 1).join(', ')} (docs/ARCHITECTURE.md)`,
  severity: 'error',
  from: { path: `^src/${layer}/` },
  to: { path: `^src/${alt(LAYERS.slice(i + 1))}/` },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycles (type-only imports count too).',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...layerRules,
    {
      name: 'unknown-folder',
      comment: 'Every folder of src/ has a place in LAYERS (.dependency-cruiser.cjs); add a new folder there and to docs/ARCHITECTURE.md.',
      severity: 'error',
      from: { path: '^src/', pathNot: [`^src/${alt(LAYERS)}/`, '^src/index\\.ts$'] },
      to: {},
    },
    {
      name: 'unknown-folder-imported',
      comment: 'Every folder of src/ has a place in LAYERS (.dependency-cruiser.cjs); add a new folder there and to docs/ARCHITECTURE.md.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^src/', pathNot: [`^src/${alt(LAYERS)}/`, '^src/index\\.ts$'] },
    },
    {
      name: 'only-cli-imports-train',
      comment: 'Training code is reached only from the CLI (`memscope train`); inference uses src/models/.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(cli|train)/' },
      to: { path: '^src/train/' },
    },
    {
      name: 'onnx-only-in-graph',
      comment: 'Only src/graph/ imports onnxruntime-node and onnx-proto (browser code may import onnxruntime-web).',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/graph/' },
      to: { path: '(^|/)node_modules/(onnxruntime-node|onnx-proto)/' },
    },
    {
      name: 'domain-free-engine-and-store',
      comment: `src/${alt(DOMAIN_FREE)}/ import no domain folder: only ${DOMAIN_FREE_MAY_IMPORT.join(', ')}.`,
      severity: 'error',
      from: { path: `^src/${alt(DOMAIN_FREE)}/` },
      to: { path: '^src/', pathNot: `^src/${alt(DOMAIN_FREE_MAY_IMPORT)}/` },
    },
    {
      name: 'src-not-test-or-bench',
      comment: 'The package never imports tests, benchmarks or scripts.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench|scripts)/' },
    },
    {
      name: 'nothing-imports-the-index',
      comment: 'src/index.ts is the public API: code inside src/ imports the module it needs.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/index\\.ts$' },
      to: { path: '^src/index\\.ts$' },
    },
  ],
  options: {
    // type-only imports are dependencies too (a type cycle is a design cycle)
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: ['\\.test\\.ts$', '\\.test-helpers\\.ts$'] },
    doNotFollow: { path: 'node_modules' },
    moduleSystems: ['es6', 'cjs'],
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'] },
  },
};
