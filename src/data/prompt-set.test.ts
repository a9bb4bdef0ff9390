import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { afterAll, describe, expect, it } from 'vitest';
import { firstInvalidUtf8, MAX_PROMPT_CHARS, normalizeMemorizationLabel, readPromptSet, type PromptRecord } from './prompt-set.ts';

const tmp = mkdtempSync(join(tmpdir(), 'memscope-prompt-set-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const p = join(tmp, name);
  writeFileSync(p, text, 'utf8');
  return p;
}

// The same 4 prompts in every format. Row 0 has surrounding whitespace (trimmed) and an HTML
// fragment; row 1 curly quotes; row 2 non-ASCII words; row 3 a comma and a newline (a quoted
// CSV field) and no label.
const CAPTIONS = [
  '<i>The Great Gatsby</i> cover art',
  '“Living in the Light” with Anne Graham Lotz',
  'Café crème — naïve Ölgemälde, 東京',
  'Mountains, lakes\nand a sunset',
];
const STORED_CAPTIONS = ['  ' + CAPTIONS[0]! + ' ', ...CAPTIONS.slice(1)];
const IMAGES = ['imgs/a.png', 'https://example.com/b.jpg', '/data/laion/c.jpg', ''];
const LABELS = ['MV', 'template verbatim', 'N', null] as const;

const EXPECTED: PromptRecord[] = [
  { id: '10', caption: CAPTIONS[0]!, image: { kind: 'path', value: join(tmp, 'imgs/a.png') }, label: 'verbatim' },
  { id: '11', caption: CAPTIONS[1]!, image: { kind: 'url', value: 'https://example.com/b.jpg' }, label: 'template' },
  { id: '12', caption: CAPTIONS[2]!, image: { kind: 'path', value: '/data/laion/c.jpg' }, label: 'none' },
  { id: '13', caption: CAPTIONS[3]!, image: null, label: null },
];

function csvCell(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function writeCsv(name: string): string {
  const lines = ['index,Caption,URL,mem_type'];
  for (let i = 0; i < 4; i++) {
    lines.push([String(10 + i), STORED_CAPTIONS[i]!, IMAGES[i]!, LABELS[i] ?? ''].map(csvCell).join(','));
  }
  return write(name, lines.join('\r\n') + '\r\n');
}

function writeJsonl(name: string): string {
  const lines = STORED_CAPTIONS.map((c, i) => {
    const o: Record<string, unknown> = { id: 10 + i, prompt: c, image_path: IMAGES[i] };
    if (LABELS[i] !== null) o['label'] = LABELS[i];
    return JSON.stringify(o);
  });
  return write(name, lines.join('\n') + '\n\n');
}

function writeParquet(name: string): string {
  const buf = parquetWriteBuffer({
    columnData: [
      { name: 'index', data: [10, 11, 12, 13], type: 'INT32' },
      { name: 'caption', data: STORED_CAPTIONS, type: 'STRING' },
      { name: 'image', data: IMAGES.map((s) => (s === '' ? null : s)), type: 'STRING' },
      { name: 'memorization', data: [...LABELS], type: 'STRING' },
    ],
  });
  const p = join(tmp, name);
  writeFileSync(p, new Uint8Array(buf));
  return p;
}

describe('readPromptSet: the same prompt set in three formats', () => {
  it('CSV (quoted field with a comma and a newline, CRLF, Webster spellings)', async () => {
    const p = writeCsv('set.csv');
    const set = await readPromptSet(p);
    expect(set.prompts).toEqual(EXPECTED);
    expect(set.source).toEqual({ path: p, format: 'csv', rows: 4, columns: ['index', 'Caption', 'URL', 'mem_type'] });
  });

  it('JSONL (blank trailing line ignored, missing label key → null)', async () => {
    const p = writeJsonl('set.jsonl');
    const set = await readPromptSet(p);
    expect(set.prompts).toEqual(EXPECTED);
    expect(set.source).toEqual({ path: p, format: 'jsonl', rows: 4, columns: ['id', 'prompt', 'image_path', 'label'] });
  });

  it('Parquet (written by hyparquet-writer, nulls for missing image and label)', async () => {
    const p = writeParquet('set.parquet');
    const set = await readPromptSet(p);
    expect(set.prompts).toEqual(EXPECTED);
    expect(set.source).toEqual({ path: p, format: 'parquet', rows: 4, columns: ['index', 'caption', 'image', 'memorization'] });
  });

  it('captions survive byte-exact apart from trimmed surrounding whitespace', async () => {
    const set = await readPromptSet(writeCsv('bytes.csv'));
    for (let i = 0; i < 4; i++) expect(Buffer.from(set.prompts[i]!.caption)).toEqual(Buffer.from(CAPTIONS[i]!));
  });

  it('.ndjson extension and an explicit format override', async () => {
    const nd = join(tmp, 'set.ndjson');
    writeFileSync(nd, STORED_CAPTIONS.map((c) => JSON.stringify({ text: c })).join('\n'));
    expect((await readPromptSet(nd)).source.format).toBe('jsonl');
    const txt = write('set.txt', 'caption\nhello\n');
    const set = await readPromptSet(txt, { format: 'csv' });
    expect(set.prompts).toEqual([{ id: '0', caption: 'hello', image: null, label: null }]);
  });
});

describe('readPromptSet: columns', () => {
  const both = () =>
    write('both.csv', 'prompt,caption,path,img_url,type,label,key\nthe prompt,the caption,x/p.png,http://h/u.png,TV,MV,k1\n');

  it('auto-detects columns by preference order, case-insensitively, and numbers rows without an id column', async () => {
    const p = both();
    const set = await readPromptSet(p);
    expect(set.prompts).toEqual([{ id: 'k1', caption: 'the caption', image: { kind: 'url', value: 'http://h/u.png' }, label: 'verbatim' }]);
    const q = write('upper.csv', 'TEXT,Image\n a b ,pic.webp\n');
    expect((await readPromptSet(q)).prompts).toEqual([{ id: '0', caption: 'a b', image: { kind: 'path', value: join(tmp, 'pic.webp') }, label: null }]);
  });

  it('explicit columns override detection; null switches a column off; imageRoot moves relative paths', async () => {
    const p = both();
    const set = await readPromptSet(p, { captionColumn: 'prompt', imageColumn: 'path', labelColumn: 'type', idColumn: null, imageRoot: '/srv/train' });
    expect(set.prompts).toEqual([{ id: '0', caption: 'the prompt', image: { kind: 'path', value: '/srv/train/x/p.png' }, label: 'template' }]);
    const off = await readPromptSet(p, { imageColumn: null, labelColumn: null });
    expect(off.prompts[0]!.image).toBeNull();
    expect(off.prompts[0]!.label).toBeNull();
  });

  it('an explicitly named column must exist', async () => {
    await expect(readPromptSet(both(), { captionColumn: 'Prompt' })).rejects.toThrow(/both\.csv.*no caption column "Prompt".*columns found: "prompt", "caption"/);
    await expect(readPromptSet(both(), { labelColumn: 'mem' })).rejects.toThrow(/no label column "mem"/);
  });

  it('file:// image references become paths', async () => {
    const p = write('fileurl.jsonl', JSON.stringify({ caption: 'c', url: 'file:///tmp/x%20y.png' }) + '\n');
    expect((await readPromptSet(p)).prompts[0]!.image).toEqual({ kind: 'path', value: '/tmp/x y.png' });
  });
});

describe('normalizeMemorizationLabel', () => {
  it("accepts Webster's spellings", () => {
    for (const s of ['MV', 'mv', 'matching verbatim', 'Matching_Verbatim', 'RV', 'retrieval-verbatim', 'verbatim']) {
      expect(normalizeMemorizationLabel(s)).toBe('verbatim');
    }
    for (const s of ['TV', 'template verbatim', 'Template  Verbatim', 'template']) expect(normalizeMemorizationLabel(s)).toBe('template');
    for (const s of ['N', 'none', 'None', 'not memorized', 'not_memorized']) expect(normalizeMemorizationLabel(s)).toBe('none');
    expect(normalizeMemorizationLabel('maybe')).toBeNull();
  });
});

describe('readPromptSet: errors name the file and what was expected', () => {
  it('missing file', async () => {
    await expect(readPromptSet(join(tmp, 'nope.csv'))).rejects.toThrow(/nope\.csv.*does not exist/);
  });

  it('unsupported extension', async () => {
    const p = write('set.xlsx', 'caption\nx\n');
    await expect(readPromptSet(p)).rejects.toThrow(/set\.xlsx.*unsupported extension "\.xlsx".*\.csv, \.jsonl, \.ndjson, \.parquet or \.txt/);
  });

  it('no caption column lists the columns found', async () => {
    const p = write('nocap.csv', 'id,url,label\n1,http://x,MV\n');
    await expect(readPromptSet(p)).rejects.toThrow(/nocap\.csv.*no caption column.*columns found: "id", "url", "label"/);
  });

  it('empty caption at row N', async () => {
    const p = write('empty.csv', 'caption,label\nfine,MV\n"   ",N\n');
    await expect(readPromptSet(p)).rejects.toThrow(/empty\.csv.*empty caption at row 2 \(line 3\)/);
    const q = write('empty.jsonl', '{"prompt":"a"}\n\n{"prompt":null}\n');
    await expect(readPromptSet(q)).rejects.toThrow(/empty\.jsonl.*empty caption at row 2 \(line 3\)/);
  });

  it('JSONL parse error at line N', async () => {
    const p = write('bad.jsonl', '{"caption":"a"}\n{"caption": "b",}\n');
    await expect(readPromptSet(p)).rejects.toThrow(/bad\.jsonl.*JSON parse error at line 2/);
    const q = write('arr.jsonl', '["a"]\n');
    await expect(readPromptSet(q)).rejects.toThrow(/arr\.jsonl.*line 1 is not a JSON object/);
  });

  it('unknown label names the row and value', async () => {
    const p = write('badlabel.csv', 'caption,label\na,MV\nb,maybe\n');
    await expect(readPromptSet(p)).rejects.toThrow(/badlabel\.csv.*unknown memorization label "maybe" at row 2 \(line 3\)/);
  });

  it('a file that is not Parquet', async () => {
    const p = write('fake.parquet', 'caption\nx\n');
    await expect(readPromptSet(p)).rejects.toThrow(/fake\.parquet.*cannot read as Parquet/);
  });
});

describe('readPromptSet: files that hold no usable prompt text (issue 14)', () => {
  it('a CSV with only a header names the file and says it has no rows', async () => {
    const p = write('header-only.csv', 'caption,image,label\n');
    await expect(readPromptSet(p)).rejects.toThrow(/header-only\.csv": has no rows: a header \("caption", "image", "label"\) but no prompts below it/);
    const e = write('empty.csv', '');
    await expect(readPromptSet(e)).rejects.toThrow(/empty\.csv": the file is empty/);
    const j = write('blank.jsonl', '\n\n');
    await expect(readPromptSet(j)).rejects.toThrow(/blank\.jsonl": the file is empty/);
  });

  it('non-UTF-8 bytes: the error names the file, the byte offset and the line of the first invalid sequence', async () => {
    // Latin-1 "Café" on line 3: 'caption\n' (8 bytes) + 'ok\n' (3) + 'Caf' (3) → 0xE9 at offset 14
    const p = join(tmp, 'latin1.csv');
    writeFileSync(p, Buffer.concat([Buffer.from('caption\nok\nCaf'), Buffer.from([0xe9]), Buffer.from('\n')]));
    await expect(readPromptSet(p)).rejects.toThrow(/latin1\.csv": not valid UTF-8: invalid byte sequence at byte offset 14 \(line 3; bytes e9 0a\)/);
    const q = join(tmp, 'bad.jsonl');
    writeFileSync(q, Buffer.concat([Buffer.from('{"caption": "a"}\n{"caption": "'), Buffer.from([0xff, 0xfe]), Buffer.from('"}\n')]));
    await expect(readPromptSet(q)).rejects.toThrow(/bad\.jsonl": not valid UTF-8: invalid byte sequence at byte offset 30 \(line 2/);
  });

  it('firstInvalidUtf8 agrees with a fatal TextDecoder on valid text, every single bad byte, truncations and ill-formed sequences', () => {
    const fatal = new TextDecoder('utf-8', { fatal: true });
    const valid = (b: Uint8Array): boolean => {
      try {
        fatal.decode(b);
        return true;
      } catch {
        return false;
      }
    };
    const text = Buffer.from('Café crème — naïve Ölgemälde, 東京 😀 x', 'utf8');
    expect(firstInvalidUtf8(text)).toBe(-1);
    const cases: Uint8Array[] = [
      Uint8Array.from([0xc0, 0xaf]), // overlong '/'
      Uint8Array.from([0xe0, 0x80, 0xaf]), // overlong
      Uint8Array.from([0xed, 0xa0, 0x80]), // surrogate U+D800
      Uint8Array.from([0xf4, 0x90, 0x80, 0x80]), // > U+10FFFF
      Uint8Array.from([0xf5, 0x80, 0x80, 0x80]),
      Uint8Array.from([0x41, 0xe2, 0x82]), // truncated '€'
      Uint8Array.from([0x80]),
    ];
    // every prefix of the valid text (cut inside multi-byte characters too) and every single-byte corruption of it
    for (let k = 0; k <= text.length; k++) cases.push(text.subarray(0, k));
    for (let k = 0; k < text.length; k++) {
      for (const v of [0x80, 0xbf, 0xc3, 0xff]) {
        const c = Uint8Array.from(text);
        c[k] = v;
        cases.push(c);
      }
    }
    for (const c of cases) {
      const at = firstInvalidUtf8(c);
      expect(at === -1).toBe(valid(c));
      // the reported offset is where the valid prefix ends: everything before it decodes
      if (at >= 0) expect(valid(c.subarray(0, at))).toBe(true);
    }
  });

  it(`a caption longer than ${MAX_PROMPT_CHARS} characters is refused with its row`, async () => {
    const long = 'a'.repeat(MAX_PROMPT_CHARS + 1);
    const p = write('long.csv', `caption\nshort\n${long}\n`);
    await expect(readPromptSet(p)).rejects.toThrow(/long\.csv": caption at row 2 \(line 3\) \(column "caption"\): the prompt has 10,001 characters; at most 10,000 are accepted/);
    const ok = write('limit.csv', `caption\n${'b'.repeat(MAX_PROMPT_CHARS)}\n`);
    expect((await readPromptSet(ok)).prompts[0]!.caption.length).toBe(MAX_PROMPT_CHARS);
  });
});
