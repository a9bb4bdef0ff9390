/** `memscope export`: a trained model as standalone ONNX files with the diffusers U-Net signature. */
import { z } from 'zod';
import { join } from 'node:path';
import { parseFlags, validate, asInput } from './args.ts';
import { commandHelp, flagDocs } from './help.ts';
import { loadTrainedModel } from '../denoisers/trained.ts';
import { checkResultsTarget, withResultsDir } from '../io/results.ts';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.ts';
import { writeNpy } from '../io/npy.ts';
import { WordTokenizer } from '../text/word-tokenizer.ts';
import { createSession } from '../graph/session.ts';

const Schema = z.object({
  model: z.string().min(1).register(flagDocs, { value: 'DIR', help: 'a model trained by memscope train (DIR/model.json)' }),
  out: z.string().min(1).register(flagDocs, { value: 'DIR', help: 'the folder the ONNX files go to' }),
});

/** The help of `memscope export`, generated from its schema. */
export const EXPORT_HELP = commandHelp(Schema, {
  title: 'memscope export — write a trained model as standalone ONNX files',
  usage: 'memscope export --model DIR --out DIR',
  blocks: [
    { flags: ['model', 'out'] },
    `Writes unet.onnx (inputs sample [B,1,32,32], timestep float32 [B], encoder_hidden_states [B,16,64];
output out_sample = ε), text_encoder.onnx (ids int64 [B,16] → last_hidden_state), cond.npy (the
embeddings of every prompt, in model.json order), uncond.npy (the empty prompt), prompts.json, and
scheduler_config.json, so that
  memscope sample --model OUT/unet.onnx --cond OUT/cond.npy --uncond OUT/uncond.npy \\
      --scheduler-config OUT/scheduler_config.json
samples the same model. Unconditional models get unet.onnx and scheduler_config.json only.`,
  ],
  examples: ['memscope export --model models/duplication --out exported/duplication'],
});

/** Parse and run `memscope export`. */
export async function exportCommand(argv: string[]): Promise<void> {
  const o = validate(Schema, parseFlags(argv, { model: { type: 'string' }, out: { type: 'string' } }));
  await checkResultsTarget(o.out);
  const m = await asInput('--model', () => loadTrainedModel(o.model));
  await withResultsDir(o.out, async (dir) => {
    await writeFileAtomic(join(dir, 'unet.onnx'), m.unetBytes);
    await writeJsonAtomic(join(dir, 'scheduler_config.json'), { _class_name: 'DDIMScheduler', ...(m.meta['schedule'] as object), steps_offset: 1, set_alpha_to_one: false, clip_sample: false });
    if (m.textEncoderBytes) {
      await writeFileAtomic(join(dir, 'text_encoder.onnx'), m.textEncoderBytes);
      const tok = WordTokenizer.fromJSON(m.meta['tokenizer']);
      const te = await createSession(m.textEncoderBytes);
      const L = te.inputs[0]!.shape?.[1];
      const len = typeof L === 'number' ? L : 16;
      const h = (await te.run({ ids: tok.encodeBatch([...m.prompts.map((p) => p.text), ''], len) }))['last_hidden_state']!;
      await te.release();
      const K = m.prompts.length;
      const per = h.data.length / (K + 1);
      await writeNpy(join(dir, 'cond.npy'), { dims: [K, ...h.dims.slice(1)], data: h.data.slice(0, K * per) });
      await writeNpy(join(dir, 'uncond.npy'), { dims: [1, ...h.dims.slice(1)], data: h.data.slice(K * per) });
      await writeJsonAtomic(join(dir, 'prompts.json'), m.prompts);
      await writeJsonAtomic(join(dir, 'tokenizer.json'), tok.toJSON());
    }
  }, { command: 'export' });
  await m.denoiser.dispose?.();
  process.stdout.write(`${join(o.out, 'unet.onnx')}\n`);
}
