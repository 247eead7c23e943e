"""How ``prepare`` runs its work units: in order here, or in a pool of local worker processes.

Workers never outlive the driver and never print a traceback on Ctrl-C; SIGTERM to the driver
acts as Ctrl-C (``Interrupted``), so the same command resumes. The Ray engine is in ``_ray``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from .sources import WorkUnit

T = TypeVar("T")


class Executor(Protocol):
    """Runs ``fn(unit)`` for each unit and yields results as they complete (any order)."""

    def run(
        self, fn: Callable[[WorkUnit], dict[str, Any]], units: Iterable[WorkUnit]
    ) -> Iterator[dict[str, Any]]: ...


class InlineExecutor:
    """One process, in order: what --workers 1 uses, and the easiest to debug."""

    def run(
        self, fn: Callable[[WorkUnit], dict[str, Any]], units: Iterable[WorkUnit]
    ) -> Iterator[dict[str, Any]]:
        for unit in units:
            yield fn(unit)


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


class LocalExecutor:
    """A pool of worker processes on this machine, at most 2 x workers units in flight."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(
        self, fn: Callable[[WorkUnit], dict[str, Any]], units: Iterable[WorkUnit]
    ) -> Iterator[dict[str, Any]]:
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        threads = max(1, (os.cpu_count() or 1) // self.workers)
        if multiprocessing.get_start_method() == "fork" and hasattr(fn, "prewarm"):
            fn.prewarm()  # forked workers inherit the built tokenizer (saves ~0.3 s each)
        pool = ProcessPoolExecutor(
            max_workers=self.workers, initializer=_worker_init, initargs=(threads, os.getpid())
        )
        pending: set[Any] = set()
        it = iter(units)
        finished = False
        try:
            while True:
                while len(pending) < 2 * self.workers and (unit := next(it, None)) is not None:
                    if not pool._processes:  # noqa: SLF001 - the first submit starts the workers
                        # Signals wait until the workers have started: Ctrl-C in that window
                        # must not hit a half-started worker (a traceback), only the driver.
                        old = signal.pthread_sigmask(
                            signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM}
                        )
                        try:
                            pending.add(pool.submit(fn, unit))
                        finally:
                            signal.pthread_sigmask(signal.SIG_SETMASK, old)
                    else:
                        pending.add(pool.submit(fn, unit))
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
            finished = True
        finally:
            for future in pending:
                future.cancel()
            if not finished:  # an error or an interrupt: stop the units in flight now
                for proc in list(pool._processes.values()):  # noqa: SLF001
                    proc.terminate()
            pool.shutdown(wait=True, cancel_futures=True)


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


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C: the run stops, the side folder stays, the command resumes."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _TermAsInterrupt:
    """While ``prepare`` runs in the main thread, SIGTERM raises ``Interrupted`` (like Ctrl-C)."""

    def __enter__(self) -> None:
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.old = signal.signal(signal.SIGTERM, self._raise)

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    def __exit__(self, *exc: object) -> None:
        if self.installed:  # None: a handler set outside Python; the default is the closest
            signal.signal(signal.SIGTERM, self.old if self.old is not None else signal.SIG_DFL)
