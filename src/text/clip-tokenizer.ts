/**
 * CLIP byte-level BPE tokenizer for the `tokenizer/` folder of a Stable Diffusion ONNX export
 * (SPEC §7), on top of `@huggingface/tokenizers` (pure JS).
 *
 * Real exports ship `vocab.json`, `merges.txt`, `special_tokens_map.json` and
 * `tokenizer_config.json` but no `tokenizer.json`; {@link loadClipTokenizer} then builds the
 * `tokenizer.json` object in memory exactly as Hugging Face's `CLIPConverter` (slow → fast
 * `CLIPTokenizerFast`) does ({@link buildClipTokenizerJson}):
 *
 * - normalizer: NFC, every run of whitespace (`\s+`) → one space, lower-case;
 * - pre-tokenizer: CLIP's regex ({@link CLIP_SPLIT_PATTERN}, keeping only the matches, so
 *   whitespace disappears), then GPT-2 byte-level symbols without a prefix space;
 * - model: BPE with `end_of_word_suffix: "</w>"` (the last symbol of every word carries it, so
 *   `t` and `t</w>` are different symbols), `continuing_subword_prefix: ""`, unknown token
 *   `<|endoftext|>`;
 * - decoder: byte-level; post-processor: `<|startoftext|>` … `<|endoftext|>`.
 *
 * When the folder has a `tokenizer.json` it is used as is.
 *
 * Sequences: {@link ClipTokenizer.encode} gives `maxLength` ids (tokenizer_config
 * `model_max_length`, default 77): bos, the prompt's tokens, eos, then padding. A prompt longer
 * than `maxLength − 2` tokens is cut so that eos sits at index `maxLength − 1`. The pad token is
 * the one the export names (`special_tokens_map.json` wins over `tokenizer_config.json`, as in
 * `transformers`): `<|endoftext|>` for SD 1.x, `!` for SD 2.x; it defaults to the eos token.
 * By default the pad token is also an added (special) token, as `transformers` makes it, so a `!`
 * inside an SD 2.x prompt becomes the pad id 0 — what diffusers' pipelines feed the text encoder
 * (huggingface/diffusers#4153: `"! !! !!!"` → `49406, 0, 0, 0, 0, 0, 0, 49407, 0…`), which is the
 * behaviour memscope must reproduce to match a diffusers run. `padSplitting: 'openclip'` keeps the
 * pad token for padding only, so `!` is BPE-tokenized as OpenCLIP (the SD 2.x training code) does.
 * A shipped `tokenizer.json` is honoured as written.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { slowClipText } from './clip-slow.ts';

/** Sequence length of the CLIP text encoders used by Stable Diffusion; the default `maxLength`. */
export const CLIP_MAX_LENGTH = 77;

/** CLIP's start-of-text token (bos); the default when the config names none. */
export const CLIP_BOS_TOKEN = '<|startoftext|>';

/** CLIP's end-of-text token (eos, also unk and the SD 1.x pad); the default when the config names none. */
export const CLIP_EOS_TOKEN = '<|endoftext|>';

/**
 * CLIP's pre-tokenization regex as Hugging Face's `CLIPConverter` writes it (Oniguruma syntax,
 * split behaviour `Removed` with `invert: true`: only the matches are kept). The special tokens
 * of the original OpenAI pattern are not needed here: added tokens are split out before it runs.
 */
export const CLIP_SPLIT_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";

/** The special tokens a {@link ClipTokenizer} uses, by content. */
export interface ClipSpecialTokens {
  /** Prepended to every sequence. Default `<|startoftext|>`. */
  readonly bos: string;
  /** Appended to every sequence (kept at index `maxLength − 1` when truncating). Default `<|endoftext|>`. */
  readonly eos: string;
  /** Replaces symbols missing from the vocabulary. Default `<|endoftext|>`. */
  readonly unk: string;
  /** Fills the sequence after eos. Default: the eos token. */
  readonly pad: string;
}

