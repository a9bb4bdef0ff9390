/**
 * Trained memscope models through the `Denoiser` interface (issue 3 §5): the text encoder embeds
 * every scenario prompt once (and the empty prompt, the null condition e_∅, as Stable Diffusion
 * does), then the U-Net — built from the saved weights as an ONNX graph with the diffusers
 * signature — runs cond and uncond rows in one batch through the generic ONNX denoiser.
 */
import { join } from 'node:path';
import { readModelJson } from '../train/run.ts';
import { readSafetensors } from '../train/safetensors.ts';
import { buildInferenceGraphs, DiffusionModelConfigSchema } from '../train/diffusion-model.ts';
import { WordTokenizer } from '../train/tokenizer.ts';
import { createSession } from '../graph/session.ts';
import { loadOnnxDenoiser, type OnnxDenoiser } from './onnx.ts';
import type { ConditionInfo, Denoiser } from './denoiser.ts';
import type { ScenarioPrompt } from '../train/scenarios.ts';

/** A loaded trained model: its denoiser, its prompts and the graphs (for export). */
export interface TrainedModel {
  readonly denoiser: Denoiser;
  readonly scenario: string;
  readonly prompts: readonly ScenarioPrompt[];
  /** Training image indices the model saw (`'all'` = the whole embedded train split). */
  readonly imagePool: readonly number[] | 'all';
  /** The U-Net graph with the diffusers signature. */
  readonly unetBytes: Uint8Array;
  /** The text encoder graph (null for unconditional models). */
  readonly textEncoderBytes: Uint8Array | null;
  /** Raw model.json. */
  readonly meta: Record<string, unknown>;
}

/** Load a trained model directory (`model.json` + `weights.safetensors`). */
export async function loadTrainedModel(dir: string): Promise<TrainedModel> {
  const meta = await readModelJson(dir);
  const cfg = DiffusionModelConfigSchema.parse(meta['model']);
  const weights = await readSafetensors(join(dir, 'weights.safetensors'));
  const values = new Map<string, Float32Array>([...weights.tensors].map(([k, t]) => [k, t.data]));
  const graphs = buildInferenceGraphs(cfg, values);
  const prompts = (meta['prompts'] as ScenarioPrompt[]) ?? [];
  const name = `trained:${String(meta['scenario'])}`;
  let denoiser: OnnxDenoiser;
  if (graphs.textEncoder) {
    const tok = WordTokenizer.fromJSON(meta['tokenizer']);
    const L = cfg.textEncoder!.maxLength;
    const te = await createSession(graphs.textEncoder);
    const texts = [...prompts.map((p) => p.text), ''];
    const enc = tok.encodeBatch(texts, L);
    const out = await te.run({ ids: enc });
    await te.release();
    const h = out['last_hidden_state']!;
    const per = L * cfg.textEncoder!.width;
    const K = prompts.length;
    denoiser = await loadOnnxDenoiser({
      path: join(dir, 'unet.onnx'),
      bytes: graphs.unet,
      name,
      conditions: { dims: [K, L, cfg.textEncoder!.width], data: h.data.slice(0, K * per) },
      uncond: { dims: [1, L, cfg.textEncoder!.width], data: h.data.slice(K * per) },
      labels: prompts.map((p) => p.text),
    });
  } else {
    denoiser = await loadOnnxDenoiser({ path: join(dir, 'unet.onnx'), bytes: graphs.unet, name });
  }
  // Re-label conditions with the scenario's kinds and targets (ids class:k / caption:k as in the testbed).
  let nClass = 0;
  let nCap = 0;
  const conditions: ConditionInfo[] = prompts.map((p) =>
    p.kind === 'class'
      ? { id: `class:${nClass++}`, kind: 'class', label: p.text }
      : { id: `caption:${nCap++}`, kind: 'caption', label: p.text, ...(p.targets ? { targets: p.targets } : {}) },
  );
  const wrapped: Denoiser = {
    name,
    space: denoiser.space,
    shape: denoiser.shape,
    conditions,
    predict: (xt, level, cond) => denoiser.predict(xt, level, cond),
    dispose: () => denoiser.dispose(),
  };
  return {
    denoiser: wrapped,
    scenario: String(meta['scenario']),
    prompts,
    imagePool: (meta['imagePool'] as number[] | 'all') ?? 'all',
    unetBytes: graphs.unet,
    textEncoderBytes: graphs.textEncoder,
    meta,
  };
}
