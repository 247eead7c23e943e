"""tiktoken's dialect for every gptdata tokenizer, and tiktoken ``Encoding``s as tokenizers.

Code written for tiktoken keeps working: ``encode(text, allowed_special=..., disallowed_special=...)``
and ``encode_batch(texts, ...)`` with tiktoken's rules, ``decode(ids, errors=...)``,
``encode_ordinary``, ``n_vocab``, ``eot_token``, ``special_tokens_set``.
One difference, on purpose: a plain ``encode(text)`` recognizes ``<|endoftext|>`` (gptdata's
default, and what every call in the book asks for), where tiktoken's plain call raises on it.
The keywords select tiktoken's behaviours, with tiktoken's results:

    >>> tok.encode("a<|endoftext|>b")                              # gptdata default
    [64, 50256, 65]
    >>> tok.encode("a<|endoftext|>b", disallowed_special=())      # as plain text
    [64, 27, 91, 437, 1659, 5239, 91, 29, 65]
    >>> tok.encode("a<|endoftext|>b", disallowed_special="all")   # tiktoken's default: raises
    ValueError: text contains the special token '<|endoftext|>' ...
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Literal

ENDOFTEXT = "<|endoftext|>"

Special = Literal["eot", "text"]
Allowed = Literal["all"] | Collection[str] | None


def special_mode(
    text: str,
    specials: Collection[str],
    allowed_special: Allowed,
    disallowed_special: Allowed,
) -> Special:
    """tiktoken's keyword rules -> "eot" (the special is a token) or "text" (plain text).

    allowed_special: "all" or a set (default: none); disallowed_special: "all" (every special
    not allowed, tiktoken's default) or a collection (``()``: none); a disallowed special found
    in ``text`` raises ValueError, as tiktoken does.
    """
    allowed = set(specials) if allowed_special == "all" else set(allowed_special or ())
    if disallowed_special is None or disallowed_special == "all":
        disallowed = set(specials) - allowed
    else:
        disallowed = set(disallowed_special)
    for token in sorted(disallowed):
        if token in text:
            raise ValueError(
                f"text contains the special token {token!r}, which disallowed_special forbids "
                f"(tiktoken's rule). Pass allowed_special={{{token!r}}} to encode it as the "
                "special token, or disallowed_special=() to encode it as plain text."
            )
    return "eot" if ENDOFTEXT in allowed else "text"


def resolve_special(
    text: str,
    special: Special,
    specials: Collection[str],
    allowed_special: Allowed,
    disallowed_special: Allowed,
) -> Special:
    """``special`` unless a tiktoken keyword was given, which then decides."""
    if allowed_special is None and disallowed_special is None:
        if special not in ("eot", "text"):
            raise ValueError(f"special={special!r} is not one of 'eot', 'text'.")
        return special
    return special_mode(text, specials, allowed_special, disallowed_special)


class TiktokenDialect:
    """The names tiktoken's ``Encoding`` has, for any class with gptdata's tokenizer interface."""

    vocab_size: int
    eot_id: int | None

    def encode(self, text: str, **kwargs: Any) -> list[int]:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def n_vocab(self) -> int:
        return self.vocab_size

    @property
    def eot_token(self) -> int:
        if self.eot_id is None:
            raise AttributeError(f"{self!r} has no {ENDOFTEXT} token.")
        return self.eot_id

    @property
    def special_tokens_set(self) -> set[str]:
        return {ENDOFTEXT} if self.eot_id is not None else set()

    def encode_ordinary(self, text: str) -> list[int]:
        """Every special token's text encoded as plain text (tiktoken's ``encode_ordinary``)."""
        return self.encode(text, disallowed_special=())

    def encode_ordinary_batch(
        self, texts: Sequence[str], *, num_threads: int = 8
    ) -> list[list[int]]:
        return [self.encode_ordinary(t) for t in texts]


def is_tiktoken_encoding(obj: Any) -> bool:
    """True for a ``tiktoken.Encoding`` (checked without importing tiktoken)."""
    return type(obj).__module__.startswith("tiktoken") and hasattr(obj, "encode_ordinary")


def same_as_gpt2(enc: Any) -> bool:
    """True when ``enc`` is exactly the GPT-2 encoding (same pattern, specials and ranks)."""
    from .gpt2files import load_gpt2_encoding

    if enc.n_vocab != 50257 or enc.name not in ("gpt2", "r50k_base"):
        return False
    ours = load_gpt2_encoding()
    return bool(
        getattr(enc, "_pat_str", None) == ours._pat_str
        and getattr(enc, "_special_tokens", None) == ours._special_tokens
        and getattr(enc, "_mergeable_ranks", None) == ours._mergeable_ranks
    )


class EncodingTokenizer(TiktokenDialect):
    """Any tiktoken ``Encoding`` (cl100k_base, o200k_base, ...) behind gptdata's interface.

    ``get_tokenizer`` turns a GPT-2 ``Encoding`` into ``GPT2Tokenizer`` instead, so its stores
    and loader states match those made with ``"gpt2"``.
    """

    def __init__(self, encoding: Any) -> None:
        self.encoding = encoding
        self.name = f"tiktoken:{encoding.name}"
        self.vocab_size = int(encoding.n_vocab)
        self.eot_id = (
            encoding.encode_single_token(ENDOFTEXT)
            if ENDOFTEXT in encoding.special_tokens_set
            else None
        )
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            ranks = getattr(self.encoding, "_mergeable_ranks", {})
            digest = hashlib.sha256(
                json.dumps(
                    [
                        self.encoding.name,
                        getattr(self.encoding, "_pat_str", ""),
                        sorted(getattr(self.encoding, "_special_tokens", {}).items()),
                    ]
                ).encode()
            )
            for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
                digest.update(rank.to_bytes(4, "little") + len(token).to_bytes(2, "little"))
                digest.update(token)
            self._fingerprint = "sha256:" + digest.hexdigest()
        return self._fingerprint

    def encode(
        self,
        text: str,
        *,
        special: Special = "eot",
        allowed_special: Allowed = None,
        disallowed_special: Allowed = None,
    ) -> list[int]:
        if allowed_special is not None or disallowed_special is not None:
            # Exactly tiktoken's call, defaults included.
            return self.encoding.encode(
                text,
                allowed_special=set() if allowed_special is None else allowed_special,
                disallowed_special="all" if disallowed_special is None else disallowed_special,
            )
        if special not in ("eot", "text"):
            raise ValueError(f"special={special!r} is not one of 'eot', 'text'.")
        allowed = {ENDOFTEXT} if special == "eot" and self.eot_id is not None else set()
        return self.encoding.encode(text, allowed_special=allowed, disallowed_special=())

    @property
    def special_tokens_set(self) -> set[str]:
        # Every special the encoding has (cl100k_base: <|fim_prefix|>, ...), as tiktoken says.
        return set(self.encoding.special_tokens_set)

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        special: Special = "eot",
        allowed_special: Allowed = None,
        disallowed_special: Allowed = None,
        num_threads: int = 8,
    ) -> list[list[int]]:
        if allowed_special is not None or disallowed_special is not None:
            # Exactly tiktoken's call, defaults included (as ``encode`` above).
            return self.encoding.encode_batch(
                list(texts),
                num_threads=num_threads,
                allowed_special=set() if allowed_special is None else allowed_special,
                disallowed_special="all" if disallowed_special is None else disallowed_special,
            )
        return [self.encode(t, special=special) for t in texts]

    def decode(self, ids: Iterable[int], *, errors: str = "replace") -> str:
        """tiktoken's ``decode``: bytes that are not UTF-8 become U+FFFD unless
        ``errors="strict"`` (then UnicodeDecodeError)."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(
                f"token ID {bad[0]} is outside this tokenizer's range 0..{self.vocab_size - 1}. "
                "Decode with the tokenizer that produced the IDs."
            )
        return self.encoding.decode(ids, errors=errors)

    def __repr__(self) -> str:
        return f"EncodingTokenizer({self.encoding.name!r}, vocab_size={self.vocab_size:,})"
