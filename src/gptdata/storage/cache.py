"""A local cache of a remote store's shards: verified once, least recently used evicted.

``ShardCache.fetch`` returns a local path for one file of a remote store (a ``.bin`` or ``.idx``
the manifest lists with its sha256), downloading it the first time:

* **namespaced by store**: ``CACHE/shards/<store_id>/<file>``, so a store replaced at the same
  URL (a new ``store_id``) never serves the old one's shards;
* **verified once**: the download is hashed as it streams into ``<file>.<random>.tmp``, checked
  against the manifest's sha256, then renamed into place, so no reader ever sees half a file and
  a hit costs one ``stat`` (the size is checked, not the hash);
* **safe across processes**: every file has ``<file>.lock``; a download holds it exclusively
  (others wait for that one download, none repeats it) and a reader holds it shared for as long
  as it uses the file, so eviction (exclusive, non-blocking) never removes a file in use; a
  forked process drops its copies of the parent's locks (``storage.locks``);
* **bounded**: after each download the least recently used files (by mtime, set on every hit)
  go until the cache is within ``limit`` bytes (``storage.eviction``); files in use stay, even
  above the limit, and when one is released the cache comes back within it;
* **ahead of need**: ``prefetch`` and ``stream`` download the next files in background threads.

    >>> cache = ShardCache(limit=20 << 30)          # $GPTDATA_CACHE_DIR/shards, 20 GiB
    >>> with cache.fetch(store, RemoteFile("shards/00000.train.000.bin", sha, 9262),
    ...                  store_id="7d2c...") as path:
    ...     tokens = np.memmap(path, dtype="<u2", mode="r")

Left out: reading the manifest (``store/``'s job) and checking a store's other fields.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .eviction import LOCK_SUFFIX, evict, same_lock, scan
from .locks import LockFile
from .sizes import cache_limit_bytes
from .urls import CHUNK, Location, StorageError

_STORE_ID = re.compile(r"[0-9a-zA-Z_-]{1,64}")


def default_cache_dir() -> Path:
    """``$GPTDATA_CACHE_DIR``, else ``$XDG_CACHE_HOME/gptdata``, else ``~/.cache/gptdata``.

    The same rule as ``tokenizers.gpt2files.cache_dir`` (this stage sits below it, so it is
    repeated, not imported); shards live in its ``shards/`` folder.
    """
    if env := os.environ.get("GPTDATA_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gptdata"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a remote store as its manifest lists it: relative path, sha256, size."""

    rel: str
    sha256: str
    size: int | None = None


class CachedShard:
    """A cached file in use: ``path`` stays on disk until ``release`` (or the ``with`` ends)."""

    def __init__(self, path: Path, lock: LockFile, cache: ShardCache | None = None) -> None:
        self.path = path
        self._lock = lock
        self._cache = cache

    def release(self) -> None:
        """Drop the shared lock: eviction may take the file now (and does, if over the limit)."""
        if not self._lock.closed:
            self._lock.close()
            if self._cache is not None:
                self._cache.released()
        self._cache = None

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        # Only the lock: an eviction from here (GC, at any point) could wait on a gate this very
        # thread holds.
        self._lock.close()


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _download_hashed(src: Location, tmp: Path) -> tuple[str, int]:
    """Download ``src`` to ``tmp`` and return its sha256 and size, hashing as the file grows.

    The filesystem's own streaming ``get_file`` writes ``tmp`` in a thread while this one hashes
    what has landed (still in the page cache), so the hash overlaps the download: faster than
    hashing 8 MiB ranged reads as they come, whose requests cost more than the hash (measured
    with bench/remote.py), and never more than a chunk in memory. A download that rewrote bytes
    already hashed (a retry) is hashed again from the file, so the sum is always the file's.
    """
    tmp.touch()
    done = threading.Event()
    failure: list[BaseException] = []

    def download() -> None:
        try:
            src.get_file(tmp)
        except BaseException as exc:  # re-raised in the calling thread
            failure.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=download, name="gptdata-download", daemon=True)
    worker.start()
    digest, size = hashlib.sha256(), 0
    with open(tmp, "rb") as fh:
        while True:
            finished = done.is_set()  # read before the chunk: nothing lands after a final read
            chunk = fh.read(CHUNK)
            if chunk:
                digest.update(chunk)
                size += len(chunk)
            elif finished:
                break
            else:
                done.wait(0.002)
    worker.join()
    if failure:
        raise failure[0]
    if size != tmp.stat().st_size:
        return _hash_file(tmp)
    return digest.hexdigest(), size


