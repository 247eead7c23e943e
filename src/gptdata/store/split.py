"""One split of a token store as a single logical token array: ``Split``, and its ``Shard`` files.

A split's tokens are its shards in manifest order, with the end-of-text ID implied between two
shards; ``Split`` maps each shard lazily (a memmap per process, never loaded whole) and reads
ranges and batches of windows across the boundaries. ``store.TokenStore.split`` makes one; also
here is ``StoreError``, which both raise. ``store`` re-exports all three, and is where callers
import them from.

    >>> train = TokenStore.open("store/").split("train")
    >>> train.gather(np.array([0, 10]), 4).shape  # two windows of 4 tokens
    (2, 4)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .manifest import map_shards
from .masks import read_mask


class StoreError(ValueError):
    """A token store that is missing, corrupt, or of an unknown format; names the file."""


@dataclass(frozen=True)
class Shard:
    """One shard file of a split, as the manifest describes it."""

    file: str
    index: str
    tokens: int
    documents: int
    sha256: str
    index_sha256: str
    # Instruction stores: {"file", "sha256", "bits"}, one bit per token (1 = response); see masks.
    mask: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class Split:
    """One split as a single logical token array (a lazy memmap per shard, never loaded whole).

    Pickles as paths and counts only; each process opens its own memmaps on first use.
    """

    def __init__(
        self,
        root: Path,
        name: str,
        shards: list[Shard],
        dtype: np.dtype,
        eot_id: int | None,
        fingerprint: str,
        store_id: str | None = None,
    ) -> None:
        self.root, self.name, self.shards, self.dtype = root, name, shards, dtype
        self.eot_id = eot_id
        self.fingerprint = fingerprint  # identifies the store and split, for loader state
        self.store_id = store_id  # the commit this split was opened from; None in older stores
        sizes = np.array([s.tokens for s in shards], dtype=np.int64)
        # Shard k starts after shards 0..k-1 and one implied separator after each.
        self._starts = np.concatenate([[0], np.cumsum(sizes + 1)[:-1]]).astype(np.int64)
        self._sizes = sizes
        self.n_tokens = int(sizes.sum() + max(len(shards) - 1, 0))
        self.n_documents = sum(s.documents for s in shards)
        self._maps: list[np.memmap] | None = None
        self._views: dict[int, list[np.ndarray | None]] = {}  # window length -> per-shard views

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = None  # memmaps reopen lazily in the worker
        state["_views"] = {}
        return state

    def _memmaps(self) -> list[np.memmap]:
        if self._maps is None:
            self._maps = self._reopen()
        return self._maps

    def _reopen(self) -> list[np.memmap]:
        """Map the shards, then check they are this store's: once per process, never per batch.

        Map first, check after: a later commit has another ``store_id``, so an id that still
        matches means the maps hold this commit's bytes (open maps keep a replaced file's).
        """
        maps, problem = map_shards(self.root, self.shards, self.dtype, self.store_id)
        if problem:
            raise StoreError(
                f"{self.root}: the store was replaced while being read ({problem}). Open it again "
                "with TokenStore.open and restart the reader; never replace a store in use."
            )
        return maps

    def __len__(self) -> int:
        """Tokens in the split's stream: its documents' tokens plus one end-of-text separator
        between consecutive documents (stored inside a shard, implied between shards).

        3 documents of 4, 2 and 5 tokens -> 4 + 2 + 5 + 2 separators = 13
        """
        return self.n_tokens

    def __repr__(self) -> str:
        return (
            f"Split({self.name!r}, tokens={self.n_tokens:,}, documents={self.n_documents:,}, "
            f"shards={len(self.shards)})"
        )

    def __getitem__(self, key: slice | int) -> np.ndarray | int:
        if isinstance(key, (int, np.integer)):
            i = int(key) + (self.n_tokens if key < 0 else 0)
            if not 0 <= i < self.n_tokens:
                raise IndexError(f"token {key} is outside 0..{self.n_tokens - 1}")
            return int(self._slice(i, i + 1)[0])
        start, stop, step = key.indices(self.n_tokens)
        if step < 0:  # like NumPy: read the covered range once, then walk it backwards
            picked = range(start, stop, step)
            if not picked:
                return np.empty(0, dtype=self.dtype)
            return self._slice(picked[-1], picked[0] + 1)[::step]
        if step != 1:
            return self._slice(start, max(start, stop))[::step]
        return self._slice(start, max(start, stop))

    def _slice(self, start: int, stop: int) -> np.ndarray:
        if stop > start and (start < 0 or stop > self.n_tokens):  # empty ranges stay empty
            raise IndexError(
                f"tokens[{start}:{stop}] reads past the split {self.name!r}, which holds "
                f"tokens 0..{self.n_tokens - 1}."
            )
        maps = self._memmaps()
        parts: list[np.ndarray] = []
        first = int(np.searchsorted(self._starts, start, side="right") - 1)
        for k in range(max(first, 0), len(maps)):
            s0 = int(self._starts[k])
            if k > 0 and start < s0 <= stop:  # the implied separator at s0 - 1, before shard k
                parts.append(np.array([self.eot_id], dtype=self.dtype))
            if s0 >= stop:
                break
            lo, hi = max(start - s0, 0), min(stop - s0, int(self._sizes[k]))
            if hi > lo:
                parts.append(np.asarray(maps[k][lo:hi]))
        out = np.concatenate(parts) if parts else np.empty(0, dtype=self.dtype)
        if len(out) != max(stop - start, 0):  # a shard shorter than the manifest says
            raise StoreError(
                f"{self.root}: tokens[{start}:{stop}] of split {self.name!r} came back with "
                f"{len(out):,} tokens; a shard is shorter than the manifest says. Run gptdata "
                "verify."
            )
        return out

    def _windows(self, length: int) -> list[np.ndarray | None]:
        """Per shard, a zero-copy ``(size - length + 1, length)`` view of all its windows."""
        views = self._views.get(length)
        if views is None:
            views = [
                sliding_window_view(m, length) if len(m) >= length else None
                for m in self._memmaps()
            ]
            self._views = {length: views}  # a loader uses one length: keep just the last
        return views

    def _past(self, start: int, length: int) -> IndexError:
        return IndexError(
            f"window tokens[{start}:{start + length}] reads past the split {self.name!r}, which "
            f"holds tokens 0..{self.n_tokens - 1}."
        )

    def gather(self, starts: np.ndarray, length: int) -> np.ndarray:
        """Rows ``tokens[s : s + length]`` for each start, as one (len(starts), length) array.

        A row take from each shard's window view: numpy copies whole rows, 10-30x faster than
        an index array of B x length positions (measured for B=8..512, length=257..1025). Only
        windows that cross a shard boundary are cut by hand. A start past the end raises.
        """
        starts = np.asarray(starts, dtype=np.int64)
        if length < 1:
            raise ValueError(f"length={length} must be >= 1.")
        views = self._windows(length)
        if len(views) == 1 and views[0] is not None:  # the common case: no boundary to cross
            # numpy refuses rows past the last window itself; only a negative start would wrap.
            if starts.size and starts.min() < 0:
                raise self._past(int(starts.min()), length)
            try:
                return views[0][starts]  # (B, length)
            except IndexError:
                raise self._past(int(starts.max()), length) from None
        if not views:
            if starts.size:
                raise self._past(int(starts[0]), length)
            return np.empty((0, length), dtype=self.dtype)
        out = np.empty((len(starts), length), dtype=self.dtype)  # (B, length)
        shard = np.searchsorted(self._starts, starts, side="right") - 1
        local = starts - self._starts[shard]
        inside = local + length <= self._sizes[shard]
        ks = np.unique(shard[inside])
        if len(ks) and ks[0] < 0:  # a negative start lies before shard 0 (sorted: free to see)
            raise self._past(int(starts.min()), length)
        for k in ks:
            rows = np.flatnonzero(inside & (shard == k))
            out[rows] = views[k][local[rows]]  # (b, length)
        for row in np.flatnonzero(~inside):  # _slice raises past the end
            out[row] = self._slice(int(starts[row]), int(starts[row]) + length)
        return out

    def document_ends(self) -> np.ndarray:
        """Cumulative document end offsets in split coordinates (int64, one per document)."""
        ends = [
            np.fromfile(self.root / s.index, dtype="<u8").astype(np.int64) + self._starts[k]
            for k, s in enumerate(self.shards)
        ]
        return np.concatenate(ends) if ends else np.empty(0, dtype=np.int64)

    def document_lengths(self) -> np.ndarray:
        """Tokens per document (separators excluded)."""
        ends = self.document_ends()
        starts = np.concatenate([[0], ends[:-1] + 1])
        return ends - starts

    @property
    def has_masks(self) -> bool:
        """Whether every shard carries a response mask (stores prepared with instructions)."""
        return bool(self.shards) and all(s.mask is not None for s in self.shards)

    def response_mask(self, start: int = 0, stop: int | None = None) -> np.ndarray | None:
        """Per token of ``tokens[start:stop]``, True on response tokens; None without masks.

        An example's end-of-text (the separator after it, implied between shards) is response:
        the book trains it. prompt [0, 0], response [1], next example -> [F, F, T, T(eot), ...]
        """
        if not self.has_masks:
            return None
        stop = self.n_tokens if stop is None else min(stop, self.n_tokens)
        start = max(start, 0)
        return read_mask(self.root, self.shards, self._starts, start, stop)

    def iter_chunks(self, chunk: int = 1 << 24) -> Iterator[np.ndarray]:
        for start in range(0, self.n_tokens, chunk):
            yield self._slice(start, min(start + chunk, self.n_tokens))