/** One entry of a `tokenizer.json` `added_tokens` list. */
export interface AddedTokenJson {
  readonly id: number;
  readonly content: string;
  readonly single_word: boolean;
  readonly lstrip: boolean;
  readonly rstrip: boolean;
  readonly normalized: boolean;
  readonly special: boolean;
}

/** The BPE model section of a CLIP `tokenizer.json`. */
export interface ClipBpeModelJson {
  readonly type: 'BPE';
  readonly dropout: null;
  readonly unk_token: string;
  readonly continuing_subword_prefix: string;
  readonly end_of_word_suffix: string;
  readonly fuse_unk: boolean;
  readonly byte_fallback: boolean;
  readonly ignore_merges: boolean;
  /** Token → id. */
  readonly vocab: Readonly<Record<string, number>>;
  /** Merge rules, highest priority first. */
  readonly merges: ReadonlyArray<readonly [string, string]>;
}

/** A `tokenizer.json` object as {@link buildClipTokenizerJson} writes it (Hugging Face `tokenizers` schema). */
export interface ClipTokenizerJson {
  readonly version: '1.0';
  readonly truncation: null;
  readonly padding: null;
  readonly added_tokens: readonly AddedTokenJson[];
  readonly normalizer: Readonly<Record<string, unknown>>;
  readonly pre_tokenizer: Readonly<Record<string, unknown>>;
  readonly post_processor: Readonly<Record<string, unknown>>;
  readonly decoder: Readonly<Record<string, unknown>>;
  readonly model: ClipBpeModelJson;
}

/** How a special token is described in `tokenizer_config.json` / `special_tokens_map.json`. */
export type SpecialTokenSpec =
  | string
  | {
      readonly content: string;
      readonly single_word?: boolean;
      readonly lstrip?: boolean;
      readonly rstrip?: boolean;
      readonly normalized?: boolean;
    };

/** Special tokens given to {@link buildClipTokenizerJson}; each defaults to CLIP's. */
export interface ClipJsonSpecials {
  /** Default `<|startoftext|>`. */
  readonly bos?: SpecialTokenSpec;
  /** Default `<|endoftext|>`. */
  readonly eos?: SpecialTokenSpec;
  /** Default `<|endoftext|>`. */
  readonly unk?: SpecialTokenSpec;
  /** The pad token, made an added token too when given (as `transformers` does; default none). */
  readonly pad?: SpecialTokenSpec;
}

/** One encoded prompt. */
export interface ClipEncoding {
  /** `maxLength` token ids: bos, tokens, eos, padding. */
  readonly ids: Int32Array;
  /** `maxLength` entries: 1 for bos, tokens and eos, 0 for padding. */
  readonly attentionMask: Int32Array;
  /** Number of ids before the padding (bos + tokens + eos), 2 … `maxLength`. */
  readonly length: number;
  /** Whether tokens were dropped to fit `maxLength`. */
  readonly truncated: boolean;
}

/** A batch of encoded prompts, row-major `[batchSize, maxLength]`. */
export interface ClipBatchEncoding {
  /** `batchSize × maxLength` ids, prompt `b` at `[b·maxLength, (b+1)·maxLength)`. Convert to int64 for optimum exports. */
  readonly ids: Int32Array;
  /** `batchSize × maxLength` entries, 1 before the padding, 0 in it. */
  readonly attentionMask: Int32Array;
  /** Unpadded length of each prompt. */
  readonly lengths: Int32Array;
  /** Number of prompts. */
  readonly batchSize: number;
  /** Ids per prompt. */
  readonly maxLength: number;
  /** Indices of the prompts that were truncated. */
  readonly truncated: readonly number[];
}

