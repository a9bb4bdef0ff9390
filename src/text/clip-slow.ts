/**
 * The text clean-up of transformers 4.x's *slow* `CLIPTokenizer` without ftfy (its
 * `BasicTokenizer(strip_accents=False, do_split_on_punc=False)`), which Stable Diffusion pipelines
 * of that era load from `tokenizer/`. The fast tokenizer (and transformers 5's `CLIPTokenizer`)
 * only applies NFC, whitespace runs → one space and lower case; the slow one also drops control and
 * format characters and puts spaces around CJK ideographs, which changes the tokens of scraped
 * captions that contain them (zero-width spaces, soft hyphens, Chinese / Japanese text).
 */

/** The CJK ideograph blocks the slow tokenizer spaces out (CJK Unified Ideographs, extensions A–E, compatibility ideographs). */
const CJK_RANGES: readonly (readonly [number, number])[] = [
  [0x4e00, 0x9fff],
  [0x3400, 0x4dbf],
  [0x20000, 0x2a6df],
  [0x2a700, 0x2b73f],
  [0x2b740, 0x2b81f],
  [0x2b820, 0x2ceaf],
  [0xf900, 0xfaff],
  [0x2f800, 0x2fa1f],
];

const CONTROL = /^\p{C}$/u;
const SPACE_SEPARATOR = /^\p{Zs}$/u;

/**
 * A prompt as the slow CLIP tokenizer sees it before its regex split: U+0000, U+FFFD and every
 * category-C character except tab / newline / carriage return dropped; whitespace (those three,
 * space, category Zs) made a space; spaces around CJK ideographs; NFC; split on whitespace, each
 * piece lower-cased, joined by one space. Accents are kept (`strip_accents=False`), punctuation is
 * not split off (`do_split_on_punc=False`).
 */
export function slowClipText(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    const ws = ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r';
    if (cp === 0 || cp === 0xfffd || (!ws && CONTROL.test(ch))) continue;
    if (ws || SPACE_SEPARATOR.test(ch)) out += ' ';
    else if (CJK_RANGES.some(([lo, hi]) => cp >= lo && cp <= hi)) out += ` ${ch} `;
    else out += ch;
  }
  return out
    .normalize('NFC')
    .split(/\s+/u)
    .filter((p) => p !== '')
    .map((p) => p.toLowerCase())
    .join(' ');
}
