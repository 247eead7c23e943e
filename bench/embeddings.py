"""Benchmark: an embedding lookup vs the same result as one-hot x Linear weight.

    python bench/embeddings.py
    python bench/embeddings.py --smoke    # fewer repetitions: proves the script runs

Both give identical numbers (tests/test_embeddings.py checks equality); the lookup skips a
(tokens x vocab_size) one-hot matrix and its matrix product.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ has a tokenize.py, which would shadow the standard library's tokenize module if bench/
# stayed first on sys.path (as Python puts a script's folder): search it last instead.
sys.path.pop(0)
sys.path.append(str(Path(__file__).resolve().parent))

import argparse
import time

import torch
from torch import nn

from _common import row  # noqa: E402


def rate(fn, n: int = 20) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="fewer repetitions: check that it runs")
    args = ap.parse_args()
    reps = 2 if args.smoke else 20
    torch.manual_seed(123)
    vocab_size, emb_dim = 50257, 256
    emb = nn.Embedding(vocab_size, emb_dim)
    linear = nn.Linear(vocab_size, emb_dim, bias=False)
    linear.weight = nn.Parameter(emb.weight.T.detach().contiguous())
    ids = torch.randint(0, vocab_size, (8, 64))  # (B, T)
    with torch.no_grad():
        lookup = rate(lambda: emb(ids), reps)  # (B, T) -> (B, T, C)
        one_hot = rate(
            lambda: linear(nn.functional.one_hot(ids, vocab_size).float()), reps
        )  # (B, T, V) -> (B, T, C)
        same = torch.equal(emb(ids), linear(nn.functional.one_hot(ids, vocab_size).float()))
    row(f"lookup (8x64 IDs, {vocab_size:,} x {emb_dim})", f"{lookup * 1e6:,.0f} us")
    row("one-hot @ Linear weight", f"{one_hot * 1e6:,.0f} us", f"identical: {same}")
    row("lookup speed-up", f"x{one_hot / lookup:,.0f}")


if __name__ == "__main__":
    main()
