/**
 * The explorer's browser code (issue 17 §4), bundled by `bundle.ts` with `graph/session-web.ts`
 * in place of `graph/session.ts`: the model's U-Net runs on onnxruntime-web (wasm), and the
 * denoiser (`loadOnnxDenoiser`), the sampling job (`runSampling`: torch-identical x_T, the
 * sampler, the guidance combinator and its d_t record) and the guidance schedules are the CLI's
 * own modules. `window.memscopeExplorer.run(settings)` samples once (the page's controls call it;
 * the browser tests call it directly).
 */
import { configureWasm, defaultThreads } from '../graph/session-web.ts';
import { loadOnnxDenoiser } from '../denoisers/onnx.ts';
import { memoDenoiser, type MemoDenoiser } from '../denoisers/memo.ts';
import { runSampling } from '../study/sampling.ts';
import { parseGuidance } from '../guidance/spec.ts';
import { parseSchedulerConfig } from '../schedules/config.ts';
import { dpmSolverTimesteps } from '../schedules/timesteps.ts';
import { lineChart, type Marker } from '../report/line.ts';
import type { ExplorerModelInfo } from './explorer.ts';

/** One sampling of the explorer. */
export interface ExplorerSettings {
  /** A prompt id of the model (`caption:30`, `class:2`). */
  readonly prompt: string;
  readonly seed: number;
  /** `cfg` (constant), `stp` (CFG from step `start`), `dtp`, `og+dtp`. */
  readonly method: 'cfg' | 'stp' | 'dtp' | 'og+dtp';
  /** For `stp`: the first guided step k (0 = CFG throughout, `steps` = never guided). */
  readonly start?: number;
  /** Guidance scale λ (default 7.5). */
  readonly scale?: number;
  /** Inference steps (default 50). */
  readonly steps?: number;
}

/** What one sampling gave. */
export interface ExplorerResult {
  readonly settings: ExplorerSettings;
  /** The guidance schedule's label, as `memscope sample --guidance` takes it. */
  readonly guidance: string;
  /** x_0 in model space `[C, H, W]`, flat. */
  readonly sample: number[];
  /** d_t and s per step, the timesteps, the switch step (null: none). */
  readonly d: number[];
  readonly s: number[];
  readonly t: number[];
  readonly switchStep: number | null;
  readonly seconds: number;
  readonly threads: number;
  /** U-Net calls of this sampling, and how many of them were answered from the memory of earlier samplings (a shared prefix: same prompt, seed and steps, unguided up to the earlier CFG start). */
  readonly modelCalls: number;
  readonly reusedCalls: number;
}

declare const vegaEmbed: (el: Element, spec: unknown, opts: unknown) => Promise<unknown>;

interface Loaded {
  readonly info: ExplorerModelInfo;
  /** The CLI's denoiser, remembering its last calls: moving the CFG-start slider recomputes only the steps from the earlier start on. */
  readonly denoiser: MemoDenoiser;
  readonly threads: number;
}

async function fetchOk(url: string): Promise<Response> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r;
}

/** Load the model's U-Net into onnxruntime-web and build the CLI's denoiser over it. */
async function load(): Promise<Loaded> {
  const threads = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true ? defaultThreads() : 1;
  configureWasm('/assets/', threads);
  const info = (await (await fetchOk('/explorer/model.json')).json()) as ExplorerModelInfo;
  const unet = new Uint8Array(await (await fetchOk('/explorer/unet.onnx')).arrayBuffer());
  const rows = new Float32Array(await (await fetchOk('/explorer/embeddings.bin')).arrayBuffer());
  const K = info.prompts.length;
  const per = info.L * info.width;
  const onnx = await loadOnnxDenoiser({
    path: `${info.model}/unet.onnx`,
    bytes: unet,
    name: `trained:${info.scenario}`,
    conditions: { dims: [K, info.L, info.width], data: rows.slice(0, K * per) },
    uncond: { dims: [1, info.L, info.width], data: rows.slice(K * per) },
    labels: info.prompts.map((p) => p.label),
  });
  // 400 calls: eight 50-step samplings (the slider's recent positions, a few prompts and seeds)
  return { info, denoiser: memoDenoiser(onnx, 400), threads };
}

let loaded: Promise<Loaded> | null = null;
/** DPM-Solver++'s timesteps at the current step count (the `stp` slider maps step k to t_k). */
let timesteps: number[] | null = null;

/** The guidance schedule text of `s` on this model's timesteps (`stp` starts at the timestep of step k). */
function guidanceText(s: ExplorerSettings, steps: number): string {
  const lambda = s.scale ?? 7.5;
  if (s.method === 'cfg') return `constant:${lambda}`;
  if (s.method === 'dtp') return `dtp:${lambda}`;
  if (s.method === 'og+dtp') return `og+dtp:${lambda}`;
  const k = Math.max(0, Math.min(steps, Math.round(s.start ?? 0)));
  if (k === 0) return `constant:${lambda}`;
  // CFG from step k: s = λ once t ≤ t_k (the sweep's schedule); k = steps never guides
  return k >= steps ? 'constant:0' : `stp:${lambda}@${timesteps![k]!}`;
}