/** Options of {@link loadClipTokenizer} and the {@link ClipTokenizer} constructor. */
export interface ClipTokenizerOptions {
  /**
   * Ids per sequence (≥ 2). Default: tokenizer_config `model_max_length` when it is an integer
   * in [2, 65536] (larger values are `transformers`' "no limit" sentinel), otherwise 77.
   */
  readonly maxLength?: number;
  /**
   * How a pad token other than bos/eos/unk (SD 2.x: `!`) is treated inside prompts when the
   * tokenizer is built from vocab.json + merges.txt: `'transformers'` (default; it is an added
   * token, so each `!` in a prompt becomes the pad id, as diffusers feeds SD 2.x) or `'openclip'`
   * (padding only; `!` is BPE-tokenized as in OpenCLIP). Ignored for a shipped `tokenizer.json`.
   */
  readonly padSplitting?: 'transformers' | 'openclip';
  /**
   * Text clean-up before the tokenizer's own normalisation: `'fast'` (default: none — the
   * semantics of `CLIPTokenizerFast` and of transformers 5's `CLIPTokenizer`) or `'slow'`
   * (transformers 4.x's slow `CLIPTokenizer` without ftfy, {@link slowClipText}: control and
   * format characters dropped, CJK ideographs spaced out).
   */
  readonly semantics?: 'fast' | 'slow';
}

/** Where a {@link ClipTokenizer} came from. */
export type ClipTokenizerSource = 'tokenizer.json' | 'vocab.json+merges.txt' | 'object';

const MAX_SANE_LENGTH = 65536;

/**
 * Parse a `merges.txt`: an optional first line `#version: …`, then one merge `left right` per
 * line (blank lines ignored, CRLF accepted). `name` is used in error messages.
 */
export function parseMerges(text: string, name = 'merges.txt'): Array<[string, string]> {
  const lines = text.split('\n');
  const merges: Array<[string, string]> = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (i === 0 && line.startsWith('#version')) continue;
    if (line.length === 0) continue;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new Error(`${name}: line ${i + 1} is not a merge "left right": ${JSON.stringify(line)}`);
    }
    merges.push([parts[0]!, parts[1]!]);
  }
  return merges;
}

function specContent(spec: SpecialTokenSpec): string {
  return typeof spec === 'string' ? spec : spec.content;
}

function addedToken(spec: SpecialTokenSpec, vocab: Readonly<Record<string, number>>, role: string): AddedTokenJson {
  const content = specContent(spec);
  const id = Object.hasOwn(vocab, content) ? vocab[content] : undefined;
  if (id === undefined) throw new Error(`buildClipTokenizerJson: the ${role} token ${JSON.stringify(content)} is not in the vocabulary`);
  const flag = (key: 'single_word' | 'lstrip' | 'rstrip' | 'normalized', dflt: boolean): boolean => {
    const v = typeof spec === 'object' ? spec[key] : undefined;
    return typeof v === 'boolean' ? v : dflt;
  };
  return {
    id,
    content,
    single_word: flag('single_word', false),
    lstrip: flag('lstrip', false),
    rstrip: flag('rstrip', false),
    normalized: flag('normalized', true),
    special: true,
  };
}

/**
 * Build the `tokenizer.json` object that Hugging Face's `CLIPConverter` produces from a CLIP
 * `vocab.json` (token → id) and `merges.txt` (see {@link parseMerges}); the bos/eos/unk tokens
 * (default `<|startoftext|>`, `<|endoftext|>`, `<|endoftext|>`) must be in `vocab` and become
 * the added tokens. The result can be saved as `tokenizer.json`.
 */
