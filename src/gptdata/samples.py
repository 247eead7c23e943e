"""Fixed texts that ship with gptdata: the demo's sample text and the fastokens gate's fixture.

They live here, below the tokenizers, because both the tokenizers' fast backend (its exactness
gate) and the top-level tools (``gptdata demo``, ``inspect``) read them; nothing here imports
another gptdata module, so no import circle can go through it.

    >>> sample_text()[:24]
    'The lighthouse on Gull P'
"""

from __future__ import annotations

import random
from importlib import resources


def sample_text() -> str:
    """The short sample text that ships inside the package (used by ``gptdata demo``)."""
    return (resources.files("gptdata") / "data" / "sample.txt").read_text(encoding="utf-8")


# Inputs where byte-level BPE implementations have disagreed: rare whitespace, marks, scripts,
# contractions after non-ASCII whitespace, long runs, lone surrogates, the special literal.
TRICKY = [
    "",
    " ",
    "  ",
    "\n",
    "\r\n",
    "\r\n\r\n",
    "\t\t x",
    "a\u180eb",
    "\u180e",
    "x \u180e y",
    "\u00a0don't",
    "\u2009'll",
    "\u3000're",
    "a\u200bb",
    "\u2028\u2029",
    "\ufeffBOM",
    "e\u0301\u0302\u0303",
    "\u0915\u094d\u0937",
    "日本語のテキスト",
    "한국어 텍스트",
    "\U0001f600\U0001f44d\U0001f3fd",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "Ω≈ç√∫",
    "ﬁﬂ",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    " " * 40 + "x",
    "\n" * 30,
    "1234567890" * 5,
    "3.14159 1,000,000 0x1F",
    "I'm you're he'd we've",
    "'s 's 'S 'T 'LL",
    "don't\u00a0'll",
    "a<|endoftext|>b",
    "<|endoftext|>",
    "x<|endoftext|><|endoftext|>y",
    "<|endoftext",
    "a\ud800b",
    "\udfff",
    "\ud83d\ude00",
    "mixed\ud800\U0001f600end",
    "    def f(x):\n        return x  # comment\n",
    "<html><body>hi</body></html>",
]


def gate_fixture() -> list[str]:
    """The fixed inputs of the exactness gate: sample text, tricky strings, seeded random text."""
    rng = random.Random(20261126)
    ranges = [
        (0x20, 0x7E),
        (0x09, 0x0D),
        (0xA0, 0x17F),
        (0x370, 0x3FF),
        (0x400, 0x4FF),
        (0x600, 0x6FF),
        (0x900, 0x97F),
        (0x1680, 0x1680),
        (0x180E, 0x180E),
        (0x2000, 0x206F),
        (0x3000, 0x303F),
        (0x4E00, 0x4FFF),
        (0xAC00, 0xACFF),
        (0xFE00, 0xFE0F),
        (0x1F300, 0x1F64F),
        (0xD800, 0xDFFF),
    ]
    randoms = []
    for _ in range(400):
        chars = []
        for _ in range(rng.randint(0, 40)):
            lo, hi = rng.choice(ranges)
            chars.append(chr(rng.randint(lo, hi)))
        randoms.append("".join(chars))
    text = sample_text()
    return [text, *text.split("\n"), *TRICKY, *randoms]
