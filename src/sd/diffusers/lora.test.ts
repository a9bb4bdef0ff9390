/**
 * LoRA adapters merged at load (`--lora FILE[:scale]`, issue 19 §1), in kohya's and diffusers'
 * (PEFT) formats, on linear, 1×1-conv and 3×3-conv weights of the U-Net and on the text encoder.
 * Independent expectation: a second folder whose safetensors hold W + scale·(α/r)·B·A computed
 * here with plain loops gives the same U-Net and text-encoder outputs; the adapters change them.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { disposeAll } from '../../graph/session.ts';
import { readSafetensors, writeSafetensors } from '../../io/safetensors.ts';
import type { Tensor } from '../../tensor/tensor.ts';
import { DIFFUSERS_TINY_FIXTURES, writeTinyDiffusersFolder } from '../../../test/helpers/tiny-diffusers-folder.ts';
import { openStableDiffusion, type OpenedSd } from '../open.ts';
import { parseLoraSpec } from './lora.ts';

const tmp = mkdtempSync(join(tmpdir(), 'memscope-lora-'));
afterAll(async () => {
  await disposeAll();
  rmSync(tmp, { recursive: true, force: true });
});

let seed = 12345;
const rnd = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
const rand = (dims: number[]): Tensor => ({ dims, data: Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => 0.3 * rnd()) });

/** W + f·B·A with B `[out, r]`, A `[r, rest]`, by loops. */
function merge(w: Tensor, A: Tensor, B: Tensor, f: number): Tensor {
  const out = w.dims[0]!;
  const r = A.dims[0]!;
  const rest = w.data.length / out;
  const data = w.data.slice();
  for (let o = 0; o < out; o++) for (let j = 0; j < rest; j++) {
    let s = 0;
    for (let k = 0; k < r; k++) s += B.data[o * r + k]! * A.data[k * rest + j]!;
    data[o * rest + j]! += f * s;
  }
  return { dims: w.dims, data };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

async function outputs(sd: OpenedSd): Promise<{ unet: Float32Array; text: Float32Array }> {
  const e = (await readSafetensors(join(DIFFUSERS_TINY_FIXTURES, 'sd1', 'expected.safetensors'))).tensors;
  const u = await sd.sessions.unet.run({ sample: e.get('sample')!, timestep: e.get('timestep')!, encoder_hidden_states: e.get('context')! });
  const ids = e.get('ids')!;
  const t = await sd.sessions.textEncoder.run({ input_ids: { type: 'int64', dims: ids.dims, data: Array.from(ids.data) } });
  return { unet: u['out_sample']!.data, text: t['last_hidden_state']!.data };
}

describe('LoRA merge at load', () => {
  it('kohya + diffusers/PEFT adapters with scales equal the weights merged by hand; scale 0 is the base model', async () => {
    const base = writeTinyDiffusersFolder(join(tmp, 'base'), 'sd1');
    const unetW = (await readSafetensors(join(base, 'unet', 'diffusion_pytorch_model.safetensors'))).tensors;
    const textW = (await readSafetensors(join(base, 'text_encoder', 'model.safetensors'))).tensors;
    const r = 2;
    // kohya: a linear (attn1.to_q), a 3×3 conv (LoCon), a text-encoder linear; α = 3
    const kohya = new Map<string, Tensor>();
    const kMods: [Map<string, Tensor>, string, string][] = [
      [unetW, 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q', 'lora_unet_'],
      [unetW, 'up_blocks.1.resnets.0.conv1', 'lora_unet_'],
      [textW, 'text_model.encoder.layers.0.self_attn.q_proj', 'lora_te_'],
    ];
    const manual = { unet: new Map(unetW), text: new Map(textW) };
    const sK = 0.7;
    for (const [ws, mod, prefix] of kMods) {
      const w = ws.get(`${mod}.weight`)!;
      const rest = w.dims.slice(1);
      const A = rand([r, ...rest]);
      const B = rand(w.dims.length === 4 ? [w.dims[0]!, r, 1, 1] : [w.dims[0]!, r]);
      const k = `${prefix}${mod.replace(/\./g, '_')}`;
      kohya.set(`${k}.lora_down.weight`, A);
      kohya.set(`${k}.lora_up.weight`, B);
      kohya.set(`${k}.alpha`, { dims: [], data: Float32Array.of(3) });
      const target = ws === unetW ? manual.unet : manual.text;
      target.set(`${mod}.weight`, merge(target.get(`${mod}.weight`)!, A, B, (sK * 3) / r));
    }
    // diffusers/PEFT: a cross-attention to_k and a 1×1-conv proj_in; no alpha (α = r)
    const peft = new Map<string, Tensor>();
    const sP = 1.3;
    for (const mod of ['mid_block.attentions.0.transformer_blocks.0.attn2.to_k', 'down_blocks.0.attentions.0.proj_in']) {
      const w = unetW.get(`${mod}.weight`)!;
      const A = rand([r, ...w.dims.slice(1)]);
      const B = rand(w.dims.length === 4 ? [w.dims[0]!, r, 1, 1] : [w.dims[0]!, r]);
      peft.set(`unet.${mod}.lora_A.weight`, A);
      peft.set(`unet.${mod}.lora_B.weight`, B);
      manual.unet.set(`${mod}.weight`, merge(manual.unet.get(`${mod}.weight`)!, A, B, sP));
    }
    await writeSafetensors(join(tmp, 'kohya.safetensors'), kohya);
    await writeSafetensors(join(tmp, 'peft.safetensors'), peft);
    const merged = join(tmp, 'merged');
    cpSync(base, merged, { recursive: true });
    await writeSafetensors(join(merged, 'unet', 'diffusion_pytorch_model.safetensors'), manual.unet);
    await writeSafetensors(join(merged, 'text_encoder', 'model.safetensors'), manual.text);

    const withLora = await openStableDiffusion(base, { threads: 1, lora: [{ path: join(tmp, 'kohya.safetensors'), scale: sK }, { path: join(tmp, 'peft.safetensors'), scale: sP }] });
    const byHand = await openStableDiffusion(merged, { threads: 1 });
    const plain = await openStableDiffusion(base, { threads: 1 });
    const zero = await openStableDiffusion(base, { threads: 1, lora: [{ path: join(tmp, 'kohya.safetensors'), scale: 0 }] });
    try {
      expect(withLora.diffusers!.lora).toEqual([
        { path: join(tmp, 'kohya.safetensors'), scale: sK, adapted: { unet: 2, textEncoder: 1 } },
        { path: join(tmp, 'peft.safetensors'), scale: sP, adapted: { unet: 2, textEncoder: 0 } },
      ]);
      const a = await outputs(withLora);
      const b = await outputs(byHand);
      const p = await outputs(plain);
      const z = await outputs(zero);
      expect(maxAbsDiff(a.unet, b.unet)).toBeLessThan(1e-5);
      expect(maxAbsDiff(a.text, b.text)).toBeLessThan(1e-5);
      expect(maxAbsDiff(a.unet, p.unet)).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(a.text, p.text)).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(z.unet, p.unet)).toBe(0);
    } finally {
      for (const m of [withLora, byHand, plain, zero]) await m.dispose();
    }
  });

  it('keys that name no module, a missing factor and a shape that does not fit are one error', async () => {
    const base = writeTinyDiffusersFolder(join(tmp, 'bad'), 'sd1');
    await writeSafetensors(
      join(tmp, 'bad.safetensors'),
      new Map<string, Tensor>([
        ['lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight', rand([2, 8])],
        ['unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_v.lora_A.weight', rand([2, 16])],
        ['unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_q.lora_A.weight', rand([2, 5])],
        ['unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_q.lora_B.weight', rand([16, 2])],
      ]),
    );
    const err = await openStableDiffusion(base, { lora: [{ path: join(tmp, 'bad.safetensors'), scale: 1 }] }).then(
      () => 'no error',
      (e: Error) => e.message,
    );
    expect(err).toContain('--lora: 3 problems');
    expect(err).toContain('lora_unet_down_blocks_9_attentions_0_proj_in.lora_down.weight names no module of this model');
    expect(err).toContain('unet mid_block.attentions.0.transformer_blocks.0.attn2.to_v: has no up (B) factor');
    expect(err).toMatch(/attn2\.to_q: factors down \[2, 5\] F32 and up \[16, 2\] F32 do not fit the weight \[16, 16\]/);
  });

  it('--lora FILE[:scale] parses', () => {
    expect(parseLoraSpec('a/b.safetensors')).toEqual({ path: 'a/b.safetensors', scale: 1 });
    expect(parseLoraSpec('a/b.safetensors:0.6')).toEqual({ path: 'a/b.safetensors', scale: 0.6 });
    expect(parseLoraSpec('C:/x.safetensors:-1')).toEqual({ path: 'C:/x.safetensors', scale: -1 });
  });
});
