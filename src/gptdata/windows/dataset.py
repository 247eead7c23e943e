"""Sliding windows over a token array: next-token (input, target) pairs, computed on demand.

The semantics are exactly the classic ``GPTDatasetV1``: window starts ``range(0, N - max_length,
stride)``, input ``ids[i : i + max_length]``, target ``ids[i + 1 : i + max_length + 1]``. The
classic class builds two tensors per window up front (GBs for stride=1 on a few MB of text); this
one stores nothing per window, so building it is O(1) and item k is cut when asked for.

    >>> ds = SlidingWindowDataset([1, 2, 3, 4, 5], max_length=2, stride=2)
    >>> len(ds), ds[0], ds[1]
    (2, (tensor([1, 2]), tensor([2, 3])), (tensor([3, 4]), tensor([4, 5])))
"""

from __future__ import annotations

import copy
import operator
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..prepare.corpus import ArrayTokens, load_tokens
from ..store import Split
from ..tokenizers import Tokenizer
from .documents import Batch, BatchFormat, Documents, Format, resolve_eot_id, take


def as_tokens(
    source: Any, tokenizer: str | Tokenizer = "gpt2", *, split: str = "train"
) -> Split | ArrayTokens:
    """Any source ``load_tokens`` takes (Path, TokenStore, Split, IDs, text) -> a gatherable array."""
    return load_tokens(source, tokenizer=tokenizer, split=split).tokens


@dataclass(frozen=True)
class Coverage:
    """How the windows use the tokens as targets (positions 1..N-1 can ever be targets).

    10 tokens, max_length=2, stride=4 -> windows at 0, 4; targets 1-2 and 5-6 covered,
    3-4 a stride gap, 7-9 the tail; overlap x1.00 (no token is a target twice).
    """

    tokens: int
    windows: int
    targets_covered: int
    targets_never: int
    gap_tokens: int
    tail_tokens: int
    overlap: float

    def __str__(self) -> str:
        return (
            f"{self.windows:,} windows over {self.tokens:,} tokens: "
            f"{self.targets_covered:,} tokens serve as targets, {self.targets_never:,} never "
            f"({self.gap_tokens:,} in stride gaps, {self.tail_tokens:,} in the tail); "
            f"overlap x{self.overlap:.2f}"
        )


