"""Benchmark ``gptdata prepare`` against the tokenizer limit and a nanoGPT-style prepare.

    python bench/prepare.py                 # 100 MB JSONL and folder-of-.txt, plus the 400 MB RSS run
    python bench/prepare.py --quick         # 20 MB, no 400 MB run
    python bench/prepare.py --engine ray    # 100 MB JSONL, local vs Ray engine
    python bench/prepare.py --smoke         # 2 MB: proves the script runs, measures nothing

The corpora come from bench/corpus.py (the running Python's standard library, cycled).

Each configuration runs with both GPT-2 backends (tiktoken, fastokens); every store is compared
byte for byte with the tiktoken/local one.

Targets (issue 3): workers=2 throughput >= 0.85 x tiktoken encode_ordinary_batch with 2 threads over
the same documents in memory, >= 1.5 x datasets.map(num_proc=2) + one memmap write; peak RSS
<= 1 GB and within 20 % between the 100 MB and the 400 MB corpus. Issue 7: the fastokens backend
>= 3 x the same limit. Issue 6: the Ray engine >= 0.7 x the local engine.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ has a tokenize.py, which would shadow the standard library's tokenize module if bench/
# stayed first on sys.path (as Python puts a script's folder): search it last instead.
sys.path.pop(0)
sys.path.append(str(Path(__file__).resolve().parent))

import argparse
import json
import re
import shutil

import numpy as np

from _common import OUT, make_corpus, row, run_with_peak_rss, timed  # noqa: E402
from gptdata import get_tokenizer  # noqa: E402
from gptdata.prepare.sources import plan_units, read_documents, resolve_inputs  # noqa: E402


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


def gptdata_prepare(
    path: Path, store: Path, *, backend: str, engine: str = "local", workers: int = 2
) -> tuple[float, int, float | None]:
    """Wall seconds, peak RSS, and (Ray only) Ray's fixed cost: start-up + shutdown, as reported."""
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
        "--backend",
        backend,
        "--engine",
        engine,
    ]
    log = OUT / "prepare-stderr.txt"
    seconds, peak = run_with_peak_rss(cmd, stderr_to=log)
    text = log.read_text()
    fixed = [float(m) for m in re.findall(r"(?:ready|shut down) in ([0-9.]+) s", text)]
    return seconds, peak, sum(fixed) if fixed else None


def same_store(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    others = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files == others and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def bench(size: str, jsonl: bool, *, baseline: bool, engines: list[str]) -> dict:
    path = make_corpus(size, jsonl=jsonl)
    tag = f"[{size} {'jsonl' if jsonl else 'txt folder'}]"
    docs = documents(path)
    # Best of two: the first pass also pays for page faults of the freshly decoded documents.
    limit_s, tokens = min(tiktoken_limit(docs), tiktoken_limit(docs))
    del docs
    res: dict = {"size": size, "jsonl": jsonl, "tokens": tokens, "limit_s": limit_s}
    row(f"{tag} tokens", f"{tokens:,}")
    row(f"{tag} tiktoken limit (2 threads, in memory)", f"{tokens / limit_s / 1e6:.2f} M tok/s")
    reference = OUT / "store-tiktoken"
    for backend in ("tiktoken", "fastokens"):
        for engine in engines:
            store = reference if (backend, engine) == ("tiktoken", "local") else OUT / "store"
            # Best of two, like the limit above (the machine's timing noise is +-10 %).
            seconds, peak, startup = min(
                gptdata_prepare(path, store, backend=backend, engine=engine) for _ in range(2)
            )
            res[f"{backend}-{engine}"] = {"seconds": seconds, "peak_rss": peak, "startup": startup}
            target = (
                {"tiktoken": ">= 0.85", "fastokens": ">= 3"}[backend] if engine == "local" else ""
            )
            note = f"x{limit_s / seconds:.2f} of the limit" + (
                f" (target {target})" if target else ""
            )
            if store != reference:
                note += f"; store identical to tiktoken/local: {same_store(store, reference)}"
            if engine != "local":
                local = res[f"{backend}-local"]["seconds"]
                note += f"; x{local / seconds:.2f} of local (target >= 0.7)"
                if startup is not None:
                    after = seconds - startup
                    note += (
                        f"; Ray start-up + shutdown {startup:.1f} s; between them "
                        f"{tokens / after / 1e6:.2f} M tok/s = x{local / after:.2f} of local"
                    )
            row(
                f"{tag} prepare --workers 2 --backend {backend} --engine {engine}",
                f"{tokens / seconds / 1e6:.2f} M tok/s",
                note,
            )
            row(f"{tag}   peak RSS (process tree)", f"{peak / 2**20:,.0f} MiB")
    if baseline:
        try:
            base_s = nanogpt_style(path, OUT / "nanogpt")
        except ImportError:
            row(f"{tag} nanoGPT-style (datasets.map)", "skipped", "pip install datasets")
        else:
            res["nanogpt_s"] = base_s
            local = res["tiktoken-local"]["seconds"]
            row(
                f"{tag} nanoGPT-style datasets.map(num_proc=2)",
                f"{tokens / base_s / 1e6:.2f} M tok/s",
                f"gptdata (tiktoken) is x{base_s / local:.2f} faster (target >= 1.5)",
            )
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 MB only")
    ap.add_argument("--size", default=None, help="corpus size, e.g. 50MB")
    ap.add_argument("--smoke", action="store_true", help="2 MB only: check that it runs")
    ap.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="ray: also run --engine ray and compare it with local",
    )
    args = ap.parse_args()
    size = args.size or ("2MB" if args.smoke else "20MB" if args.quick else "100MB")
    args.quick = args.quick or args.smoke  # no 400 MB run either
    engines = ["local"] + (["ray"] if args.engine == "ray" else [])
    results = [bench(size, jsonl=True, baseline=True, engines=engines)]
    if args.engine == "local":
        results.append(bench(size, jsonl=False, baseline=True, engines=engines))
        if not args.quick:
            big = bench("400MB", jsonl=True, baseline=False, engines=engines)
            for backend in ("tiktoken", "fastokens"):
                ratio = (
                    big[f"{backend}-local"]["peak_rss"] / results[0][f"{backend}-local"]["peak_rss"]
                )
                row(
                    f"peak RSS 400 MB / 100 MB (jsonl, {backend})",
                    f"x{ratio:.2f}",
                    "target within 20 %",
                )
            results.append(big)
    (OUT / f"prepare-{args.engine}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
