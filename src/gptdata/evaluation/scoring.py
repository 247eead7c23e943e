"""Evaluation: loss, perplexity and bits per byte of a model on exact rolling windows.

Every token ``t_i`` of a sequence is scored exactly once, with as much left context as the window
allows. With prefix ``p`` (end-of-text), ``L = max_length`` and ``s = stride``: the first window's
input is ``[p] + t[:L - 1]`` and scores ``t[:L]``; each later window scores the next ``s`` tokens
(fewer at the end) from the logits at its last positions, its input being the ``L`` tokens that
end just before its last scored token. This is lm-evaluation-harness's
``get_rolling_token_windows(t, p, L, context_len=L - s + 1)`` + ``make_disjoint_window``.

    t = [10, 11, 12, 13, 14], L = 3, s = 2:
      input [p, 10, 11]   scores [10, 11, 12]  (all 3 positions)
      input [11, 12, 13]  scores [13, 14]      (its last 2 positions)

Sums, not means of means: ``loss = nll / tokens`` over all scored tokens; ``bits_per_byte =
nll_text / ln 2 / bytes`` where end-of-text targets count 0 bytes and are left out of ``nll_text``.

    >>> r = evaluate(model, store.split("val"), max_length=256)
    >>> r.loss, r.perplexity, r.bits_per_byte
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Literal

import numpy as np
import torch

from ..tokenizers import Tokenizer
from ..windows.mixture import Mixture
from .data import EvalData, load_eval_data
from .mixture import evaluate_mixture
from .models import Scorer, load_model
from .results import CHUNK_TOKENS, ChunkScores, DocumentScores, EvalResult

__all__ = ["DocumentScores", "EvalResult", "evaluate", "rolling_windows", "window_table"]

By = Literal["document", "stream"]


def rolling_windows(n: int, *, max_length: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows over ``seq = [p] + t`` (``len(t) == n``) as ``(start, length, scored)``.

    The input is ``seq[start : start + length]``, the targets ``seq[start + 1 : start + length +
    1]``, and the last ``scored`` of them are scored.  n=5, max_length=3, stride=2 ->
    [(0, 3, 3), (2, 3, 2)]
    """
    starts, lengths, scored = window_table(
        np.array([0]), np.array([n]), max_length=max_length, stride=stride
    )
    return list(zip(starts.tolist(), lengths.tolist(), scored.tolist(), strict=True))


