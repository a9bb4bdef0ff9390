import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildClipTokenizerJson, loadClipTokenizer, parseMerges, type ClipTokenizer } from './clip-tokenizer.ts';

// ---------------------------------------------------------------------------------------------
// A small CLIP-style BPE vocabulary, laid out like OpenAI's:
//   ids   0 … 255  the 256 byte-level symbols in GPT-2 `bytes_to_unicode` order:
//                  0 … 93    bytes 33 … 126 ('!' … '~'), each its own character  → id = byte − 33
//                  94 … 105  bytes 161 … 172 ('¡' … '¬')                         → id = byte − 161 + 94
//                  106 … 187 bytes 174 … 255 ('®' … 'ÿ')                         → id = byte − 174 + 106
//                  188 … 255 the other 68 bytes (0 … 32, 127 … 160, 173, in that order), mapped to
//                            U+0100 + n for n = 0 … 67                           → id = 188 + n
//   ids 256 … 511  the same symbols with '</w>' appended (id + 256)
//   ids 512 … 522  one token per merge below, in merge order
//   ids 523, 524   <|startoftext|>, <|endoftext|>
// ---------------------------------------------------------------------------------------------

/** GPT-2's byte → symbol table, written out here from its definition (printable bytes map to themselves). */
function byteSymbols(): string[] {
  const printable: number[] = [];
  for (let b = 33; b <= 126; b++) printable.push(b);
  for (let b = 161; b <= 172; b++) printable.push(b);
  for (let b = 174; b <= 255; b++) printable.push(b);
  const order = [...printable];
  const chars = printable.map((b) => String.fromCharCode(b));
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!printable.includes(b)) {
      order.push(b);
      chars.push(String.fromCharCode(0x100 + n));
      n++;
    }
  }
  return chars; // chars[i] is the symbol with id i (byte order[i])
}

// Merge ranks (lower rank = applied first):
//   0 t h → th (512)       1 th e</w> → the</w> (513)   2 c a → ca (514)      3 ca t</w> → cat</w> (515)
//   4 a t</w> → at</w> (516) 5 e r → er (517)          6 h e → he (518)      7 ca f → caf (519)
//   8 Ã ©</w> → Ã©</w> (520) 9 caf Ã©</w> → cafÃ©</w> (521)                  10 < /</w> → </</w> (522)
// ('Ã' and '©' are the byte symbols of é's UTF-8 bytes C3 A9.)
const MERGES: Array<[string, string]> = [
  ['t', 'h'],
  ['th', 'e</w>'],
  ['c', 'a'],
  ['ca', 't</w>'],
  ['a', 't</w>'],
  ['e', 'r'],
  ['h', 'e'],
  ['ca', 'f'],
  ['\u00c3', '\u00a9</w>'],
  ['caf', '\u00c3\u00a9</w>'],
  ['<', '/</w>'],
];

function buildVocab(): Record<string, number> {
  const syms = byteSymbols();
  const vocab: Record<string, number> = {};
  syms.forEach((s, i) => (vocab[s] = i));
  syms.forEach((s, i) => (vocab[`${s}</w>`] = 256 + i));
  let id = 512;
  for (const [a, b] of MERGES) vocab[a + b] = id++;
  vocab['<|startoftext|>'] = id++;
  vocab['<|endoftext|>'] = id++;
  return vocab;
}

const BOS = 523;
const EOS = 524;
const BANG = 0; // '!' = byte 33 → id 0, the SD 2.x pad token

const VOCAB = buildVocab();
const MERGES_TXT = `#version: 0.2\n${MERGES.map(([a, b]) => `${a} ${b}`).join('\n')}\n`;

/** An SD 1.x style tokenizer_config.json (AddedToken objects, pad `<|endoftext|>`). */
function sd1Config(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const added = (content: string) => ({ __type: 'AddedToken', content, lstrip: false, normalized: true, rstrip: false, single_word: false });
  return {
    add_prefix_space: false,
    bos_token: added('<|startoftext|>'),
    do_lower_case: true,
    eos_token: added('<|endoftext|>'),
    errors: 'replace',
    model_max_length: 77,
    pad_token: '<|endoftext|>',
    tokenizer_class: 'CLIPTokenizer',
    unk_token: added('<|endoftext|>'),
    ...extra,
  };
}