/** Sample once with `s` (the model is loaded on the first call). */
export async function run(s: ExplorerSettings): Promise<ExplorerResult> {
  loaded ??= load();
  const { info, denoiser, threads } = await loaded;
  const cond = info.prompts.findIndex((p) => p.id === s.prompt);
  if (cond < 0) throw new Error(`no prompt ${s.prompt} in ${info.model}`);
  const steps = s.steps ?? 50;
  const config = parseSchedulerConfig(info.config, 'model.json config');
  timesteps = dpmSolverTimesteps(config, steps);
  const guidance = guidanceText(s, steps);
  denoiser.resetStats();
  const t0 = performance.now();
  const r = await runSampling({ denoiser, conds: [cond], seeds: [s.seed], sampler: 'dpmpp2m', steps, config, guidance: parseGuidance(guidance) });
  const seconds = (performance.now() - t0) / 1000;
  return { settings: s, guidance, sample: Array.from(r.samples.data), d: r.d.map((row) => row[0]!), s: r.s.map((row) => row[0]!), t: [...r.t], switchStep: r.switchSteps[0] ?? null, seconds, threads, modelCalls: denoiser.stats.calls, reusedCalls: denoiser.stats.hits };
}

// ---------------------------------------------------------------------------------------------
// the page

function drawSample(canvas: HTMLCanvasElement, x: readonly number[], shape: readonly number[]): void {
  const [C, H, W] = shape as [number, number, number];
  canvas.width = W;
  canvas.height = H;
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(W, H);
  for (let i = 0; i < H * W; i++) {
    for (let c = 0; c < 3; c++) {
      const v = x[(C === 3 ? c : 0) * H * W + i]!;
      img.data[4 * i + c] = Math.max(0, Math.min(255, Math.round(((v + 1) / 2) * 255)));
    }
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

function settingsOf(form: HTMLFormElement): ExplorerSettings {
  const f = new FormData(form);
  return {
    prompt: String(f.get('prompt')),
    seed: Number(f.get('seed')),
    method: String(f.get('method')) as ExplorerSettings['method'],
    start: Number(f.get('start')),
    scale: Number(f.get('scale')),
    steps: Number(f.get('steps')),
  };
}

async function show(res: ExplorerResult, info: ExplorerModelInfo): Promise<void> {
  drawSample(document.getElementById('sample') as HTMLCanvasElement, res.sample, info.shape);
  const markers: Marker[] = [];
  if (res.switchStep !== null) markers.push({ x: res.switchStep, label: `${res.settings.method === 'stp' ? 'CFG from' : 'switch'} ${res.switchStep}`, color: '#d62728' });
  const spec = lineChart({
    title: `d_t along the steps (${res.guidance})`,
    xLabel: 'inference step',
    yLabel: 'd_t',
    logY: true,
    series: [{ label: 'd_t', x: res.d.map((_, i) => i), y: res.d, color: '#1f77b4' }],
    markers,
    width: 560,
    height: 280,
  });
  await vegaEmbed(document.getElementById('dt')!, spec, { actions: false, renderer: 'svg' });
  const r = await fetch(`/explorer/nearest?prompt=${encodeURIComponent(res.settings.prompt)}`, { method: 'POST', body: new Float32Array(res.sample) });
  const cap = document.getElementById('nearest')!;
  if (!r.ok) {
    cap.textContent = `nearest training image unavailable: ${await r.text()}`;
    return;
  }
  const n = (await r.json()) as { nn1: number; ratio: number; similarity: number; ratioCopy: boolean; nearestIsTarget: boolean | null; target: number | null; poolSize: number; pair: string };
  (document.getElementById('pair') as HTMLImageElement).src = n.pair;
  const own = n.target === null ? '' : n.nearestIsTarget ? " (the prompt's own)" : ` (not the prompt's own #${n.target})`;
  const verdict = n.ratioCopy ? (n.nearestIsTarget === false ? 'a copy of another training image' : 'a copy') : 'not a copy';
  cap.textContent = `sample | nearest of ${n.poolSize} training images: #${n.nn1}${own}; d1/d2 = ${n.ratio.toFixed(3)}, similarity ${n.similarity.toFixed(3)} → ${verdict}`;
}

async function page(): Promise<void> {
  const form = document.getElementById('explorer') as HTMLFormElement | null;
  if (!form) return;
  const status = document.getElementById('status')!;
  let busy = false;
  let again = false;
  const update = async (): Promise<void> => {
    const out = form.elements.namedItem('startOut') as HTMLOutputElement;
    out.value = String((form.elements.namedItem('start') as HTMLInputElement).value);
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    document.body.dataset.ready = 'false';
    try {
      do {
        again = false;
        const s = settingsOf(form);
        status.textContent = `sampling ${s.prompt}, seed ${s.seed}…`;
        const res = await run(s);
        const info = (await loaded!).info;
        await show(res, info);
        status.textContent = `${res.guidance}: ${res.settings.steps} DPM-Solver++ 2M steps in ${res.seconds.toFixed(2)} s in this browser (wasm, ${res.threads} thread${res.threads > 1 ? 's' : ''}${res.reusedCalls > 0 ? `; ${res.reusedCalls} of ${res.modelCalls} U-Net calls reused from earlier samplings` : ''})${res.switchStep === null ? '' : `; guided from step ${res.switchStep}`}`;
        (window as unknown as { memscopeLast: ExplorerResult }).memscopeLast = res;
      } while (again);
    } catch (e) {
      status.textContent = `error: ${(e as Error).message}`;
      throw e;
    } finally {
      busy = false;
      document.body.dataset.runs = String(Number(document.body.dataset.runs ?? '0') + 1);
      document.body.dataset.ready = 'true';
    }
  };
  (form.elements.namedItem('steps') as HTMLInputElement).addEventListener('change', () => {
    (form.elements.namedItem('start') as HTMLInputElement).max = (form.elements.namedItem('steps') as HTMLInputElement).value;
  });
  form.addEventListener('change', () => void update());
  (form.elements.namedItem('start') as HTMLInputElement).addEventListener('input', () => {
    (form.elements.namedItem('startOut') as HTMLOutputElement).value = (form.elements.namedItem('start') as HTMLInputElement).value;
  });
  await update();
}

(window as unknown as { memscopeExplorer: { run: typeof run } }).memscopeExplorer = { run };
void page();
