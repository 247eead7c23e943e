"""Eviction for ``ShardCache``: least recently used files go until the cache is within its limit.

A file goes only when its lock can be taken exclusively without waiting (no reader holds it, no
download is writing it); its lock file goes with it, and so does any lock file left without its
file (a failed download, a process killed mid-read), under the same rule. One evictor at a time
per cache folder (``shards/.evict.lock``), across processes; it never waits for a file's lock
while holding that gate (see ``storage.locks`` for the order).

    >>> removed, total = evict(Path("/tmp/c/shards"), 3000, room=1000)
    >>> total <= 3000 - 1000 or removed == []   # files in use stay, even above the limit
    True

Left out: choosing the limit (``store/`` warns when a pass's shards cannot fit in it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .locks import LockFile

LOCK_SUFFIX = ".lock"
GATE = ".evict.lock"
# store/ writes a remote store's manifest beside its cached files (a few KB), so the folder reads
# as the store; eviction leaves it, and a fetch never names it (shards and indexes only).
STORE_MANIFEST = "manifest.json"


def same_lock(path: Path, lock: LockFile) -> bool:
    """Whether ``lock`` is still ``path``'s lock file: a lock held on an unlinked one protects
    nothing (eviction unlinks lock files), so a holder checks this after taking it."""
    try:
        return os.stat(str(path) + LOCK_SUFFIX).st_ino == lock.inode()
    except FileNotFoundError:
        return False


def scan(directory: Path) -> tuple[list[tuple[int, int, Path]], list[Path]]:
    """Every cached file as (last use, size, path), least recently used first; and the files
    whose lock file is there without them (leftovers)."""
    found, locks = [], []
    if not directory.is_dir():
        return [], []
    for folder, _, names in os.walk(directory):
        top = Path(folder).parent == directory  # a store's own folder
        here = set(names)
        for name in names:
            if name.endswith(LOCK_SUFFIX):
                if name != GATE and name[: -len(LOCK_SUFFIX)] not in here:
                    locks.append(Path(folder) / name[: -len(LOCK_SUFFIX)])
                continue
            if name.endswith(".tmp") or (top and name == STORE_MANIFEST):
                continue  # a download in progress; the store's manifest, kept by store/
            p = Path(folder) / name
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            found.append((st.st_mtime_ns, st.st_size, p))
    return sorted(found), locks


def remove_unused(path: Path) -> bool:
    """Remove ``path`` and its lock file unless some process holds the lock (in use)."""
    try:
        lock = LockFile(str(path) + LOCK_SUFFIX, create=False)
    except FileNotFoundError:
        lock = LockFile(str(path) + LOCK_SUFFIX)  # no lock file: nobody can hold it
    try:
        if not lock.lock(wait=False):
            return False  # in use (or being downloaded) by some reader
        path.unlink(missing_ok=True)
        if same_lock(path, lock):  # a fetcher that opened it sees it gone and opens a new one
            os.unlink(str(path) + LOCK_SUFFIX)
    finally:
        lock.close()
    return True


def evict(
    directory: Path,
    limit: int,
    *,
    room: int = 0,
    busy: Callable[[Path], bool] = lambda p: False,
    wait: bool = True,
) -> tuple[list[Path], int | None]:
    """Remove least recently used files (not ``busy``, not in use) until their bytes + ``room``
    <= ``limit``. Returns what was removed and the bytes left (None: another evictor was busy
    and ``wait`` was off, so nothing was looked at)."""
    directory.mkdir(parents=True, exist_ok=True)
    removed: list[Path] = []
    gate = LockFile(directory / GATE)
    try:
        if not gate.lock(wait=wait):
            return [], None
        entries, leftovers = scan(directory)
        total = sum(size for _, size, _ in entries) + room
        for _, size, path in entries:
            if total <= limit:
                break
            if not busy(path) and remove_unused(path):
                removed.append(path)
                total -= size
        for path in leftovers:
            if not busy(path) and not path.exists():
                remove_unused(path)  # a lock file without its file: gone unless held
    finally:
        gate.close()
    return removed, total - room