def _safe_rel(rel: str) -> str:
    parts = rel.split("/")
    if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in rel:
        raise ValueError(f"{rel!r} is not a relative, normalized path inside a store")
    if rel.endswith((LOCK_SUFFIX, ".tmp")):
        raise ValueError(f"{rel!r} ends like the cache's own files ({LOCK_SUFFIX}, .tmp)")
    return rel


class ShardCache:
    """Local copies of remote store files, verified once, within ``limit`` bytes.

    ``limit`` None means no limit. ``workers`` background threads download ahead (prefetch);
    None: one per core, 2 to 8.

        >>> cache = ShardCache(Path("/tmp/c"), limit=1 << 30)
        >>> cache.directory
        PosixPath('/tmp/c/shards')
    """

    def __init__(
        self, root: str | os.PathLike[str] | None = None, *, limit: int | str | None = None,
        workers: int | None = None,
    ) -> None:  # fmt: skip
        # One download thread per core, 2 to 8: on 2 cores 4 threads fetched 0.71x of s3fs
        # ``get`` and 2 threads 0.85x (bench/remote.py), the hashing competing for the cores.
        workers = workers if workers is not None else max(2, min(8, os.cpu_count() or 1))
        if workers < 1:
            raise ValueError(f"workers={workers} must be at least 1")
        self.directory = Path(root if root is not None else default_cache_dir()) / "shards"
        self.limit = cache_limit_bytes(limit)  # bytes, or "10GB" as --cache-limit takes it
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[Path, Future[None]] = {}
        self._guard = threading.Lock()
        self._pid = os.getpid()
        self._over = False  # the last eviction left the cache above its limit (files in use)
        self.downloads = 0  # files this object downloaded (hits and others' downloads excluded)

    # -- paths and locks ---------------------------------------------------------------------

    def path_for(self, store_id: str, rel: str) -> Path:
        if not _STORE_ID.fullmatch(store_id):
            raise ValueError(f"store_id={store_id!r} is not a store id (hex digits)")
        return self.directory / store_id / _safe_rel(rel)

    @staticmethod
    def _open_lock(path: Path) -> LockFile:
        path.parent.mkdir(parents=True, exist_ok=True)
        return LockFile(str(path) + LOCK_SUFFIX)

    # -- fetch -----------------------------------------------------------------------------

    def fetch(self, store: Location, file: RemoteFile, *, store_id: str) -> CachedShard:
        """The local copy of ``store/file.rel``, downloaded and verified if needed, held in use.

        Raises ``StorageError`` when the remote bytes do not match ``file.sha256`` (the store
        was replaced or damaged), naming the URL and both sums.
        """
        path = self.path_for(store_id, file.rel)
        self._forked()
        self._wait_pending(path)
        return self._fetch(store, file, path)

    def _forked(self) -> None:
        # A forked process (a DataLoader worker) inherits the pool without its threads, futures
        # no thread will finish (waiting on one would hang) and the guard as a thread held it at
        # the fork. It starts its own; its copies of lock files were closed (storage.locks).
        if self._pid != os.getpid():
            self._pid, self._pool, self._pending = os.getpid(), None, {}
            self._guard = threading.Lock()
            self._over = False

    def _fetch(self, store: Location, file: RemoteFile, path: Path) -> CachedShard:
        while True:
            lock = self._open_lock(path)
            try:
                lock.lock(shared=True)
                if not same_lock(path, lock):
                    lock.close()
                    continue
                if self._complete(path, file):
                    self._touch(path)
                    return CachedShard(path, lock, self)
                lock.lock()  # one download; other readers wait for it
                if not same_lock(path, lock):
                    lock.close()
                    continue
                if not self._complete(path, file):
                    self._download(store, file, path)
                lock.lock(shared=True)
                if not self._complete(path, file):  # evicted between our two locks: again
                    lock.close()
                    continue
            except BaseException:
                lock.close()
                raise
            self._touch(path)
            self.evict(keep=path)
            return CachedShard(path, lock, self)

    def has(self, file: RemoteFile, *, store_id: str) -> bool:
        """Whether ``file`` is in the cache, whole, now: one ``stat`` (not held, so it may go)."""
        return self._complete(self.path_for(store_id, file.rel), file)

    @staticmethod
    def _complete(path: Path, file: RemoteFile) -> bool:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return False
        return file.size is None or size == file.size  # a truncated copy is fetched again

    @staticmethod
    def _touch(path: Path) -> None:
        os.utime(path, ns=(time.time_ns(), time.time_ns()))  # mtime = last use, for LRU

    def _download(self, store: Location, file: RemoteFile, path: Path) -> None:
        src = store.child(file.rel)
        if self.limit is not None and file.size is not None and file.size > self.limit:
            raise StorageError(
                f"{src.url} is {file.size:,} bytes, more than the whole cache limit "
                f"({self.limit:,} bytes). Raise --cache-limit to at least {file.size:,}."
            )
        if file.size is not None:
            self.evict(keep=path, room=file.size)
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            got, size = _download_hashed(src, tmp)
            if got != file.sha256:  # hashed as it grew: make sure from the finished file
                got, size = _hash_file(tmp)
            if got != file.sha256 or (file.size is not None and size != file.size):
                raise StorageError(
                    f"{src.url} does not match its manifest: sha256 {got[:16]}... "
                    f"({size:,} bytes), expected {file.sha256[:16]}... "
                    f"({'?' if file.size is None else f'{file.size:,}'} bytes). The store was "
                    "replaced or damaged; open it again, or run `gptdata verify` on it."
                )
            os.replace(tmp, path)  # whole and verified, or not there at all
        finally:
            tmp.unlink(missing_ok=True)
        self.downloads += 1

    # -- prefetch --------------------------------------------------------------------------

    def prefetch(self, store: Location, files: Iterable[RemoteFile], *, store_id: str) -> None:
        """Download ``files`` in background threads (not held in use; errors surface in fetch)."""
        self._forked()
        for file in files:
            path = self.path_for(store_id, file.rel)
            with self._guard:
                if path in self._pending or self._complete(path, file):
                    continue
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        self.workers, thread_name_prefix="gptdata-fetch"
                    )
                self._pending[path] = self._pool.submit(self._fetch_released, store, file, store_id)

    def _fetch_released(self, store: Location, file: RemoteFile, store_id: str) -> None:
        path = self.path_for(store_id, file.rel)
        try:
            self._fetch(store, file, path).release()  # not fetch(): it would wait on itself
        finally:
            with self._guard:
                self._pending.pop(path, None)

    def _wait_pending(self, path: Path) -> None:
        with self._guard:
            fut = self._pending.get(path)
        if fut is not None:
            try:
                fut.result()
            except Exception:
                pass  # fetch() downloads again and raises the error itself

    def stream(
        self, store: Location, files: list[RemoteFile], *, store_id: str, ahead: int = 2
    ) -> Iterator[CachedShard]:
        """Each file in order, held in use while the caller reads it, the next ``ahead`` downloading.

        The caller releases each (or uses ``with``); only the first file is waited for cold.
        """
        for i, file in enumerate(files):
            self.prefetch(store, files[i + 1 : i + 1 + ahead], store_id=store_id)
            yield self.fetch(store, file, store_id=store_id)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # -- eviction --------------------------------------------------------------------------

    def entries(self) -> list[tuple[int, int, Path]]:
        """Every cached file as (last use in ns, size, path), least recently used first."""
        return scan(self.directory)[0]

    def size(self) -> int:
        """Bytes of verified files in the cache now."""
        return sum(size for _, size, _ in self.entries())

    def evict(self, *, keep: Path | None = None, room: int = 0, wait: bool = True) -> list[Path]:
        """Remove least recently used files not in use until ``size() + room <= limit``.

        Returns what was removed. One evictor at a time (``shards/.evict.lock``), across
        processes; ``wait=False`` leaves it to the one at work, if any.
        """
        if self.limit is None:
            return []
        self._forked()
        removed, left = evict(
            self.directory, self.limit, room=room, wait=wait,
            busy=lambda p: p == keep or self._pending_path(p),
        )  # fmt: skip
        if left is not None:
            self._over = left > self.limit
        return removed

    def released(self) -> None:
        """A file of this cache was released: evict, if the last eviction had to stop above the
        limit for files in use (one flag test otherwise: no scan per release)."""
        if self._over and self._pid == os.getpid():
            self.evict(wait=False)

    def _pending_path(self, path: Path) -> bool:
        with self._guard:
            return path in self._pending
