#!/usr/bin/env python3
"""Generates Tests/Fixtures/tokenizer/cleaning_cases.json: more captions with the ids and cleaned
text open_clip's tokenizer gives, concentrating on the cleaning rules (mojibake in ten codecs,
double encoding, HTML references, controls, widths, casing) plus seeded random strings.

The reference below follows the fixture README's description of open_clip's SimpleTokenizer
(ftfy.fix_text -> html.unescape twice -> ' '.join(split()) -> lower(); the `regex` pre-split;
byte-level BPE) and is first checked against all 62 captions of tokens.json, which open_clip
itself produced. Run:  pip install ftfy==6.3.1 regex && python3 Scripts/generate_tokenizer_cases.py
"""
import gzip
import html
import json
import os
import random

import ftfy
import regex

ROOT = os.path.join(os.path.dirname(__file__), "..")
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures", "tokenizer")
VOCAB = os.path.join(ROOT, "Sources", "CLIPTokenizer", "Resources", "bpe_simple_vocab_16e6.txt.gz")


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


class ReferenceTokenizer:
    def __init__(self):
        lines = gzip.open(VOCAB).read().decode("utf-8").split("\n")
        merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
        self.byte_encoder = bytes_to_unicode()
        vocab = list(self.byte_encoder.values())
        vocab += [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<start_of_text>", "<end_of_text>"]
        self.encoder = {v: i for i, v in enumerate(vocab)}
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.cache = {"<start_of_text>": "<start_of_text>", "<end_of_text>": "<end_of_text>"}
        self.pat = regex.compile(r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)

    @staticmethod
    def clean(text):
        text = ftfy.fix_text(text)
        text = html.unescape(html.unescape(text)).strip()
        return " ".join(text.split()).strip().lower()

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = [(self.ranks.get(p, float("inf")), i) for i, p in enumerate(zip(word, word[1:]))]
            rank, at = min(pairs)
            if rank == float("inf"):
                break
            first, second = word[at], word[at + 1]
            merged, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        self.cache[token] = " ".join(word)
        return self.cache[token]

    def ids(self, text, context_length=77):
        clean = self.clean(text)
        body = []
        for piece in self.pat.findall(clean):
            piece = "".join(self.byte_encoder[b] for b in piece.encode("utf-8"))
            body.extend(self.encoder[s] for s in self.bpe(piece).split(" "))
        tokens = [49406] + body + [49407]
        if len(tokens) > context_length:
            tokens = tokens[:context_length]
            tokens[-1] = 49407
        return clean, tokens + [0] * (context_length - len(tokens))


SAMPLES = [
    "café crème brûlée", "naïve façade", "über schön Grüße", "señor jalapeño año", "ação coração não",
    "zażółć gęślą jaźń", "příliš žluťoučký kůň", "çok güzel ğüşiöç İstanbul", "ελληνικά γράμματα",
    "русский текст", "日本語のテキスト", "中文字符", "한국어 텍스트", "emoji 🐱🚀👍🏽", "“quoted” ‘single’ — dash – en … ellipsis",
    "price 5 € or £3 or ¥100", "temperature 25°C ±2", "© 2024 ™ ®", "voilà le travail", "à la carte",
    "Ελλάδα", "Беларусь", "Łódź", "Øresund", "Þingvellir", "Ærø", "smörgåsbord", "crème de la crème",
]

CODECS = ["latin-1", "windows-1252", "windows-1251", "windows-1250", "windows-1253", "windows-1254",
          "windows-1257", "iso-8859-2", "mac_roman", "cp437"]


def mojibake_cases():
    out = []
    for s in SAMPLES:
        for codec in CODECS:
            try:
                out.append(("mojibake-" + codec, s.encode("utf-8").decode(codec)))
            except UnicodeDecodeError:
                out.append(("mojibake-lossy-" + codec, s.encode("utf-8").decode(codec, errors="replace")))
        once = s.encode("utf-8").decode("windows-1252", errors="replace")
        out.append(("mojibake-double", once.encode("utf-8").decode("windows-1252", errors="replace")))
        out.append(("mojibake-nbsp-as-space", s.encode("utf-8").decode("latin-1").replace("\xa0", " ")))
        out.append(("mojibake-mixed", s + " " + s.encode("utf-8").decode("windows-1252", errors="replace")))
        out.append(("legit", s))
        out.append(("legit-upper", s.upper()))
    return out


HANDWRITTEN = [
    ("html", "&amp;amp;amp; &lt;&gt; &quot; &apos; &nbsp;x &copy &copyx &notit; &notin; &EACUTE; &AMP; &#0; &#128; &#x80;"),
    ("html", "&#x110000; &#55296; &#65535; &#1114111; &#99999999999999999999; &#x263a &#9731 &#; &#x; &;"),
    ("html", "a &lt;b&gt; line\nthen <b>html</b> &amp; more\nand &amp; after"),
    ("html", "&Aacute;&aacute;&AACUTE;&szlig;&SZLIG;&thetasym;&ThickSpace;&NotEqualTilde;&fjlig;"),
    ("html", "&amp;#x263A; &amp;eacute; &ampeacute; &amp&amp;"),
    ("controls", "a\x00b\x01c\x08d\x0be\x0cf\x0eg\x1bh\x7fi\u206aj\ufeffk\ufff9l\ufffcm\u200bn\u00ado\u200dp"),
    ("controls", "\x1b[31mred\x1b[0m \x1b[1;32mbold green\x1b[m plain \x1b[9x"),
    ("linebreaks", "one\r\ntwo\rthree\u2028four\u2029five\x85six"),
    ("c1", "\x80 \x91quote\x92 \x93dq\x94 \x85 \x96 \x97 \x99 \x9f"),
    ("width", "ＬＯＵＤ　ＮＯＩＳＥＳ ｈａｌｆ ｶﾀｶﾅ ﾊﾟﾝ ￥１２３ ＃＄％"),
    ("ligatures", "ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ Ĳ ĳ ŉ Ǳ ǲ ǳ Ǆ ǅ ǆ Ǉ ǈ ǉ Ǌ ǋ ǌ"),
    ("sigma", "ΣΑΣ ΣΑΣ. Σ ΑΣ' ΑΣ1 ὈΔΥΣΣΕΎΣ Σ̈Α ΑΣ̈ ΑΣΑ"),
    ("casing", "İSTANBUL ǅemal ẞTRASSE ΐ Ω K Å ﬃ"),
    ("contractions", "I'M YOU'LL THEY'D IT'S WE'VE 'ſ 'S ’S ''S ?'s x's '<end_of_text> ll'll"),
    ("special", "<START_OF_TEXT> <End_Of_Text> <ſtart_of_text> <|startoftext|> !<end_of_text> <end_of_text><end_of_text>"),
    ("numbers", "٣ ½ ² ⅷ ① 〇 ५ 1st 2nd 12,345.67"),
    ("whitespace", "\x1c\x1d\x1e\x1f a \u1680 b \u2000\u2001\u200a c \u202f d \u205f e \u3000 f \xa0 g \t\v\f"),
    ("nfc", "e\u0301 a\u0308 n\u0303 Å A\u030a \u1e9b\u0323 \u0344 한\u1100\u1161"),
    ("empty", ""),
    ("spaces", "     "),
    ("punct", "...!!! ??? ;;; --- ___ ((( ))) ''' \"\"\" ``` ~~~"),
    ("url", "http://example.com/a?b=c&d=e#f user@host.org www.x.y/z_w"),
    ("emoji", "👨‍👩‍👧‍👦 🏳️‍🌈 🇬🇧 ❤️ ☺️ ✔ ✈️"),
    ("regex-quirk", "x\u0345y \u0345 5\u0345 !\u0345? \u1c1c\u001d"),
    ("ftfy-doc", "âœ” No problems"),
    ("ftfy-doc", "&macr;\\_(ã\x83\x84)_/&macr;"),
    ("ftfy-doc", "Broken text&hellip; it&#x2019;s ﬂubberiﬁc!"),
    ("ftfy-doc", "The Mona Lisa doesnÃƒÂ¢Ã¢â€šÂ¬Ã¢â€žÂ¢t have eyebrows."),
    ("ftfy-doc", "l’humanitÃ©"),
    ("ftfy-doc", "Ã  la carte"),
    ("ftfy-doc", "sÃ³"),
    ("ftfy-doc", "voilÃ le travail"),
    ("ftfy-doc", "â€œlike thisâ€\ufffd"),
    ("ftfy-doc", "Ð¿Ð¾Ð¿Ð¾Ð»Ð½ÐµÐ½Ð¸Ðµ"),
    ("ftfy-doc", "Ã¢â‚¬Å“dobleÃ¢â‚¬Â"),
    ("ftfy-doc", "CESU: \xed\xa0\xbd\xed\xb8\x8d and null \xc0\x80".encode("latin-1").decode("latin-1")),
]


def fuzz_cases(seed=20261129, count=400):
    rng = random.Random(seed)
    pool = (list("abcXYZ019 &;#<>'\"-.,!?\n\t") + [chr(c) for c in range(0x80, 0x100)]
            + list("€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ") + list("ΑΣσςΒΓΞΟβāВГРСвЂўÐ√≈‚Ä│┌█▒")
            + ["&amp;", "&lt;", "&#233;", "&eacute", "Ã©", "â€™", "\u200b", "\ufeff", "\x1b[0m", "ﬁ", "Ａ", "İ", "e\u0301"])
    out = []
    for _ in range(count):
        n = rng.randint(1, 24)
        out.append(("fuzz", "".join(rng.choice(pool) for _ in range(n))))
    # Mojibake of random text: valid UTF-8 of random characters, decoded in a random codec.
    letters = [chr(c) for c in list(range(0xC0, 0x180)) + list(range(0x391, 0x3CA)) + list(range(0x410, 0x450)) + list(range(0x2010, 0x2030))]
    for _ in range(count // 2):
        s = "".join(rng.choice(letters + list("abc de")) for _ in range(rng.randint(1, 12)))
        codec = rng.choice(CODECS)
        out.append(("fuzz-mojibake", s.encode("utf-8").decode(codec, errors="replace")))
    # Random assigned code points from the whole range: letter/number classes and lower-casing.
    import unicodedata
    assigned = [c for c in range(0x20, 0x30000) if unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")]
    for _ in range(count // 2):
        out.append(("fuzz-unicode", "".join(chr(rng.choice(assigned)) for _ in range(rng.randint(1, 16)))))
    return out


def main():
    ref = ReferenceTokenizer()
    golden = json.load(open(os.path.join(FIXTURES, "tokens.json")))
    for c in golden["captions"]:
        clean, ids = ref.ids(c["text"])
        assert clean == c["clean_text"] and ids == c["ids"], c["index"]
    cases = []
    for category, text in mojibake_cases() + HANDWRITTEN + fuzz_cases():
        clean, ids = ref.ids(text)
        cases.append({"category": category, "text": text, "fix_text": ftfy.fix_text(text), "clean_text": clean, "ids": ids})
    meta = {
        "description": "clipd tokenizer cleaning cases; reference = ftfy.fix_text + html.unescape x2 + split/join + lower, "
                       "regex pre-split, CLIP BPE (verified against all 62 open_clip captions of tokens.json first)",
        "generator": "Scripts/generate_tokenizer_cases.py",
        "versions": {"ftfy": ftfy.__version__, "regex": regex.__version__},
        "context_length": 77,
        "cases": cases,
    }
    with open(os.path.join(FIXTURES, "cleaning_cases.json"), "w") as f:
        json.dump(meta, f, ensure_ascii=True, indent=0)
    print(len(cases), "cases")


if __name__ == "__main__":
    main()
