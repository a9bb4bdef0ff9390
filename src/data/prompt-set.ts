/**
 * Lists of (possibly) memorized prompts for Stable Diffusion studies, in the style of
 * Webster's "A Reproducible Extraction of Training Images from Diffusion Models" (2023):
 * one row per prompt with its caption, a reference to the training image it may reproduce,
 * and a memorization label.
 *
 * Formats: CSV (header row required, parsed with `csv-parse`), JSON Lines (one JSON object
 * per line) and Parquet (read with the pure-JS `hyparquet`; uncompressed and Snappy pages).
 * The format comes from the file's extension (`.csv`, `.jsonl` / `.ndjson`, `.parquet`)
 * unless {@link PromptSetOptions.format} says otherwise.
 *
 * Columns are matched case-insensitively against lists of usual names (see
 * {@link CAPTION_COLUMNS}, {@link IMAGE_COLUMNS}, {@link LABEL_COLUMNS}, {@link ID_COLUMNS});
 * each can be named explicitly instead. Captions are kept exactly as stored (HTML fragments,
 * curly quotes, any Unicode), except that surrounding whitespace is trimmed.
 *
 * Training images themselves are read by {@link loadImageFolder} (./folder.ts).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCsvTable, type CsvTable } from './csv.ts';
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';

/** File formats read by {@link readPromptSet}. */
export type PromptSetFormat = 'csv' | 'jsonl' | 'parquet' | 'txt';

/**
 * Normalized memorization label: `'verbatim'` (the generation reproduces a training image;
 * Webster's MV "matching verbatim" and RV "retrieval verbatim"), `'template'` (it reproduces
 * the layout of a training image with variations; Webster's TV "template verbatim"),
 * `'none'` (not memorized; Webster's N), `'memorized'` (memorized, of a type the list does not
 * say: e.g. Ren et al.'s `sd1_mem345`).
 */
export type MemorizationLabel = 'verbatim' | 'template' | 'none' | 'memorized';

/** A reference to the training image of a prompt: a local file (absolute path) or a URL. */
export interface PromptImage {
  /** `'url'` for values with a URL scheme (`https://…`, `s3://…`); `'path'` otherwise (and for `file://` URLs). */
  readonly kind: 'path' | 'url';
  /** For `'path'`, an absolute path; for `'url'`, the URL as stored (trimmed). */
  readonly value: string;
}

/** One prompt of a prompt set. */
export interface PromptRecord {
  /** The id/index column's value as text, or the 0-based row number when there is no such column. */
  readonly id: string;
  /** The caption, exactly as stored apart from trimmed surrounding whitespace; never empty. */
  readonly caption: string;
  /** The training image, or `null` when there is no image column or the cell is empty. */
  readonly image: PromptImage | null;
  /** The normalized label, or `null` when there is no label column or the cell is empty. */
  readonly label: MemorizationLabel | null;
}

/** Where a prompt set came from. */
export interface PromptSetSource {
  /** Absolute path of the file read. */
  readonly path: string;
  /** The format it was read as. */
  readonly format: PromptSetFormat;
  /** Number of prompts (data rows). */
  readonly rows: number;
  /** All column names found in the file, in file order (JSONL: order of first appearance). */
  readonly columns: readonly string[];
}

/** The result of {@link readPromptSet}. */
export interface PromptSet {
  /** The prompts, in file order. */
  readonly prompts: readonly PromptRecord[];
  /** The file read and its shape. */
  readonly source: PromptSetSource;
}

