"""Benchmark ``gptdata prepare`` against the tokenizer limit and a nanoGPT-style prepare.

    python bench/prepare.py                 # 100 MB JSONL and folder-of-.txt, plus the 400 MB RSS run
    python bench/prepare.py --quick         # 20 MB, no 400 MB run

Targets (issue 3): workers=2 throughput >= 0.85 x tiktoken encode_ordinary_batch with 2 threads over
the same documents in memory, >= 1.5 x datasets.map(num_proc=2) + one memmap write; peak RSS
<= 1 GB and within 20 % between the 100 MB and the 400 MB corpus.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUT, make_corpus, row, run_with_peak_rss, timed  # noqa: E402
from gptdata import get_tokenizer  # noqa: E402
from gptdata.sources import plan_units, read_documents, resolve_inputs  # noqa: E402


def documents(path: Path) -> list[str]:
    files = resolve_inputs([path])
    return [d for u in plan_units(files, unit_bytes=1 << 40) for d in read_documents(u)]


def tiktoken_limit(docs: list[str]) -> tuple[float, int]:
    enc = get_tokenizer("gpt2")._enc  # the same tiktoken Encoding gptdata uses
    seconds, ids = timed(lambda: enc.encode_ordinary_batch(docs, num_threads=2))
    return seconds, sum(map(len, ids))


def nanogpt_style(path: Path, out: Path) -> float:
    """datasets.map(num_proc=2) tokenizing with tiktoken, then one memmap write (nanoGPT's recipe)."""
    from datasets import disable_progress_bars, load_dataset

    disable_progress_bars()
    enc = get_tokenizer("gpt2")._enc

    def tokenize(example: dict) -> dict:
        ids = enc.encode_ordinary(example["text"])
        ids.append(enc.eot_token)
        return {"ids": ids, "len": len(ids)}

    def run() -> None:
        if path.is_dir():
            files = sorted(str(p) for p in path.rglob("*.txt"))
            ds = load_dataset(
                "text",
                data_files=files,
                sample_by="document",
                split="train",
                cache_dir=str(out / "hf-cache"),
            )
        else:
            ds = load_dataset(
                "json", data_files=str(path), split="train", cache_dir=str(out / "hf-cache")
            )
        ds = ds.map(tokenize, remove_columns=["text"], num_proc=2)
        total = int(np.sum(ds["len"], dtype=np.uint64))
        arr = np.memmap(out / "train.bin", dtype=np.uint16, mode="w+", shape=(total,))
        pos = 0
        for shard in range(64):
            batch = ds.shard(num_shards=64, index=shard, contiguous=True).with_format("numpy")
            chunk = np.concatenate(batch["ids"]) if len(batch) else np.empty(0, np.uint16)
            arr[pos : pos + len(chunk)] = chunk
            pos += len(chunk)
        arr.flush()

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    seconds, _ = timed(run)
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def gptdata_prepare(path: Path, store: Path, workers: int = 2) -> tuple[float, int]:
    shutil.rmtree(store, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "gptdata",
        "prepare",
        str(path),
        "-o",
        str(store),
        "--workers",
        str(workers),
        "--quiet",
    ]
    return run_with_peak_rss(cmd)


def bench(size: str, jsonl: bool, baseline: bool) -> dict:
    path = make_corpus(size, jsonl=jsonl)
    form = "jsonl" if jsonl else "txt folder"
    docs = documents(path)
    limit_s, tokens = tiktoken_limit(docs)
    del docs
    prep_s, peak = gptdata_prepare(path, OUT / "store")
    res = {
        "size": size,
        "form": form,
        "tokens": tokens,
        "limit_s": limit_s,
        "prepare_s": prep_s,
        "peak_rss": peak,
    }
    row(f"[{size} {form}] tokens", f"{tokens:,}")
    row(
        f"[{size} {form}] tiktoken limit (2 threads, in memory)",
        f"{tokens / limit_s / 1e6:.2f} M tok/s",
    )
    row(
        f"[{size} {form}] gptdata prepare --workers 2",
        f"{tokens / prep_s / 1e6:.2f} M tok/s",
        f"x{limit_s / prep_s:.2f} of the limit (target >= 0.85)",
    )
    row(f"[{size} {form}] gptdata prepare peak RSS (process tree)", f"{peak / 2**20:,.0f} MiB")
    if baseline:
        try:
            base_s = nanogpt_style(path, OUT / "nanogpt")
        except ImportError:
            row(f"[{size} {form}] nanoGPT-style (datasets.map)", "skipped", "pip install datasets")
        else:
            res["nanogpt_s"] = base_s
            row(
                f"[{size} {form}] nanoGPT-style datasets.map(num_proc=2)",
                f"{tokens / base_s / 1e6:.2f} M tok/s",
                f"gptdata is x{base_s / prep_s:.2f} faster (target >= 1.5)",
            )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 MB only")
    ap.add_argument("--size", default=None)
    args = ap.parse_args()
    size = args.size or ("20MB" if args.quick else "100MB")
    results = [bench(size, jsonl=True, baseline=True), bench(size, jsonl=False, baseline=True)]
    if not args.quick:
        big = bench("400MB", jsonl=True, baseline=False)
        small = results[0]
        ratio = big["peak_rss"] / small["peak_rss"]
        row("peak RSS 400 MB / 100 MB (jsonl)", f"x{ratio:.2f}", "target within 20 %")
        results.append(big)
    (OUT / "prepare.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