const tmp = mkdtempSync(join(tmpdir(), 'memscope-clip-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Write a tokenizer folder; `files` maps file name → contents (objects are JSON-encoded). */
function writeDir(name: string, files: Record<string, unknown>): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const [file, body] of Object.entries(files)) {
    writeFileSync(join(dir, file), typeof body === 'string' ? body : JSON.stringify(body, null, 1));
  }
  return dir;
}

/** The expected 77 ids: bos, body, eos, then `pad` up to the length. */
function padded(body: number[], pad = EOS, length = 77): number[] {
  const ids = [BOS, ...body, EOS];
  while (ids.length < length) ids.push(pad);
  return ids;
}

let sd1Dir: string;
let tok: ClipTokenizer;

beforeAll(() => {
  sd1Dir = writeDir('sd1/tokenizer', {
    'vocab.json': VOCAB,
    'merges.txt': MERGES_TXT,
    'tokenizer_config.json': sd1Config(),
    'special_tokens_map.json': {
      bos_token: { content: '<|startoftext|>', lstrip: false, normalized: true, rstrip: false, single_word: false },
      eos_token: { content: '<|endoftext|>', lstrip: false, normalized: true, rstrip: false, single_word: false },
      pad_token: '<|endoftext|>',
      unk_token: { content: '<|endoftext|>', lstrip: false, normalized: true, rstrip: false, single_word: false },
    },
  });
  tok = loadClipTokenizer(sd1Dir);
});

describe('parseMerges', () => {
  it('skips the #version header and blank lines, accepts CRLF, and rejects malformed lines by line number', () => {
    expect(parseMerges('#version: 0.2\r\nt h\r\n\r\nth e</w>\r\n')).toEqual([
      ['t', 'h'],
      ['th', 'e</w>'],
    ]);
    expect(parseMerges('a b\n')).toEqual([['a', 'b']]); // no header: the first line is a merge
    expect(() => parseMerges('#version: 0.2\nt h\nthe\n', 'x/merges.txt')).toThrow(/x\/merges\.txt: line 3/);
  });
});