/** Options of {@link readPromptSet}. */
export interface PromptSetOptions {
  /** Read the file as this format whatever its extension. */
  readonly format?: PromptSetFormat;
  /** Name of the caption column (exact). Default: the first of {@link CAPTION_COLUMNS} present. */
  readonly captionColumn?: string;
  /** Name of the image column (exact), or `null` to ignore images. Default: the first of {@link IMAGE_COLUMNS} present, if any. */
  readonly imageColumn?: string | null;
  /** Name of the label column (exact), or `null` to ignore labels. Default: the first of {@link LABEL_COLUMNS} present, if any. */
  readonly labelColumn?: string | null;
  /** Name of the id column (exact), or `null` to number rows. Default: the first of {@link ID_COLUMNS} present, if any. */
  readonly idColumn?: string | null;
  /** Folder that relative image paths resolve against. Default: the prompt-set file's folder. */
  readonly imageRoot?: string;
  /** CSV field delimiter (default `,`; NeMo's lists use `;`). */
  readonly delimiter?: string;
  /** Label of every row whose label cell is absent or empty (a list that is memorized or not as a whole); default none. */
  readonly defaultLabel?: MemorizationLabel;
}

/** Caption column names tried in order (case-insensitively) by {@link readPromptSet}. */
export const CAPTION_COLUMNS: readonly string[] = Object.freeze(['caption', 'prompt', 'text', 'captions', 'prompts', 'title']);
/** Image column names tried in order (case-insensitively) by {@link readPromptSet}. */
export const IMAGE_COLUMNS: readonly string[] = Object.freeze([
  'image', 'image_path', 'image_url', 'img_url', 'img_path', 'url', 'path', 'file', 'filename', 'file_name', 'image_file',
]);
/** Label column names tried in order (case-insensitively) by {@link readPromptSet}. */
export const LABEL_COLUMNS: readonly string[] = Object.freeze([
  'label', 'mem_type', 'memorization', 'memorization_type', 'overfit_type', 'type', 'category', 'class',
]);
/** Id column names tried in order (case-insensitively) by {@link readPromptSet}. */
export const ID_COLUMNS: readonly string[] = Object.freeze(['id', 'index', 'idx', 'key', 'uid']);

/** Accepted label spellings (lower case, `_`/`-` read as spaces, whitespace collapsed). */
const LABELS: ReadonlyMap<string, MemorizationLabel> = new Map<string, MemorizationLabel>([
  ['mv', 'verbatim'], ['matching verbatim', 'verbatim'],
  ['rv', 'verbatim'], ['retrieval verbatim', 'verbatim'],
  ['v', 'verbatim'], ['verbatim', 'verbatim'], ['exact', 'verbatim'],
  ['tv', 'template'], ['template verbatim', 'template'], ['template', 'template'], ['t', 'template'],
  ['vm', 'verbatim'], ['tm', 'template'], ['memorized', 'memorized'], ['memorised', 'memorized'], ['mem', 'memorized'],
  ['n', 'none'], ['none', 'none'], ['not memorized', 'none'], ['not memorised', 'none'],
  ['non memorized', 'none'], ['nonmemorized', 'none'], ['unmemorized', 'none'], ['no', 'none'],
]);

/**
 * Normalize a memorization label in any of Webster's spellings (`MV`, `matching verbatim`,
 * `RV`, `retrieval verbatim` → `'verbatim'`; `TV`, `template verbatim` → `'template'`;
 * `N`, `none`, `not memorized` → `'none'`; also `verbatim`, `template`; case, `_`, `-` and
 * extra spaces ignored). Returns `null` for a spelling it does not know.
 */
export function normalizeMemorizationLabel(value: string): MemorizationLabel | null {
  const key = value.trim().toLowerCase().replace(/[_-]+/g, ' ').replace(/\s+/g, ' ');
  return LABELS.get(key) ?? null;
}

/**
 * Longest prompt accepted, in characters (UTF-16 code units): 10,000. CLIP's text encoder reads
 * only its first 77 tokens (a few hundred characters), so a longer text is almost certainly a
 * mistake (a file pasted as the prompt); refusing it keeps megabytes of text out of
 * `config.json` and the HTML reports.
 */
export const MAX_PROMPT_CHARS = 10_000;

