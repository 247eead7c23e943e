"""Benchmark: evaluate() against a bare loop over the same windows, and bigram counting speed.

    python bench/eval.py                 # the first 65,536 tokens of 1.1 MB of English prose
    python bench/eval.py --tokens 0      # all of it (slow on a small CPU)
    python bench/eval.py --smoke         # toy sizes: proves the script runs

The prose is bench/corpus.py's (the size of tinyshakespeare, made here, nothing downloaded). A
small GPT (2 layers, 128 dims, 4 heads, GPT-2 vocabulary, max_length 128, batch 16, float32)
scores it with stride = max_length. The bare loop gets the same windows
precomputed as (W, 128) tensors and does forward, log_softmax, gather and a masked sum, nothing
else; a second bare loop uses evaluate()'s log-prob math (cross_entropy on cache-sized slices of
the scored rows), so the ratio to it is the cost of evaluate()'s bookkeeping alone (cutting the
windows, per-document and per-position sums, progress).
Target: evaluate >= 0.9x the bare loop's tokens/s. Bigram counting target: >= 20 M tokens/s.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ has a tokenize.py that would shadow the standard library's: search bench/ last.
sys.path.pop(0)
sys.path.append(str(Path(__file__).resolve().parent))

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import gptdata  # noqa: E402
from _common import prose_file, row  # noqa: E402
from gptdata.evaluation.baselines import Bigram  # noqa: E402
from gptdata.evaluation.data import load_eval_data  # noqa: E402
from gptdata.evaluation.scoring import window_table  # noqa: E402


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)  # (B, T, C) each
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        att = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, D)
        x = x + self.proj(att.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(self.ln2(x))


class SmallGPT(nn.Module):
    def __init__(self, vocab: int = 50257, dim: int = 128, layers: int = 2, positions: int = 128):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(positions, dim)
        self.blocks = nn.Sequential(*(Block(dim, 4) for _ in range(layers)))
        self.ln, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.tok(x) + self.pos(torch.arange(x.shape[1], device=x.device))  # (B, T, C)
        return self.head(self.ln(self.blocks(h)))  # (B, T, V)


def bare_loop(model: nn.Module, xs: torch.Tensor, ys: torch.Tensor, ms: torch.Tensor, bs: int):
    """The floor: precomputed (W, T) inputs, targets and scored-mask; forward and sum, nothing else."""
    total = 0.0
    with torch.inference_mode():
        for i in range(0, len(xs), bs):
            logp = torch.log_softmax(model(xs[i : i + bs]), dim=-1)  # (B, T, V)
            picked = logp.gather(-1, ys[i : i + bs, :, None]).squeeze(-1)  # (B, T)
            total -= float(picked[ms[i : i + bs]].sum())
    return total


def bare_loop_chunked(
    model: nn.Module, xs: torch.Tensor, ys: torch.Tensor, ms: torch.Tensor, bs: int
) -> float:
    """The same floor with evaluate()'s log-prob math (cross_entropy on cache-sized row slices)."""
    total, step = 0.0, max(1, (1 << 23) // 50257)
    with torch.inference_mode():
        for i in range(0, len(xs), bs):
            logits, m = model(xs[i : i + bs]), ms[i : i + bs]  # (B, T, V), (B, T)
            full = bool(m.all())  # no copy when every position is scored
            logits = logits.reshape(-1, logits.shape[-1]) if full else logits[m]  # (K, V)
            y = ys[i : i + bs].reshape(-1) if full else ys[i : i + bs][m]  # (K,)
            for r in range(0, len(logits), step):
                ce = nn.functional.cross_entropy(
                    logits[r : r + step], y[r : r + step], reduction="sum"
                )
                total += float(ce)
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=65536, help="0 = all of tinyshakespeare")
    ap.add_argument("--count-tokens", type=int, default=20_000_000)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: check that it runs")
    args = ap.parse_args()
    if args.smoke:
        args.tokens, args.count_tokens = 2048, 1_000_000
    torch.manual_seed(0)
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    text = prose_file("60KB" if args.smoke else "1.1MB").read_text(encoding="utf-8")
    tok = gptdata.get_tokenizer("gpt2")
    ids = np.asarray(tok.encode(text), dtype=np.int64)
    if args.tokens:
        ids = ids[: args.tokens]
    L, bs = 128, 16
    model = SmallGPT().eval()
    data = load_eval_data(ids, tokenizer=tok)

    starts, lens, scored = window_table(np.array([0]), np.array([len(ids)]), max_length=L, stride=L)
    seq = torch.from_numpy(data.seq.astype(np.int64))
    idx = torch.from_numpy(np.minimum(starts[:, None] + np.arange(L), len(seq) - 2))  # (W, L)
    xs, ys = seq[idx], seq[idx + 1]  # (W, L) each
    j = np.arange(L)
    ms = torch.from_numpy((j >= (lens - scored)[:, None]) & (j < lens[:, None]))  # (W, L)

    bare_t, same_t, ev_t, nll_bare, result = [], [], [], 0.0, None
    for _ in range(2):  # interleaved, best of two: this machine's load moves timings
        t0 = time.perf_counter()
        nll_bare = bare_loop(model, xs, ys, ms, bs)
        bare_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        nll_same = bare_loop_chunked(model, xs, ys, ms, bs)
        same_t.append(time.perf_counter() - t0)
        assert abs(nll_same - nll_bare) < 1e-4 * abs(nll_bare), (nll_same, nll_bare)
        t0 = time.perf_counter()
        result = gptdata.evaluate(model, data, max_length=L, batch_size=bs, progress=False)
        ev_t.append(time.perf_counter() - t0)
    assert result is not None and abs(result.nll - nll_bare) < 1e-4 * abs(nll_bare), (
        result.nll,
        nll_bare,
    )
    n = result.tokens
    bare_rate, same_rate, ev_rate = n / min(bare_t), n / min(same_t), n / min(ev_t)
    row(f"prose, {n:,} tokens, {len(starts):,} windows", f"loss {result.loss:.4f}")
    row("bare loop (precomputed windows)", f"{bare_rate:,.0f} tok/s")
    row("bare loop, evaluate()'s log-prob math", f"{same_rate:,.0f} tok/s")
    row(
        "evaluate()",
        f"{ev_rate:,.0f} tok/s",
        f"x{ev_rate / bare_rate:.2f} of the bare loop, x{ev_rate / same_rate:.2f} of the same math",
    )

    # Bigram counting: the prose's lines reshuffled (seeded) until count-tokens.
    lines = [np.asarray(t, dtype=np.uint16) for t in tok.encode_batch(text.split("\n"))]
    rng = np.random.default_rng(0)
    parts, total = [], 0
    while total < args.count_tokens:
        for k in rng.permutation(len(lines)):
            parts.append(lines[k])
            total += len(lines[k]) + 1
            parts.append(np.array([198], dtype=np.uint16))
    stream = np.concatenate(parts)[: args.count_tokens]
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        bigram = Bigram.from_tokens(stream, vocab_size=50257, prefix=50256)
        best = min(best, time.perf_counter() - t0)
    row(
        f"bigram counting, {len(stream):,} tokens",
        f"{len(stream) / best / 1e6:,.1f} M tok/s",
        f"{len(bigram.keys):,} distinct pairs, {torch.get_num_threads()} threads",
    )


if __name__ == "__main__":
    main()
