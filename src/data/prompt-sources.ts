/**
 * The public memorized-prompt sets of the papers memscope reproduces (issue 20 §3), by name:
 * each at a URL pinned to a commit of the repository that published it, with the SHA-256 of the
 * file at that commit, its format and how its columns map to memscope's prompt records. memscope
 * ships none of these files (none carries a licence that allows it): `memscope prompts fetch NAME`
 * downloads one on the user's machine into memscope's cache, refusing a file whose SHA-256
 * differs, and `--prompt-set NAME` then reads it from there in every command. Nothing is
 * downloaded unless the user runs `prompts fetch`.
 *
 * The SHA-256 values were computed from the files in the repositories at the pinned commits.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { MemorizationLabel, PromptSetFormat, PromptSetOptions } from './prompt-set.ts';

/** One public prompt set. */
export interface PromptSource {
  /** The name `--prompt-set` and `prompts fetch` take. */
  readonly name: string;
  /** What it is, in one line. */
  readonly title: string;
  /** The paper and repository it comes from. */
  readonly origin: string;
  /** Raw-file URL pinned to a commit. */
  readonly url: string;
  /** SHA-256 (hex) of the file at that commit. */
  readonly sha256: string;
  /** Bytes. */
  readonly bytes: number;
  /** Prompts in the file. */
  readonly prompts: number;
  /** File name in the cache (its extension gives the format). */
  readonly file: string;
  readonly format: PromptSetFormat;
  /** How its columns map to prompt records (`readPromptSet` options). */
  readonly read: Pick<PromptSetOptions, 'captionColumn' | 'imageColumn' | 'labelColumn' | 'idColumn' | 'delimiter'> & { readonly defaultLabel?: MemorizationLabel };
  /** The columns / labels in words (for `prompts list`). */
  readonly mapping: string;
}

const WEN = 'YuxinWenRick/diffusion_memorization';
const WEN_COMMIT = 'ca60157f40a5d3bc41763e922ce27187fdf1adc4';
const REN = 'renjie3/MemAttn';
const REN_COMMIT = 'b1d476c36624a74e10145f889ce1d8268588f5c3';
const NEMO = 'ml-research/localizing_memorization_in_diffusion_models';
const NEMO_COMMIT = 'c8de0c620ec511cdb9e937905d1503cd9758910b';
const raw = (repo: string, commit: string, path: string): string => `https://raw.githubusercontent.com/${repo}/${commit}/${path}`;

