"""Lock files (``flock``) that a forked process never keeps holding for its parent.

An ``flock`` belongs to the open file description, and a forked child shares its parent's: a
DataLoader worker forked while a prefetch thread of its parent held ``shards/.evict.lock`` kept
that lock alive after the thread closed its descriptor, so every later evictor (the parent's
threads, the workers themselves) waited on it forever, each holding its shard's download lock that
the others waited to read. So every lock descriptor the cache opens is opened here, and a forked
child closes its copies at once (``os.register_at_fork``): closing a copy drops only the child's
reference, the parent's lock stays as it was (``LOCK_UN`` would drop it for both, so never that).

    >>> lock = LockFile("/tmp/c/shards/x.bin.lock")
    >>> lock.lock(shared=True)          # blocks until no writer holds it
    True
    >>> lock.close()                    # drops the lock (in this process; a no-op in a child)

Lock order in the cache (a holder never waits for a lock to its left): a file's lock, then
``.evict.lock``, then a ``ShardCache``'s thread guard; the evictor only *tries* file locks
(non-blocking), and nobody waits for a file lock while holding ``.evict.lock``.
"""

from __future__ import annotations

import fcntl
import os
import threading

# Held around open+register and close+unregister, and across a fork (so a child never sees a
# descriptor opened but not yet registered). Reentrant: a CachedShard's __del__ may run (GC)
# inside one of these sections in the same thread. Nobody blocks while holding it.
_GUARD = threading.RLock()
_OPEN: set[int] = set()  # lock descriptors this process opened and has not closed


def _after_fork_in_child() -> None:
    for fd in _OPEN:
        try:
            os.close(fd)  # the child's copy only: the parent's lock stays held by the parent
        except OSError:
            pass
    _OPEN.clear()
    _GUARD.release()


os.register_at_fork(
    before=_GUARD.acquire, after_in_parent=_GUARD.release, after_in_child=_after_fork_in_child
)


class LockFile:
    """An open lock file: ``lock`` it (shared or exclusive), ``close`` to drop the lock.

    A ``LockFile`` copied into a forked child is closed there already: its ``close`` does nothing
    (the descriptor number may belong to another file by then).
    """

    __slots__ = ("fd", "_pid")

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
        with _GUARD:
            self.fd = os.open(path, flags, 0o644)  # FileNotFoundError without create
            _OPEN.add(self.fd)
        self._pid = os.getpid()

    def lock(self, *, shared: bool = False, wait: bool = True) -> bool:
        """Take the lock; False when ``wait`` is off and another holder has it."""
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(self.fd, mode)
        except BlockingIOError:
            return False
        return True

    def inode(self) -> int:
        return os.fstat(self.fd).st_ino

    def close(self) -> None:
        with _GUARD:
            if self.fd >= 0 and self._pid == os.getpid():
                os.close(self.fd)
                _OPEN.discard(self.fd)
            self.fd = -1

    @property
    def closed(self) -> bool:
        return self.fd < 0 or self._pid != os.getpid()