/** Why `text` is not acceptable as a prompt (too long, see {@link MAX_PROMPT_CHARS}), or `null` when it is. */
export function promptLengthProblem(text: string): string | null {
  if (text.length <= MAX_PROMPT_CHARS) return null;
  return `the prompt has ${text.length.toLocaleString('en-US')} characters; at most ${MAX_PROMPT_CHARS.toLocaleString('en-US')} are accepted (the text encoder reads only its first 77 tokens)`;
}

/**
 * Byte offset of the first byte that does not start or continue a well-formed UTF-8 sequence
 * (overlong forms, UTF-16 surrogates and code points above U+10FFFF are ill-formed), or −1 when
 * all of `bytes` is valid UTF-8. A sequence cut off by the end of the buffer is invalid at its
 * first byte.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let len: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) len = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      len = 3;
      if (b === 0xe0) lo = 0xa0; // overlong
      if (b === 0xed) hi = 0x9f; // surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      len = 4;
      if (b === 0xf0) lo = 0x90; // overlong
      if (b === 0xf4) hi = 0x8f; // > U+10FFFF
    } else return i;
    if (i + len > n) return i;
    const b1 = bytes[i + 1]!;
    if (b1 < lo || b1 > hi) return i;
    for (let k = 2; k < len; k++) {
      const c = bytes[i + k]!;
      if (c < 0x80 || c > 0xbf) return i;
    }
    i += len;
  }
  return -1;
}

/** Decode `bytes` as UTF-8 strictly; an error names the byte offset (and line) of the first invalid sequence. */
function decodeUtf8(path: string, bytes: Uint8Array): string {
  const bad = firstInvalidUtf8(bytes);
  if (bad >= 0) {
    let line = 1;
    for (let k = 0; k < bad; k++) if (bytes[k] === 0x0a) line++;
    const hex = Array.from(bytes.subarray(bad, Math.min(bad + 4, bytes.length)), (x) => x.toString(16).padStart(2, '0')).join(' ');
    fail(path, `not valid UTF-8: invalid byte sequence at byte offset ${bad} (line ${line}; bytes ${hex}); save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)`);
  }
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
}

/** A raw row: column name → cell (string, number, bigint, boolean, null…). */
type RawRow = Record<string, unknown>;

interface RawTable {
  readonly columns: string[];
  readonly rows: RawRow[];
  /** Human-readable location of row i, e.g. `row 3 (line 5)`. */
  readonly where: (i: number) => string;
}

function fail(path: string, msg: string): never {
  throw new Error(`readPromptSet: "${path}": ${msg}`);
}

function formatOf(path: string, explicit: PromptSetFormat | undefined): PromptSetFormat {
  if (explicit !== undefined) {
    if (explicit !== 'csv' && explicit !== 'jsonl' && explicit !== 'parquet' && explicit !== 'txt') {
      fail(path, `unsupported format ${JSON.stringify(explicit)} (expected 'csv', 'jsonl', 'parquet' or 'txt')`);
    }
    return explicit;
  }
  const ext = extname(path).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.parquet') return 'parquet';
  if (ext === '.txt') return 'txt';
  return fail(path, `unsupported extension ${JSON.stringify(ext)} (expected .csv, .jsonl, .ndjson, .parquet or .txt, or pass the format option)`);
}

/** One caption per non-empty line (Ren et al.'s prompt files), as a table with one column `caption`. */
function readTxt(text: string): RawTable {
  const rows: RawRow[] = [];
  const lineOf: number[] = [];
  text.replace(/^\uFEFF/, '').split('\n').forEach((raw, k) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    rows.push({ caption: line });
    lineOf.push(k + 1);
  });
  return { columns: rows.length === 0 ? [] : ['caption'], rows, where: (i) => `row ${i + 1} (line ${lineOf[i]})` };
}

function readCsv(path: string, text: string, delimiter?: string): RawTable {
  let table: CsvTable;
  try {
    table = parseCsvTable(text, delimiter);
  } catch (e) {
    return fail(path, `not valid CSV: ${(e as Error).message}`);
  }
  const { header: columns, records } = table;
  return {
    columns,
    rows: records.map((r) => r.record),
    where: (i) => `row ${i + 1} (line ${records[i]!.info.lines})`,
  };
}

