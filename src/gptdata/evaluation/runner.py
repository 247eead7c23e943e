"""The window runner under every evaluation: a model over (start, length, scored) windows of one
token sequence, its sums kept on the model's device and copied back once.

``window_table`` lays lm-eval's rolling windows over documents; ``score_windows`` runs any such
table (text evaluation in ``scoring.py``, instruction examples in ``instructions.py``) and returns
an ``EvalResult``: per document, per 256-token chunk and per window position.

    >>> window_table(np.array([0]), np.array([5]), max_length=3, stride=2)
    (array([0, 2]), array([3, 3]), array([3, 2]))
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from .data import EvalData
from .models import Scorer
from .results import CHUNK_TOKENS, ChunkScores, DocumentScores, EvalResult

__all__ = ["score_windows", "window_table"]


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


def _chunk_sizes(data: EvalData, scored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scored targets and their UTF-8 bytes per block of CHUNK_TOKENS targets, once per call."""
    from ..tokenizers import token_byte_lengths

    targets = data.seq[1:]
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


def score_windows(
    scorer: Scorer,
    data: EvalData,
    windows: tuple[np.ndarray, np.ndarray, np.ndarray],
    targets_scored: np.ndarray,
    doc_tokens: np.ndarray,
    *,
    max_length: int,
    stride: int,
    batch_size: int,
    by: str,
    progress: bool,
) -> EvalResult:
    """Run the model over ``windows`` = (starts, lengths, scored) in ``data.seq`` and sum.

    Each window scores its last ``scored`` targets; ``targets_scored`` ``(len(seq) - 1,)`` says
    which targets of ``seq[1:]`` count (for chunk sizes); ``doc_tokens`` the scored tokens per
    document. Text (``_score``) and instruction examples (``instructions.py``) both run here.
    """
    seq, D = data.seq, data.documents
    starts, lens, scored = windows
    chunk_tokens, chunk_bytes = _chunk_sizes(data, targets_scored)
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
        words=int(data.words.sum()) if by != "stream" else None,
        documents=docs,
        position_nll=out[at_pos:],
        position_tokens=pos_tok,
        seconds=seconds,
        counted_on=data.counted_on,
        chunks=chunks,
    )
