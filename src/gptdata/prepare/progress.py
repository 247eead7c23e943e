"""What ``prepare`` tells the user on stderr: a progress line, then the closing summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..store import TokenStore
from ..tokenizers import ENDOFTEXT


class _Progress:
    """One status line on stderr: percent, tokens, MB/s, tokens/s, ETA."""

    def __init__(self, total_bytes: int | None, quiet: bool) -> None:
        self.total, self.quiet = total_bytes, quiet
        self.t0 = self.last = time.perf_counter()
        self.bytes = self.tokens = 0
        self.tty = sys.stderr.isatty()

    def update(self, nbytes: int, ntokens: int) -> None:
        self.bytes += nbytes
        self.tokens += ntokens
        now = time.perf_counter()
        if self.quiet or now - self.last < (0.5 if self.tty else 5.0):
            return
        self.last = now
        self._print(now, end="\r" if self.tty else "\n")

    def _print(self, now: float, end: str) -> None:
        dt = max(now - self.t0, 1e-9)
        mbps, tps = self.bytes / dt / 1e6, self.tokens / dt
        line = f"prepare  {self.tokens:,} tokens  {mbps:,.1f} MB/s  {tps:,.0f} tokens/s"
        if self.total:
            frac = min(self.bytes / self.total, 1.0)
            eta = (dt / frac - dt) if frac > 0 else 0.0
            line = (
                f"prepare  {frac:6.1%}  " + line[9:] + f"  ETA {int(eta) // 60}:{int(eta) % 60:02d}"
            )
        print(line.ljust(79), end=end, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty and not self.quiet:
            print(" " * 79, end="\r", file=sys.stderr, flush=True)


def python_arg(name: str, value: object) -> str:
    """How the library names an option in what it prints: ``val_fraction=0.3``."""
    return f"{name}={value!r}"


def _summary(
    out: Path, store: TokenStore, secs: float, arg: Callable[[str, object], str] = python_arg
) -> None:
    """The closing lines on stderr: counts, speed, realized val share, special-text documents.

    ``arg(name, value)`` writes an option as the caller knows it: ``val_fraction=0.3`` from
    Python (the default), ``--val-fraction 0.3`` from the command line.
    """
    n_tok, n_docs = store.n_tokens, store.n_documents  # one definition: see README.md
    opts, counts = store.manifest["options"], store.manifest.get("counts", {})
    print(
        f"prepared {out}: {n_docs:,} documents, {n_tok:,} tokens in {secs:,.1f} s "
        f"({n_tok / max(secs, 1e-9):,.0f} tokens/s)",
        file=sys.stderr,
    )
    f, tf = opts["val_fraction"], opts.get("test_fraction", 0)
    if (f > 0 or tf > 0) and n_tok:
        share = len(store.split("val")) / n_tok
        test = len(store.split("test")) / n_tok if tf > 0 else 0.0
        test_part = f", test {test:.1%}" if tf > 0 else ""
        asked = arg("val_fraction", f) + (", " + arg("test_fraction", tf) if tf > 0 else "")
        print(
            f"split by {opts['split_by']}: train {1 - share - test:.1%}, val {share:.1%}"
            f"{test_part} of tokens (asked {asked})",
            file=sys.stderr,
        )
    if f > 0 and n_tok:
        if abs(share - f) > f / 2:
            if opts["split_by"] == "tail":  # already the policy that suits any corpus
                fix = (
                    "the corpus has too few tokens for a tail split to reach it (each "
                    "document's tail is whole tokens): add text, or hold out a separate "
                    "validation file instead"
                )
            elif tf > 0 or "instructions" in opts:  # whole documents by design: no tail split
                fix = "the share is drawn per document: add documents for a closer share"
            else:
                fix = f"{arg('split_by', 'tail')} gives a share close to it for any corpus"
            print(
                f"warning: the val share {share:.1%} is off by more than half of "
                f"{arg('val_fraction', f)}; {fix}.",
                file=sys.stderr,
            )
    if counts.get("special_text"):
        how = "the separator ID" if opts["special_text"] == "allow" else "ordinary text"
        print(
            f"{counts['special_text']:,} documents contain a literal {ENDOFTEXT}, encoded as {how}"
            f" ({arg('special_text', opts['special_text'])}).",
            file=sys.stderr,
        )
