"""The tokenizer interface every stage relies on, and what all gptdata tokenizers share.

Every tokenizer has ``name``, ``vocab_size``, ``eot_id``, ``fingerprint``, ``encode``,
``encode_batch`` and ``decode``; ``check_ids`` is the one check of IDs before decoding.

    >>> check_ids([1, 2], vocab_size=3)
    [1, 2]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from .dialect import (
    Allowed,
    Special,
    TiktokenDialect,
    resolve_special,
)

UNK = "<|unk|>"

Backend = Literal["auto", "tiktoken", "fastokens"]


@runtime_checkable
class Tokenizer(Protocol):
    """What the rest of gptdata needs from a tokenizer."""

    name: str
    vocab_size: int
    eot_id: int | None
    fingerprint: str

    def encode(self, text: str, *, special: Special = "eot") -> list[int]: ...

    def encode_batch(
        self, texts: Sequence[str], *, special: Special = "eot"
    ) -> list[list[int]]: ...

    def decode(self, ids: Iterable[int]) -> str: ...


def check_ids(ids: Iterable[Any], vocab_size: int) -> list[int]:
    """Return ``ids`` as a list of ints, or raise ValueError naming the first bad one.

    [1, 2] with vocab_size=3 -> [1, 2];  [1, 7] -> ValueError (7 is out of range)
    """
    out: list[int] = []
    for pos, value in enumerate(ids):
        # numpy and torch integers pass; bools and floats are almost always a bug upstream.
        if isinstance(value, bool) or not hasattr(value, "__index__"):
            raise ValueError(
                f"decode() needs integer token IDs, but position {pos} holds {value!r} "
                f"({type(value).__name__}). Convert with int() or .tolist() first."
            )
        value = int(value)
        if not 0 <= value < vocab_size:
            raise ValueError(
                f"token ID {value} at position {pos} is outside this tokenizer's range "
                f"0..{vocab_size - 1} (vocab_size={vocab_size}). Decode with the tokenizer "
                "that produced the IDs."
            )
        out.append(value)
    return out


class _Base(TiktokenDialect):
    """Shared behaviour: batch encoding by default is a loop; pickling rebuilds from the spec.

    ``encode`` takes tiktoken's ``allowed_special``/``disallowed_special`` too (see dialect):
    when given they decide ``special``; subclasses implement ``_encode(text, special)``.
    """

    name: str
    vocab_size: int
    eot_id: int | None
    fingerprint: str

    def encode(
        self,
        text: str,
        *,
        special: Special = "eot",
        allowed_special: Allowed = None,
        disallowed_special: Allowed = None,
    ) -> list[int]:
        specials = self.special_tokens_set
        return self._encode(
            text, resolve_special(text, special, specials, allowed_special, disallowed_special)
        )

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        special: Special = "eot",
        allowed_special: Allowed = None,
        disallowed_special: Allowed = None,
        num_threads: int = 8,  # tiktoken's keyword; accepted so its calls paste in
    ) -> list[list[int]]:
        specials, mode = self.special_tokens_set, special
        for text in texts:  # each text is checked; the mode depends on the keywords alone
            mode = resolve_special(text, special, specials, allowed_special, disallowed_special)
        return self._encode_batch(texts, mode)

    def _encode(self, text: str, special: Special) -> list[int]:  # pragma: no cover
        raise NotImplementedError

    def _encode_batch(self, texts: Sequence[str], special: Special) -> list[list[int]]:
        return [self._encode(t, special) for t in texts]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, vocab_size={self.vocab_size:,})"


_BYTE_LENGTHS: dict[str, Any] = {}  # fingerprint -> int64 array; built once per process


def token_byte_lengths(tokenizer: Tokenizer) -> Any:
    """UTF-8 bytes of every token ID (end-of-text: 0) as an int64 array, or None.

    None when the tokenizer cannot say which bytes a token holds (no ``token_bytes``). Built once
    per tokenizer and process (a GPT-2 table is 50,257 look-ups: building it per call cost
    0.3-0.6 s of every evaluation), so ``table[ids].sum()`` counts a document's bytes.

        >>> token_byte_lengths(get_tokenizer("gpt2"))[[15496, 50256]].tolist()   # 'Hello', eot
        [5, 0]
    """
    import numpy as np

    key = tokenizer.fingerprint
    if key not in _BYTE_LENGTHS:
        token_bytes = getattr(tokenizer, "token_bytes", None)
        if token_bytes is None:
            return None
        raw = getattr(tokenizer, "raw_token_bytes", token_bytes)  # skips the per-ID check
        table = np.fromiter(
            (len(raw(i)) for i in range(tokenizer.vocab_size)), np.int64, tokenizer.vocab_size
        )
        if tokenizer.eot_id is not None:
            table[tokenizer.eot_id] = 0
        table.flags.writeable = False  # shared by every caller
        _BYTE_LENGTHS[key] = table
    return _BYTE_LENGTHS[key]