/** The catalogue (`memscope prompts list`). */
export const PROMPT_SOURCES: readonly PromptSource[] = [
  {
    name: 'wen-500',
    title: "Wen et al.'s 500 memorized SD 1.4 prompts (Webster's extraction), with LAION index and image URL",
    origin: `Wen et al., ICLR 2024; github.com/${WEN} @ ${WEN_COMMIT.slice(0, 7)}`,
    url: raw(WEN, WEN_COMMIT, 'examples/sdv1_500_memorized.jsonl'),
    sha256: '8eb16c6ff1c7195cddf26b3207bdc7c6a905a20162c6070d79fe60336a525c60',
    bytes: 116357,
    prompts: 500,
    file: 'sdv1_500_memorized.jsonl',
    format: 'jsonl',
    read: { captionColumn: 'caption', imageColumn: 'url', idColumn: 'index', labelColumn: null, defaultLabel: 'memorized' },
    mapping: 'caption → caption, url → image (URL), index → id (LAION index); every prompt memorized',
  },
  {
    name: 'ren-sd1-mem345',
    title: "Ren et al.'s 345 memorized SD 1.x prompts (captions only)",
    origin: `Ren et al., ECCV 2024; github.com/${REN} @ ${REN_COMMIT.slice(0, 7)}`,
    url: raw(REN, REN_COMMIT, 'prompt/sd1_mem345.txt'),
    sha256: '70f370c4728aecd18e0db95dc58e9741b0f1a278dbfddb31d7d0754f69f8d069',
    bytes: 21064,
    prompts: 345,
    file: 'sd1_mem345.txt',
    format: 'txt',
    read: { defaultLabel: 'memorized' },
    mapping: 'one caption per line; every prompt memorized; no images',
  },
  {
    name: 'ren-sd2-mem219',
    title: "Ren et al.'s 219 memorized SD 2.x prompts (captions only)",
    origin: `Ren et al., ECCV 2024; github.com/${REN} @ ${REN_COMMIT.slice(0, 7)}`,
    url: raw(REN, REN_COMMIT, 'prompt/sd2_mem219.txt'),
    sha256: '5776ec85cc25fde8c4843af990041a85813c3af7cb817c45dabb1a1bb9b6356f',
    bytes: 14939,
    prompts: 219,
    file: 'sd2_mem219.txt',
    format: 'txt',
    read: { defaultLabel: 'memorized' },
    mapping: 'one caption per line; every prompt memorized; no images',
  },
  {
    name: 'ren-nomem500',
    title: "Ren et al.'s 500 non-memorized prompts (the detection negatives)",
    origin: `Ren et al., ECCV 2024; github.com/${REN} @ ${REN_COMMIT.slice(0, 7)}`,
    url: raw(REN, REN_COMMIT, 'prompt/group_nomem500.txt'),
    sha256: '4e0de75ae37b4fb2f8676026d876d9f4b03267a90041af4069d74b912e588c2d',
    bytes: 25504,
    prompts: 500,
    file: 'group_nomem500.txt',
    format: 'txt',
    read: { defaultLabel: 'none' },
    mapping: 'one caption per line; every prompt not memorized',
  },
  {
    name: 'nemo-memorized',
    title: "NeMo's 500 memorized LAION prompts with Webster's VM / TM type and image URL",
    origin: `Hintersdorf et al. (NeMo), NeurIPS 2024; github.com/${NEMO} @ ${NEMO_COMMIT.slice(0, 7)}`,
    url: raw(NEMO, NEMO_COMMIT, 'prompts/memorized_laion_prompts.csv'),
    sha256: '0b527a5965dc463e7a3e0d234ff7fd5489b1a76869c456dbb209dc753cb4af25',
    bytes: 121332,
    prompts: 500,
    file: 'memorized_laion_prompts.csv',
    format: 'csv',
    read: { delimiter: ';', captionColumn: 'Caption', imageColumn: 'URL', labelColumn: 'type', idColumn: 'Index' },
    mapping: "';'-separated; Caption → caption, URL → image (URL), type VM → verbatim / TM → template, Index → id",
  },
  {
    name: 'nemo-unmemorized',
    title: "NeMo's 500 non-memorized LAION prompts with image URL",
    origin: `Hintersdorf et al. (NeMo), NeurIPS 2024; github.com/${NEMO} @ ${NEMO_COMMIT.slice(0, 7)}`,
    url: raw(NEMO, NEMO_COMMIT, 'prompts/unmemorized_laion_prompts.csv'),
    sha256: 'f453b418cc157864baacbf68d97447273feac41e8066b2ead6b307bf795988e1',
    bytes: 99023,
    prompts: 500,
    file: 'unmemorized_laion_prompts.csv',
    format: 'csv',
    read: { delimiter: ';', captionColumn: 'Caption', imageColumn: 'URL', labelColumn: null, idColumn: 'Index', defaultLabel: 'none' },
    mapping: "';'-separated; Caption → caption, URL → image (URL), Index → id; every prompt not memorized",
  },
];

/**
 * Webster's ground-truth parquets (`overfit_type` MV / RV / TV) are published on Hugging Face at
 * `resolve/main` URLs, not at a commit memscope could pin, and could not be read here to take
 * their SHA-256: they are not in the catalogue. Download one yourself and pass it as a file
 * (`--prompt-set sdv1_bb_edge_groundtruth.parquet`; `overfit_type` is read as the label column).
 */
export const UNPINNED_NOTE =
  "Webster's ground-truth parquets (huggingface.co/datasets/fraisdufour/templates-verbs, groundtruth_parquets/*.parquet) are published at unpinned URLs: download one yourself and pass the file to --prompt-set (its overfit_type column is read as the MV / RV / TV label).";

