"""Count-based baselines: a reference number for any corpus without training a model.

Counted from a store's train split, over its token stream as stored (documents joined by
end-of-text), with ``V`` = vocab_size and ``N`` = tokens:

    unigram  P(w)     = (c(w) + 1) / (N + V)                     add-one smoothing
    bigram   P(w | v) = (c(v, w) + P_uni(w)) / (c(v) + 1)         backs off to the unigram

where ``c(v)`` counts ``v`` as a context (the first token's context is the prefix token, so there
are ``N`` pairs). Both sum to 1 over the vocabulary for every context. Bigram counts are sparse:
sorted pair keys ``v * V + w`` with their counts, so memory follows the distinct pairs seen, not
``V**2`` (2.5 G for GPT-2). Counting runs on 4 M-token chunks in threads (numpy releases the GIL):
pairs of the 2,048 most frequent tokens go to a dense table, the rest are sorted; then merged.

    >>> bigram = Bigram.from_tokens(np.array([1, 2, 1, 2]), vocab_size=3, prefix=0)
    >>> round(float(bigram.probability(1, 2)), 4)   # (c(1,2)=2 + P_uni(2)=3/7) / (c(1)=2 + 1)
    0.8095

Each model returns the log-probability of given targets directly (``target_log_probs``), which
the evaluator uses instead of materializing ``(B, T, V)`` logits; calling it returns full
log-probabilities, like any model, for small inputs (``gptdata inspect --model``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

CHUNK = 1 << 22
_DENSE = 2048  # the K most frequent tokens of the first chunk get a dense pair table


def _key_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint32) if vocab_size * vocab_size <= 1 << 32 else np.dtype(np.uint64)


class Unigram:
    """``P(w) = (c(w) + 1) / (N + V)``; ``counts`` has one entry per vocabulary ID."""

    def __init__(self, counts: np.ndarray) -> None:
        self.counts = np.asarray(counts, dtype=np.int64)
        self.vocab_size = len(self.counts)
        self.tokens = int(self.counts.sum())
        self.max_positions: int | None = None  # any context length
        probs = (self.counts + 1) / (self.tokens + self.vocab_size)
        self.probs = probs  # (V,) float64
        self.log_table = torch.from_numpy(np.log(probs))  # (V,) float64

    @classmethod
    def from_tokens(cls, chunks: Iterable[np.ndarray] | np.ndarray, *, vocab_size: int) -> Unigram:
        if isinstance(chunks, np.ndarray):
            chunks = [chunks]
        counts = np.zeros(vocab_size, dtype=np.int64)
        for chunk in chunks:
            counts += np.bincount(chunk, minlength=vocab_size)[:vocab_size]
        return cls(counts)

    def probability(self, w: int) -> float:
        return float(self.probs[w])

    def target_log_probs(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, T) inputs and targets -> (B, T) float32 log P(target)."""
        return self.log_table.to(targets.device)[targets].float()

    def next_log_probs(self, context: int) -> torch.Tensor:
        """(V,) float32 log P(w) for every w (the context does not matter)."""
        return self.log_table.float()

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T, V) log-probabilities (small inputs only)."""
        table = self.log_table.float().to(inputs.device)
        return table.expand(*inputs.shape, self.vocab_size)


def _count_pairs(
    prev: int, chunk: np.ndarray, vocab_size: int, hi: np.ndarray, lo: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Count the pairs of one chunk (``prev`` precedes it).

    Pairs of two frequent tokens go to a dense ``K x K`` table (one bincount, no sort): on
    English text with K = 2048 that is 70-80 % of them, and sorting the many duplicates they
    would add costs 3x more than counting them. The rest: sorted distinct keys and counts.
    """
    contexts = np.empty(len(chunk), dtype=chunk.dtype)
    contexts[0] = prev
    contexts[1:] = chunk[:-1]
    cells = hi[contexts] + lo[chunk]  # K * rank(v) + rank(w); >= K * K if rare
    dense_cells = _DENSE * _DENSE
    frequent = cells < dense_cells
    dense = np.bincount(cells[frequent], minlength=dense_cells)
    rare = ~frequent
    keys = contexts[rare].astype(_key_dtype(vocab_size))
    keys *= vocab_size
    np.add(keys, chunk[rare], out=keys, casting="unsafe")  # IDs < vocab_size: no overflow
    keys.sort()  # numpy's sort releases the GIL: chunks count in parallel threads
    first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]])) if len(keys) else keys
    counts = np.diff(np.append(first, len(keys)))
    return keys[first], counts, dense, np.bincount(chunk, minlength=vocab_size)[:vocab_size]


