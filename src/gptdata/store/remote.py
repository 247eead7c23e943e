"""A token store on object storage, read through the local shard cache (``storage.ShardCache``).

``TokenStore.open("s3://bucket/stores/web", storage_options=..., cache_limit=...)`` lands here:
the manifest is read remotely and checked as a local one is (``check_manifest``, then each file's
size against the listing), and the splits map their shards from the cache,
``$GPTDATA_CACHE_DIR/shards/<store_id>/``, which is laid out like the store itself (so
``split.root`` is a folder of the same relative paths, filled on demand).

* **only what is read**: a shard is downloaded the first time a read touches it, never at open;
* **ahead of need**: ``plan_reads`` (the loader calls it with a rank's window order; with
  workers, each worker's copy gets the plan with its items) names the shards in the order they
  will be needed; touching one downloads the next ``AHEAD`` of them in background threads, so a
  cold cache waits on the first shard only; on a warm cache the first read maps the plan's cached
  shards at once, as a local split maps all of its shards;
* **verified once**: each file's sha256 is checked as it downloads (the cache's rule);
* **bounded**: without ``cache_limit`` every shard read stays mapped; with one, only as many as
  fit beside the ``AHEAD`` downloading (at least one) stay mapped (held in use), so the cache can
  evict the rest; one needed again is downloaded again; a plan whose shards need more than the
  limit warns once (each pass would download them again); when a pass ends (its workers gone)
  or the split closes, the cache is evicted back within the limit;
* **fork-safe**: a forked copy (a DataLoader worker) drops the shards its parent held (their locks
  stay the parent's, ``storage.locks``) and holds its own;
* **store_id**: checked against the remote manifest when a process first maps, and again when a
  download does not match its sha256: a replaced store fails with the loader's message.

    >>> store = TokenStore.open("s3://b/web", storage_options={"endpoint_url": "http://..."})
    >>> store.split("train").gather(np.array([0]), 4)
    array([[  40,  367, 2885, 1464]], dtype=uint16)

Left out: writing (``storage.commit``), and ranks' shard affinity (a rank reads the windows the
loader's order gives it, interleaved across ranks, so ranks may share shards).
"""

from __future__ import annotations

import json
import os
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..storage import CachedShard, Location, RemoteFile, ShardCache, StorageError
from .manifest import MANIFEST
from .remote_open import remote_store_id
from .split import Shard, Split, StoreError

AHEAD = 2  # shards downloading ahead of the one being read

# (store_id, split, cache_limit, bytes needed) already warned about in this process: once each.
_WARNED: set[tuple[str, str, int, int]] = set()

# Processes that opened a remote store: its cache folder -> the store, so code that reopens a
# split's store by ``TokenStore.open(split.root)`` (tokenizer lookups, eval) finds it again.
OPENED: dict[Path, Any] = {}


class _Lazy(Sequence[Any]):
    """Per shard, made on first index: ``Split``'s reads index it like their list of maps."""

    def __init__(self, n: int, make: Any) -> None:
        self._n, self._make = n, make

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, k: Any) -> Any:
        if isinstance(k, slice):
            return [self._make(i) for i in range(self._n)[k]]
        if not -self._n <= k < self._n:
            raise IndexError(k)
        return self._make(k % self._n)


class _Pending:
    """An unmapped shard's entry in the list of views: the first index maps it."""

    __slots__ = ("fill",)

    def __init__(self, fill: Any) -> None:
        self.fill = fill

    def __getitem__(self, rows: Any) -> Any:
        return self.fill()[rows]


