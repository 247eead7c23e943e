"""Benchmark the lazy dataset and loader against the classic GPTDatasetV1 + DataLoader.

    python bench/loader.py            # full: build, batches/s, RSS over 200,000 batches
    python bench/loader.py --quick    # fewer batches
    python bench/loader.py --smoke    # 60 KB of text, a few batches: proves the script runs

The text is 1.1 MB of English prose (the docstrings of the running Python's standard library,
from bench/corpus.py), about the size of tinyshakespeare.

Targets (issue 4): building max_length=256, stride=1 on that text >= 1000x less time and
added memory than the reference; shuffled batches/s >= 0.8x a raw numpy memmap gather and never
slower than the reference; RSS flat (within 10 %) over 200,000 batches with num_workers=2.
Issue 13: documents="mask", batch_format="dict" >= 0.3x the same floor, on the same text cut into
documents (2,000-character pieces, ~600 tokens, and its paragraphs, a few dozen tokens each).
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ has a tokenize.py, which would shadow the standard library's tokenize module if bench/
# stayed first on sys.path (as Python puts a script's folder): search it last instead.
sys.path.pop(0)
sys.path.append(str(Path(__file__).resolve().parent))

import argparse
import gc
import shutil
import subprocess
import time

import numpy as np
import psutil
import torch
from torch.utils.data import DataLoader, Dataset

from _common import OUT, PeakRSS, prose_file, row, timed  # noqa: E402
from gptdata import SlidingWindowDataset, TokenStore, create_dataloader, prepare  # noqa: E402


class ReferenceDataset(Dataset):
    """The classic GPTDatasetV1: two tensors per window, built up front."""

    def __init__(self, ids: list[int], max_length: int, stride: int) -> None:
        self.inputs, self.targets = [], []
        for i in range(0, len(ids) - max_length, stride):
            self.inputs.append(torch.tensor(ids[i : i + max_length]))
            self.targets.append(torch.tensor(ids[i + 1 : i + max_length + 1]))

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, k: int):
        return self.inputs[k], self.targets[k]


def store_for(text_path: Path) -> TokenStore:
    root = OUT / "prose-store"
    shutil.rmtree(root, ignore_errors=True)
    return prepare([text_path], root, val_fraction=0.0, workers=1, quiet=True)


def bench_build(split, ids: list[int]) -> None:
    with PeakRSS() as ours_mem:
        ours_s, ds = timed(lambda: SlidingWindowDataset(split, max_length=256, stride=1))
    with PeakRSS() as ref_mem:
        ref_s, ref = timed(lambda: ReferenceDataset(ids, 256, 1))
    assert len(ds) == len(ref)
    row("build max_length=256 stride=1: windows", f"{len(ds):,}")
    row("  reference GPTDatasetV1", f"{ref_s:.2f} s", f"+{ref_mem.added / 2**20:,.0f} MiB")
    row("  SlidingWindowDataset", f"{ours_s * 1e6:.0f} us", f"+{ours_mem.added / 2**20:,.2f} MiB")
    row("  time ratio", f"x{ref_s / ours_s:,.0f}", "target >= 1000")
    row(
        "  added-memory ratio",
        f"x{ref_mem.added / max(ours_mem.added, 4096):,.0f}",
        "target >= 1000 (ours floored at one 4 KiB page)",
    )
    del ref
    gc.collect()


def raw_gather_rate(path: Path, n_tokens: int, batch_size: int, max_length: int, n: int) -> float:
    """The floor: random window starts, one fancy index into a memmap, cast to int64."""
    mm = np.memmap(path, dtype=np.uint16, mode="r")
    rng = np.random.default_rng(0)
    offsets = np.arange(max_length + 1)
    t0 = time.perf_counter()
    for _ in range(n):
        starts = rng.integers(0, n_tokens - max_length, size=batch_size)
        rows = mm[starts[:, None] + offsets].astype(np.int64)  # (B, L + 1)
        torch.from_numpy(rows[:, :-1]), torch.from_numpy(rows[:, 1:])  # what a loader hands out
    return n / (time.perf_counter() - t0)


def loader_rate(loader, n: int) -> float:
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    done = 0
    while done < n:
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            continue
        done += 1
    return n / (time.perf_counter() - t0)


def bench_rates(split, ids: list[int], batch_size: int, max_length: int, n: int) -> None:
    path = split.root / split.shards[0].file
    floor = raw_gather_rate(path, len(split), batch_size, max_length, n)
    ours = loader_rate(
        create_dataloader(split, batch_size=batch_size, max_length=max_length, stride=1, seed=0), n
    )
    ref_ds = ReferenceDataset(ids, max_length, max_length // 2)  # stride only sizes the list
    ref = loader_rate(DataLoader(ref_ds, batch_size=batch_size, shuffle=True, drop_last=True), n)
    tag = f"batches/s batch_size={batch_size} max_length={max_length}"
    row(f"{tag}: raw memmap gather", f"{floor:,.0f}")
    row(f"{tag}: reference DataLoader", f"{ref:,.0f}")
    row(
        f"{tag}: gptdata loader",
        f"{ours:,.0f}",
        f"x{ours / floor:.2f} of raw (target >= 0.8), x{ours / ref:.1f} of reference",
    )
    del ref_ds
    gc.collect()


def documents_store(text_path: Path, name: str, docs: list[str]) -> TokenStore:
    root = OUT / f"prose-{name}-store"
    shutil.rmtree(root, ignore_errors=True)
    # texts= makes one work unit, so one shard: the floor reads that one file.
    store = prepare(None, root, texts=docs, val_fraction=0.0, workers=1, quiet=True)
    assert len(store.split("train").shards) == 1
    return store


def bench_documents(split, name: str, batch_size: int, max_length: int, n: int) -> None:
    """documents="mask" + batch_format="dict" against the same floor and the default loader."""
    path = split.root / split.shards[0].file
    kw = dict(batch_size=batch_size, max_length=max_length, stride=1, seed=0)
    # Best of 3 interleaved rounds: the machine is shared, and a burst of load on one
    # measurement alone would skew its ratio.
    floor = plain = mask = 0.0
    for _ in range(3):
        floor = max(floor, raw_gather_rate(path, len(split), batch_size, max_length, n))
        plain = max(plain, loader_rate(create_dataloader(split, **kw), n))
        dicts = create_dataloader(split, **kw, documents="mask", batch_format="dict")
        mask = max(mask, loader_rate(dicts, n))
    tag = f"{name} batch_size={batch_size} max_length={max_length}"
    row(f"{tag}: raw memmap gather", f"{floor:,.0f}")
    row(f"{tag}: gptdata default", f"{plain:,.0f}", f"x{plain / floor:.2f} of raw (target >= 0.8)")
    row(
        f"{tag}: documents=mask, dict",
        f"{mask:,.0f}",
        f"x{mask / floor:.2f} of raw (target >= 0.3)",
    )


def tree_pss(proc: psutil.Process) -> int:
    """Proportional set size of a process tree: shared pages counted once, not per worker."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except psutil.Error:
            pass
    return total