function readJsonl(path: string, text: string): RawTable {
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  const rows: RawRow[] = [];
  const lineOf: number[] = [];
  const columns: string[] = [];
  const seen = new Set<string>();
  lines.forEach((raw, k) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      fail(path, `JSON parse error at line ${k + 1}: ${(e as Error).message}`);
    }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) {
      fail(path, `line ${k + 1} is not a JSON object (each line must be one object, e.g. {"caption": "…"})`);
    }
    for (const key of Object.keys(v)) {
      if (!seen.has(key)) {
        seen.add(key);
        columns.push(key);
      }
    }
    rows.push(v as RawRow);
    lineOf.push(k + 1);
  });
  return { columns, rows, where: (i) => `row ${i + 1} (line ${lineOf[i]})` };
}

async function readParquet(path: string, abs: string): Promise<RawTable> {
  try {
    const file = await asyncBufferFromFile(abs);
    const metadata = await parquetMetadataAsync(file);
    const columns = parquetSchema(metadata).children.map((c) => c.element.name);
    const rows = (await parquetReadObjects({ file, metadata })) as RawRow[];
    return { columns, rows, where: (i) => `row ${i + 1}` };
  } catch (e) {
    return fail(path, `cannot read as Parquet: ${(e as Error).message}`);
  }
}

/** Find a column: an explicit name must exist exactly; otherwise try the candidates case-insensitively. */
function pickColumn(
  path: string,
  columns: readonly string[],
  what: string,
  explicit: string | null | undefined,
  candidates: readonly string[],
): string | null {
  if (explicit === null) return null;
  if (explicit !== undefined) {
    if (!columns.includes(explicit)) {
      fail(path, `no ${what} column ${JSON.stringify(explicit)} (columns found: ${listColumns(columns)})`);
    }
    return explicit;
  }
  for (const cand of candidates) {
    const hit = columns.find((c) => c.toLowerCase() === cand);
    if (hit !== undefined) return hit;
  }
  return null;
}

function listColumns(columns: readonly string[]): string {
  return columns.length === 0 ? '(none)' : columns.map((c) => JSON.stringify(c)).join(', ');
}

/** A cell as text: `null` for missing / null, string form for scalars, an error for anything else. */
function cellText(path: string, where: string, column: string, v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  return fail(path, `${where}: column ${JSON.stringify(column)} holds ${Array.isArray(v) ? 'an array' : typeof v}, expected text`);
}

const URL_SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