class RemoteSplit(Split):
    """A ``Split`` whose shards come from the cache on first touch; pickles as URL + options."""

    def __init__(
        self,
        location: Location,
        cache_dir: Path | None,
        cache_limit: int | None,
        root: Path,
        name: str,
        shards: list[Shard],
        dtype: np.dtype,
        eot_id: int | None,
        fingerprint: str,
        store_id: str,
    ) -> None:
        super().__init__(root, name, shards, dtype, eot_id, fingerprint, store_id)
        self.location, self.cache_dir, self.cache_limit = location, cache_dir, cache_limit
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._cache: ShardCache | None = None
        # Shards kept mapped. Unbounded without a limit: a shuffled batch touches most shards, and
        # remapping each per batch would cost a lock, stats and a map per shard per batch.
        biggest = max((s.tokens for s in self.shards), default=1) * self.dtype.itemsize
        self._mapped = len(self.shards) if self.cache_limit is None else max(
            1, self.cache_limit // max(biggest, 1) - AHEAD
        )  # fmt: skip
        self._held: OrderedDict[int, tuple[np.memmap, CachedShard]] = OrderedDict()
        self._plan: list[int] = []
        self._plan_at: dict[int, int] = {}  # shard -> its place in the plan
        self._front = -1  # the furthest place in the plan read so far
        self._checked = False
        self._vlist: list[Any] = []  # see _windows
        self._view_length = 0

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for key in ("_pid", "_cache", "_mapped", "_held", "_plan", "_plan_at", "_front",
                    "_checked", "_vlist", "_view_length"):  # fmt: skip
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def _forked(self) -> None:
        # A forked copy holds nothing: its copies of the parent's locks were closed at the fork
        # (storage.locks), so it maps and holds its own (the parent's maps stay the parent's).
        if self._pid != os.getpid():
            self._reset()

    @property
    def cache(self) -> ShardCache:
        if self._cache is None:
            self._cache = ShardCache(self.cache_dir, limit=self.cache_limit)
        return self._cache

    @property
    def downloads(self) -> int:
        """Files this process downloaded for this split (cache hits excluded)."""
        return 0 if self._cache is None else self._cache.downloads

    def _replaced(self, problem: str) -> StoreError:
        return StoreError(
            f"{self.location.url}: the store was replaced while being read ({problem}). Open it "
            "again with TokenStore.open and restart the reader; never replace a store in use."
        )

    def _check_store_id(self) -> None:
        # One GET of the manifest, no listing: this runs in every process that reads the split.
        try:
            manifest = json.loads(self.location.child(MANIFEST).read_bytes())
            now = remote_store_id(manifest) if isinstance(manifest, dict) else "?"
        except (OSError, ValueError):  # StorageError (not found) or a manifest cut mid-write
            now = "missing"
        if now != self.store_id:
            raise self._replaced(f"store_id {self.store_id} when opened, {now} now")

    def _reopen(self) -> Any:
        # Once per process: a store replaced since open (another store_id) is refused here.
        if not self._checked:
            self._check_store_id()
            self._checked = True
        return _Lazy(len(self.shards), self._map)

    def _windows(self, length: int) -> list[Any]:
        # A plain list, as Split.gather indexes it on every batch: a mapped shard's entry is its
        # view, an unmapped one's a stand-in that maps it when first indexed. A Python call per
        # batch cost 7 us more than local disk's 25 us gathers (measured); a list lookup, none.
        if self._pid != os.getpid():
            self._forked()
        if self._view_length != length:
            self._memmaps()  # the once-per-process store_id check, before any read
            self._view_length = length
            self._vlist = [self._pending(k) for k in range(len(self.shards))]
            self._map_cached()
        return self._vlist

    def _map_cached(self) -> None:
        # The first read maps the plan's shards already in the cache, as a local split maps all
        # of its shards on its first read: mapped lazily, each cost ~0.4 ms (a lock, ~16 stats, a
        # map) inside the pass, and 24 of them made a warm pass 0.88x local (bench/remote.py).
        sid = str(self.store_id)
        here = [self.cache.has(self._data(k), store_id=sid) for k in self._plan]
        for at, k in enumerate(self._plan):
            if len(self._held) >= self._mapped:
                break
            if not here[at] or self._vlist[k] is None:
                continue
            m = self._map(k, ahead=False)
            if all(here[at + 1 : at + 1 + AHEAD]):  # nothing to start when it is read: a view
                self._vlist[k] = sliding_window_view(m, self._view_length)
            # else its stand-in stays: its first read starts the downloads that follow it

    def _pending(self, k: int) -> Any:
        if self.shards[k].tokens < self._view_length:
            return None  # as Split: a shard shorter than a window has no view
        return _Pending(lambda: self._fill(k))

    def _fill(self, k: int) -> np.ndarray:
        view = sliding_window_view(self._map(k), self._view_length)
        self._vlist[k] = view
        return view

    def _file(self, rel: str, sha256: str, size: int) -> CachedShard:
        try:
            return self.cache.fetch(
                self.location, RemoteFile(rel, sha256, size), store_id=str(self.store_id)
            )
        except StorageError as exc:
            if "does not match its manifest" in str(exc):
                self._check_store_id()  # replaced: the loader's message; else damaged: exc
            raise

    def _map(self, k: int, *, ahead: bool = True) -> np.memmap:
        if k in self._held:
            self._held.move_to_end(k)
            at = self._plan_at.get(k)
            if at is not None and at > self._front:  # moved on in the plan: fetch what follows
                self._prefetch_after(k)
            return self._held[k][0]
        f = self._data(k)
        held = self._file(f.rel, f.sha256, f.size or 0)
        m = np.memmap(held.path, dtype=self.dtype, mode="r")
        self._held[k] = (m, held)
        while len(self._held) > self._mapped:  # unheld, the cache may evict it (the map stays)
            gone, (_, old) = self._held.popitem(last=False)
            if self._view_length:
                self._vlist[gone] = self._pending(gone)
            old.release()
        if ahead:
            self._prefetch_after(k)
        return m

    def _data(self, k: int) -> RemoteFile:
        s = self.shards[k]
        return RemoteFile(s.file, s.sha256, s.tokens * self.dtype.itemsize)

    def _prefetch(self, ks: list[int]) -> None:
        files = [self._data(j) for j in ks if j not in self._held]
        if files:
            self.cache.prefetch(self.location, files, store_id=str(self.store_id))

    def _prefetch_after(self, k: int) -> None:
        # Without a plan, download only what is read: guessing "the next shard" would fetch
        # shards a rank never touches.
        at = self._plan_at.get(k)
        if at is not None:
            self._front = max(self._front, at)
            self._prefetch(self._plan[at + 1 : at + 1 + AHEAD])

    def read_plan(self, starts: np.ndarray, length: int) -> list[int]:
        """The shards windows ``tokens[s : s + length]`` touch, in the order they first do.

        starts [0, 900, 10], shards of 500 tokens, length 20 -> [0, 1] (shard 1 holds 900)
        """
        starts = np.asarray(starts, dtype=np.int64)
        if not starts.size:
            return []
        first = np.searchsorted(self._starts, starts, side="right") - 1
        last = np.searchsorted(self._starts, starts + length - 1, side="right") - 1
        both = np.stack([first, last], axis=1).ravel()  # (2B,): in order of need
        _, at = np.unique(both, return_index=True)
        plan = [int(both[i]) for i in sorted(at) if both[i] >= 0]
        self._warn_if_thrashing(plan)
        return plan

    def _warn_if_thrashing(self, plan: list[int]) -> None:
        # Measured: 16 shards of 40 KB under a 100 KB limit took 61-79 s a pass (every shard
        # evicted before it was read again), 0.05 s under 10 MB. Said once, not per pass.
        need = sum(self._data(k).size or 0 for k in plan)
        limit = self.cache_limit
        key = (str(self.store_id), self.name, limit or 0, need)
        if limit is None or need <= limit or key in _WARNED:
            return
        _WARNED.add(key)
        warnings.warn(
            f"cache_limit={limit:,} bytes is less than the {need:,} bytes of the {len(plan):,} "
            f"shards this pass reads from {self.location.url} ({self.name}): shards are evicted "
            "before they are read again, so each pass downloads them again. Raise --cache-limit "
            f"(cache_limit= in Python) to at least {need:,} bytes.",
            stacklevel=3,
        )

    def follow_plan(self, plan: Sequence[int]) -> None:
        """Read shards in ``plan``'s order from now on: touching one downloads the next ``AHEAD``.

        A loader's worker gets the plan with its items and follows it once per pass (its copy of
        the split was made before the order was drawn); ``plan_reads`` is both steps in one process.
        """
        self._forked()
        self._plan = [int(k) for k in plan]
        self._plan_at = {k: i for i, k in enumerate(self._plan)}
        self._front = -1
        # Nothing downloads yet: the first read fetches its shard alone (the one wait on a cold
        # cache, not shared with prefetches) and starts the next ones as it lands.

    def plan_reads(self, starts: np.ndarray, length: int) -> None:
        """``follow_plan(read_plan(starts, length))``: plan this process's reads of a pass."""
        self.follow_plan(self.read_plan(starts, length))

    def fetch_all(self, *, masks: bool = False, data: bool = False) -> list[CachedShard]:
        """Hold every index (and mask, and data file) in the cache: for reads of whole files."""
        held = []
        for s in self.shards:
            held.append(self._file(s.index, s.index_sha256, s.documents * 8))
            if masks and s.mask is not None:
                held.append(self._file(s.mask["file"], s.mask["sha256"], (s.tokens + 7) // 8))
            if data:
                held.append(self._file(s.file, s.sha256, s.tokens * self.dtype.itemsize))
        return held

    def document_ends(self) -> np.ndarray:
        held = self.fetch_all()
        try:
            return super().document_ends()
        finally:
            for h in held:
                h.release()

    def response_mask(self, start: int = 0, stop: int | None = None) -> np.ndarray | None:
        if not self.has_masks:
            return None
        held = self.fetch_all(masks=True)
        try:
            return super().response_mask(start, stop)
        finally:
            for h in held:
                h.release()

    def end_pass(self) -> None:
        """A pass ended (the loader calls this once its workers are gone): stop downloading ahead
        (queued prefetches dropped, running ones land) and evict the cache back within
        ``cache_limit``, the workers' shards being free now. One scan."""
        if self._pid != os.getpid():
            return
        if self._cache is not None:
            self._cache.close()
        if self.cache_limit is not None:
            self.cache.evict()

    def close(self) -> None:
        """Release the mapped shards, stop the download threads, evict back within the limit."""
        self._forked()
        for _, held in self._held.values():
            held.release()
        self._held.clear()
        self._maps, self._views, self._vlist, self._view_length = None, {}, [], 0
        if self._cache is not None:
            self.end_pass()
