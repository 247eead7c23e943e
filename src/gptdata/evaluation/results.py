"""What ``evaluate`` returns: corpus sums, per-document and per-chunk sums, and their means.

Every mean is a sum divided by a sum. A model that gives a scored token probability 0 (or NaN
logits) makes that document's ``nll`` infinite (or NaN); the result says so (``nonfinite``)
instead of hiding it, and a NaN stays NaN (never ``perplexity inf``):

    >>> r.nonfinite()            # doc 7's loss is infinite
    'infinite loss on 1 document (doc 7)'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

CHUNK_TOKENS = 256  # tokens per block of `--bootstrap-unit chunk`


@dataclass
class DocumentScores:
    """Per-document sums (arrays of one entry per document, in source order)."""

    tokens: np.ndarray
    nll: np.ndarray
    nll_text: np.ndarray
    bytes: np.ndarray
    words: np.ndarray

    def bits_per_byte(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.bytes > 0, self.nll_text / math.log(2) / self.bytes, np.nan)

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass
class ChunkScores:
    """Sums per block of ``CHUNK_TOKENS`` consecutive targets of the stream (documents joined),
    the unit of ``--bootstrap-unit chunk``: one long document still gives many blocks."""

    tokens: np.ndarray  # (C,) int64 scored targets per chunk
    nll: np.ndarray  # (C,) float64
    nll_text: np.ndarray  # (C,) float64, end-of-text targets left out
    bytes: np.ndarray  # (C,) int64

    def __len__(self) -> int:
        return len(self.tokens)


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def _exp(x: float) -> float:
    """exp that saturates: a random model's word perplexity can exceed a float's range.
    NaN stays NaN: a NaN loss is not an infinite perplexity."""
    if math.isnan(x):
        return x
    return math.exp(x) if x < 709 else float("inf")


def describe_nonfinite(values: np.ndarray, what: str = "loss") -> str | None:
    """None when every value is finite, else which documents are not, in words.

    [1.0, inf, nan] -> 'infinite loss on 1 document (doc 1), NaN loss on 1 document (doc 2)'
    """
    parts = []
    for kind, bad in (("infinite", np.isinf(values)), ("NaN", np.isnan(values))):
        docs = np.flatnonzero(bad)
        if len(docs):
            shown = ", ".join(str(int(d)) for d in docs[:5]) + (", ..." if len(docs) > 5 else "")
            plural = "s" if len(docs) != 1 else ""
            parts.append(f"{kind} {what} on {len(docs):,} document{plural} (doc{plural} {shown})")
    return ", ".join(parts) or None


@dataclass
class EvalResult:
    """What ``evaluate`` measured; every mean is a sum divided by a sum."""

    name: str
    source: str
    by: str
    max_length: int
    stride: int
    tokens: int
    nll: float
    nll_text: float
    bytes: int
    words: int | None
    documents: DocumentScores = field(repr=False)
    position_nll: np.ndarray = field(repr=False)  # (max_length,) nll summed per window position
    position_tokens: np.ndarray = field(repr=False)  # (max_length,) tokens scored per position
    seconds: float = 0.0
    counted_on: str = "text"
    chunks: ChunkScores | None = field(default=None, repr=False)

    @property
    def loss(self) -> float:
        return _ratio(self.nll, self.tokens)

    @property
    def perplexity(self) -> float:
        return _exp(self.loss) if self.tokens else float("nan")

    @property
    def bits_per_byte(self) -> float:
        return _ratio(self.nll_text / math.log(2), self.bytes)

    @property
    def byte_perplexity(self) -> float:
        return _exp(self.nll / self.bytes) if self.bytes else float("nan")

    @property
    def word_perplexity(self) -> float | None:
        return _exp(self.nll / self.words) if self.words else None

    @property
    def tokens_per_second(self) -> float:
        return _ratio(self.tokens, self.seconds)

    @property
    def nonfinite_documents(self) -> int:
        """How many documents have an infinite or NaN loss (a target given probability 0)."""
        return int((~np.isfinite(self.documents.nll)).sum())

    def nonfinite(self, metric: str = "loss") -> str | None:
        """None, or which documents have a non-finite ``loss`` (or ``bits_per_byte``) sum."""
        values = self.documents.nll_text if metric == "bits_per_byte" else self.documents.nll
        return describe_nonfinite(values, "bits per byte" if metric == "bits_per_byte" else "loss")

    def position_loss(self) -> np.ndarray:
        """Mean loss at each window position (how loss falls with more context)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.position_nll / self.position_tokens

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON values; every non-finite number (a target given probability
        0 makes ``nll`` infinite) is ``None`` (JSON null), so strict parsers read it;
        ``nonfinite_documents`` counts the documents whose loss is infinite or NaN."""

        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else x

        return {
            "model": self.name,
            "source": self.source,
            "by": self.by,
            "max_length": self.max_length,
            "stride": self.stride,
            "documents": len(self.documents),
            "tokens": self.tokens,
            "nll": num(self.nll),
            "loss": num(self.loss),
            "perplexity": num(self.perplexity),
            "bytes": self.bytes,
            "bits_per_byte": num(self.bits_per_byte),
            "byte_perplexity": num(self.byte_perplexity),
            "words": self.words,
            "word_perplexity": num(self.word_perplexity),
            "bytes_from": "scored tokens",
            "words_from": self.counted_on,
            "nonfinite_documents": self.nonfinite_documents,
            "nonfinite": self.nonfinite(),
            "seconds": num(self.seconds),
        }
