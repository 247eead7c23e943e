"""GPT-2's exact byte-pair encoding (tiktoken or fastokens, offline) and Hugging Face models.

>>> GPT2Tokenizer().encode("Hello, world")
[15496, 11, 995]
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .base import Backend, _Base, check_ids
from .dialect import (
    ENDOFTEXT,
    Special,
)


class GPT2Tokenizer(_Base):
    """The exact GPT-2 BPE (50,257 tokens), offline.

    A literal ``<|endoftext|>`` becomes ID 50256, as in the classic ``GPTDatasetV1``
    (``allowed_special={"<|endoftext|>"}``); ``special="text"`` encodes it as ordinary text.
    ``backend``: ``"tiktoken"``, ``"fastokens"`` (the Rust package, same IDs), or ``"auto"``:
    fastokens when installed and its version passed the exactness gate here, else tiktoken.

        >>> GPT2Tokenizer().encode("a<|endoftext|>b")
        [64, 50256, 65]
    """

    name = "gpt2"

    def __init__(self, backend: Backend = "auto") -> None:
        from .gpt2files import EOT_ID, gpt2_fingerprint

        self.fingerprint = gpt2_fingerprint()
        self.vocab_size = EOT_ID + 1  # 50257
        self.eot_id = EOT_ID  # 50256
        use_fast = False
        if backend not in ("auto", "tiktoken", "fastokens"):
            raise ValueError(f"backend={backend!r}: choose 'auto', 'tiktoken' or 'fastokens'.")
        if backend != "tiktoken":
            from . import fast as _fast

            if backend == "fastokens" and _fast.installed_version() is None:
                raise RuntimeError(
                    "backend 'fastokens' is not installed. Fix: "
                    f"pip install 'gptdata[fast]' (fastokens=={_fast.PINNED_VERSION})"
                )
            use_fast = backend == "fastokens" or _fast.gate_passed(self._reference_encode)
        self.backend = "fastokens" if use_fast else "tiktoken"

    @property
    def _fast(self) -> Any:
        """The fastokens encoder, built on first use (0.3 s; a driver that only plans never pays)."""
        if self.backend != "fastokens":
            return None
        from .fast import get_fast

        return get_fast()

    @property
    def _enc(self) -> Any:
        """The tiktoken Encoding, built on first use (a fastokens-only worker never needs it)."""
        from .gpt2files import load_gpt2_encoding

        return load_gpt2_encoding()

    def _reference_encode(self, text: str) -> list[int]:
        return self._enc.encode(text, allowed_special={ENDOFTEXT}, disallowed_special=())

    def _encode(self, text: str, special: Special) -> list[int]:
        if self._fast is not None:
            return self._fast.encode_arrays([text], special=special == "eot")[0].tolist()
        if special == "text":
            return self._enc.encode_ordinary(text)
        return self._reference_encode(text)

    def _encode_batch(self, texts: Sequence[str], special: Special) -> list[list[int]]:
        if self._fast is not None:
            return [a.tolist() for a in self._fast.encode_arrays(texts, special=special == "eot")]
        if special == "text":
            return self._enc.encode_ordinary_batch(list(texts))
        return self._enc.encode_batch(
            list(texts), allowed_special={ENDOFTEXT}, disallowed_special=()
        )

    def encode_arrays(self, texts: Sequence[str], *, special: Special = "eot") -> list[Any]:
        """Token IDs per text as numpy arrays (what ``prepare`` writes), one thread per call
        with tiktoken; fastokens spreads the batch over its own threads (RAYON_NUM_THREADS).
        ``special="text"``: a literal <|endoftext|> is ordinary text (tiktoken's encode_ordinary)."""
        if special not in ("eot", "text"):
            raise ValueError(f"special={special!r} is not one of 'eot', 'text'.")
        if self._fast is not None:
            return self._fast.encode_arrays(texts, special=special == "eot")
        allowed = {ENDOFTEXT} if special == "eot" else set()
        # encode_to_numpy hands over tiktoken's buffer: no Python int per token (10 % of prepare).
        return [
            self._enc.encode_to_numpy(t, allowed_special=allowed, disallowed_special=())
            for t in texts
        ]

    def prewarm(self) -> None:
        """Build the encoder now, e.g. in a driver before it forks workers that inherit it."""
        _ = self._fast

    def decode(self, ids: Iterable[int], *, errors: str = "replace") -> str:
        """tiktoken's ``decode``: a token cut inside a UTF-8 character becomes U+FFFD, or
        raises UnicodeDecodeError with ``errors="strict"``.

            >>> tok.decode(tok.encode("\U0001f600")[:1])
            '\ufffd'
        """
        return self._enc.decode(check_ids(ids, self.vocab_size), errors=errors)

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of one token (a token can be part of a UTF-8 character)."""
        return self._enc.decode_single_token_bytes(check_ids([token_id], self.vocab_size)[0])

    def raw_token_bytes(self, token_id: int) -> bytes:
        """``token_bytes`` without the ID check, for tables built over 0..vocab_size-1."""
        return self._enc.decode_single_token_bytes(token_id)

    def __reduce__(self) -> tuple[Any, ...]:
        # Workers rebuild from the verified cache instead of pickling 50k byte strings; they
        # get the backend this process resolved, so the gate runs once, in the driver.
        return (GPT2Tokenizer, (self.backend,))

    def __repr__(self) -> str:
        return f"GPT2Tokenizer(backend={self.backend!r})"


class HFTokenizer(_Base):
    """A Hugging Face ``tokenizers`` model loaded from a ``tokenizer.json``.

    ``eot_id`` is the ID of ``<|endoftext|>`` when the vocabulary has it, else None.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from tokenizers import Tokenizer as _HF

        self.path = Path(path)
        raw = self.path.read_bytes()
        try:
            self._tok = _HF.from_str(raw.decode("utf-8"))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ValueError(
                f"{self.path}: not a valid Hugging Face tokenizer.json ({exc}). "
                "Save one with tokenizer.save('tokenizer.json')."
            ) from None
        self.name = f"hf:{self.path.name}"
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        self.eot_id = self._tok.token_to_id(ENDOFTEXT)
        self.fingerprint = "sha256:" + hashlib.sha256(raw).hexdigest()

    def _encode(self, text: str, special: Special) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def _encode_batch(self, texts: Sequence[str], special: Special) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Iterable[int], *, errors: str = "replace") -> str:
        # tiktoken's keyword, accepted: the tokenizers library always replaces bad bytes.
        return self._tok.decode(check_ids(ids, self.vocab_size), skip_special_tokens=False)

    def __reduce__(self) -> tuple[Any, ...]:
        return (HFTokenizer, (self.path,))