class SlidingWindowDataset:
    """(input, target) windows of ``max_length`` tokens, ``stride`` apart, cut lazily.

    ``source``: a ``Path`` to a text/JSONL/Parquet file or folder (its documents, tokenized
    with ``tokenizer``), a ``Path`` to a store or a ``TokenStore`` (its ``split``), a ``Split``,
    a NumPy array, list or 1-D tensor of IDs (kept in its dtype), or raw text (a ``str``).
    ``dataset[k]`` -> two int64 tensors of shape ``(max_length,)``;
    ``dataset[[k1, k2, ...]]`` -> two ``(B, max_length)`` tensors in one gather.

    ``documents="mask"`` masks targets, restarts positions and numbers documents at each
    end-of-text (``eot_id``: given, else the store split's, else the tokenizer's; 50256 for
    gpt2); ``batch_format`` picks the batch: ``"tuple"``, ``"dict"``, ``"hf"`` or ``"block"``
    (see ``gptdata.documents`` and the README).
    """

    def __init__(
        self,
        source: Any,
        *,
        max_length: int,
        stride: int,
        tokenizer: str | Tokenizer = "gpt2",
        split: str = "train",
        documents: Documents = "concat",
        batch_format: BatchFormat = "tuple",
        eot_id: int | None = None,
    ) -> None:
        for name, value in (("max_length", max_length), ("stride", stride)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}={value!r} must be an integer >= 1.")
        self.corpus = load_tokens(source, tokenizer=tokenizer, split=split)
        self.tokens = self.corpus.tokens
        if documents == "mask" or eot_id is not None:
            eot_id = resolve_eot_id(eot_id, self.tokens, tokenizer)
        self.format = Format(documents, batch_format, eot_id)
        self._tokenizer = tokenizer  # to find the end-of-text ID if with_format asks for it
        self.max_length, self.stride = int(max_length), int(stride)
        n = len(self.tokens)
        if n < self.max_length + 1:
            raise ValueError(
                f"max_length={self.max_length} needs at least {self.max_length + 1} tokens, but "
                f"{self.corpus.description} has {n:,}. Lower max_length or add text."
            )
        # Same count as len(range(0, n - max_length, stride)).
        self.n_windows = (n - self.max_length + self.stride - 1) // self.stride
        if self.stride > self.max_length and self.n_windows > 1:
            gap = (self.stride - self.max_length) * (self.n_windows - 1)
            warnings.warn(
                f"stride={self.stride} > max_length={self.max_length} leaves {gap:,} "
                "tokens that are never targets. Use stride <= max_length to train on "
                "every token.",
                stacklevel=2,
            )

    def __len__(self) -> int:
        return self.n_windows

    def __repr__(self) -> str:
        return (
            f"SlidingWindowDataset(windows={self.n_windows:,}, max_length={self.max_length}, "
            f"stride={self.stride}, tokens={len(self.tokens):,})"
        )

    def starts(self, indices: np.ndarray) -> np.ndarray:
        """Window indices -> token offsets, checking the range."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < -self.n_windows or idx.max() >= self.n_windows):
            bad = int(idx.min() if idx.min() < -self.n_windows else idx.max())
            raise IndexError(
                f"window {bad} is out of range: this dataset has {self.n_windows:,} "
                f"windows (0..{self.n_windows - 1})."
            )
        idx = np.where(idx < 0, idx + self.n_windows, idx)
        return idx * self.stride

    def with_format(
        self,
        *,
        documents: Documents | None = None,
        batch_format: BatchFormat | None = None,
        eot_id: int | None = None,
    ) -> SlidingWindowDataset:
        """The same windows over the same tokens, handed out in another format (no copy)."""
        other = copy.copy(self)
        documents = documents or self.format.documents
        if eot_id is not None or (documents == "mask" and self.format.eot_id is None):
            eot_id = resolve_eot_id(eot_id, self.tokens, self._tokenizer)
        else:
            eot_id = self.format.eot_id
        other.format = Format(documents, batch_format or self.format.batch_format, eot_id)
        return other

    def get_batch(self, indices: Any) -> Batch:
        """One vectorized gather: B windows -> inputs, targets of shape (B, max_length).

        Both are views of one (B, max_length + 1) int64 block: no copy beyond the gather.
        """
        return self.batch_at(self.starts(indices))

    def batch_at(self, starts: np.ndarray) -> Batch:
        """Like ``get_batch`` but from token offsets already known to be valid (the sampler's)."""
        rows = self.tokens.gather(starts, self.max_length + 1)  # (B, L + 1)
        if not self.format.plain:  # documents="mask" or another batch_format
            return self.format(rows)
        rows = torch.from_numpy(rows.astype(np.int64, copy=False))
        return rows[:, :-1], rows[:, 1:]  # (B, L), (B, L)

    def __getitem__(self, index: Any) -> Any:
        """``ds[3]`` (also ``ds[torch.tensor(3)]``, a 0-d index) -> one window, ``(L,)`` each;
        ``ds[0:4]``, ``ds[[0, 5]]`` or a 1-d tensor -> the batch of those windows, ``(B, L)``."""
        if isinstance(index, slice):
            # range() clamps like a list slice, without materializing every window index.
            r = range(*index.indices(self.n_windows))
            return self.get_batch(np.arange(r.start, r.stop, r.step, dtype=np.int64))
        if isinstance(index, (int, np.integer)) or getattr(index, "ndim", None) == 0:
            # operator.index: a 0-d integer tensor/array is an int; a float one raises TypeError.
            return take(self.get_batch([operator.index(index)]), 0)  # (L,) each
        return self.get_batch(index)

    def __getitems__(self, indices: list[int]) -> list[Any]:
        # DataLoader's batched fetch: one gather, then split into items for the collate_fn.
        batch = self.get_batch(indices)
        return [take(batch, i) for i in range(len(indices))]

    @property
    def fingerprint(self) -> str:
        return f"{self.tokens.fingerprint}:L{self.max_length}:S{self.stride}"

    def coverage(self) -> Coverage:
        """Targets are positions 1..N-1; window k covers (s_k, s_k + max_length]."""
        n, L, S, W = len(self.tokens), self.max_length, self.stride, self.n_windows
        last_end = (W - 1) * S + L  # last target position covered
        per_window_gap = max(S - L, 0)
        gap = per_window_gap * (W - 1)
        covered = W * L - max(L - S, 0) * (W - 1)
        tail = (n - 1) - last_end
        never = (n - 1) - covered
        assert never == gap + tail, (never, gap, tail)
        return Coverage(n, W, covered, never, gap, tail, W * L / covered)