def bench_rss(split, n: int) -> None:
    """Run in a fresh process (--rss-only), so the reference's freed GBs do not blur the figure."""
    loader = create_dataloader(split, batch_size=8, max_length=256, stride=1, seed=0, num_workers=2)
    me = psutil.Process()
    samples = []
    done = 0
    t0 = time.perf_counter()
    while done < n:
        for _ in loader:
            done += 1
            if done % (n // 20) == 0:
                samples.append(tree_pss(me))
            if done >= n:
                break
    seconds = time.perf_counter() - t0
    early, late = samples[1], max(samples[2:])  # skip the workers' start-up
    row(
        f"memory (PSS, process tree) over {n:,} batches, num_workers=2",
        f"{early / 2**20:,.0f} -> {late / 2**20:,.0f} MiB",
        f"growth {100 * (late - early) / early:+.1f} % (target within 10 %), {n / seconds:,.0f} batches/s",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer batches")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: check that it runs")
    ap.add_argument("--rss-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_only:
        split = TokenStore.open(OUT / "prose-store").split("train")
        bench_rss(split, 2_000 if args.smoke else 20_000 if args.quick else 200_000)
        return
    text = prose_file("60KB" if args.smoke else "1.1MB")
    store = store_for(text)
    split = store.split("train")
    ids = split[:].tolist()
    row(f"prose tokens ({text.name})", f"{len(ids):,}")
    bench_build(split, ids)
    n = 40 if args.smoke else 300 if args.quick else 3000
    bench_rates(split, ids, 8, 256, n)
    bench_rates(split, ids, 32, 1024, n // 4)
    raw = text.read_text(encoding="utf-8")
    for name, docs in (
        ("2k-char docs", [raw[i : i + 2000] for i in range(0, len(raw), 2000)]),
        ("paragraphs", [d for d in raw.split("\n\n") if d.strip()]),
    ):
        doc_split = documents_store(text, name.split()[0], docs).split("train")
        row(f"prose as {name}", f"{len(docs):,} docs", f"{len(doc_split):,} tokens")
        bench_documents(doc_split, name, 8, 256, n)
        bench_documents(doc_split, name, 32, 1024, n // 4)
    sys.stdout.flush()
    subprocess.run(
        [sys.executable, __file__, "--rss-only"]
        + (["--quick"] if args.quick else [])
        + (["--smoke"] if args.smoke else []),
        check=True,
    )


if __name__ == "__main__":
    main()
