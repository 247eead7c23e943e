"""The train/val split policy of ``prepare``: which tokens go to val, decided per document.

* ``documents``: a whole document goes to val when a seeded hash of its text falls below
  ``val_fraction``. Adding documents never moves a token between splits; but with few documents,
  or one that dominates, the realized share is far from the request (two documents, 5 %: val is
  empty or one of them).
* ``tail``: the last ``val_fraction`` of every document's tokens go to val, rounded up or down by a
  seeded hash of the document's tokens *and its copy number* (how many identical documents come
  before it in input order), so the expected share is exact even for short documents and for a
  corpus of many identical ones. The share is close to the request for any corpus of two or more
  documents. Adding documents never moves a token between splits: the copies of one text draw
  their roundings from the sequence ``h(text, 0), h(text, 1), ...`` in input order; with one
  copy added anywhere, the n + 1 copies hold draws 0..n, so val holds the same tokens as before
  plus the added copy's share (which copy holds which draw may change: they are identical).
* ``auto`` (the default): ``documents`` when it is statistically safe, else ``tail``. Safe means
  the corpus has enough evenly sized documents, ``n_eff = tokens**2 / sum(doc_tokens**2) >=
  36 (1 - f) / f``, so that the share's standard deviation, sqrt(f (1 - f) / n_eff), is at most
  f / 6, *and* the realized share is within half of the request. The choice is recorded in the
  manifest as ``options.split_by``; pass it explicitly to keep it when the corpus grows.

    >>> tail_tokens(np.arange(100, dtype="<u2"), 0.1, 0)
    10
"""

from __future__ import annotations

import hashlib
from typing import Literal

import numpy as np

SplitBy = Literal["auto", "documents", "tail"]
SPLIT_BY = ("auto", "documents", "tail")
N_EFF_FACTOR = 36  # n_eff >= 36 (1 - f) / f: the share's std is at most f / 6


def split_of(text: str, val_fraction: float, seed: int, test_fraction: float = 0.0) -> str:
    """'train', 'val' or 'test' from a seeded hash of the content, so adding data never moves a
    document. One hash, two cuts: below ``val_fraction`` is val, then ``test_fraction`` more is
    test; a document's val membership is the same with or without a test split.

    val_fraction=0.1, test_fraction=0.05: hash/2**64 in [0, 0.1) val, [0.1, 0.15) test, else train
    """
    if val_fraction <= 0 and test_fraction <= 0:
        return "train"
    # SHA-256 runs at ~1.8 GB/s here (CPU instructions), twice BLAKE2b: it is on the hot path.
    h = hashlib.sha256(f"gptdata-split:{seed}:".encode())
    h.update(text.encode("utf-8", "surrogatepass"))
    u = int.from_bytes(h.digest()[:8], "little")
    if u < val_fraction * 2.0**64:
        return "val"
    return "test" if u < (val_fraction + test_fraction) * 2.0**64 else "train"


def tail_key(ids: np.ndarray, seed: int) -> int:
    """A seeded 64-bit hash of a document's tokens: identical documents share it."""
    h = hashlib.sha256(f"gptdata-tail:{seed}:".encode())
    h.update(ids.tobytes())
    return int.from_bytes(h.digest()[:8], "little")


def tail_count(length: int, val_fraction: float, key: int, copy: int) -> int:
    """``length * f`` rounded up or down by the key and the copy number (see ``tail_tokens``)."""
    exact = length * val_fraction
    whole = int(exact)
    rest = exact - whole
    if rest <= 0:
        return whole
    u = key
    if copy:  # the k-th identical copy: its own uniform draw, so copies share f between them
        h = hashlib.sha256(b"gptdata-tail-copy:")
        h.update(key.to_bytes(8, "little") + copy.to_bytes(8, "little"))
        u = int.from_bytes(h.digest()[:8], "little")
    return whole + (u < rest * 2.0**64)


def tail_tokens(ids: np.ndarray, val_fraction: float, seed: int, copy: int = 0) -> int:
    """How many of a document's last tokens go to val: ``len * f``, rounded by a seeded hash.

    100 tokens, f=0.1 -> 10; 15 tokens, f=0.1 -> 1 or 2 (2 with probability 0.5, per content).

    ``copy`` is how many identical documents (same tokens) come before this one in input
    order: each copy draws its rounding anew, so 50 copies of one short line give val about
    ``f`` of their tokens, not all or nothing. The first copy (0) draws from the content alone.
    """
    if (len(ids) * val_fraction) % 1 == 0:
        return int(len(ids) * val_fraction)
    return tail_count(len(ids), val_fraction, tail_key(ids, seed), copy)


def choose_split(
    split_by: str, val_fraction: float, tokens: int, sum_sq: int, val_tokens: int
) -> str:
    """Resolve ``auto`` from the document-split outcome: tokens and sum of squared document
    lengths of the whole corpus, and the tokens a document split sent to val."""
    if split_by != "auto":
        return split_by
    if val_fraction <= 0 or tokens == 0:
        return "documents"
    n_eff = tokens * tokens / max(sum_sq, 1)
    enough = n_eff >= N_EFF_FACTOR * (1 - val_fraction) / val_fraction
    close = abs(val_tokens / tokens - val_fraction) <= val_fraction / 2
    return "documents" if enough and close else "tail"


def check_split_by(split_by: str) -> None:
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by={split_by!r} must be one of {', '.join(SPLIT_BY)}.")
