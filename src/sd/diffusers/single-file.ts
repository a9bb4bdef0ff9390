/**
 * Original single-file Stable Diffusion checkpoints (issue 19 §1, optional part): the one
 * `.safetensors` file the CompVis / Stability `ldm` code saves (`v1-5-pruned-emaonly.safetensors`,
 * `v2-1_768-ema-pruned.safetensors`, most fine-tunes shared as one file), split into the three
 * components' diffusers state-dict keys so that the diffusers-folder loader (`folder.ts`) builds
 * memscope's graphs over it. The split renames keys and, for open_clip's fused attention
 * projection, cuts `in_proj_weight` / `in_proj_bias` into q, k and v — contiguous byte ranges of
 * the file, so nothing is read or copied: each diffusers key points at its bytes in the one file.
 *
 * What a single file does not hold — the component configs, the scheduler, the tokenizer — comes
 * from a diffusers pipeline folder's JSON / text files (`--pipeline-config DIR`, diffusers'
 * `from_single_file(…, config=DIR)`); its weight files, if any, are not read. The prediction type
 * is the scheduler config's: SD 2.x 768-v files need the `stable-diffusion-2-1` folder
 * (`v_prediction`), 512-base files the `-base` one (`epsilon`).
 *
 * Keys a loader skips (counted in {@link SingleFileSplit.skipped}): the DDPM schedule buffers
 * (`betas`, `alphas_cumprod`, …), EMA state and EMA copies (`model_ema.*`: a pruned-emaonly file's
 * `model.diffusion_model` already holds the EMA weights; like diffusers, memscope reads those),
 * CLIP's `position_ids`, open_clip's `text_projection` / `logit_scale` and the resblocks past the
 * config's `num_hidden_layers` (SD 2.x reads the penultimate layer: diffusers' text encoder has 23 of
 * open_clip's 24). Every other key that maps to no component is an error listing all of them.
 */
import { basename } from 'node:path';
import type { SafetensorsEntry, SafetensorsIndex } from '../../io/safetensors.ts';
import type { WeightFile } from './weights.ts';

/** The components of a pipeline (folder.ts `Component`). */
type Component = 'unet' | 'text_encoder' | 'vae';

/** The DDPM buffers `ldm.models.diffusion.ddpm` registers (and saves) beside the weights. */
const SCHEDULE_BUFFERS: ReadonlySet<string> = new Set([
  'betas', 'alphas_cumprod', 'alphas_cumprod_prev', 'sqrt_alphas_cumprod', 'sqrt_one_minus_alphas_cumprod', 'log_one_minus_alphas_cumprod',
  'sqrt_recip_alphas_cumprod', 'sqrt_recipm1_alphas_cumprod', 'posterior_variance', 'posterior_log_variance_clipped', 'posterior_mean_coef1',
  'posterior_mean_coef2', 'logvar', 'lvlb_weights',
]);

/** The architecture sizes the key conversion needs (from the pipeline config's component configs). */
export interface SingleFileLayout {
  /** U-Net `layers_per_block`. */
  readonly unetLayersPerBlock: number;
  /** VAE `len(block_out_channels)`. */
  readonly vaeLevels: number;
  /** Text encoder `num_hidden_layers` (open_clip resblocks at or past it are skipped). */
  readonly textLayers: number;
}

/** What {@link splitSingleFile} returns. */
export interface SingleFileSplit {
  /** Which text encoder the file carries: `clip` (SD 1.x: transformers' CLIPTextModel) or `open_clip` (SD 2.x). */
  readonly textEncoder: 'clip' | 'open_clip';
  /** Each component's weights: one {@link WeightFile} over the single file, keyed by diffusers names. */
  readonly weights: Readonly<Record<Component, readonly WeightFile[]>>;
  /** Keys skipped on purpose (see the module note), by reason. */
  readonly skipped: Readonly<Record<string, number>>;
}

/** A ResBlock's `ldm` sub-path → diffusers' `ResnetBlock2D` name. */
function resnet(rest: string): string {
  return rest
    .replace(/^in_layers\.0\./, 'norm1.')
    .replace(/^in_layers\.2\./, 'conv1.')
    .replace(/^emb_layers\.1\./, 'time_emb_proj.')
    .replace(/^out_layers\.0\./, 'norm2.')
    .replace(/^out_layers\.3\./, 'conv2.')
    .replace(/^skip_connection\./, 'conv_shortcut.');
}

