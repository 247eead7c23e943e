"""Benchmark: evaluate() against a bare loop over the same windows, and bigram counting speed.

    python bench/eval.py                 # the first 65,536 tokens of 1.1 MB of English prose
    python bench/eval.py --tokens 0      # all of it (slow on a small CPU)
    python bench/eval.py --smoke         # toy sizes: proves the script runs
    python bench/eval.py --device cuda --model gpt2 --tokens 1048576 --max-length 1024 \
        --count-tokens 0                 # the issue's GPU measurement (GPT-2 124M, bf16)

The prose is bench/corpus.py's (the size of tinyshakespeare, made here, nothing downloaded). A
small GPT (2 layers, 128 dims, 4 heads, GPT-2 vocabulary, max_length 128, batch 16, float32)
scores it with stride = max_length. The bare loop gets the same windows
precomputed as (W, 128) tensors and does forward, log_softmax, gather and a masked sum, nothing
else; a second bare loop uses evaluate()'s log-prob math (cross_entropy on cache-sized slices of
the scored rows), so the ratio to it is the cost of evaluate()'s bookkeeping alone (cutting the
windows, per-document and per-position sums, progress).
Target: evaluate >= 0.9x the bare loop's tokens/s (>= 0.95x on a GPU). Bigram counting target:
>= 20 M tokens/s. Host syncs per batch: 0 (SyncCounter below counts the calls that would make a
GPU wait; on CUDA also the driver's own count). Fixed cost per call: <= 50 ms after the first.
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ has a tokenize.py that would shadow the standard library's: search bench/ last.
sys.path.pop(0)
sys.path.append(str(Path(__file__).resolve().parent))

import argparse  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections import Counter  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.overrides import TorchFunctionMode  # noqa: E402

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


def _logits(out):
    return out.logits if hasattr(out, "logits") else out  # Hugging Face or a bare tensor


def bare_loop(model: nn.Module, xs: torch.Tensor, ys: torch.Tensor, ms: torch.Tensor, bs: int):
    """The floor: precomputed (W, T) inputs, targets and scored-mask; forward and sum, nothing else
    (the sum stays on the device until the end, as a careful hand-written loop keeps it)."""
    total = torch.zeros((), dtype=torch.float64, device=xs.device)
    with torch.inference_mode():
        for i in range(0, len(xs), bs):
            logp = torch.log_softmax(_logits(model(xs[i : i + bs])).float(), dim=-1)  # (B, T, V)
            picked = logp.gather(-1, ys[i : i + bs, :, None]).squeeze(-1)  # (B, T)
            total -= (picked * ms[i : i + bs]).sum().double()
    return float(total)


def bare_loop_chunked(
    model: nn.Module, xs: torch.Tensor, ys: torch.Tensor, ms: torch.Tensor, bs: int
) -> float:
    """The same floor with evaluate()'s log-prob math (cross_entropy on cache-sized row slices on a
    CPU, one call on a GPU), the scored rows picked by host-known flags (no sync)."""
    full = ms.all(dim=1).cpu().numpy()  # (W,) known before the loop, as evaluate() knows it
    total = torch.zeros((), dtype=torch.float64, device=xs.device)
    with torch.inference_mode():
        for i in range(0, len(xs), bs):
            logits = _logits(model(xs[i : i + bs]))  # (B, T, V)
            V = logits.shape[-1]
            step = len(logits) * logits.shape[1] if xs.is_cuda else max(1, (1 << 23) // V)
            rows, y = logits.reshape(-1, V), ys[i : i + bs].reshape(-1)  # (B*T, V), (B*T,)
            w = ms[i : i + bs].reshape(-1).double()  # (B*T,) 1 where scored
            if full[i : i + bs].all():
                w = None
            for r in range(0, len(rows), step):
                ce = nn.functional.cross_entropy(
                    rows[r : r + step].float(), y[r : r + step], reduction="none"
                )  # (step,)
                total += ce.double().sum() if w is None else (ce.double() * w[r : r + step]).sum()
    return float(total)


_SYNCS = {
    torch.Tensor.cpu,
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.numpy,
    torch.Tensor.__bool__,
    torch.Tensor.__float__,
    torch.Tensor.__int__,
    torch.Tensor.__index__,
    torch.Tensor.nonzero,
    torch.nonzero,
    torch.Tensor.__repr__,
}


class SyncCounter(TorchFunctionMode):
    """Counts the tensor calls that make a GPU wait for the host to read its results.

    On a CPU nothing waits, so the calls themselves are counted, wherever they come from:
    ``.cpu()``, ``.item()``, ``.tolist()``, ``.numpy()``, ``bool()``/``float()``/``int()`` of a
    tensor, ``nonzero``, ``.to("cpu")`` and indexing by a bool tensor (which must count its rows
    first). Every tensor call made in Python goes through this mode, so none is missed; calls
    inside the model's C++ kernels are not Python calls and cannot sync. Run for two sizes, the
    difference over the difference in batches is the count per batch.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = None
        if func in _SYNCS:
            name = func.__name__
        elif func is torch.Tensor.to:
            target = kwargs.get("device", args[1] if len(args) > 1 else None)
            on_host = isinstance(target, (str, torch.device)) and torch.device(target).type == "cpu"
            if on_host and args[0].device.type != "cpu":  # host to host copies nothing back
                name = "to(cpu)"
        elif func is torch.Tensor.__getitem__ and len(args) > 1:
            index = args[1] if isinstance(args[1], tuple) else (args[1],)
            if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index):
                name = "bool-mask index"
        if name is not None:
            self.calls[name] += 1
        return func(*args, **kwargs)


