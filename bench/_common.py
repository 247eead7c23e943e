"""Helpers shared by the benchmarks: timing, process-tree RSS, and the corpora from bench/corpus.py."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

import corpus

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
PY = "py{}.{}".format(*sys.version_info[:2])  # the corpus is the same bytes for one Python version


def make_corpus(size: str, *, jsonl: bool) -> Path:
    """The standard-library corpus (bench/corpus.py) of ``size``, made once and kept in bench/out/."""
    target = OUT / (f"corpus-{size}-{PY}.jsonl" if jsonl else f"corpus-{size}-{PY}")
    if not target.exists():
        corpus.write_corpus(
            target, size=corpus.parse_size(size), form="jsonl" if jsonl else "folder"
        )
    return target


def prose_file(size: str) -> Path:
    """English prose (the library's docstrings) of about ``size``, as one text file; kept."""
    target = OUT / f"prose-{size}-{PY}.txt"
    if not target.exists():
        corpus.write_corpus(target, size=corpus.parse_size(size), form="single", prose=True)
    return target


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_with_peak_rss(cmd: list[str], stderr_to: Path | None = None) -> tuple[float, int]:
    """Run a command; return its wall seconds and the peak RSS of its whole process tree."""
    t0 = time.perf_counter()
    err = open(stderr_to, "wb") if stderr_to else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    ps = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        time.sleep(0.02)
    seconds = time.perf_counter() - t0
    if stderr_to:
        err.close()
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    return seconds, peak


class PeakRSS:
    """Peak RSS of this process (and children) while the block runs, sampled every 10 ms."""

    def __enter__(self) -> PeakRSS:
        self.proc = psutil.Process()
        self.base = tree_rss(self.proc)
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.proc))
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss(self.proc))

    @property
    def added(self) -> int:
        return self.peak - self.base


def row(name: str, value: str, note: str = "") -> None:
    print(f"{name:<52} {value:>16}  {note}")