def _merge(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-chunk (sorted keys, counts): a stable sort finds the sorted runs (timsort)."""
    keys = np.concatenate([k for k, _ in parts])
    counts = np.concatenate([c for _, c in parts])
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    first = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[first], np.add.reduceat(counts, first)


class Bigram:
    """``P(w | v) = (c(v, w) + P_uni(w)) / (c(v) + 1)`` from sparse pair counts."""

    def __init__(
        self, keys: np.ndarray, counts: np.ndarray, context_counts: np.ndarray, unigram: Unigram
    ) -> None:
        self.keys, self.counts = keys, np.asarray(counts, dtype=np.int64)  # (P,), sorted keys
        self.context_counts = np.asarray(context_counts, dtype=np.int64)  # (V,)
        self.unigram = unigram
        self.vocab_size = unigram.vocab_size
        self.max_positions: int | None = None
        self._keys_t = torch.from_numpy(keys.astype(np.int64))  # (P,) for torch.searchsorted
        self._counts_t = torch.from_numpy(self.counts)
        self._log_ctx = torch.from_numpy(np.log(self.context_counts + 1.0))  # (V,) float64
        self._uni = torch.from_numpy(unigram.probs)  # (V,) float64

    @classmethod
    def from_tokens(
        cls,
        chunks: Iterable[np.ndarray] | np.ndarray,
        *,
        vocab_size: int,
        prefix: int,
        threads: int | None = None,
    ) -> Bigram:
        """Count over a token stream (one array or consecutive chunks of it)."""
        if isinstance(chunks, np.ndarray):
            whole = chunks
            chunks = (whole[i : i + CHUNK] for i in range(0, len(whole), CHUNK))
        it = iter(chunks)
        chunk = next((c for c in it if len(c)), None)
        if chunk is None:
            raise ValueError("no tokens to count a bigram from.")
        # Ranks of the most frequent tokens, from the first chunk (deterministic for the data).
        K = _DENSE
        top = np.argsort(-np.bincount(chunk, minlength=vocab_size), kind="stable")[:K]
        hi = np.full(vocab_size, K * K, dtype=np.int32)  # rare contexts land past the table
        lo = np.zeros(vocab_size, dtype=np.int32)
        hi[top], lo[top] = np.arange(len(top)) * K, np.arange(len(top))
        lo[np.setdiff1d(np.arange(vocab_size), top)] = K * K
        dense = np.zeros(K * K, dtype=np.int64)
        uni = np.zeros(vocab_size, dtype=np.int64)
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        prev = prefix
        threads = threads or min(os.cpu_count() or 1, 8)
        with ThreadPoolExecutor(threads) as pool:
            pending: list[Any] = []

            def collect(limit: int) -> None:  # keep memory bounded: few chunks in flight
                while len(pending) > limit:
                    keys, counts, d, u = pending.pop(0).result()
                    parts.append((keys, counts))
                    np.add(dense, d, out=dense)
                    np.add(uni, u, out=uni)

            while chunk is not None:
                pending.append(pool.submit(_count_pairs, prev, chunk, vocab_size, hi, lo))
                prev = int(chunk[-1])
                collect(2 * threads)
                chunk = next((c for c in it if len(c)), None)
            collect(0)
        cells = np.flatnonzero(dense)
        dense_keys = top[cells // K].astype(_key_dtype(vocab_size)) * vocab_size + top[cells % K]
        parts.append((dense_keys, dense[cells]))
        # Contexts are the stream shifted right by one: the prefix in, the last token out.
        ctx = uni.copy()
        ctx[prefix] += 1
        ctx[prev] -= 1
        keys, counts = _merge(parts)
        return cls(keys, counts, ctx, Unigram(uni))

    def pair_count(self, v: int, w: int) -> int:
        key = v * self.vocab_size + w
        i = int(np.searchsorted(self.keys, key))
        return int(self.counts[i]) if i < len(self.keys) and self.keys[i] == key else 0

    def probability(self, v: int, w: int) -> float:
        return (self.pair_count(v, w) + self.unigram.probs[w]) / (self.context_counts[v] + 1)

    def target_log_probs(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, T) inputs (contexts) and targets -> (B, T) float32 log P(target | input)."""
        x, y = inputs.cpu().long(), targets.cpu().long()
        query = x * self.vocab_size + y  # (B, T)
        i = torch.searchsorted(self._keys_t, query).clamp_(max=len(self._keys_t) - 1)
        pair = torch.where(self._keys_t[i] == query, self._counts_t[i], 0)  # (B, T)
        logp = torch.log(pair + self._uni[y]) - self._log_ctx[x]  # (B, T) float64
        return logp.float().to(targets.device)

    def next_log_probs(self, context: int) -> torch.Tensor:
        """(V,) float32 log P(w | context) for every w: one row, what ``inspect`` shows."""
        v = int(context)
        lo = int(np.searchsorted(self.keys, v * self.vocab_size))
        hi = int(np.searchsorted(self.keys, (v + 1) * self.vocab_size))
        row = self._uni.clone()  # (V,) float64
        ws = torch.from_numpy((self.keys[lo:hi] % self.vocab_size).astype(np.int64))
        row[ws] += self._counts_t[lo:hi].double()
        return (torch.log(row) - self._log_ctx[v]).float()  # (V,)

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T, V) log-probabilities (small inputs only)."""
        x = inputs.cpu().long()
        probs = self._uni.expand(*x.shape, self.vocab_size).clone()  # (B, T, V) float64
        starts = np.searchsorted(self.keys, x.numpy().astype(np.int64) * self.vocab_size)
        ends = np.searchsorted(self.keys, (x.numpy().astype(np.int64) + 1) * self.vocab_size)
        for b, t in np.ndindex(*x.shape):
            lo, hi = starts[b, t], ends[b, t]
            ws = torch.from_numpy((self.keys[lo:hi] % self.vocab_size).astype(np.int64))
            probs[b, t, ws] += self._counts_t[lo:hi].double()
        probs /= torch.exp(self._log_ctx[x])[..., None]
        return torch.log(probs).float().to(inputs.device)


def baseline_from_store(
    kind: str,
    path: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    cache_limit: int | None = None,
) -> Unigram | Bigram:
    """``unigram`` or ``bigram`` counted from the train split of the store at ``path``: a folder,
    or a URL (``s3://b/stores/web``) read with ``storage_options`` through the shard cache
    (``cache_limit`` bytes at most; it bounds a URL's cache only, a folder is read in place).

        baseline_from_store("bigram", "s3://b/web", storage_options={"endpoint_url": URL})
    """
    from ..storage import is_remote
    from ..store import TokenStore

    if is_remote(os.fspath(path)):
        store = TokenStore.open(path, storage_options=storage_options, cache_limit=cache_limit)
    else:
        store = TokenStore.open(path)
    if "train" not in store.splits or store.split("train").n_tokens == 0:
        raise ValueError(f"{path}: {kind}:STORE counts the train split, which is missing or empty.")
    split = store.split("train")
    if kind == "unigram":
        model: Unigram | Bigram = Unigram.from_tokens(
            split.iter_chunks(CHUNK), vocab_size=store.vocab_size
        )
    else:
        if store.eot_id is None:
            raise ValueError(f"{path}: the store's tokenizer has no end-of-text to use as prefix.")
        model = Bigram.from_tokens(
            split.iter_chunks(CHUNK), vocab_size=store.vocab_size, prefix=store.eot_id
        )
    # Scorer.check compares it with the source's tokenizer: other IDs would be scored silently.
    model.fingerprint = store.fingerprint  # type: ignore[attr-defined]
    model.tokenizer_name = store.tokenizer_name  # type: ignore[attr-defined]
    return model
