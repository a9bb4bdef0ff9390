/**
 * Full-size Stable Diffusion 1.5 and 2.1 state dicts, by key and shape only (issue 19 §1 check
 * (a)): test/fixtures/sd-state-dicts.json holds the config, every key and shape, and the
 * parameter count of each component as the independent PyTorch reference builds them
 * (scripts/reference/diffusers_tiny.py `manifest`, on torch's meta device). The counts are checked
 * against the published ones; then memscope builds its graphs from the same configs over
 * safetensors headers with exactly those keys (no data) and must use every key once, with the
 * same shapes — no missing or unexpected key. A dropped key, an extra key and a wrong shape are
 * all named in one error.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fakeSafetensorsIndex } from '../../../test/helpers/fake-safetensors.ts';
import { buildComponentGraphs, type Component } from './folder.ts';
import type { WeightFile } from './weights.ts';

interface Manifest {
  readonly config: Record<string, unknown>;
  readonly params: number;
  readonly keys: Record<string, number[]>;
}
const M = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', '..', 'test', 'fixtures', 'sd-state-dicts.json'), 'utf8')) as Record<'sd1' | 'sd2', Record<Component, Manifest>>;

/** Published parameter counts (diffusers / transformers `sum(p.numel() for p in model.parameters())`). */
const PUBLISHED: Record<'sd1' | 'sd2', Record<Component, number>> = {
  sd1: { unet: 859_520_964, text_encoder: 123_060_480, vae: 83_653_863 },
  sd2: { unet: 865_910_724, text_encoder: 340_387_840, vae: 83_653_863 },
};

/** A weight file over {@link fakeSafetensorsIndex}: the given keys and shapes, no file behind it. */
function fakeFile(keys: Record<string, number[]>, location: string): WeightFile {
  return { index: fakeSafetensorsIndex(keys, location), location, rel: location };
}

function build(kind: 'sd1' | 'sd2', edit: (keys: Record<string, number[]>) => Record<string, number[]> = (k) => k): ReturnType<typeof buildComponentGraphs> {
  const m = M[kind];
  return buildComponentGraphs(
    { unet: m.unet.config, text_encoder: m.text_encoder.config, vae: m.vae.config },
    {
      unet: [fakeFile(edit({ ...m.unet.keys }), 'unet.safetensors')],
      text_encoder: [fakeFile({ ...m.text_encoder.keys }, 'te.safetensors')],
      vae: [fakeFile({ ...m.vae.keys }, 'vae.safetensors')],
    },
  );
}

describe.each(['sd1', 'sd2'] as const)('%s full-size state dicts', (kind) => {
  it('the reference manifest has the published parameter counts', () => {
    for (const c of ['unet', 'text_encoder', 'vae'] as const) {
      const n = Object.values(M[kind][c].keys).reduce((a, d) => a + d.reduce((x, y) => x * y, 1), 0);
      expect(n, c).toBe(PUBLISHED[kind][c]);
    }
  });
  it('memscope builds every component from the config using every key with its shape', () => {
    const { components, configs } = build(kind);
    expect(components.map((c) => `${c.folder}/${c.file ?? 'model.onnx'}`)).toEqual(['text_encoder/model.onnx', 'unet/model.onnx', 'unet/model-fused-attention.onnx', 'vae_encoder/model.onnx', 'vae_decoder/model.onnx']);
    expect(configs.unet.headsPerLevel ?? configs.unet.heads).toEqual(kind === 'sd1' ? 8 : [5, 10, 20, 20]);
    expect(configs.textEncoder.activation).toBe(kind === 'sd1' ? 'quick_gelu' : 'gelu');
  });
});

describe('weight problems', () => {
  it('a dropped key, an unexpected key and a wrong shape are listed in one error', () => {
    const drop = 'mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight';
    const err = (() => {
      try {
        build('sd1', (k) => {
          const { [drop]: _gone, ...rest } = k;
          return { ...rest, 'mid_block.extra.weight': [3], 'conv_in.weight': [320, 4, 3, 1] };
        });
        return null;
      } catch (e) {
        return (e as Error).message;
      }
    })();
    expect(err).toContain('unet: the weights do not fit the config (unet.safetensors)');
    expect(err).toContain(`1 missing key:\n    ${drop}`);
    expect(err).toContain('1 unexpected key:\n    mid_block.extra.weight');
    expect(err).toContain('conv_in.weight: the file has [320, 4, 3, 1], the config needs [320, 4, 3, 3]');
  });
});