export function buildClipTokenizerJson(
  vocab: Readonly<Record<string, number>>,
  merges: ReadonlyArray<readonly [string, string]>,
  specials: ClipJsonSpecials = {},
): ClipTokenizerJson {
  const bos = addedToken(specials.bos ?? CLIP_BOS_TOKEN, vocab, 'bos');
  const eos = addedToken(specials.eos ?? CLIP_EOS_TOKEN, vocab, 'eos');
  const unk = addedToken(specials.unk ?? CLIP_EOS_TOKEN, vocab, 'unk');
  const pad = specials.pad === undefined ? [] : [addedToken(specials.pad, vocab, 'pad')];
  const added: AddedTokenJson[] = [];
  for (const t of [bos, eos, unk, ...pad]) if (!added.some((a) => a.content === t.content)) added.push(t);
  added.sort((a, b) => a.id - b.id);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: CLIP_SPLIT_PATTERN }, behavior: 'Removed', invert: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      ],
    },
    post_processor: {
      type: 'RobertaProcessing',
      sep: [eos.content, eos.id],
      cls: [bos.content, bos.id],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk.content,
      continuing_subword_prefix: '',
      end_of_word_suffix: '</w>',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: { ...vocab },
      merges: merges.map(([a, b]) => [a, b] as const),
    },
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function asSpec(v: unknown): SpecialTokenSpec | undefined {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v as unknown as SpecialTokenSpec;
  return undefined;
}

/**
 * The special token `key` (`bos_token`, …) of an export: `special_tokens_map.json` wins over
 * `tokenizer_config.json`, as in `transformers`' loading.
 */
function specialFrom(key: string, map: Record<string, unknown>, config: Record<string, unknown>): SpecialTokenSpec | undefined {
  return asSpec(map[key]) ?? asSpec(config[key]);
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`loadClipTokenizer: cannot read JSON "${path}": ${(e as Error).message}`);
  }
}

function readOptionalObject(path: string): Record<string, unknown> {
  if (!existsSync(path)) return {};
  const v = readJson(path);
  if (!isObject(v)) throw new Error(`loadClipTokenizer: "${path}" is not a JSON object`);
  return v;
}

function isDir(p: string): boolean {
  return existsSync(p) && statSync(p).isDirectory();
}

/** A CLIP tokenizer producing fixed-length id sequences for a Stable Diffusion text encoder. */
export class ClipTokenizer {
  /** Ids per sequence (default 77). */
  readonly maxLength: number;
  /** The special tokens in use. */
  readonly specialTokens: ClipSpecialTokens;
  /** Id of the bos token. */
  readonly bosId: number;
  /** Id of the eos token. */
  readonly eosId: number;
  /** Id of the pad token. */
  readonly padId: number;
  /** The `tokenizer.json` object this tokenizer runs (read, or built from vocab.json + merges.txt). */
  readonly tokenizerJson: object;
  /** Where it came from. */
  readonly source: ClipTokenizerSource;
  /** The text clean-up applied before tokenizing (`'fast'`: none). */
  readonly semantics: 'fast' | 'slow';
  private readonly tok: Tokenizer;

  /**
   * Wrap a `tokenizer.json` object. `config` is the merged special-token / tokenizer config
   * (keys `bos_token`, `eos_token`, `unk_token`, `pad_token`, `model_max_length`; defaults as in
   * {@link ClipSpecialTokens} and {@link ClipTokenizerOptions}). Throws when a special token is
   * not in the vocabulary.
   */
  constructor(
    tokenizerJson: object,
    config: Readonly<Record<string, unknown>> = {},
    options: ClipTokenizerOptions = {},
    source: ClipTokenizerSource = 'object',
  ) {
    const content = (key: string, dflt: string): string => {
      const s = asSpec(config[key]);
      return s === undefined ? dflt : specContent(s);
    };
    const eos = content('eos_token', CLIP_EOS_TOKEN);
    this.specialTokens = {
      bos: content('bos_token', CLIP_BOS_TOKEN),
      eos,
      unk: content('unk_token', CLIP_EOS_TOKEN),
      pad: content('pad_token', eos),
    };
    const cfgLen = config.model_max_length;
    const maxLength =
      options.maxLength ??
      (typeof cfgLen === 'number' && Number.isInteger(cfgLen) && cfgLen >= 2 && cfgLen <= MAX_SANE_LENGTH ? cfgLen : CLIP_MAX_LENGTH);
    if (!Number.isInteger(maxLength) || maxLength < 2) throw new Error(`ClipTokenizer: maxLength must be an integer ≥ 2, got ${maxLength}`);
    this.maxLength = maxLength;
    // The library reads only a few plain keys from the config; give it strings, not AddedToken objects.
    const libConfig: Record<string, unknown> = {
      bos_token: this.specialTokens.bos,
      eos_token: this.specialTokens.eos,
      unk_token: this.specialTokens.unk,
      pad_token: this.specialTokens.pad,
      model_max_length: maxLength,
    };
    if (typeof config.clean_up_tokenization_spaces === 'boolean') libConfig.clean_up_tokenization_spaces = config.clean_up_tokenization_spaces;
    this.tok = new Tokenizer(tokenizerJson, libConfig);
    this.tokenizerJson = tokenizerJson;
    this.source = source;
    this.semantics = options.semantics ?? 'fast';
    const idOf = (role: string, token: string): number => {
      const id = this.tok.token_to_id(token);
      if (id === undefined) throw new Error(`ClipTokenizer: the ${role} token ${JSON.stringify(token)} is not in the vocabulary`);
      return id;
    };
    this.bosId = idOf('bos', this.specialTokens.bos);
    this.eosId = idOf('eos', this.specialTokens.eos);
    this.padId = idOf('pad', this.specialTokens.pad);
  }