def window_table(
    offsets: np.ndarray, lengths: np.ndarray, *, max_length: int, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All documents' windows at once, in order: (starts, lengths, scored), int64 each."""
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    keep = lengths > 0
    offsets, lengths = offsets[keep], lengths[keep]
    L, s = max_length, stride
    extra = np.where(lengths > L, -(-(lengths - L) // s), 0)  # later windows per document
    per_doc = 1 + extra
    doc = np.repeat(np.arange(len(lengths)), per_doc)  # (W,)
    k = np.arange(len(doc)) - np.repeat(np.cumsum(per_doc) - per_doc, per_doc)  # window number
    n = lengths[doc]
    end = np.minimum(L + k * s, n)  # one past the last scored token, in document coordinates
    prev_end = np.where(k == 0, 0, np.minimum(L + (k - 1) * s, n))
    first = k == 0
    win_len = np.where(first, np.minimum(L, n), L)
    starts = offsets[doc] + np.where(first, 0, end - L)
    return starts, win_len, end - prev_end


class _Progress:
    """windows/s, tokens/s and ETA on stderr, once a run has taken 2 s, then every second."""

    def __init__(self, total_windows: int, enabled: bool) -> None:
        self.total, self.enabled = total_windows, enabled
        self.t0 = self.last = time.perf_counter()
        self.shown = False

    def update(self, windows: int, tokens: int) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self.last < 1.0 or now - self.t0 < 2.0:
            return
        self.last, el = now, now - self.t0
        eta = (self.total - windows) * el / max(windows, 1)
        print(
            f"\reval: {windows:,}/{self.total:,} windows, {windows / el:,.1f} windows/s, "
            f"{tokens / el:,.0f} tokens/s, ETA {eta:,.0f} s   ",
            end="",
            file=sys.stderr,
            flush=True,
        )
        self.shown = True

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr)


def _default_by(source: Any) -> By:
    from ..store import Split, TokenStore

    documented = (Split, TokenStore, EvalData, os.PathLike)
    return "document" if isinstance(source, documented) else "stream"


def _whole(name: str, value: Any, minimum: int) -> int:
    """An integer argument, checked at the door: ``True`` is not 1 and 2.5 is not 2."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        fix = int(value) if isinstance(value, float) and value.is_integer() else max(minimum, 1)
        raise ValueError(
            f"{name} must be a whole number >= {minimum}, got {value!r} "
            f"({type(value).__name__}). Pass e.g. {name}={fix}."
        )
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def evaluate(
    model: Any,
    source: Any,
    *,
    max_length: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
    by: By | None = None,
    device: str | torch.device | None = None,
    tokenizer: Tokenizer | str | None = None,
    split: str | None = None,
    progress: bool = True,
    name: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> EvalResult:
    """Score every token of ``source`` once with ``model``; see the module docstring.

    ``model`` is a logits callable or a spec (``hf:DIR``, ``py:FILE.py:NAME`` with
    ``checkpoint``, ``unigram:STORE``, ``bigram:STORE``); ``name`` names the result (default:
    the spec or the class name). ``max_length`` defaults to the model's context (its config,
    ``pos_emb`` or ``context_length``) and is clipped to what the source needs, so memory follows
    the tokens scored. ``by="document"`` (default for stores, splits and files) scores each
    document on its own, context never crossing documents; ``by="stream"`` (default for strings
    and token IDs) scores the documents as stored, joined by end-of-text, as one sequence.
    A TokenStore is read at its ``split`` (default 'val'); ``tokenizer`` defaults to the store's,
    else GPT-2. ``progress`` prints windows/s, tokens/s and ETA on stderr once a run takes 2 s.

        >>> evaluate(model, "Hello world", max_length=2, name="tuned").tokens  # 'Hello', ' world'
        2
    """
    if max_length is not None:
        max_length = _whole("max_length", max_length, 1)
    if stride is not None:
        stride = _whole("stride", stride, 1)
    batch_size = _whole("batch_size", batch_size, 1)
    asked_by = by
    by = by or _default_by(source)
    if by not in ("document", "stream"):
        raise ValueError(f"by={by!r} is not 'document' or 'stream'.")
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name must be a str, got {type(name).__name__}.")
    if isinstance(model, Scorer):
        scorer = model
        if checkpoint is not None:
            raise ValueError("checkpoint= is for model specs; this model is already loaded.")
    else:
        scorer = load_model(model, device=device, checkpoint=checkpoint)
    if max_length is None:
        if scorer.max_positions is None:
            raise ValueError(
                f"model {scorer.name} does not state its context length (no config, pos_emb or "
                "context_length); pass max_length=..."
            )
        max_length = scorer.max_positions
    stride = max_length if stride is None else stride
    if stride > max_length:
        raise ValueError(
            f"stride={stride} must be between 1 and max_length={max_length}: every token is "
            "scored once, so windows may overlap but never skip tokens. Lower the stride."
        )
    if isinstance(source, Mixture):  # each source alone, then the totals (evaluation/mixture.py)
        opts = {"max_length": max_length, "stride": stride, "batch_size": batch_size}

        def score(corpus: Any, default_by: By) -> EvalResult:
            return evaluate(
                scorer, corpus, by=asked_by or default_by, progress=progress, name=name, **opts
            )

        return evaluate_mixture(score, source)
    data = (
        source
        if isinstance(source, EvalData)
        else load_eval_data(source, tokenizer=tokenizer, split=split)
    )
    # Memory follows the tokens scored: a window longer than the longest sequence to score
    # holds nothing more (max_length=1e9 on 442 tokens once took 15.9 GB of position sums).
    # The model is checked against the length asked for, a mistake even where the source is short.
    scorer.check(max_length=max_length, tokenizer=data.tokenizer)
    # The windows are the same either way, so the result reports the settings asked for.
    need = int(data.lengths.max()) if by == "document" else len(data.seq) - 1
    fit = max(1, min(max_length, need))
    opts = {"max_length": fit, "stride": min(stride, fit), "batch_size": batch_size}
    result = _score(scorer, data, by=by, progress=progress, **opts)
    result.max_length, result.stride = max_length, stride
    if name is not None:
        result.name = name
    return result


def _scored_targets(data: EvalData, by: By) -> np.ndarray:
    """(len(seq) - 1,) bool: which targets ``seq[1:]`` are scored (document mode: no separators)."""
    scored = np.ones(len(data.seq) - 1, dtype=bool)
    if by == "document":
        scored[data.offsets[1:] - 1] = False  # the separator before each later document
        if data.trailing_separator:
            scored[-1] = False
    return scored


def _chunk_sizes(data: EvalData, by: By) -> tuple[np.ndarray, np.ndarray]:
    """Scored targets and their UTF-8 bytes per block of CHUNK_TOKENS targets, once per call."""
    from ..tokenizers import token_byte_lengths

    targets = data.seq[1:]
    scored = _scored_targets(data, by)
    block = np.arange(len(targets)) // CHUNK_TOKENS  # (N,)
    count = int(block[-1]) + 1 if len(block) else 0
    tokens = np.bincount(block, weights=scored, minlength=count).astype(np.int64)
    text = scored & (targets != data.prefix)  # end-of-text: 0 bytes
    table = token_byte_lengths(data.tokenizer)
    if table is not None:
        sizes = np.where(text, table[np.minimum(targets, len(table) - 1)], 0)
        return tokens, np.bincount(block, weights=sizes, minlength=count).astype(np.int64)
    # No per-token byte table: decode each block (bytes at a block's edges may split a character).
    out = np.zeros(count, dtype=np.int64)
    for c in range(count):
        ids = targets[c * CHUNK_TOKENS : (c + 1) * CHUNK_TOKENS][
            text[c * CHUNK_TOKENS :][:CHUNK_TOKENS]
        ]
        out[c] = len(data.tokenizer.decode([int(t) for t in ids]).encode("utf-8"))
    return tokens, out


def _score(
    scorer: Scorer,
    data: EvalData,
    *,
    max_length: int,
    stride: int,
    batch_size: int,
    by: By,
    progress: bool,
) -> EvalResult:
    seq, D = data.seq, data.documents
    if by == "document":
        starts, lens, scored = window_table(
            data.offsets, data.lengths, max_length=max_length, stride=stride
        )
        doc_tokens = data.lengths.copy()
    else:  # the whole stream after the prefix, separators included, is one sequence
        starts, lens, scored = window_table(
            np.array([0]), np.array([len(seq) - 1]), max_length=max_length, stride=stride
        )
        # Each separator ends its document (the last one's too when the IDs end with one).
        doc_tokens = data.lengths + (np.arange(D) < D - 1 + data.trailing_separator)
    if int(scored.sum()) == 0:
        raise ValueError(f"{data.name}: no tokens to score (every document is empty).")
    chunk_tokens, chunk_bytes = _chunk_sizes(data, by)
    C = len(chunk_tokens)
    dev = scorer.device
    # The sums live on the device and come back in one copy at the end: no host sync per batch
    # (a .cpu() per batch cost 0.38 s of 2 s on an H200). Layout: [doc nll | doc text nll |
    # chunk nll | chunk text nll | position nll], float64.
    sums = torch.zeros(2 * D + 2 * C + max_length, dtype=torch.float64, device=dev)
    at_doc, at_text, at_chunk, at_ctext, at_pos = 0, D, 2 * D, 2 * D + C, 2 * D + 2 * C
    prefix = torch.tensor(data.prefix, device=dev)
    pin = dev.type == "cuda"  # a copy from pageable memory may wait for the device
    pos_tok = np.zeros(max_length, dtype=np.int64)  # known from the windows alone: on the host
    top = len(seq) - 1
    meter = _Progress(len(starts), progress)
    training = getattr(scorer.model, "training", False)
    if training:
        scorer.model.eval()  # dropout off; restored below
    t0 = time.perf_counter()
    done_tokens = 0
    try:
        with torch.inference_mode():
            for b0 in range(0, len(starts), batch_size):
                sl = slice(b0, b0 + batch_size)
                st, ln, sc = starts[sl], lens[sl], scored[sl]
                T = int(ln.max())
                j = np.arange(T)
                idx = np.minimum(st[:, None] + j, top - 1)  # (B, T); padding reads real tokens
                # Gather in the store's dtype, widen only the batch: no int64 copy of the split.
                x = seq[idx].astype(np.int64)  # (B, T)
                y = seq[idx + 1].astype(np.int64)  # (B, T)
                full = bool((sc == T).all())  # every position scored: no selection at all
                mask_np = None if full else (j >= (ln - sc)[:, None]) & (j < ln[:, None])
                tpos = (idx + 1).reshape(-1) if mask_np is None else (idx + 1)[mask_np]  # (K,)
                where = np.broadcast_to(j, idx.shape)  # (B, T) position in the window
                ppos = where.reshape(-1) if mask_np is None else where[mask_np]  # (K,)
                pos_tok += np.bincount(ppos, minlength=max_length)
                # Targets come in increasing position, so their documents are sorted.
                docs = np.searchsorted(data.offsets, tpos - 1, side="right") - 1  # (K,)
                rows = [docs, (tpos - 1) // CHUNK_TOKENS, ppos]
                if mask_np is not None:  # flat indices of the scored positions: no bool mask,
                    rows.append(np.flatnonzero(mask_np))  # whose indexing syncs on a GPU
                # One host-to-device copy per batch, from pinned memory on a GPU so it is
                # asynchronous: [x (B*T) | y (B*T) | rows (3|4, K)].
                BT = idx.size
                packed = torch.from_numpy(np.concatenate([x.ravel(), y.ravel(), *rows]))
                if pin:
                    packed = packed.pin_memory()
                packed = packed.to(dev, non_blocking=True)  # (2 * B*T + (3|4) * K,)
                xd, yd = packed[:BT].view(idx.shape), packed[BT : 2 * BT].view(idx.shape)
                where_t = packed[2 * BT :].view(len(rows), -1)  # (3|4, K)
                sel = None if mask_np is None else where_t[3]
                logp = scorer.log_probs(xd, yd, sel)  # (K,) float32
                nll = -logp.double()  # (K,)
                ys = yd.reshape(-1) if sel is None else yd.reshape(-1).index_select(0, sel)  # (K,)
                # End-of-text targets count 0 bytes and are left out of the text sum: where(),
                # not a product, so a probability-0 end-of-text (inf * 0 = NaN) stays out.
                text = torch.where(ys != prefix, nll, 0.0)  # (K,)
                sums.index_add_(0, where_t[0] + at_doc, nll)
                sums.index_add_(0, where_t[0] + at_text, text)
                sums.index_add_(0, where_t[1] + at_chunk, nll)
                sums.index_add_(0, where_t[1] + at_ctext, text)
                sums.index_add_(0, where_t[2] + at_pos, nll)
                done_tokens += len(tpos)
                meter.update(b0 + len(st), done_tokens)
    finally:
        meter.close()
        if training:
            scorer.model.train()
    out = sums.cpu().numpy()  # the one copy back of the call
    seconds = time.perf_counter() - t0
    nll_doc, nll_text_doc = out[at_doc:at_text], out[at_text:at_chunk]
    docs = DocumentScores(doc_tokens, nll_doc, nll_text_doc, data.bytes.copy(), data.words.copy())
    chunks = ChunkScores(chunk_tokens, out[at_chunk:at_ctext], out[at_ctext:at_pos], chunk_bytes)
    return EvalResult(
        name=scorer.name,
        source=data.name,
        by=by,
        max_length=max_length,
        stride=stride,
        tokens=int(doc_tokens.sum()),
        nll=float(nll_doc.sum()),
        nll_text=float(nll_text_doc.sum()),
        bytes=int(data.bytes.sum()),
        words=int(data.words.sum()) if by == "document" else None,
        documents=docs,
        position_nll=out[at_pos:],
        position_tokens=pos_tok,
        seconds=seconds,
        counted_on=data.counted_on,
        chunks=chunks,
    )