def count_syncs(model, data, *, max_length: int, bs: int) -> tuple[int, int, str]:
    """(syncing calls, batches, detail) for one evaluate() call; on CUDA also the driver's own
    count (torch.cuda.set_sync_debug_mode: a warning per synchronizing CUDA call)."""
    counter = SyncCounter()
    cuda_syncs = 0
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        if torch.cuda.is_available():
            torch.cuda.set_sync_debug_mode("warn")
        try:
            with counter:
                gptdata.evaluate(model, data, max_length=max_length, batch_size=bs, progress=False)
        finally:
            if torch.cuda.is_available():
                torch.cuda.set_sync_debug_mode(0)
        cuda_syncs = sum("synchroniz" in str(w.message) for w in seen)
    batches = -(-len(window_table(np.array([0]), np.array([len(data.seq) - 1]),
                                  max_length=max_length, stride=max_length)[0]) // bs)  # fmt: skip
    detail = ", ".join(f"{k} {v}" for k, v in sorted(counter.calls.items()))
    if torch.cuda.is_available():
        detail += f"; CUDA sync debug mode: {cuda_syncs} synchronizing calls"
    return sum(counter.calls.values()), batches, detail


def fixed_cost(
    model, ids: np.ndarray, tok, *, max_length: int, calls: int = 20
) -> tuple[float, ...]:
    """Median ms per evaluate() call on one short window after the first call, from token IDs
    (reading included) and from EvalData, and a bare forward of the same window (the floor)."""
    dev = next(model.parameters()).device
    short = ids[: min(64, max_length)]
    data = load_eval_data(short, tokenizer=tok)
    x = torch.from_numpy(short[None]).to(dev)  # (1, T)

    def ms(fn) -> float:
        fn()  # the first call: imports, tables, allocator
        times = []
        for _ in range(calls):
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return 1000 * float(np.median(times))

    def bare() -> None:
        with torch.inference_mode():
            _logits(model(x)).float().log_softmax(-1)

    kw = {"max_length": max_length, "progress": False}
    from_ids = ms(lambda: gptdata.evaluate(model, short, **kw))
    from_data = ms(lambda: gptdata.evaluate(model, data, **kw))
    return from_ids, from_data, ms(bare)


def gpt2_model(device: str) -> nn.Module:
    """GPT-2 124M with random weights (no download), bf16 on ``device``: the issue's measurement."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config()).to(device, torch.bfloat16).eval()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=65536, help="0 = all the prose; more: repeated")
    ap.add_argument("--count-tokens", type=int, default=20_000_000, help="0: no bigram case")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--model", choices=["small", "gpt2"], default="small")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: check that it runs")
    args = ap.parse_args()
    if args.smoke:
        args.tokens, args.count_tokens, args.batch_size = 2048, 1_000_000, 4
    torch.manual_seed(0)
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    text = prose_file("60KB" if args.smoke else "1.1MB").read_text(encoding="utf-8")
    tok = gptdata.get_tokenizer("gpt2")
    ids = np.asarray(tok.encode(text), dtype=np.int64)
    if args.tokens:
        ids = np.resize(ids, args.tokens)  # repeated when asked for more than the prose holds
    L, bs, dev = args.max_length, args.batch_size, torch.device(args.device)
    model = SmallGPT(positions=L).eval().to(dev) if args.model == "small" else gpt2_model(dev)
    data = load_eval_data(ids, tokenizer=tok)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    starts, lens, scored = window_table(np.array([0]), np.array([len(ids)]), max_length=L, stride=L)
    seq = torch.from_numpy(data.seq.astype(np.int64))
    idx = torch.from_numpy(np.minimum(starts[:, None] + np.arange(L), len(seq) - 2))  # (W, L)
    xs, ys = seq[idx].to(dev), seq[idx + 1].to(dev)  # (W, L) each
    j = np.arange(L)
    ms = torch.from_numpy((j >= (lens - scored)[:, None]) & (j < lens[:, None])).to(dev)  # (W, L)

    bare_t, same_t, ev_t, nll_bare, result = [], [], [], 0.0, None
    bare_loop(model, xs[: 2 * bs], ys[: 2 * bs], ms[: 2 * bs], bs)  # warm-up: kernels, allocator
    for _ in range(2):  # interleaved, best of two: this machine's load moves timings
        sync()
        t0 = time.perf_counter()
        nll_bare = bare_loop(model, xs, ys, ms, bs)
        bare_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        nll_same = bare_loop_chunked(model, xs, ys, ms, bs)
        same_t.append(time.perf_counter() - t0)
        assert abs(nll_same - nll_bare) < 1e-4 * abs(nll_bare), (nll_same, nll_bare)
        t0 = time.perf_counter()
        result = gptdata.evaluate(model, data, max_length=L, batch_size=bs, progress=False)
        ev_t.append(time.perf_counter() - t0)  # evaluate() returns host numbers: synced
    assert result is not None and abs(result.nll - nll_bare) < 1e-4 * abs(nll_bare), (
        result.nll,
        nll_bare,
    )
    n = result.tokens
    bare_rate, same_rate, ev_rate = n / min(bare_t), n / min(same_t), n / min(ev_t)
    where = f"{args.model} on {dev.type}, max_length {L}, batch {bs}"
    row(f"prose, {n:,} tokens, {len(starts):,} windows", f"loss {result.loss:.4f}", where)
    row("bare loop (precomputed windows)", f"{bare_rate:,.0f} tok/s")
    row("bare loop, evaluate()'s log-prob math", f"{same_rate:,.0f} tok/s")
    row(
        "evaluate()",
        f"{ev_rate:,.0f} tok/s",
        f"x{ev_rate / bare_rate:.2f} of the bare loop, x{ev_rate / same_rate:.2f} of the same math, "
        f"NLL differs by {abs(result.nll - nll_bare) / abs(nll_bare):.1e} (relative)",
    )

    # Host syncs: evaluate() on two sizes; what grows with the batches is the count per batch.
    few, few_b, _ = count_syncs(model, load_eval_data(ids[: 2 * bs * L], tokenizer=tok),
                                max_length=L, bs=bs)  # fmt: skip
    many, many_b, detail = count_syncs(model, data, max_length=L, bs=bs)
    per_batch = (many - few) / max(many_b - few_b, 1)
    row(
        "host syncs per batch",
        f"{per_batch:g}",
        f"{many} per call of {many_b:,} batches, {few} per call of {few_b} ({detail})",
    )
    from_ids, from_data, bare_ms = fixed_cost(model, ids, tok, max_length=L)
    row(
        "fixed cost per call (one 64-token window)",
        f"{from_ids - bare_ms:.1f} ms",
        f"evaluate() {from_ids:.1f} ms from token IDs, {from_data:.1f} ms from EvalData, "
        f"less a bare forward of the window {bare_ms:.1f} ms (medians of 20 after the first)",
    )
    if not args.count_tokens:
        return

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
