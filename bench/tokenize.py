"""Benchmark GPT-2 encode throughput per core: fastokens vs tiktoken, identical IDs.

    python bench/tokenize.py            # 100 MB standard-library corpus + 1.1 MB of its prose
    python bench/tokenize.py --quick    # 20 MB
    python bench/tokenize.py --smoke    # 2 MB + 100 KB: proves the script runs, measures nothing

One thread each (RAYON_NUM_THREADS=1 for fastokens, a plain loop for tiktoken). "cold" is a fresh
fastokens tokenizer's first pass over the documents; "warm" the second pass, when its caches of
already-seen pieces are full. The corpora come from bench/corpus.py (the running Python's standard
library); the prose (its docstrings) is cut into 2,000-character documents, each with a unique
numeric prefix, so no two documents are byte-identical.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ has a tokenize.py, which would shadow the standard library's tokenize module if bench/
# stayed first on sys.path (as Python puts a script's folder): search it last instead.
sys.path.pop(0)
sys.path.append(str(Path(__file__).resolve().parent))

import argparse
import os

os.environ["RAYON_NUM_THREADS"] = "1"  # per core: before fastokens starts its thread pool

from _common import make_corpus, prose_file, row, timed  # noqa: E402
from gptdata import get_tokenizer  # noqa: E402
from gptdata.prepare.sources import plan_units, read_documents, resolve_inputs  # noqa: E402
from gptdata.tokenizers import fast as _fast  # noqa: E402


def corpus_docs(size: str) -> list[str]:
    files = resolve_inputs([make_corpus(size, jsonl=True)])
    return [d for u in plan_units(files, unit_bytes=1 << 40) for d in read_documents(u)]


def prose_docs(size: str) -> list[str]:
    text = prose_file(size).read_text(encoding="utf-8")
    return [f"[{i}] " + text[i : i + 2000] for i in range(0, len(text), 2000)]


def bench(name: str, docs: list[str]) -> None:
    enc = get_tokenizer("gpt2", backend="tiktoken")._enc
    tik_s, ref = timed(lambda: [enc.encode_ordinary(d) for d in docs])
    tokens = sum(map(len, ref))
    fast = _fast.FastGPT2()  # a fresh instance: empty caches
    cold_s, got = timed(lambda: fast.encode_arrays(docs, special=False))
    warm_s, _ = timed(lambda: fast.encode_arrays(docs, special=False))
    same = all(a.tolist() == b for a, b in zip(got, ref, strict=True))
    row(f"[{name}] tokens", f"{tokens:,}", f"{len(docs):,} documents")
    row(f"[{name}] tiktoken, 1 thread", f"{tokens / tik_s / 1e6:.2f} M tok/s")
    row(
        f"[{name}] fastokens cold, 1 thread",
        f"{tokens / cold_s / 1e6:.2f} M tok/s",
        f"x{tik_s / cold_s:.1f} tiktoken; identical IDs: {same}",
    )
    row(
        f"[{name}] fastokens warm, 1 thread",
        f"{tokens / warm_s / 1e6:.2f} M tok/s",
        f"x{tik_s / warm_s:.1f} tiktoken",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20 MB instead of 100 MB")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: check that it runs")
    args = ap.parse_args()
    if _fast.installed_version() is None:
        sys.exit("skipped: fastokens is not installed (pip install 'gptdata[fast]')")
    size = "2MB" if args.smoke else "20MB" if args.quick else "100MB"
    prose = "100KB" if args.smoke else "1.1MB"
    bench(f"stdlib corpus {size}", corpus_docs(size))
    bench(f"stdlib prose {prose}", prose_docs(prose))


if __name__ == "__main__":
    main()
