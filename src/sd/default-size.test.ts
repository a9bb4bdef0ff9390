/**
 * The default image size of an export (issue 14 §4), as diffusers derives it: `unet/config.json`
 * `sample_size` × 2^(len(vae block_out_channels) − 1); 512 without unet/config.json; the U-Net's
 * fixed latent size when its `sample` input is not dynamic. Independent expectations: the sizes
 * diffusers' pipelines give the published checkpoints (SD 1.4 / 1.5 512, SD 2.1 768, SD 2.1-base
 * 512, from their configs' values copied below), and diffusers' legacy ONNX pipeline default 512.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sdDefaultImageSize, vaeScaleFactorOf } from './export.ts';

const root = mkdtempSync(join(tmpdir(), 'memscope-sdsize-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function exportDir(files: Record<string, object>): string {
  const dir = join(root, `e${n++}`);
  for (const [rel, body] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), JSON.stringify(body));
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

// block_out_channels of the SD 1.x / 2.x VAE (AutoencoderKL) config
const SD_VAE = { _class_name: 'AutoencoderKL', block_out_channels: [128, 256, 512, 512], latent_channels: 4, scaling_factor: 0.18215 };

describe('sdDefaultImageSize', () => {
  it('optimum layout: unet/config.json sample_size × the VAE scale factor (SD 1.4 512, SD 2.1 768, SD 2.1-base 512)', () => {
    const sd14 = exportDir({ 'unet/config.json': { sample_size: 64, cross_attention_dim: 768 }, 'vae_decoder/config.json': SD_VAE, 'vae_encoder/config.json': SD_VAE });
    expect(sdDefaultImageSize(sd14, null)).toMatchObject({ height: 512, width: 512 });
    expect(sdDefaultImageSize(sd14, null).source).toBe('unet/config.json sample_size 64 × VAE scale factor 8 (vae_decoder/config.json block_out_channels)');
    const sd21 = exportDir({ 'unet/config.json': { sample_size: 96, cross_attention_dim: 1024 }, 'vae_decoder/config.json': SD_VAE });
    expect(sdDefaultImageSize(sd21, null)).toMatchObject({ height: 768, width: 768 });
    const sd21base = exportDir({ 'unet/config.json': { sample_size: 64 }, 'vae_encoder/config.json': SD_VAE });
    expect(sdDefaultImageSize(sd21base, null)).toMatchObject({ height: 512, width: 512 });
    // a diffusers-format `vae/config.json` counts as well; [h, w] sample sizes are honoured
    const rect = exportDir({ 'unet/config.json': { sample_size: [96, 64] }, 'vae/config.json': SD_VAE });
    expect(sdDefaultImageSize(rect, null)).toMatchObject({ height: 768, width: 512 });
  });

  it('legacy layout (no unet/config.json, no VAE config): 512, the ONNX pipeline default, and says so', () => {
    const legacy = exportDir({ 'model_index.json': { _class_name: 'OnnxStableDiffusionPipeline' } });
    const s = sdDefaultImageSize(legacy, null);
    expect(s).toMatchObject({ height: 512, width: 512 });
    expect(s.source).toMatch(/no unet\/config\.json/);
    expect(vaeScaleFactorOf(legacy)).toEqual({ value: 8, source: 'default, no VAE config with block_out_channels' });
  });

  it("a U-Net with fixed spatial dims gives its own size (× the factor), whatever unet/config.json says", () => {
    const d = exportDir({ 'unet/config.json': { sample_size: 96 }, 'vae_decoder/config.json': SD_VAE });
    expect(sdDefaultImageSize(d, [8, 8])).toMatchObject({ height: 64, width: 64 });
  });

  it('the scale factor follows block_out_channels (a 3-level VAE: 4); bad values are errors naming the file', () => {
    expect(vaeScaleFactorOf(exportDir({ 'vae_decoder/config.json': { block_out_channels: [64, 128, 256] } })).value).toBe(4);
    expect(() => vaeScaleFactorOf(exportDir({ 'vae_decoder/config.json': { block_out_channels: 8 } }))).toThrow(/vae_decoder\/config\.json: block_out_channels must be a non-empty list/);
    expect(() => sdDefaultImageSize(exportDir({ 'unet/config.json': { sample_size: 'big' } }), null)).toThrow(/unet\/config\.json: sample_size must be a positive integer or \[height, width\], got "big"/);
  });
});