  /** The BPE tokens of a prompt, without bos/eos and without truncation (e.g. `['a</w>', 'cat</w>']`). */
  tokenize(prompt: string): string[] {
    return this.tok.encode(this.clean(prompt), { add_special_tokens: false }).tokens;
  }

  private clean(prompt: string): string {
    return this.semantics === 'slow' ? slowClipText(prompt) : prompt;
  }

  /** The ids of a prompt's tokens, without bos/eos and without truncation. */
  tokenIds(prompt: string): number[] {
    return this.tok.encode(this.clean(prompt), { add_special_tokens: false }).ids;
  }

  /** Encode one prompt into `maxLength` ids: bos, tokens (truncated), eos, pad… */
  encode(prompt: string): ClipEncoding {
    const ids = new Int32Array(this.maxLength);
    const attentionMask = new Int32Array(this.maxLength);
    const { length, truncated } = this.encodeInto(prompt, ids, attentionMask, 0);
    return { ids, attentionMask, length, truncated };
  }

  /** Encode prompts into one row-major `[prompts.length, maxLength]` batch (see {@link ClipTokenizer.encode}). */
  encodeBatch(prompts: readonly string[]): ClipBatchEncoding {
    const L = this.maxLength;
    const ids = new Int32Array(prompts.length * L);
    const attentionMask = new Int32Array(prompts.length * L);
    const lengths = new Int32Array(prompts.length);
    const truncated: number[] = [];
    prompts.forEach((p, b) => {
      const r = this.encodeInto(p, ids, attentionMask, b * L);
      lengths[b] = r.length;
      if (r.truncated) truncated.push(b);
    });
    return { ids, attentionMask, lengths, batchSize: prompts.length, maxLength: L, truncated };
  }

  /** Decode ids back to text: a leading bos is skipped and decoding stops at the first eos (so padding is ignored). */
  decode(ids: ArrayLike<number>): string {
    const list: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (i === 0 && id === this.bosId) continue;
      if (id === this.eosId) break;
      list.push(id);
    }
    if (list.length === 0) return '';
    return this.tok.decode(list, { skip_special_tokens: true }).trim();
  }

  private encodeInto(prompt: string, ids: Int32Array, mask: Int32Array, offset: number): { length: number; truncated: boolean } {
    if (typeof prompt !== 'string') throw new Error(`ClipTokenizer: prompt must be a string, got ${typeof prompt}`);
    const body = this.tokenIds(prompt);
    const room = this.maxLength - 2;
    const n = Math.min(body.length, room);
    ids[offset] = this.bosId;
    for (let i = 0; i < n; i++) ids[offset + 1 + i] = body[i]!;
    ids[offset + 1 + n] = this.eosId;
    const length = n + 2;
    ids.fill(this.padId, offset + length, offset + this.maxLength);
    mask.fill(1, offset, offset + length);
    mask.fill(0, offset + length, offset + this.maxLength);
    return { length, truncated: body.length > room };
  }
}

