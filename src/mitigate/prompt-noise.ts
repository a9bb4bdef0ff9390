/**
 * Somepalli et al. 2023 ("Understanding and Mitigating Copying in Diffusion Models", NeurIPS 2023,
 * inference-time mitigations) prompt perturbations, the text-prompt baselines of Jain et al.
 * 2025 (SPEC §4.4, Tables 1–4 "Add rand word" / "Add rand numb"), and the glue that runs a
 * memscope trained model on arbitrary (perturbed) texts.
 *
 * The reference code (somepago/DCR `insert_rand_word` / `prompt_augmentation`, copied into
 * YuxinWenRick/diffusion_memorization `optim_utils.py`, which Jain et al.'s comparison follows):
 * - the prompt is split on single spaces (Python `str.split(' ')`), the new token is inserted at a
 *   position drawn uniformly from the `len + 1` gaps (`random.randint(0, len)`, both ends
 *   included), and the words are joined with single spaces again; repeated `repeat_num` times,
 *   each insertion into the already perturbed prompt;
 * - random number: `np.random.choice(100000)`, an integer uniform in [0, 100000), as a decimal string;
 * - random word: a CLIP token id uniform in [0, 49400) decoded to text.
 * - `repeat_num` defaults to 1 in Wen et al.'s `inference_mem.py` (the harness Jain et al.'s
 *   baselines come from); Somepalli's own `sd_mitigation.py` defaults `--rand_aug_repeats` to 4.
 *   memscope's default is 1.
 *
 * memscope's trained models use a word tokenizer whose vocabulary holds only the training
 * captions' words, so "a random token of the tokenizer" becomes a word drawn uniformly from the
 * caller's `vocabulary` — pass the model tokenizer's words (`WordTokenizer.words`, see
 * {@link modelVocabulary}) so that every inserted word maps to a real embedding instead of `<unk>`.
 * Random numbers are kept as in the paper; they are outside such a vocabulary and encode as
 * `<unk>` (still a perturbation: an extra token that shifts the positions of the words after it).
 * Texts longer than the context (L − 2 words) are truncated by the tokenizer, as CLIP truncates
 * at 77 tokens; an insertion after the cut has no effect.
 */
import { mulberry32 } from '../random/mulberry32.ts';
import { WordTokenizer } from '../text/word-tokenizer.ts';
import { DiffusionModelConfigSchema } from '../models/diffusion-model.ts';
import { createSession } from '../graph/session.ts';
import { loadOnnxDenoiser } from '../denoisers/onnx.ts';
import type { ConditionInfo, Denoiser } from '../denoisers/denoiser.ts';
import type { TrainedModel } from '../denoisers/trained.ts';
import type { Tensor } from '../tensor/tensor.ts';

/** Options of {@link randomWordInsertion}. */
export interface RandomWordOptions {
  /** Seed of the mulberry32 generator (an integer). */
  readonly seed: number;
  /** Number of words inserted, one after the other (Wen et al.'s `repeat_num`; default 1). */
  readonly count?: number;
  /** Words to draw from, uniformly (for memscope models: {@link modelVocabulary}). */
  readonly vocabulary: readonly string[];
}

/** Options of {@link randomNumberInsertion}. */
export interface RandomNumberOptions {
  /** Seed of the mulberry32 generator (an integer). */
  readonly seed: number;
  /** Number of numbers inserted (default 1). */
  readonly count?: number;
  /** Numbers are integers uniform in [0, max) (default 100000, `np.random.choice(100000)`). */
  readonly max?: number;
}

function checkCount(count: number, what: string): void {
  if (!Number.isInteger(count) || count < 0) throw new Error(`${what}: count must be a non-negative integer, got ${count}`);
}

/** Insert each token of `draw()` at a uniform gap of the space-split text (DCR `insert_rand_word`). */
function insertTokens(text: string, count: number, rnd: () => number, draw: () => string): string {
  const words = text.split(' ');
  for (let i = 0; i < count; i++) {
    const token = draw();
    const pos = Math.floor(rnd() * (words.length + 1));
    words.splice(pos, 0, token);
  }
  return words.join(' ');
}

/**
 * Somepalli et al. 2023 "random word addition" (`rand_word_add`): insert `count` (default 1)
 * words drawn uniformly from `vocabulary` at uniform positions between the space-separated words.
 * Deterministic in `seed`; per insertion the word is drawn first, then the position (as the
 * reference code does).
 */
