/**
 * memscope parameter names → the state-dict keys of diffusers' and transformers' Stable
 * Diffusion components (issue 19 §1), for the loader that points memscope's graphs at a
 * diffusers folder's safetensors. Each map returns the candidate keys in order of preference
 * (the VAE's attention also under its pre-0.14 names `query` / `key` / `value` / `proj_attn`,
 * which old conversions still carry).
 */

/** Component-independent renames: memscope's attention / GEGLU / Transformer-block names → diffusers'. */
function common(name: string): string {
  return name.replace('.block.', '.transformer_blocks.0.').replace('.to_out.', '.to_out.0.').replace('.ff.proj.', '.ff.net.0.proj.').replace('.ff.out.', '.ff.net.2.');
}

/**
 * The `UNet2DConditionModel` key of memscope U-Net parameter `name` (src/models/unet.ts names,
 * e.g. `up.0.attn.2.block.attn2.to_k.weight` → `up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight`
 * in a 4-level U-Net: diffusers counts up blocks from the lowest resolution).
 */
export function unetKey(name: string, levels: number): string[] {
  const up = (i: string): number => levels - 1 - Number(i);
  const n = name
    .replace(/^down\.(\d+)\.res\.(\d+)\./, 'down_blocks.$1.resnets.$2.')
    .replace(/^down\.(\d+)\.attn\.(\d+)\./, 'down_blocks.$1.attentions.$2.')
    .replace(/^down\.(\d+)\.downsample\./, 'down_blocks.$1.downsamplers.0.conv.')
    .replace(/^mid\.res\.(\d+)\./, 'mid_block.resnets.$1.')
    .replace(/^mid\.attn\.(\d+)\./, 'mid_block.attentions.$1.')
    .replace(/^up\.(\d+)\.res\.(\d+)\./, (_m, i: string, j: string) => `up_blocks.${up(i)}.resnets.${j}.`)
    .replace(/^up\.(\d+)\.attn\.(\d+)\./, (_m, i: string, j: string) => `up_blocks.${up(i)}.attentions.${j}.`)
    .replace(/^up\.(\d+)\.upsample\./, (_m, i: string) => `up_blocks.${up(i)}.upsamplers.0.conv.`);
  return [common(n)];
}

/** The transformers `CLIPTextModel` key of memscope text-encoder parameter `name` (src/models/text-encoder.ts names). */
export function textEncoderKey(name: string): string[] {
  if (name.startsWith('token_embedding.') || name.startsWith('position_embedding.')) return [`text_model.embeddings.${name}`];
  if (name.startsWith('final_layer_norm.')) return [`text_model.${name}`];
  const n = name.replace('.self_attn.to_q.', '.self_attn.q_proj.').replace('.self_attn.to_k.', '.self_attn.k_proj.').replace('.self_attn.to_v.', '.self_attn.v_proj.').replace('.self_attn.to_out.', '.self_attn.out_proj.');
  return [`text_model.encoder.${n}`];
}

/** The `AutoencoderKL` key(s) of memscope VAE parameter `name` (src/models/vae.ts names): the current name, then the pre-0.14 one. */
export function vaeKey(name: string): string[] {
  const n = common(name);
  const old = n.replace('.to_q.', '.query.').replace('.to_k.', '.key.').replace('.to_v.', '.value.').replace('.to_out.0.', '.proj_attn.');
  return old === n ? [n] : [n, old];
}

/** State-dict entries that are buffers, not weights (older transformers checkpoints save CLIP's `position_ids`): never "unexpected". */
export const BUFFER_KEYS: ReadonlySet<string> = new Set(['text_model.embeddings.position_ids']);
