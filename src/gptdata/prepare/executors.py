"""How ``prepare`` runs its work units: in order here, or in a pool of local worker processes.

Workers never outlive the driver and never print a traceback on Ctrl-C; SIGTERM to the driver
acts as Ctrl-C (``Interrupted``), so the same command resumes. How each worker starts (and the
short-lived lister of remote inputs) is ``processes``; the Ray engine is in ``ray_engine``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from .processes import _worker_init
from .sources import WorkUnit


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