describe('loadClipTokenizer (vocab.json + merges.txt, no tokenizer.json)', () => {
  it('fixture: the ids used below are the vocabulary built in this file', () => {
    // Guards the hand derivations: byte symbol ids as described at the top of the file.
    expect(VOCAB['a']).toBe(64); // 97 − 33
    expect(VOCAB['\u00c3']).toBe(127); // byte 0xC3 = 195 → 195 − 174 + 106
    expect(VOCAB['\u00a9']).toBe(102); // byte 0xA9 = 169 → 169 − 161 + 94
    expect(VOCAB['\u0122']).toBe(222); // byte 0x80 = 128 → n = 33 + (128 − 127) = 34 → U+0122, id 188 + 34
    expect(VOCAB['\u013e</w>']).toBe(506); // byte 0x9C = 156 → n = 62 → U+013E, 188 + 62 + 256
    expect(VOCAB['cafÃ©</w>']).toBe(521);
    expect(Object.keys(VOCAB)).toHaveLength(525);
    expect(tok.source).toBe('vocab.json+merges.txt');
    expect([tok.bosId, tok.eosId, tok.padId, tok.maxLength]).toEqual([BOS, EOS, EOS, 77]);
  });

  it('a plain lower-case prompt: bos, BPE tokens, eos, padding with <|endoftext|>, mask and length', () => {
    // "a cat on the mat" → CLIP regex pieces a | cat | on | the | mat
    //  a   → [a</w>]                     = 256 + 64                       = 320
    //  cat → c a t</w>; ranks (c,a)=2 < (a,t</w>)=4 → ca t</w>; (ca,t</w>)=3 → cat</w> = 515
    //  on  → o n</w>; no merge                    → [o, n</w>] = [78, 256 + 77] = [78, 333]
    //  the → t h e</w>; (t,h)=0 → th e</w>; (th,e</w>)=1 → the</w>     = 513
    //  mat → m a t</w>; only (a,t</w>)=4 → [m, at</w>]                   = [76, 516]
    const e = tok.encode('a cat on the mat');
    expect(Array.from(e.ids)).toEqual(padded([320, 515, 78, 333, 513, 76, 516]));
    expect(e.length).toBe(9);
    expect(e.truncated).toBe(false);
    expect(Array.from(e.attentionMask)).toEqual([...Array(9).fill(1), ...Array(68).fill(0)]);
    expect(tok.tokenize('a cat on the mat')).toEqual(['a</w>', 'cat</w>', 'o', 'n</w>', 'the</w>', 'm', 'at</w>']);
  });

  it('an upper-case prompt is lower-cased first', () => {
    // "A CAT ON THE MAT" → "a cat on the mat" → same ids as above
    expect(Array.from(tok.encode('A CAT ON THE MAT').ids)).toEqual(padded([320, 515, 78, 333, 513, 76, 516]));
  });

  it('an HTML fragment splits into punctuation runs and words', () => {
    // "<i>The</i> cat" → lower "<i>the</i> cat" → pieces < | i | > | the | </ | i | > | cat
    //  <   → [<</w>]      = 256 + (60 − 33)  = 283
    //  i   → [i</w>]      = 256 + (105 − 33) = 328
    //  >   → [></w>]      = 256 + (62 − 33)  = 285
    //  the → 513
    //  </  → < /</w> (the suffix sits on the last symbol); merge 10 (<, /</w>) → </</w> = 522
    //  cat → 515
    expect(Array.from(tok.encode('<i>The</i> cat').ids)).toEqual(padded([283, 328, 285, 513, 522, 328, 285, 515]));
  });

  it('curly quotes become their UTF-8 bytes as byte-level symbols', () => {
    // “ U+201C = E2 80 9C → â (226 − 174 + 106 = 158), Ģ (0x80: n = 34 → 222), ľ</w> (0x9C: n = 62 → 250 + 256 = 506)
    // ” U+201D = E2 80 9D → 158, 222, 0x9D: n = 63 → 251 + 256 = 507
    // ‘ U+2018 = E2 80 98 → 158, 222, 0x98: n = 58 → 246 + 256 = 502
    // ’ U+2019 = E2 80 99 → 158, 222, 0x99: n = 59 → 247 + 256 = 503
    // "“the” ‘cat’" → pieces “ | the | ” | ‘ | cat | ’ (no merges apply inside the quotes)
    expect(Array.from(tok.encode('\u201cthe\u201d \u2018cat\u2019').ids)).toEqual(
      padded([158, 222, 506, 513, 158, 222, 507, 158, 222, 502, 515, 158, 222, 503]),
    );
    // The contraction rule only knows the ASCII apostrophe:
    //  "it's" → it | 's → [i, t</w>] [', s</w>] = [72, 339] [6, 338]
    //  "it’s" → it | ’ | s → [72, 339] [158, 222, 503] [338]
    expect(tok.tokenIds("it's")).toEqual([72, 339, 6, 338]);
    expect(tok.tokenIds('it\u2019s')).toEqual([72, 339, 158, 222, 503, 338]);
  });

  it('a non-ASCII word: NFC, lower-casing and merges over its UTF-8 bytes', () => {
    // "café" = c a f C3 A9 → c a f Ã ©</w>
    //  (c,a)=2 → ca f Ã ©</w>; (ca,f)=7 → caf Ã ©</w>; (Ã,©</w>)=8 → caf Ã©</w>; rank 9 → cafÃ©</w> = 521
    const cafe = padded([521]);
    expect(Array.from(tok.encode('caf\u00e9').ids)).toEqual(cafe);
    expect(Array.from(tok.encode('cafe\u0301').ids)).toEqual(cafe); // decomposed é is composed by NFC
    expect(Array.from(tok.encode('CAF\u00c9').ids)).toEqual(cafe); // É lower-cases to é
    // "née" = n C3 A9 e → n Ã © e</w>: the merge is (Ã, ©</w>), not (Ã, ©), so nothing applies
    //  → [n 110 − 33 = 77, Ã 127, © 102, e</w> (101 − 33) + 256 = 324]
    expect(tok.tokenIds('n\u00e9e')).toEqual([77, 127, 102, 324]);
  });

  it('extra whitespace (spaces, tabs, newlines, leading/trailing) changes nothing', () => {
    // whitespace runs → one space, and spaces are dropped by the split: "a cat on" → 320 | 515 | 78 333
    expect(Array.from(tok.encode('  a\t\tcat \n on  ').ids)).toEqual(padded([320, 515, 78, 333]));
  });

  it('an empty prompt is bos, eos, then 75 pads', () => {
    const e = tok.encode('');
    expect(Array.from(e.ids)).toEqual(padded([]));
    expect(e.length).toBe(2);
    expect(Array.from(e.attentionMask)).toEqual([1, 1, ...Array(75).fill(0)]);
    expect(Array.from(tok.encode(' \t\n ').ids)).toEqual(padded([])); // whitespace only
  });

  it('merge rank order and the end-of-word suffix decide the split', () => {
    // "cats" → c a t s</w>: (c,a)=2 → ca t s</w>; (ca,t) is no merge (rank 3 is ca + t</w>) → [514, 83, 338]
    // "hers" → h e r s</w>: (e,r)=5 beats (h,e)=6 → h er s</w> → [71, 517, 338]
    // "42"   → digits are single pieces: 4 | 2 → [4</w>, 2</w>] = [256 + 19, 256 + 17] = [275, 273]
    expect(tok.tokenIds('42 cats hers')).toEqual([275, 273, 514, 83, 338, 71, 517, 338]);
  });

  it('truncates long prompts keeping eos at index 76', () => {
    // each "cat" is one token (515); 75 fit between bos and eos
    const fit = tok.encode(Array(75).fill('cat').join(' '));
    expect(fit.truncated).toBe(false);
    expect(fit.length).toBe(77);
    expect(Array.from(fit.ids)).toEqual([BOS, ...Array(75).fill(515), EOS]);
    for (const n of [76, 100]) {
      const e = tok.encode(Array(n).fill('cat').join(' '));
      expect(e.truncated).toBe(true);
      expect(e.length).toBe(77);
      expect(e.ids[0]).toBe(BOS);
      expect(e.ids[76]).toBe(EOS);
      expect(Array.from(e.ids.subarray(1, 76))).toEqual(Array(75).fill(515));
      expect(Array.from(e.attentionMask)).toEqual(Array(77).fill(1));
    }
  });

  it('encodeBatch gives a flat [B·77] Int32Array of the single encodings', () => {
    const prompts = ['a cat on the mat', '', Array(80).fill('cat').join(' ')];
    const b = tok.encodeBatch(prompts);
    expect(b.ids).toBeInstanceOf(Int32Array);
    expect([b.batchSize, b.maxLength, b.ids.length, b.attentionMask.length]).toEqual([3, 77, 231, 231]);
    expect(Array.from(b.ids)).toEqual([
      ...padded([320, 515, 78, 333, 513, 76, 516]),
      ...padded([]),
      BOS,
      ...Array(75).fill(515),
      EOS,
    ]);
    expect(Array.from(b.lengths)).toEqual([9, 2, 77]);
    expect(b.truncated).toEqual([2]);
    expect(Array.from(b.attentionMask.subarray(77, 154))).toEqual([1, 1, ...Array(75).fill(0)]);
    expect(tok.encodeBatch([]).ids.length).toBe(0);
  });

  it('pads with "!" (id 0) when the config names it, SD 2.x style', () => {
    // tokenizer_config pad_token "!" (no special_tokens_map)
    const d1 = writeDir('sd2-config/tokenizer', {
      'vocab.json': VOCAB,
      'merges.txt': MERGES_TXT,
      'tokenizer_config.json': sd1Config({ pad_token: '!' }),
    });
    const t1 = loadClipTokenizer(d1);
    expect(t1.padId).toBe(BANG);
    expect(Array.from(t1.encode('a cat').ids)).toEqual(padded([320, 515], BANG));
    expect(Array.from(t1.encode('').ids)).toEqual(padded([], BANG));
    // Real SD 2.x layout: tokenizer_config says <|endoftext|>, special_tokens_map says "!" — the map wins
    const d2 = writeDir('sd2-map/tokenizer', {
      'vocab.json': VOCAB,
      'merges.txt': MERGES_TXT,
      'tokenizer_config.json': sd1Config({ pad_token: '<|endoftext|>' }),
      'special_tokens_map.json': { pad_token: { content: '!', lstrip: false, normalized: false, rstrip: false, single_word: false } },
    });
    const t2 = loadClipTokenizer(d2);
    expect(t2.specialTokens.pad).toBe('!');
    expect(Array.from(t2.encode('a cat').ids)).toEqual(padded([320, 515], BANG));
    // transformers/diffusers (default): "!" is an added token, so every "!" in a prompt is the pad id.
    // diffusers#4153 prints "! !! !!!" → 49406, 0, 0, 0, 0, 0, 0, 49407, 0, … for SD 2.x / XL.
    expect(Array.from(t2.encode('! !! !!!').ids)).toEqual(padded([0, 0, 0, 0, 0, 0], BANG));
    // "wow!!" → wow | ! | ! → [w, o, w</w>] [0] [0] (w is byte 119 → id 86, o 111 → 78, w</w> 86 + 256)
    expect(t2.tokenIds('wow!!')).toEqual([86, 78, 342, 0, 0]);
    // OpenCLIP: "!" stays text and is BPE-tokenized: !! → [!, !</w>] = [0, 256]; "! !! !!!" → [!</w>] [!, !</w>] [!, !, !</w>]
    const t2o = loadClipTokenizer(d2, { padSplitting: 'openclip' });
    expect(t2o.tokenIds('wow!!')).toEqual([86, 78, 342, 0, 256]);
    expect(t2o.tokenIds('! !! !!!')).toEqual([256, 0, 256, 0, 0, 256]);
    expect(Array.from(t2o.encode('a cat').ids)).toEqual(padded([320, 515], BANG));
    expect(() => loadClipTokenizer(d2, { padSplitting: 'clip' as 'openclip' })).toThrow(/padSplitting must be 'transformers' or 'openclip'/);
    // SD 1.x (pad = eos): nothing changes — "!" is text
    const d1x = writeDir('sd1-bang/tokenizer', { 'vocab.json': VOCAB, 'merges.txt': MERGES_TXT, 'tokenizer_config.json': sd1Config() });
    expect(loadClipTokenizer(d1x).tokenIds('wow!!')).toEqual([86, 78, 342, 0, 256]);
    // pad defaults to eos when neither file names one
    const d3 = writeDir('nopad/tokenizer', { 'vocab.json': VOCAB, 'merges.txt': MERGES_TXT });
    expect(loadClipTokenizer(d3).padId).toBe(EOS);
  });

  it('takes the length from tokenizer_config model_max_length (default 77) or the option', () => {
    const d = writeDir('len8/tokenizer', {
      'vocab.json': VOCAB,
      'merges.txt': MERGES_TXT,
      'tokenizer_config.json': sd1Config({ model_max_length: 8 }),
    });
    const t8 = loadClipTokenizer(d);
    expect(t8.maxLength).toBe(8);
    // 10 × "the" → 6 fit: [bos, 513 × 6, eos]
    expect(Array.from(t8.encode(Array(10).fill('the').join(' ')).ids)).toEqual([BOS, 513, 513, 513, 513, 513, 513, EOS]);
    expect(Array.from(t8.encode('a').ids)).toEqual([BOS, 320, EOS, EOS, EOS, EOS, EOS, EOS]);
    expect(loadClipTokenizer(d, { maxLength: 4 }).encode('a cat on').ids).toEqual(Int32Array.from([BOS, 320, 515, EOS]));
    const huge = writeDir('lenhuge/tokenizer', {
      'vocab.json': VOCAB,
      'merges.txt': MERGES_TXT,
      'tokenizer_config.json': sd1Config({ model_max_length: 1e30 }), // transformers' "no limit"
    });
    expect(loadClipTokenizer(huge).maxLength).toBe(77);
    expect(() => loadClipTokenizer(d, { maxLength: 1 })).toThrow(/maxLength/);
  });

  it('accepts the export root and finds its tokenizer/ folder', () => {
    const t = loadClipTokenizer(join(tmp, 'sd1'));
    expect(Array.from(t.encode('the cat').ids)).toEqual(padded([513, 515]));
  });

  it('decodes ids back to the normalized text', () => {
    expect(tok.decode(tok.encode('A cat on  THE mat').ids)).toBe('a cat on the mat');
    expect(tok.decode(tok.encode('“café”').ids)).toBe('“ café ”');
    expect(tok.decode(tok.encode('').ids)).toBe('');
  });

  it('the built tokenizer.json drives the library alone: its post-processor adds bos/eos', () => {
    const lib = new Tokenizer(tok.tokenizerJson, {});
    expect(lib.encode('a cat').ids).toEqual([BOS, 320, 515, EOS]);
    // "<|endoftext|>" typed in a prompt is the special token, as in transformers
    expect(tok.tokenIds('a<|endoftext|>cat')).toEqual([320, EOS, 515]);
  });
});