function imageOf(value: string, root: string): PromptImage {
  if (/^file:\/\//i.test(value)) return { kind: 'path', value: fileURLToPath(value) };
  if (URL_SCHEME.test(value)) return { kind: 'url', value };
  return { kind: 'path', value: isAbsolute(value) ? value : resolve(root, value) };
}

/**
 * Read a memorized-prompt list (CSV, JSONL or Parquet) into normalized records.
 *
 * Columns: the caption column is required ({@link CAPTION_COLUMNS} or
 * `opts.captionColumn`); image ({@link IMAGE_COLUMNS}), label ({@link LABEL_COLUMNS}) and
 * id ({@link ID_COLUMNS}) columns are optional. An explicitly named column must exist
 * (exact name). Image cells with a URL scheme become `{ kind: 'url' }`; others are paths,
 * resolved against `opts.imageRoot` or else the list file's folder. Labels are normalized by
 * {@link normalizeMemorizationLabel}; an empty label cell gives `null`.
 *
 * Errors name the file and what was expected: missing file, unsupported extension, text that
 * is not UTF-8 (with the byte offset of the first invalid sequence), malformed CSV / JSONL (with
 * the line) / Parquet, no rows, no caption column (listing the columns found), an empty caption
 * or one longer than {@link MAX_PROMPT_CHARS} (with the row), an unknown label (with the row and
 * value).
 *
 * @example
 * const { prompts } = await readPromptSet('webster/sdv1_500_memorized.jsonl');
 * const verbatim = prompts.filter((p) => p.label === 'verbatim').map((p) => p.caption);
 */
export async function readPromptSet(path: string, opts: PromptSetOptions = {}): Promise<PromptSet> {
  const abs = resolve(path);
  if (!existsSync(abs)) fail(path, 'file does not exist (expected a .csv, .jsonl, .ndjson, .parquet or .txt prompt list, or the name of a fetched public set: memscope prompts list)');
  if (!statSync(abs).isFile()) fail(path, 'is not a file (expected a .csv, .jsonl, .ndjson or .parquet prompt list)');
  const format = formatOf(path, opts.format);

  let table: RawTable;
  if (format === 'parquet') {
    table = await readParquet(path, abs);
  } else {
    let bytes: Buffer;
    try {
      bytes = readFileSync(abs);
    } catch (e) {
      return fail(path, `cannot read: ${(e as Error).message}`);
    }
    const text = decodeUtf8(path, bytes);
    table = format === 'csv' ? readCsv(path, text, opts.delimiter) : format === 'txt' ? readTxt(text) : readJsonl(path, text);
  }
  const { columns, rows, where } = table;
  if (rows.length === 0) {
    fail(path, columns.length === 0 ? 'the file is empty: no header and no prompts' : `has no rows: a header (${listColumns(columns)}) but no prompts below it`);
  }

  const captionCol = pickColumn(path, columns, 'caption', opts.captionColumn, CAPTION_COLUMNS);
  if (captionCol === null) {
    fail(path, `no caption column (expected one of ${CAPTION_COLUMNS.join(', ')} in any case, or pass captionColumn; columns found: ${listColumns(columns)})`);
  }
  const imageCol = pickColumn(path, columns, 'image', opts.imageColumn, IMAGE_COLUMNS);
  const labelCol = pickColumn(path, columns, 'label', opts.labelColumn, LABEL_COLUMNS);
  const idCol = pickColumn(path, columns, 'id', opts.idColumn, ID_COLUMNS);
  const imageRoot = opts.imageRoot !== undefined ? resolve(opts.imageRoot) : dirname(abs);

  const prompts = rows.map((row, i): PromptRecord => {
    const at = where(i);
    const caption = (cellText(path, at, captionCol, row[captionCol]) ?? '').trim();
    if (caption === '') fail(path, `empty caption at ${at} (column ${JSON.stringify(captionCol)})`);
    const tooLong = promptLengthProblem(caption);
    if (tooLong !== null) fail(path, `caption at ${at} (column ${JSON.stringify(captionCol)}): ${tooLong}`);

    let image: PromptImage | null = null;
    if (imageCol !== null) {
      const v = cellText(path, at, imageCol, row[imageCol])?.trim() ?? '';
      if (v !== '') image = imageOf(v, imageRoot);
    }

    let label: MemorizationLabel | null = opts.defaultLabel ?? null;
    if (labelCol !== null) {
      const v = cellText(path, at, labelCol, row[labelCol])?.trim() ?? '';
      if (v !== '') {
        label = normalizeMemorizationLabel(v);
        if (label === null) {
          fail(
            path,
            `unknown memorization label ${JSON.stringify(v)} at ${at} (column ${JSON.stringify(labelCol)}; ` +
              `expected MV / matching verbatim, RV / retrieval verbatim, TV / template verbatim, N / none / not memorized, verbatim, template, or empty)`,
          );
        }
      }
    }

    let id = String(i);
    if (idCol !== null) {
      const v = cellText(path, at, idCol, row[idCol])?.trim() ?? '';
      if (v === '') fail(path, `empty id at ${at} (column ${JSON.stringify(idCol)})`);
      id = v;
    }
    return { id, caption, image, label };
  });

  return { prompts, source: { path: abs, format, rows: prompts.length, columns } };
}