/** The `UNet2DConditionModel` key of an openaimodel `UNetModel` key (without `model.diffusion_model.`), or null. */
export function ldmUnetKey(k: string, layersPerBlock: number): string | null {
  const n = layersPerBlock + 1;
  const fixed: Record<string, string> = { 'time_embed.0.': 'time_embedding.linear_1.', 'time_embed.2.': 'time_embedding.linear_2.', 'input_blocks.0.0.': 'conv_in.', 'out.0.': 'conv_norm_out.', 'out.2.': 'conv_out.' };
  for (const [from, to] of Object.entries(fixed)) if (k.startsWith(from)) return to + k.slice(from.length);
  let m = /^input_blocks\.(\d+)\.(\d+)\.(.+)$/.exec(k);
  if (m !== null) {
    const i = Number(m[1]) - 1;
    const [b, l, j, rest] = [Math.floor(i / n), i % n, Number(m[2]), m[3]!];
    if (l === layersPerBlock) return j === 0 && rest.startsWith('op.') ? `down_blocks.${b}.downsamplers.0.conv.${rest.slice(3)}` : null;
    return j === 0 ? `down_blocks.${b}.resnets.${l}.${resnet(rest)}` : j === 1 ? `down_blocks.${b}.attentions.${l}.${rest}` : null;
  }
  m = /^middle_block\.(\d)\.(.+)$/.exec(k);
  if (m !== null) return m[1] === '1' ? `mid_block.attentions.0.${m[2]}` : m[1] === '0' || m[1] === '2' ? `mid_block.resnets.${m[1] === '0' ? 0 : 1}.${resnet(m[2]!)}` : null;
  m = /^output_blocks\.(\d+)\.(\d+)\.(.+)$/.exec(k);
  if (m !== null) {
    const i = Number(m[1]);
    const [b, l, j, rest] = [Math.floor(i / n), i % n, Number(m[2]), m[3]!];
    if (j === 0) return `up_blocks.${b}.resnets.${l}.${resnet(rest)}`;
    // the upsampler is the block's last module (index 1 without attention, 2 with)
    if (rest.startsWith('conv.')) return l === layersPerBlock ? `up_blocks.${b}.upsamplers.0.conv.${rest.slice(5)}` : null;
    return j === 1 ? `up_blocks.${b}.attentions.${l}.${rest}` : null;
  }
  return null;
}

/** The `AutoencoderKL` key of an `ldm` autoencoder key (without `first_stage_model.`), or null; `levels` = the number of resolution levels. */
export function ldmVaeKey(k: string, levels: number): string | null {
  const mid = (rest: string): string =>
    rest
      .replace(/^block_1\./, 'resnets.0.')
      .replace(/^block_2\./, 'resnets.1.')
      .replace(/^attn_1\.norm\./, 'attentions.0.group_norm.')
      .replace(/^attn_1\.q\./, 'attentions.0.to_q.')
      .replace(/^attn_1\.k\./, 'attentions.0.to_k.')
      .replace(/^attn_1\.v\./, 'attentions.0.to_v.')
      .replace(/^attn_1\.proj_out\./, 'attentions.0.to_out.0.');
  const block = (rest: string): string => rest.replace(/^nin_shortcut\./, 'conv_shortcut.');
  if (/^(quant_conv|post_quant_conv)\./.test(k)) return k;
  const m = /^(encoder|decoder)\.(.+)$/.exec(k);
  if (m === null) return null;
  const [part, r] = [m[1]!, m[2]!];
  if (/^(conv_in|conv_out)\./.test(r)) return k;
  if (r.startsWith('norm_out.')) return `${part}.conv_norm_out.${r.slice(9)}`;
  if (r.startsWith('mid.')) {
    const x = mid(r.slice(4));
    return x === r.slice(4) ? null : `${part}.mid_block.${block(x)}`;
  }
  const d = /^(down|up)\.(\d+)\.(block\.(\d+)|downsample|upsample)\.(.+)$/.exec(r);
  if (d === null || (d[1] === 'down') !== (part === 'encoder')) return null;
  const level = Number(d[2]);
  const i = part === 'encoder' ? level : levels - 1 - level; // the decoder's up.{level}: diffusers counts from the deepest
  const blocks = part === 'encoder' ? 'down_blocks' : 'up_blocks';
  if (d[4] !== undefined) return `${part}.${blocks}.${i}.resnets.${d[4]}.${block(d[5]!)}`;
  if ((d[3] === 'downsample') !== (part === 'encoder') || !d[5]!.startsWith('conv.')) return null;
  return `${part}.${blocks}.${i}.${d[3] === 'downsample' ? 'downsamplers' : 'upsamplers'}.0.${d[5]}`;
}

/** The `CLIPTextModel` key(s) of an open_clip text-tower key (without `cond_stage_model.model.`): one name, or q/k/v for the fused projection, or null. */
function openClipKeys(k: string): string | string[] | null {
  if (k === 'token_embedding.weight') return 'text_model.embeddings.token_embedding.weight';
  if (k === 'positional_embedding') return 'text_model.embeddings.position_embedding.weight';
  if (k.startsWith('ln_final.')) return `text_model.final_layer_norm.${k.slice(9)}`;
  const m = /^transformer\.resblocks\.(\d+)\.(.+)$/.exec(k);
  if (m === null) return null;
  const p = `text_model.encoder.layers.${m[1]}.`;
  const r = m[2]!;
  if (r === 'attn.in_proj_weight' || r === 'attn.in_proj_bias') {
    const s = r.endsWith('weight') ? 'weight' : 'bias';
    return ['q', 'k', 'v'].map((x) => `${p}self_attn.${x}_proj.${s}`);
  }
  const map: Record<string, string> = { 'ln_1.': 'layer_norm1.', 'ln_2.': 'layer_norm2.', 'attn.out_proj.': 'self_attn.out_proj.', 'mlp.c_fc.': 'mlp.fc1.', 'mlp.c_proj.': 'mlp.fc2.' };
  for (const [from, to] of Object.entries(map)) if (r.startsWith(from)) return p + to + r.slice(from.length);
  return null;
}

