"""The book's word-level tokenizers, with its ``dict`` vocabulary: ``SimpleTokenizerV1``/``V2``.

Chapter 2 of *Build a Large Language Model (From Scratch)* builds a vocabulary ``{token: id}``
from the sorted unique words and punctuation of a text, then two tokenizers over it: V1 fails on
an unknown word (``KeyError``), V2 maps it to ``<|unk|>`` and knows ``<|endoftext|>``. These
give the book's outputs exactly and also have gptdata's tokenizer interface (``vocab_size``,
``eot_id``, ``encode_batch``, tiktoken's names), so they work with datasets and loaders.

    >>> vocab = build_vocab("Hello, do you like tea?")
    >>> vocab
    {',': 0, '?': 1, 'Hello': 2, 'do': 3, 'like': 4, 'tea': 5, 'you': 6, '<|endoftext|>': 7, '<|unk|>': 8}
    >>> SimpleTokenizerV2(vocab).encode("Hello, do you like coffee?")
    [2, 0, 3, 6, 4, 8, 1]
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .dialect import ENDOFTEXT, Allowed, Special, TiktokenDialect, resolve_special

UNK = "<|unk|>"

# The book's pattern: split on , . : ; ? _ ! " ( ) ' and the double dash, keeping them as tokens,
# and on whitespace, which is dropped.
_SPLIT = re.compile(r'([,.:;?_!"()\']|--|\s)')
# decode() joins with spaces, then removes the space before these (V1 has no : and ;).
_JOIN_V1 = re.compile(r'\s+([,.?!"()\'])')
_JOIN_V2 = re.compile(r'\s+([,.:;?!"()\'])')


def split_words(text: str) -> list[str]:
    """The book's pre-tokenization: words and punctuation, whitespace dropped.

    "Hello, world. Is this-- a test?" -> ['Hello', ',', 'world', '.', 'Is', 'this', '--', 'a',
    'test', '?']
    """
    return [item.strip() for item in _SPLIT.split(text) if item.strip()]


def build_vocab(text: str, *, specials: bool = True) -> dict[str, int]:
    """The book's vocabulary: sorted unique tokens of ``text``, then ``<|endoftext|>``, ``<|unk|>``.

    ``specials=False`` gives the first vocabulary of the chapter (words only, for V1).
    The-verdict.txt -> 1,130 words; 1,132 entries with the two specials.
    """
    words = sorted(set(split_words(text)) - {ENDOFTEXT, UNK})
    if specials:
        words += [ENDOFTEXT, UNK]
    return {token: integer for integer, token in enumerate(words)}


class UnknownTokenError(KeyError):
    """A word that is not in a ``SimpleTokenizerV1`` vocabulary; ``args[0]`` is the word."""

    def __init__(self, word: str, vocab_size: int) -> None:
        super().__init__(word)
        self.vocab_size = vocab_size

    def __str__(self) -> str:
        return (
            f"{self.args[0]!r} is not in the vocabulary ({self.vocab_size:,} tokens). "
            "Use SimpleTokenizerV2 with build_vocab(text), which maps unknown words to <|unk|>."
        )


class SimpleTokenizerV1(TiktokenDialect):
    """The book's first tokenizer: ``vocab[word]`` for every word; an unknown word is a KeyError.

    >>> tok = SimpleTokenizerV1(build_vocab(raw_text, specials=False))
    >>> tok.decode(tok.encode('"It\\'s the last he painted, you know,"'))
    '" It\\' s the last he painted, you know,"'
    """

    _join = _JOIN_V1

    def __init__(self, vocab: Mapping[str, int]) -> None:
        if not isinstance(vocab, Mapping):
            raise TypeError(
                f"vocab must be a dict {{token: id}}, got {type(vocab).__name__}. "
                "Build one with build_vocab(text)."
            )
        self.str_to_int = dict(vocab)
        self.int_to_str = {i: s for s, i in self.str_to_int.items()}
        if len(self.int_to_str) != len(self.str_to_int):
            raise ValueError("vocab maps two tokens to the same ID; each ID must be used once.")
        if any(not isinstance(i, int) or i < 0 for i in self.int_to_str):
            raise ValueError("vocab IDs must be integers >= 0.")
        self.name = type(self).__name__
        self.vocab_size = max(self.int_to_str, default=-1) + 1
        self.eot_id = self.str_to_int.get(ENDOFTEXT)
        blob = json.dumps(sorted(self.str_to_int.items()), ensure_ascii=False).encode("utf-8")
        self.fingerprint = "sha256:" + hashlib.sha256(blob).hexdigest()

    def _lookup(self, word: str, special: Special) -> int:
        if word == ENDOFTEXT and special == "text":
            raise UnknownTokenError(word, self.vocab_size)
        try:
            return self.str_to_int[word]
        except KeyError:
            raise UnknownTokenError(word, self.vocab_size) from None

    def encode(
        self,
        text: str,
        *,
        special: Special = "eot",
        allowed_special: Allowed = None,
        disallowed_special: Allowed = None,
    ) -> list[int]:
        mode = resolve_special(
            text, special, self.special_tokens_set, allowed_special, disallowed_special
        )
        return [self._lookup(word, mode) for word in split_words(text)]

    def encode_batch(
        self, texts: Sequence[str], *, num_threads: int = 8, **kwargs: Any
    ) -> list[list[int]]:
        # num_threads is tiktoken's keyword, accepted so its calls paste in.
        return [self.encode(t, **kwargs) for t in texts]

    def decode(self, ids: Iterable[int], *, errors: str = "replace") -> str:
        # errors= is tiktoken's keyword, accepted: whole words never cut a UTF-8 character.
        words = []
        for pos, i in enumerate(ids):
            key = int(i)
            if key not in self.int_to_str:
                raise ValueError(
                    f"token ID {key} at position {pos} is not in this vocabulary "
                    f"({len(self.int_to_str):,} tokens). Decode with the tokenizer that "
                    "produced the IDs."
                )
            words.append(self.int_to_str[key])
        return self._join.sub(r"\1", " ".join(words))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size:,})"


class SimpleTokenizerV2(SimpleTokenizerV1):
    """The book's second tokenizer: unknown words become ``<|unk|>``; knows ``<|endoftext|>``.

    >>> tok = SimpleTokenizerV2(build_vocab(raw_text))
    >>> tok.decode(tok.encode("Hello, do you like tea? <|endoftext|> In the palace."))
    '<|unk|>, do you like tea? <|endoftext|> In the <|unk|>.'
    """

    _join = _JOIN_V2

    def __init__(self, vocab: Mapping[str, int]) -> None:
        super().__init__(vocab)
        if UNK not in self.str_to_int:
            raise ValueError(
                f"SimpleTokenizerV2 needs {UNK!r} in the vocabulary (it stands for unknown "
                "words). Build the vocabulary with build_vocab(text)."
            )
        self.unk_id = self.str_to_int[UNK]

    def _lookup(self, word: str, special: Special) -> int:
        if word == ENDOFTEXT and special == "text":
            return self.unk_id
        return self.str_to_int.get(word, self.unk_id)