describe('loadClipTokenizer (tokenizer.json)', () => {
  const prompts = [
    'a cat on the mat',
    'A CAT ON THE MAT',
    '<i>The</i> cat',
    '\u201cthe\u201d \u2018cat\u2019',
    "it's it\u2019s",
    'caf\u00e9 CAFE\u0301 n\u00e9e',
    '  a\t\tcat \n on  ',
    '',
    '42 cats hers wow!!',
    Array(90).fill('the cat').join(' '),
  ];

  it('the builder output saved as tokenizer.json loads and gives identical ids', () => {
    const json = buildClipTokenizerJson(VOCAB, parseMerges(MERGES_TXT));
    // schema as Hugging Face's CLIPConverter writes it
    expect(json.model).toMatchObject({ type: 'BPE', end_of_word_suffix: '</w>', continuing_subword_prefix: '', unk_token: '<|endoftext|>' });
    expect(json.model.merges).toHaveLength(11);
    expect(json.added_tokens.map((t) => [t.id, t.content, t.special])).toEqual([
      [BOS, '<|startoftext|>', true],
      [EOS, '<|endoftext|>', true],
    ]);
    expect(json.post_processor).toEqual({
      type: 'RobertaProcessing',
      sep: ['<|endoftext|>', EOS],
      cls: ['<|startoftext|>', BOS],
      trim_offsets: false,
      add_prefix_space: false,
    });
    const dir = writeDir('json-only/tokenizer', {
      'tokenizer.json': JSON.stringify(json),
      'tokenizer_config.json': sd1Config(),
    });
    const fromJson = loadClipTokenizer(dir);
    expect(fromJson.source).toBe('tokenizer.json');
    expect(Array.from(fromJson.encodeBatch(prompts).ids)).toEqual(Array.from(tok.encodeBatch(prompts).ids));
    // and the object held by a loaded tokenizer round-trips the same way
    expect(JSON.parse(JSON.stringify(tok.tokenizerJson))).toEqual(JSON.parse(JSON.stringify(json)));
  });

  it('prefers tokenizer.json over vocab.json + merges.txt when both are present', () => {
    // a tokenizer.json without merges gives byte symbols only: "cat" → [c, a, t</w>] = [66, 64, 339]
    const json = buildClipTokenizerJson(VOCAB, []);
    const dir = writeDir('both/tokenizer', { 'tokenizer.json': json, 'vocab.json': VOCAB, 'merges.txt': MERGES_TXT });
    expect(loadClipTokenizer(dir).tokenIds('cat')).toEqual([66, 64, 339]);
  });
});