/**
 * Load the CLIP tokenizer of a Stable Diffusion export. `dir` is the `tokenizer/` folder or the
 * export root holding it. Uses `tokenizer.json` when present, otherwise `vocab.json` +
 * `merges.txt` (via {@link buildClipTokenizerJson}); special tokens and `model_max_length` come
 * from `special_tokens_map.json` and `tokenizer_config.json` (both optional). Throws an error
 * naming the missing folder or files.
 */
export function loadClipTokenizer(dir: string, options: ClipTokenizerOptions = {}): ClipTokenizer {
  const root = resolve(dir);
  if (!isDir(root)) {
    throw new Error(
      `loadClipTokenizer: tokenizer directory "${root}" does not exist — expected a Stable Diffusion export's ` +
        'tokenizer/ folder (vocab.json + merges.txt, or tokenizer.json), or the export root holding it',
    );
  }
  let tdir = root;
  const hasOwnFiles = existsSync(join(root, 'tokenizer.json')) || existsSync(join(root, 'vocab.json'));
  if (!hasOwnFiles && isDir(join(root, 'tokenizer'))) tdir = join(root, 'tokenizer');

  const config = readOptionalObject(join(tdir, 'tokenizer_config.json'));
  const map = readOptionalObject(join(tdir, 'special_tokens_map.json'));
  const merged: Record<string, unknown> = { ...config };
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
    const s = specialFrom(key, map, config);
    if (s !== undefined) merged[key] = s;
  }

  const jsonPath = join(tdir, 'tokenizer.json');
  if (existsSync(jsonPath)) {
    const json = readJson(jsonPath);
    if (!isObject(json)) throw new Error(`loadClipTokenizer: "${jsonPath}" is not a JSON object`);
    return new ClipTokenizer(json, merged, options, 'tokenizer.json');
  }

  const vocabPath = join(tdir, 'vocab.json');
  const mergesPath = join(tdir, 'merges.txt');
  const missing = [vocabPath, mergesPath].filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new Error(
      `loadClipTokenizer: missing ${missing.map((p) => `"${p}"`).join(' and ')} — with no tokenizer.json in "${tdir}", ` +
        'a CLIP tokenizer needs vocab.json (token → id) and merges.txt (BPE merges, one "left right" per line)',
    );
  }
  const vocab = readJson(vocabPath);
  if (!isObject(vocab) || !Object.values(vocab).every((v) => typeof v === 'number' && Number.isInteger(v) && v >= 0)) {
    throw new Error(`loadClipTokenizer: "${vocabPath}" must be a JSON object mapping tokens to non-negative integer ids`);
  }
  const merges = parseMerges(readFileSync(mergesPath, 'utf8'), mergesPath);
  const specials: { bos?: SpecialTokenSpec; eos?: SpecialTokenSpec; unk?: SpecialTokenSpec; pad?: SpecialTokenSpec } = {};
  const bos = asSpec(merged.bos_token);
  const eos = asSpec(merged.eos_token);
  const unk = asSpec(merged.unk_token);
  const pad = asSpec(merged.pad_token);
  if (bos !== undefined) specials.bos = bos;
  if (eos !== undefined) specials.eos = eos;
  if (unk !== undefined) specials.unk = unk;
  const splitting = options.padSplitting ?? 'transformers';
  if (splitting !== 'transformers' && splitting !== 'openclip') throw new Error(`loadClipTokenizer: padSplitting must be 'transformers' or 'openclip', got ${JSON.stringify(splitting)}`);
  if (pad !== undefined && splitting === 'transformers') specials.pad = pad;
  const json = buildClipTokenizerJson(vocab as Record<string, number>, merges, specials);
  return new ClipTokenizer(json, merged, options, 'vocab.json+merges.txt');
}
