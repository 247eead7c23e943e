"""Benchmark ``gptdata export`` (megatron, nanogpt) against copying the same shard bytes.

    python bench/export.py                     # 100 M-token store
    python bench/export.py --tokens 20000000   # smaller
    python bench/export.py --smoke             # 2 M tokens, one run: proves the script runs

The store is synthetic (random GPT-2 IDs, documents of 1-2,000 tokens), made through
``gptdata import nanogpt`` so it is a real, verified store; no corpus is needed. Targets (issue
14): throughput >= 0.5x ``shutil.copyfile`` of the store's shard files, measured in the same run;
peak RSS of the ``gptdata export`` process <= 300 MB whatever the store's size.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.pop(0)  # bench/tokenize.py must not shadow the standard library's tokenize
sys.path.append(str(Path(__file__).resolve().parent))

import argparse
import shutil
import time

import numpy as np

from _common import OUT, row, run_with_peak_rss  # noqa: E402
from gptdata import TokenStore  # noqa: E402
from gptdata.formats import export_store, import_store  # noqa: E402

EOT = 50256


def make_store(tokens: int) -> TokenStore:
    root = OUT / f"export-store-{tokens}"
    if (root / "manifest.json").exists():
        return TokenStore.open(root)
    OUT.mkdir(parents=True, exist_ok=True)
    flat = OUT / "export-input.bin"
    rng = np.random.default_rng(0)
    with open(flat, "wb") as fh:
        written = 0
        while written < tokens:
            n = min(1 << 22, tokens - written)
            block = rng.integers(0, EOT, size=n, dtype=np.uint16)
            block[rng.random(n) < 1 / 1000] = EOT  # documents of ~1,000 tokens on average
            block.tofile(fh)
            written += n
    shutil.rmtree(root, ignore_errors=True)
    store = import_store("nanogpt", flat, root, quiet=True)
    flat.unlink()
    return store


def best_of(runs: int, fn) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=100_000_000, help="store size in tokens")
    ap.add_argument("--runs", type=int, default=3, help="best of this many runs")
    ap.add_argument("--smoke", action="store_true", help="2 M tokens, one run: check that it runs")
    args = ap.parse_args()
    if args.smoke:
        args.tokens, args.runs = 2_000_000, 1
    store = make_store(args.tokens)
    shards = [store.root / s.file for n in store.splits for s in store.split(n).shards]
    nbytes = sum(p.stat().st_size for p in shards)
    dst = OUT / "export-copy"

    def copy() -> None:
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        for p in shards:
            shutil.copyfile(p, dst / p.name)

    print(f"store: {len(store.split('train')):,} train tokens, {nbytes / 1e6:,.0f} MB of shards")
    copy()  # warm the page cache once
    base = best_of(args.runs, copy)
    shutil.rmtree(dst)
    row("shutil.copyfile of the shard files", f"{nbytes / base / 1e6:,.0f} MB/s")
    ok = True
    for fmt in ("megatron", "nanogpt"):
        out = OUT / f"export-{fmt}"
        secs = best_of(
            args.runs,
            lambda out=out, fmt=fmt: export_store(store, out, format=fmt, force=True, quiet=True),
        )
        ratio = base / secs
        cmd = [sys.executable, "-m", "gptdata", "export", str(store.root), "--format", fmt]
        _, peak = run_with_peak_rss([*cmd, "-o", str(out), "--force", "--quiet"])
        shutil.rmtree(out)
        ok &= ratio >= 0.5 and peak <= 300e6
        row(
            f"export --format {fmt}",
            f"{nbytes / secs / 1e6:,.0f} MB/s",
            f"{ratio:.2f}x copy (target >= 0.5), peak RSS {peak / 1e6:,.0f} MB (<= 300)",
        )
    print("targets met" if ok else "TARGET MISSED")


if __name__ == "__main__":
    main()