/**
 * Split the single-file checkpoint `index` into the three components' diffusers-named weights
 * (see the module note); `layout` comes from the pipeline config. Throws one error listing every
 * key that maps to no component (up to 40), and when the file has no U-Net, VAE or text encoder.
 */
export function splitSingleFile(index: SafetensorsIndex, layout: SingleFileLayout): SingleFileSplit {
  const out: Record<Component, Map<string, SafetensorsEntry>> = { unet: new Map(), text_encoder: new Map(), vae: new Map() };
  const skipped: Record<string, number> = {};
  const skip = (why: string): void => {
    skipped[why] = (skipped[why] ?? 0) + 1;
  };
  const unmapped: string[] = [];
  const put = (c: Component, name: string, e: SafetensorsEntry): void => {
    out[c].set(name, { ...e, name });
  };
  let openClip = false;
  for (const [k, e] of index.entries) {
    if (SCHEDULE_BUFFERS.has(k)) skip('DDPM schedule buffers');
    else if (k.startsWith('model_ema.')) skip('EMA state and copies (model_ema.*)');
    else if (k.startsWith('model.diffusion_model.')) {
      const n = ldmUnetKey(k.slice('model.diffusion_model.'.length), layout.unetLayersPerBlock);
      if (n === null) unmapped.push(k);
      else put('unet', n, e);
    } else if (k.startsWith('first_stage_model.')) {
      const n = ldmVaeKey(k.slice('first_stage_model.'.length), layout.vaeLevels);
      if (n === null) unmapped.push(k);
      else put('vae', n, e);
    } else if (k.startsWith('cond_stage_model.transformer.')) {
      // SD 1.x: transformers' CLIPTextModel (older transformers saved it without the text_model level)
      const r = k.slice('cond_stage_model.transformer.'.length);
      const n = r.startsWith('text_model.') ? r : `text_model.${r}`;
      if (n === 'text_model.embeddings.position_ids') skip("CLIP's position_ids buffer");
      else put('text_encoder', n, e);
    } else if (k.startsWith('cond_stage_model.model.')) {
      openClip = true;
      const r = k.slice('cond_stage_model.model.'.length);
      const layer = /^transformer\.resblocks\.(\d+)\./.exec(r);
      if (r === 'text_projection' || r === 'logit_scale') skip("open_clip's text_projection / logit_scale");
      else if (layer !== null && Number(layer[1]) >= layout.textLayers) skip(`open_clip resblocks past num_hidden_layers ${layout.textLayers} (penultimate-layer convention)`);
      else {
        const n = openClipKeys(r);
        if (n === null) unmapped.push(k);
        else if (typeof n === 'string') put('text_encoder', n, e);
        else {
          // in_proj_weight [3D, D] / in_proj_bias [3D]: q, k, v are consecutive thirds of the rows — contiguous bytes
          const third = e.length / 3;
          const dims = [e.dims[0]! / 3, ...e.dims.slice(1)];
          n.forEach((name, i) => put('text_encoder', name, { ...e, dims, offset: e.offset + i * third, length: third }));
        }
      }
    } else unmapped.push(k);
  }
  const problems: string[] = [];
  if (unmapped.some((k) => k.startsWith('conditioner.'))) problems.push('conditioner.* keys: this looks like an SDXL checkpoint, which memscope does not read (SD 1.x / 2.x only)');
  if (unmapped.length > 0) {
    const shown = unmapped.slice(0, 40);
    problems.push(`${unmapped.length} key${unmapped.length === 1 ? '' : 's'} of no Stable Diffusion component:\n    ${shown.join('\n    ')}${unmapped.length > shown.length ? `\n    … and ${unmapped.length - shown.length} more` : ''}`);
  }
  const empty = (['unet', 'text_encoder', 'vae'] as const).filter((c) => out[c].size === 0);
  if (empty.length > 0) problems.push(`no weights of ${empty.join(', ')} (expected model.diffusion_model.*, cond_stage_model.* and first_stage_model.* keys: a full Stable Diffusion 1.x / 2.x checkpoint)`);
  if (problems.length > 0) throw new Error(`${index.path}: not a Stable Diffusion single-file checkpoint memscope can read:\n  ${problems.join('\n  ')}`);
  const name = basename(index.path);
  const file = (c: Component): WeightFile[] => [{ index: { path: index.path, entries: out[c], metadata: index.metadata }, location: name, rel: `${name} (${c})` }];
  return { textEncoder: openClip ? 'open_clip' : 'clip', weights: { unet: file('unet'), text_encoder: file('text_encoder'), vae: file('vae') }, skipped };
}