/** memscope's cache folder: `MEMSCOPE_CACHE`, else `$XDG_CACHE_HOME/memscope`, else `~/.cache/memscope`. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const own = env['MEMSCOPE_CACHE'];
  if (own !== undefined && own !== '') return resolve(own);
  const xdg = env['XDG_CACHE_HOME'];
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache'), 'memscope');
}

/** The catalogue entry named `name`, or undefined. */
export function promptSource(name: string): PromptSource | undefined {
  return PROMPT_SOURCES.find((s) => s.name === name);
}

/** Where `src` lives in the cache (`<cache>/prompt-sets/<name>/<file>`). */
export function cachedPath(src: PromptSource, cache = cacheRoot()): string {
  return join(cache, 'prompt-sets', src.name, src.file);
}

/** The SHA-256 of `bytes` (hex). */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Options of {@link fetchPromptSource}. */
export interface FetchOptions {
  /** Cache folder (default {@link cacheRoot}). */
  readonly cache?: string;
  /** Download from this URL instead of the catalogue's (a mirror); the SHA-256 must still match. */
  readonly url?: string;
  /** Abort after this many milliseconds (default 60,000). */
  readonly timeoutMs?: number;
}

/** What {@link fetchPromptSource} did. */
export interface FetchResult {
  readonly path: string;
  /** True when the file was already in the cache with the right SHA-256 (nothing downloaded). */
  readonly cached: boolean;
  readonly bytes: number;
}

/**
 * Download `src` into the cache (atomically) unless it is there with the right SHA-256. A
 * downloaded file whose SHA-256 differs from the catalogue's is refused and not kept: the error
 * names both hashes and the URL. A cached file that no longer matches is replaced.
 */
export async function fetchPromptSource(src: PromptSource, opts: FetchOptions = {}): Promise<FetchResult> {
  const path = cachedPath(src, opts.cache);
  if (existsSync(path)) {
    const have = readFileSync(path);
    if (sha256Hex(have) === src.sha256) return { path, cached: true, bytes: have.length };
  }
  const url = opts.url ?? src.url;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 60_000), redirect: 'follow' });
  } catch (e) {
    throw new Error(`${src.name}: cannot download ${url}: ${(e as Error).message}`);
  }
  if (!res.ok) throw new Error(`${src.name}: ${url} answered HTTP ${res.status} ${res.statusText}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const got = sha256Hex(bytes);
  if (got !== src.sha256) {
    throw new Error(`${src.name}: the file at ${url} has SHA-256 ${got} (${bytes.length} bytes), not the ${src.sha256} (${src.bytes} bytes) of the published file; it was not saved`);
  }
  mkdirSync(join(path, '..'), { recursive: true });
  // atomically: a temporary sibling, then a rename (a killed fetch leaves no half file under the name)
  const tmp = `${path}.${process.pid}.part`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
  return { path, cached: false, bytes: bytes.length };
}

/**
 * Resolve a `--prompt-set` value: a catalogue name gives its cached file and read options (an
 * error saying to run `memscope prompts fetch NAME` when it is not cached or no longer matches);
 * anything else is a file path, returned as is.
 */
export function resolvePromptSet(value: string, cache = cacheRoot()): { path: string; read: PromptSource['read'] | null; source: PromptSource | null } {
  const src = promptSource(value);
  if (src === undefined || existsSync(value)) return { path: value, read: null, source: null };
  const path = cachedPath(src, cache);
  if (!existsSync(path)) throw new Error(`--prompt-set: ${value} is a public prompt set that is not in memscope's cache (${path}); run: memscope prompts fetch ${value}`);
  const have = sha256Hex(readFileSync(path));
  if (have !== src.sha256) throw new Error(`--prompt-set: the cached ${path} has SHA-256 ${have}, not ${src.sha256}; run memscope prompts fetch ${value} again`);
  return { path, read: src.read, source: src };
}