export function randomWordInsertion(text: string, opts: RandomWordOptions): string {
  const count = opts.count ?? 1;
  checkCount(count, 'randomWordInsertion');
  const vocab = opts.vocabulary;
  if (count > 0 && vocab.length === 0) throw new Error('randomWordInsertion: the vocabulary is empty');
  const rnd = mulberry32(opts.seed);
  return insertTokens(text, count, rnd, () => vocab[Math.floor(rnd() * vocab.length)]!);
}

/**
 * Somepalli et al. 2023 "random number addition" (`rand_numb_add`): insert `count` (default 1)
 * integers uniform in [0, max) (default max 100000) at uniform positions between the
 * space-separated words. Deterministic in `seed`.
 */
export function randomNumberInsertion(text: string, opts: RandomNumberOptions): string {
  const count = opts.count ?? 1;
  checkCount(count, 'randomNumberInsertion');
  const max = opts.max ?? 100000;
  if (!Number.isInteger(max) || max < 1) throw new Error(`randomNumberInsertion: max must be a positive integer, got ${max}`);
  const rnd = mulberry32(opts.seed);
  return insertTokens(text, count, rnd, () => String(Math.floor(rnd() * max)));
}

/** The vocabulary words of a trained text model's tokenizer (what {@link randomWordInsertion} should draw from). */
export function modelVocabulary(model: TrainedModel): readonly string[] {
  return WordTokenizer.fromJSON(model.meta['tokenizer']).words;
}

/** Context length L and width of a trained text model, from its `model.json`. */
export function textShape(model: TrainedModel): { L: number; width: number } {
  const cfg = DiffusionModelConfigSchema.parse(model.meta['model']);
  if (!cfg.textEncoder || model.textEncoderBytes === null) throw new Error(`${model.denoiser.name}: not a text-conditioned model (no text encoder)`);
  return { L: cfg.textEncoder.maxLength, width: cfg.textEncoder.width };
}

/**
 * Encode `texts` with a trained model's own tokenizer and text encoder (SPEC §0: the condition e);
 * returns `[K, L, width]`. The empty text `''` gives e_∅, the null condition. One session, released after.
 */
export async function embedTexts(model: TrainedModel, texts: readonly string[]): Promise<Tensor> {
  const { L, width } = textShape(model);
  if (texts.length === 0) return { dims: [0, L, width], data: new Float32Array(0) };
  const tok = WordTokenizer.fromJSON(model.meta['tokenizer']);
  const session = await createSession(model.textEncoderBytes!);
  try {
    const out = await session.run({ ids: tok.encodeBatch(texts, L) });
    const h = out['last_hidden_state'];
    if (h === undefined || h.data.length !== texts.length * L * width) throw new Error(`${model.denoiser.name}: the text encoder did not return last_hidden_state [${texts.length}, ${L}, ${width}]`);
    return { dims: [texts.length, L, width], data: h.data };
  } finally {
    await session.release();
  }
}

/** Options of {@link textDenoiser}. */
export interface TextDenoiserOptions {
  /** Name for reports (default `<model name>:texts`). */
  readonly name?: string;
}

/**
 * A {@link Denoiser} of a trained text model over arbitrary `texts` (condition k = `texts[k]`,
 * kind `'text'`, id `text:k`; e_∅ = the embedding of `''` as in the trained model), so that every
 * sampler and guidance schedule runs on perturbed prompts (Somepalli et al. 2023 baselines).
 * Targets are not known for new texts; attach them from the source prompts when needed.
 */
export async function textDenoiser(model: TrainedModel, texts: readonly string[], opts: TextDenoiserOptions = {}): Promise<Denoiser> {
  const { L, width } = textShape(model);
  const emb = await embedTexts(model, [...texts, '']);
  const K = texts.length;
  const per = L * width;
  const name = opts.name ?? `${model.denoiser.name}:texts`;
  const inner = await loadOnnxDenoiser({
    path: name,
    bytes: model.unetBytes,
    name,
    conditions: { dims: [K, L, width], data: emb.data.slice(0, K * per) },
    uncond: { dims: [1, L, width], data: emb.data.slice(K * per) },
    labels: texts,
  });
  const conditions: ConditionInfo[] = texts.map((t, k) => ({ id: `text:${k}`, kind: 'text', label: t }));
  return {
    name,
    space: inner.space,
    shape: inner.shape,
    conditions,
    predict: (xt, level, cond) => inner.predict(xt, level, cond),
    dispose: () => inner.dispose(),
  };
}
