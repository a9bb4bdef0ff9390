#!/usr/bin/env python3
"""Write test/fixtures/clip_slow.json: token ids of prompts under transformers 4.x's *slow*
CLIPTokenizer semantics without ftfy (what `pip install diffusers "transformers<5"` gives), and under
the fast / transformers-5 semantics, on the tiny CLIP vocabulary of the project's test exports.

The slow semantics (transformers 4.x `BasicTokenizer(strip_accents=False, do_split_on_punc=False)`,
read from its documentation and behaviour, written here with Python's own `unicodedata`):
  1. drop U+0000, U+FFFD and every character of Unicode category C* except \\t \\n \\r;
  2. every whitespace character (space, \\t, \\n, \\r, category Zs) becomes a space;
  3. spaces around every CJK ideograph (the CJK Unified Ideographs blocks and their extensions,
     the compatibility ideographs);
  4. NFC; split on whitespace (Python's str.split); lower-case each piece; join with one space;
then CLIP's regex split and byte-level BPE. The ids come from Hugging Face's Rust `tokenizers` (via
transformers 5's tokenizers-backed `CLIPTokenizer`, whose own normalisation — NFC, \\s+ → " ",
lower case — is the fast semantics), fed the slow-cleaned text: an implementation independent of
memscope's JavaScript one.

Run (a virtualenv with transformers 5, e.g. `pip install transformers`; no ftfy, no torch needed),
on the tokenizer folder of `writeTinySdExport` (test/helpers/tiny-sd-export.ts):

    python scripts/reference/clip_slow.py /tmp/tinysd/tokenizer
"""
import json
import os
import sys
import unicodedata

from transformers import CLIPTokenizer

CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
       (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]


def slow_text(text):
    out = []
    for ch in text:
        cp = ord(ch)
        cat = unicodedata.category(ch)
        if cp == 0 or cp == 0xFFFD or (ch not in "\t\n\r" and cat.startswith("C")):
            continue
        if ch in " \t\n\r" or cat == "Zs":
            out.append(" ")
        elif any(lo <= cp <= hi for lo, hi in CJK):
            out.append(" " + ch + " ")
        else:
            out.append(ch)
    pieces = unicodedata.normalize("NFC", "".join(out)).split()
    return " ".join(p.lower() for p in pieces)


PROMPTS = [
    "a photo of a cat",
    "A Photo  of\ta CAT",
    "猫が好き",
    "東京 tower 2024",
    "zero\u200bwidth\u200bspace",
    "soft\u00adhyphen and\u200dzwj",
    "café ﬁne e\u0301",
    "tab\tnew\nline\u3000ideographic space",
    "bell\u0007 and nul\u0000 and \ufffd",
    "emoji 🐱 and 한국어 and ｆｕｌｌ",
]


def main():
    tok_dir = sys.argv[1]
    tok = CLIPTokenizer.from_pretrained(tok_dir)
    cases = []
    for p in PROMPTS:
        s = slow_text(p)
        cases.append({
            "prompt": p,
            "slowText": s,
            "slow": tok(s, add_special_tokens=False)["input_ids"],
            "fast": tok(p, add_special_tokens=False)["input_ids"],
        })
    out = os.path.join(os.path.dirname(__file__), "..", "..", "test", "fixtures", "clip_slow.json")
    with open(out, "w") as f:
        json.dump({"generator": "scripts/reference/clip_slow.py", "tokenizer": "writeTinySdExport's tokenizer/", "cases": cases}, f, ensure_ascii=False, indent=1)
    print("wrote", out)
    for c in cases:
        print(repr(c["prompt"]), "->", repr(c["slowText"]), c["slow"] == c["fast"])


if __name__ == "__main__":
    main()
