/**
 * A word-level tokenizer for the trained testbed's captions (SPEC §6 "Trained"): lower-case,
 * split on anything that is not a letter or digit, look words up in a vocabulary built from the
 * training texts. Ids: 0 = pad, 1 = unknown, 2 = start, 3 = end, then the words in order of first
 * appearance (deterministic). `encode` gives `[start, words…, end, pad…]` of a fixed length; the
 * empty prompt `""` gives `[start, end, pad…]`, the null condition (as Stable Diffusion uses the
 * empty prompt for classifier-free guidance).
 */
import { z } from 'zod';

/** Id of the padding token. */
export const PAD_ID = 0;
/** Id of the unknown-word token. */
export const UNK_ID = 1;
/** Id of the start-of-text token. */
export const START_ID = 2;
/** Id of the end-of-text token. */
export const END_ID = 3;
/** Number of special tokens (ids below this are special). */
export const NUM_SPECIAL = 4;
const SPECIAL_NAMES = ['<pad>', '<unk>', '<start>', '<end>'] as const;

/** Lower-case `text` and split it into words on every run of characters that are not letters or digits (Unicode). */
export function splitWords(text: string): string[] {
  return text
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((w) => w.length > 0);
}

/** The JSON form of a {@link WordTokenizer}. */
export const WordTokenizerJsonSchema = z
  .object({
    kind: z.literal('memscope-word-tokenizer'),
    version: z.literal(1),
    /** The words with ids 4, 5, … in order. */
    words: z.array(z.string().min(1)),
  })
  .strict();

/** The JSON form of a {@link WordTokenizer}. */
export type WordTokenizerJson = z.output<typeof WordTokenizerJsonSchema>;

/** A batch of encoded prompts, feedable as an int64 graph input (`TypedFeed`-compatible). */
export interface EncodedBatch {
  readonly type: 'int64';
  /** `[N, L]`. */
  readonly dims: readonly [number, number];
  readonly data: BigInt64Array;
}

/** Options of {@link WordTokenizer.fromTexts}. */
export interface BuildVocabOptions {
  /** Keep at most this many words (the first to appear; default: all). */
  readonly maxWords?: number;
}

/** A word-level tokenizer (see the module note). Create with {@link WordTokenizer.fromTexts} or {@link WordTokenizer.fromJSON}. */
export class WordTokenizer {
  private readonly ids: Map<string, number>;

  private constructor(
    /** The vocabulary words, in id order starting at {@link NUM_SPECIAL}. */
    readonly words: readonly string[],
  ) {
    this.ids = new Map();
    words.forEach((w, i) => {
      if (this.ids.has(w)) throw new Error(`WordTokenizer: word '${w}' appears twice in the vocabulary`);
      if (splitWords(w).length !== 1 || splitWords(w)[0] !== w) throw new Error(`WordTokenizer: '${w}' is not a normalised word`);
      this.ids.set(w, NUM_SPECIAL + i);
    });
  }

  /** Build the vocabulary from `texts`: every word in order of first appearance (default: no limit). */
  static fromTexts(texts: Iterable<string>, opts: BuildVocabOptions = {}): WordTokenizer {
    const max = opts.maxWords ?? Infinity;
    const seen = new Set<string>();
    const words: string[] = [];
    for (const t of texts) {
      for (const w of splitWords(t)) {
        if (words.length >= max) break;
        if (!seen.has(w)) {
          seen.add(w);
          words.push(w);
        }
      }
    }
    return new WordTokenizer(words);
  }

  /** Restore from {@link WordTokenizer.toJSON} output (an object or its JSON text). */
  static fromJSON(json: unknown): WordTokenizer {
    const obj: unknown = typeof json === 'string' ? JSON.parse(json) : json;
    const parsed = WordTokenizerJsonSchema.safeParse(obj);
    if (!parsed.success) throw new Error(`WordTokenizer.fromJSON: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
    return new WordTokenizer(parsed.data.words);
  }

  /** The JSON form (`JSON.stringify(tokenizer)` works too). */
  toJSON(): WordTokenizerJson {
    return { kind: 'memscope-word-tokenizer', version: 1, words: [...this.words] };
  }

  /** Vocabulary size including the special tokens (the text encoder's `vocabSize`). */
  get vocabSize(): number {
    return NUM_SPECIAL + this.words.length;
  }

  /** Id of a (normalised) word, {@link UNK_ID} when unknown. */
  idOf(word: string): number {
    return this.ids.get(word) ?? UNK_ID;
  }

  /**
   * Encode `text` as `L` ids (default 16): `[start, words…, end]` padded with {@link PAD_ID};
   * longer texts are truncated to their first `L − 2` words, keeping the end token.
   */
  encode(text: string, L = 16): number[] {
    if (!Number.isInteger(L) || L < 2) throw new Error(`WordTokenizer.encode: L must be an integer ≥ 2, got ${L}`);
    const ids = splitWords(text)
      .slice(0, L - 2)
      .map((w) => this.idOf(w));
    const out = [START_ID, ...ids, END_ID];
    while (out.length < L) out.push(PAD_ID);
    return out;
  }

  /** Encode several texts as an int64 `[N, L]` batch (feed it as the text encoder's ids input). */
  encodeBatch(texts: readonly string[], L = 16): EncodedBatch {
    const data = new BigInt64Array(texts.length * L);
    texts.forEach((t, i) => this.encode(t, L).forEach((id, j) => (data[i * L + j] = BigInt(id))));
    return { type: 'int64', dims: [texts.length, L], data };
  }

  /** The string of one id: the word, or `<pad>`, `<unk>`, `<start>`, `<end>` for the special tokens. */
  tokenName(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new Error(`WordTokenizer.tokenName: id ${id} is out of range [0, ${this.vocabSize})`);
    return id < NUM_SPECIAL ? SPECIAL_NAMES[id]! : this.words[id - NUM_SPECIAL]!;
  }

  /** The words of `ids` joined by spaces, special tokens skipped (`<unk>` kept). */
  decode(ids: readonly number[]): string {
    const out: string[] = [];
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new Error(`WordTokenizer.decode: id ${id} is out of range [0, ${this.vocabSize})`);
      if (id === UNK_ID) out.push(SPECIAL_NAMES[UNK_ID]);
      else if (id >= NUM_SPECIAL) out.push(this.words[id - NUM_SPECIAL]!);
    }
    return out.join(' ');
  }
}
