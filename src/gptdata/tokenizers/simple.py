"""The word-level tokenizer of the from-scratch path: a vocabulary of the words in a text.

>>> SimpleTokenizer.from_text("Hello, world.").vocab
[',', '.', 'Hello', 'world', '<|endoftext|>', '<|unk|>']
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .base import UNK, _Base, check_ids
from .dialect import (
    ENDOFTEXT,
    Special,
)

# Split on whitespace and on , . : ; ? _ ! " ( ) ' and the double dash; the capture group keeps
# punctuation as tokens, whitespace is dropped afterwards.
_SIMPLE_SPLIT = re.compile(r'(--|[,.:;?_!"()\']|\s)')
# decode() joins with spaces; this removes the space before punctuation again.
_SPACE_BEFORE_PUNCT = re.compile(r'\s+([,.:;?_!"()\'])')

_SIMPLE_FORMAT = "gptdata-simple-vocab"


class SimpleTokenizer(_Base):
    """Word-level tokenizer: a vocabulary of the words and punctuation seen in a text.

    The vocabulary is the sorted set of tokens, then ``<|endoftext|>`` and ``<|unk|>``.

        >>> tok = SimpleTokenizer.from_text("Hello, world.")
        >>> tok.vocab
        [',', '.', 'Hello', 'world', '<|endoftext|>', '<|unk|>']
        >>> tok.decode(tok.encode("Hello, moon."))
        'Hello, <|unk|>.'
    """

    def __init__(self, vocab: Sequence[str]) -> None:
        if len(set(vocab)) != len(vocab):
            raise ValueError("SimpleTokenizer vocabulary has duplicate entries; each token once.")
        for required in (ENDOFTEXT, UNK):
            if required not in vocab:
                raise ValueError(f"SimpleTokenizer vocabulary lacks {required!r}; rebuild it.")
        self.vocab = list(vocab)
        self.str_to_int = {s: i for i, s in enumerate(self.vocab)}
        self.name = "simple"
        self.vocab_size = len(self.vocab)
        self.eot_id = self.str_to_int[ENDOFTEXT]
        self.unk_id = self.str_to_int[UNK]
        blob = json.dumps(self.vocab, ensure_ascii=False).encode("utf-8")
        self.fingerprint = "sha256:" + hashlib.sha256(blob).hexdigest()

    @staticmethod
    def split(text: str) -> list[str]:
        """'Hello, world--yes' -> ['Hello', ',', 'world', '--', 'yes']"""
        return [t for t in (p.strip() for p in _SIMPLE_SPLIT.split(text)) if t]

    @classmethod
    def from_text(cls, text: str) -> SimpleTokenizer:
        words = sorted(set(cls.split(text)) - {ENDOFTEXT, UNK})
        return cls([*words, ENDOFTEXT, UNK])

    def _encode(self, text: str, special: Special) -> list[int]:
        lookup = self.str_to_int
        if special == "text":
            lookup = {k: v for k, v in lookup.items() if k != ENDOFTEXT}
        return [lookup.get(t, self.unk_id) for t in self.split(text)]

    def decode(self, ids: Iterable[int], *, errors: str = "replace") -> str:
        # errors= is tiktoken's keyword, accepted: whole words never cut a UTF-8 character.
        text = " ".join(self.vocab[i] for i in check_ids(ids, self.vocab_size))
        return _SPACE_BEFORE_PUNCT.sub(r"\1", text)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary as JSON (atomically: a crash never leaves half a file)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        doc = {"format": _SIMPLE_FORMAT, "version": 1, "vocab": self.vocab}
        tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=0), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SimpleTokenizer:
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{path}: no such vocabulary file. Build one with "
                "SimpleTokenizer.from_text(text).save(path)."
            ) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"{path}: corrupt vocabulary file ({exc}). Rebuild it with "
                "SimpleTokenizer.from_text(text).save(path)."
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != _SIMPLE_FORMAT:
            raise ValueError(
                f"{path}: not a SimpleTokenizer vocabulary (no format={_SIMPLE_FORMAT!r})."
            )
        if doc.get("version") != 1:
            raise ValueError(
                f"{path}: vocabulary version {doc.get('version')!r}; this gptdata reads 1."
            )
        vocab = doc.get("vocab")
        if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
            raise ValueError(f"{path}: corrupt vocabulary file ('vocab' is not a list of strings).")
        return cls(vocab)

    def __reduce__(self) -> tuple[Any, ...]:
        return (SimpleTokenizer, (self.vocab,))