describe('loadClipTokenizer errors', () => {
  it('names a missing tokenizer directory', () => {
    const missing = join(tmp, 'does-not-exist');
    expect(() => loadClipTokenizer(missing)).toThrow(new RegExp(`tokenizer directory ".*does-not-exist" does not exist.*vocab\\.json \\+ merges\\.txt`));
  });

  it('names missing vocab.json / merges.txt when there is no tokenizer.json', () => {
    const noVocab = writeDir('no-vocab/tokenizer', { 'merges.txt': MERGES_TXT, 'tokenizer_config.json': sd1Config() });
    expect(() => loadClipTokenizer(noVocab)).toThrow(/missing ".*no-vocab\/tokenizer\/vocab\.json" — with no tokenizer\.json/);
    const noMerges = writeDir('no-merges/tokenizer', { 'vocab.json': VOCAB });
    expect(() => loadClipTokenizer(noMerges)).toThrow(/missing ".*no-merges\/tokenizer\/merges\.txt"/);
    const empty = writeDir('empty/tokenizer', { 'tokenizer_config.json': sd1Config() });
    expect(() => loadClipTokenizer(empty)).toThrow(/missing ".*empty\/tokenizer\/vocab\.json" and ".*empty\/tokenizer\/merges\.txt"/);
  });

  it('names a special token that is not in the vocabulary, and a malformed vocab.json', () => {
    const badPad = writeDir('bad-pad/tokenizer', {
      'vocab.json': VOCAB,
      'merges.txt': MERGES_TXT,
      'tokenizer_config.json': sd1Config({ pad_token: '<pad>' }),
    });
    expect(() => loadClipTokenizer(badPad)).toThrow(/pad token "<pad>" is not in the vocabulary/);
    const badVocab = writeDir('bad-vocab/tokenizer', { 'vocab.json': ['a', 'b'], 'merges.txt': MERGES_TXT });
    expect(() => loadClipTokenizer(badVocab)).toThrow(/bad-vocab\/tokenizer\/vocab\.json" must be a JSON object/);
  });
});
