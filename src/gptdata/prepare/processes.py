"""The processes prepare starts besides its workers' pool, and how each one starts.

* ``_worker_init``: every child (a pool worker, the lister) ignores Ctrl-C, dies with the
  driver (PR_SET_PDEATHSIG on Linux, a watching thread everywhere) and gets its share of cores.
* ``run_apart``: one call in a short-lived process of its own, so that what it imports (an S3
  client: ~41 MiB, measured) leaves with it instead of staying in the driver and its workers.

    >>> run_apart(sum, [1, 2, 3])
    6
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _limit_threads(threads: int) -> None:
    """Worker start-up: give each worker its share of the cores, so that workers x the fast
    tokenizer's own threads never oversubscribe the machine (Rayon reads this at first use)."""
    os.environ["RAYON_NUM_THREADS"] = str(threads)


def _driver_gone(pid: int) -> bool:
    """Whether the driver ``pid`` has exited (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def _watch_driver(pid: int) -> None:
    while not _driver_gone(pid):
        time.sleep(0.5)
    os._exit(1)


def _worker_init(threads: int, driver: int) -> None:
    """A worker must never outlive its driver, nor print a traceback on Ctrl-C.

    Ctrl-C reaches the whole process group: workers ignore it and the driver stops them. A
    driver killed with SIGKILL cannot stop them: on Linux the kernel sends them SIGKILL
    (PR_SET_PDEATHSIG); everywhere a daemon thread polls the driver twice a second.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != driver and _driver_gone(driver):
        os._exit(1)  # the driver died before the prctl above took effect
    threading.Thread(target=_watch_driver, args=(driver,), daemon=True).start()
    _limit_threads(threads)


def run_apart(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a short-lived process of its own: what it imports leaves with it.

    prepare lists remote inputs this way: the ~41 MiB of RSS an S3 client costs (s3fs, aiohttp,
    botocore's service models; measured) is gone before the tokenizer is built and the workers
    fork, instead of held by the driver and copied into every worker. An error comes back as it
    was raised, without the child's traceback; Ctrl-C stops the child with the driver.

        >>> run_apart(sum, [1, 2, 3])
        6
    """
    import pickle
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    if multiprocessing.current_process().daemon:  # a pool's worker may not start processes
        return fn(*args)
    try:
        pickle.dumps(args)
    except Exception:  # e.g. a live session object among the storage options: run it here
        return fn(*args)
    pool = ProcessPoolExecutor(1, initializer=_worker_init, initargs=(1, os.getpid()))
    finished = False
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:  # as in LocalExecutor: no signal may hit the child while it starts
            future = pool.submit(fn, *args)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        try:
            result = future.result()
        except BrokenProcessPool:
            raise RuntimeError(
                f"the process running {getattr(fn, '__name__', fn)} exited unexpectedly "
                "(out of memory?). Run the same command again, with --debug for details."
            ) from None
        except Exception as exc:
            finished = True
            raise exc from None  # its one line, not the child's traceback as a cause
        finished = True
        return result
    finally:
        if not finished:
            for proc in list(pool._processes.values()):  # noqa: SLF001
                proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
