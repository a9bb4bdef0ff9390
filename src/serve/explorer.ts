/**
 * The explorer (issue 17 §4): a page where a lab model samples in the browser (onnxruntime-web,
 * wasm) with the CLI's own samplers and guidance code (bundled by `bundle.ts`). The server hands
 * the browser the model — its U-Net graph with the diffusers signature, the prompts' text-encoder
 * rows, the scheduler config — and answers one question the browser cannot: the nearest training
 * image of a sample (pixel L2 over the model's image pool, as `memscope validate`).
 */
import type { Hono } from 'hono';
import { relative } from 'node:path';
import { loadTrainedModel, type TrainedModel } from '../denoisers/trained.ts';
import { loadFashionMnist } from '../data/fashion-mnist.ts';
import { pixelCodec, type SourceCodec } from '../study/model-source.ts';
import { stableDiffusionConfig } from '../schedules/config.ts';
import { CopyDetector } from '../metrics/copy.ts';
import { gridPng } from '../report/png.ts';
import { escapeHtml } from '../report/html.ts';
import type { Tensor } from '../tensor/tensor.ts';
import { numel } from '../tensor/tensor.ts';

/** What the browser needs to rebuild the model's denoiser (`/explorer/model.json`). */
export interface ExplorerModelInfo {
  /** The model folder, for the page. */
  readonly model: string;
  readonly scenario: string;
  /** Per-sample shape in model space. */
  readonly shape: readonly number[];
  /** `encoder_hidden_states` rows: L tokens × width E; `embeddings.bin` holds K + 1 rows (the prompts', then the empty prompt's). */
  readonly L: number;
  readonly width: number;
  /** The scheduler config the CLI samples this model with (Stable Diffusion 1.x's). */
  readonly config: unknown;
  readonly prompts: readonly { readonly id: string; readonly label: string; readonly kind: string; readonly duplicates: number | null; readonly target: number | null }[];
  /** Size of the image pool nearest images are searched in. */
  readonly poolSize: number;
}

/** The model the explorer serves, loaded once. */
export interface ExplorerModel {
  readonly info: ExplorerModelInfo;
  readonly unet: Uint8Array;
  readonly embeddings: Uint8Array;
  readonly train: Tensor;
  readonly codec: SourceCodec;
  readonly detector: CopyDetector;
  readonly tm: TrainedModel;
}

/** Load a text-conditioned trained model (model.json + weights) for the explorer. */
export async function loadExplorerModel(dir: string): Promise<ExplorerModel> {
  const tm = await loadTrainedModel(dir);
  if (tm.embeddings === null) {
    await tm.denoiser.dispose?.();
    throw new Error(`${dir}: the explorer needs a text-conditioned model (prompts to pick); this one is unconditional`);
  }
  const train = loadFashionMnist({ split: 'train' }).images;
  const codec = pixelCodec(train, tm.denoiser.shape);
  const pool = tm.imagePool === 'all' ? null : tm.imagePool;
  const detector = await CopyDetector.create(train, pool);
  const [K, L, width] = tm.embeddings.conditions.dims as [number, number, number];
  const rows = new Float32Array((K + 1) * L * width);
  rows.set(tm.embeddings.conditions.data, 0);
  rows.set(tm.embeddings.uncond.data, K * L * width);
  const info: ExplorerModelInfo = {
    model: dir,
    scenario: tm.scenario,
    shape: tm.denoiser.shape,
    L,
    width,
    config: stableDiffusionConfig(),
    prompts: tm.denoiser.conditions.map((c) => ({ id: c.id, label: c.label, kind: c.kind, duplicates: c.duplicates ?? null, target: c.targets?.[0] ?? null })),
    poolSize: pool === null ? train.dims[0]! : pool.length,
  };
  return { info, unet: tm.unetBytes, embeddings: new Uint8Array(rows.buffer), train, codec, detector, tm };
}

/** The nearest training image of one model-space sample: the numbers `validate` reports and a PNG of sample | nearest. */
export async function explorerNearest(m: ExplorerModel, x0: Float32Array, promptId: string | null): Promise<Record<string, unknown>> {
  const shape = m.info.shape;
  if (x0.length !== numel(shape) || !x0.every(Number.isFinite)) throw new Error(`a sample is ${numel(shape)} finite float32 values ([${shape.join(', ')}])`);
  const sample = await m.codec.toImageSpace({ dims: [1, ...shape], data: x0 });
  const target = m.info.prompts.find((p) => p.id === promptId)?.target ?? null;
  const [st] = await m.detector.stats(sample, [target]);
  const per = sample.data.length;
  const both = new Float32Array(2 * per);
  both.set(sample.data, 0);
  both.set(m.train.data.subarray(st!.nn1 * per, (st!.nn1 + 1) * per), per);
  const png = await gridPng({ dims: [2, ...sample.dims.slice(1)], data: both }, { cols: 2, zoom: 5 });
  return { ...st, target, poolSize: m.info.poolSize, pair: `data:image/png;base64,${png.toString('base64')}` };
}

/** The explorer page (controls, canvas, figure; the bundled script does the rest). */
function explorerPage(info: ExplorerModelInfo, page: (title: string, body: string, scripts?: string) => string): string {
  const groups = new Map<string, typeof info.prompts>();
  for (const p of info.prompts) {
    const g = p.kind === 'class' ? 'class prompts' : p.duplicates === null ? 'captions' : p.duplicates > 1 ? `memorized: image trained on ${p.duplicates}×` : 'seen once (not memorized)';
    groups.set(g, [...(groups.get(g) ?? []), p]);
  }
  const order = [...groups.keys()].sort((a, b) => (b.match(/(\d+)×/)?.[1] ? Number(b.match(/(\d+)×/)![1]) : -1) - (a.match(/(\d+)×/)?.[1] ? Number(a.match(/(\d+)×/)![1]) : -1));
  const options = order
    .map((g) => `<optgroup label="${escapeHtml(g)}">${groups.get(g)!.map((p) => `<option value="${escapeHtml(p.id)}">${escapeHtml(p.id)} — ${escapeHtml(p.label)}</option>`).join('')}</optgroup>`)
    .join('');
  const body = `<p>The model <code>${escapeHtml(info.model)}</code> (${escapeHtml(info.scenario)}) samples <em>in this browser</em> (onnxruntime-web, wasm) with memscope's own DPM-Solver++ 2M and guidance code; the server only finds the nearest of its ${info.poolSize} training images.</p>
<form id="explorer" class="explorer" onsubmit="return false">
<label>prompt <select name="prompt">${options}</select></label>
<label>seed <input name="seed" type="number" min="0" max="2147483647" step="1" value="0"></label>
<label>steps <input name="steps" type="number" min="2" max="200" step="1" value="50"></label>
<label>scale λ <input name="scale" type="number" min="0" max="30" step="0.5" value="7.5"></label>
<fieldset><legend>guidance</legend>
<label><input type="radio" name="method" value="cfg"> CFG throughout</label>
<label><input type="radio" name="method" value="stp" checked> CFG from step k</label>
<label><input type="radio" name="method" value="dtp"> DTP (Jain et al.)</label>
<label><input type="radio" name="method" value="og+dtp"> opposite guidance + DTP</label>
</fieldset>
<label class="slider">CFG start step k <input name="start" type="range" min="0" max="50" step="1" value="0"> <output name="startOut">0</output></label>
</form>
<p id="status" class="note">loading the model…</p>
<div class="explore-out">
<figure><canvas id="sample" width="32" height="32"></canvas><figcaption>the sample (model space, in this browser)</figcaption></figure>
<figure><img id="pair" class="px" alt="the sample and its nearest training image"><figcaption id="nearest">sample | nearest training image</figcaption></figure>
<div id="dt" class="vega-live"></div>
</div>`;
  return page('explorer: the attraction basin', body, '<script src="/assets/explorer.js" type="module"></script>');
}

/** Register the explorer's routes on `app` (the model is loaded on first use). */
export function explorerRoutes(app: Hono, modelDir: string, page: (title: string, body: string, scripts?: string) => string): { dispose(): Promise<void> } {
  let loading: Promise<ExplorerModel | string> | null = null;
  const label = relative(process.cwd(), modelDir) || modelDir;
  const model = (): Promise<ExplorerModel | string> =>
    (loading ??= loadExplorerModel(modelDir)
      .then((m) => ({ ...m, info: { ...m.info, model: label.startsWith('..') ? modelDir : label } }))
      .catch((e: Error) => `the explorer's model ${modelDir} cannot be opened: ${e.message}`));
  app.get('/explorer', async (c) => {
    const m = await model();
    if (typeof m === 'string') return c.html(page('explorer', `<p class="note">${escapeHtml(m)}</p>`), 503);
    return c.html(explorerPage(m.info, page));
  });
  app.get('/explorer/model.json', async (c) => {
    const m = await model();
    return typeof m === 'string' ? c.text(m, 503) : c.json(m.info);
  });
  app.get('/explorer/unet.onnx', async (c) => {
    const m = await model();
    return typeof m === 'string' ? c.text(m, 503) : c.body(m.unet.slice(), 200, { 'Content-Type': 'application/octet-stream' });
  });
  app.get('/explorer/embeddings.bin', async (c) => {
    const m = await model();
    return typeof m === 'string' ? c.text(m, 503) : c.body(m.embeddings.slice(), 200, { 'Content-Type': 'application/octet-stream' });
  });
  app.post('/explorer/nearest', async (c) => {
    const m = await model();
    if (typeof m === 'string') return c.text(m, 503);
    const buf = await c.req.arrayBuffer();
    if (buf.byteLength % 4 !== 0) return c.text('the body is float32 values', 400);
    try {
      return c.json(await explorerNearest(m, new Float32Array(buf), c.req.query('prompt') ?? null));
    } catch (e) {
      return c.text((e as Error).message, 400);
    }
  });
  return {
    async dispose() {
      const m = await loading;
      if (m && typeof m !== 'string') {
        await m.detector.dispose();
        await m.tm.denoiser.dispose?.();
      }
    },
  };
}
