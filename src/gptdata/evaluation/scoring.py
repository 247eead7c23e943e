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

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ..tokenizers import Tokenizer
from .data import EvalData, load_eval_data
from .models import Scorer, load_model

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


@dataclass
class DocumentScores:
    """Per-document sums (arrays of one entry per document, in source order)."""

    tokens: np.ndarray
    nll: np.ndarray
    nll_text: np.ndarray
    bytes: np.ndarray
    words: np.ndarray

    def bits_per_byte(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.bytes > 0, self.nll_text / math.log(2) / self.bytes, np.nan)

    def __len__(self) -> int:
        return len(self.tokens)


def _ratio(num: float, den: float) -> float:
    return num / den if den else float("nan")


def _exp(x: float) -> float:
    """exp that saturates: a random model's word perplexity can exceed a float's range."""
    return math.exp(x) if x < 709 else float("inf")


@dataclass
class EvalResult:
    """What ``evaluate`` measured; every mean is a sum divided by a sum."""

    name: str
    source: str
    by: str
    max_length: int
    stride: int
    tokens: int
    nll: float
    nll_text: float
    bytes: int
    words: int | None
    documents: DocumentScores = field(repr=False)
    position_nll: np.ndarray = field(repr=False)  # (max_length,) nll summed per window position
    position_tokens: np.ndarray = field(repr=False)  # (max_length,) tokens scored per position
    seconds: float = 0.0
    counted_on: str = "text"

    @property
    def loss(self) -> float:
        return _ratio(self.nll, self.tokens)

    @property
    def perplexity(self) -> float:
        return _exp(self.loss) if self.tokens else float("nan")

    @property
    def bits_per_byte(self) -> float:
        return _ratio(self.nll_text / math.log(2), self.bytes)

    @property
    def byte_perplexity(self) -> float:
        return _exp(self.nll / self.bytes) if self.bytes else float("nan")

    @property
    def word_perplexity(self) -> float | None:
        return _exp(self.nll / self.words) if self.words else None

    @property
    def tokens_per_second(self) -> float:
        return _ratio(self.tokens, self.seconds)

    def position_loss(self) -> np.ndarray:
        """Mean loss at each window position (how loss falls with more context)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.position_nll / self.position_tokens

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain JSON values; every non-finite number (a target given probability
        0 makes ``nll`` infinite) is ``None`` (JSON null), so strict parsers read it."""

        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else x

        return {
            "model": self.name,
            "source": self.source,
            "by": self.by,
            "max_length": self.max_length,
            "stride": self.stride,
            "documents": len(self.documents),
            "tokens": self.tokens,
            "nll": num(self.nll),
            "loss": num(self.loss),
            "perplexity": num(self.perplexity),
            "bytes": self.bytes,
            "bits_per_byte": num(self.bits_per_byte),
            "byte_perplexity": num(self.byte_perplexity),
            "words": self.words,
            "word_perplexity": num(self.word_perplexity),
            "bytes_from": "scored tokens",
            "words_from": self.counted_on,
            "seconds": num(self.seconds),
        }


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


def evaluate(
    model: Any,
    source: Any,
    *,
    max_length: int,
    stride: int | None = None,
    batch_size: int = 8,
    by: By | None = None,
    device: str | torch.device | None = None,
    tokenizer: Tokenizer | str | None = None,
    split: str | None = None,
    progress: bool = True,
) -> EvalResult:
    """Score every token of ``source`` once with ``model``; see the module docstring.

    ``by="document"`` (default for stores, splits and files) scores each document on its own,
    context never crossing documents; ``by="stream"`` (default for strings and token IDs) scores
    the documents as stored, joined by end-of-text, as one sequence.
    A TokenStore is read at its ``split`` (default 'val'); ``tokenizer`` defaults to the store's,
    else GPT-2. ``progress`` prints windows/s, tokens/s and ETA on stderr once a run takes 2 s.

        >>> evaluate(model, "Hello world", max_length=2).tokens   # 'Hello', ' world'
        2
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}.")
    stride = max_length if stride is None else stride
    if not 1 <= stride <= max_length:
        raise ValueError(
            f"stride={stride} must be between 1 and max_length={max_length}: every token is "
            "scored once, so windows may overlap but never skip tokens. Lower the stride."
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    by = by or _default_by(source)
    if by not in ("document", "stream"):
        raise ValueError(f"by={by!r} is not 'document' or 'stream'.")
    scorer = model if isinstance(model, Scorer) else load_model(model, device=device)
    data = (
        source
        if isinstance(source, EvalData)
        else load_eval_data(source, tokenizer=tokenizer, split=split)
    )
    scorer.check(max_length=max_length, tokenizer=data.tokenizer)
    opts = {"max_length": max_length, "stride": stride, "batch_size": batch_size}
    return _score(scorer, data, by=by, progress=progress, **opts)


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
    nll_doc = np.zeros(D, dtype=np.float64)
    nll_text_doc = np.zeros(D, dtype=np.float64)
    pos_nll = np.zeros(max_length, dtype=np.float64)
    pos_tok = np.zeros(max_length, dtype=np.int64)
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
                x = torch.from_numpy(seq[idx].astype(np.int64))  # (B, T)
                y = torch.from_numpy(seq[idx + 1].astype(np.int64))  # (B, T)
                full = bool((sc == T).all())  # every position scored: no mask at all
                mask_np = None if full else (j >= (ln - sc)[:, None]) & (j < ln[:, None])
                mask = None if mask_np is None else torch.from_numpy(mask_np)
                dev = scorer.device
                logp = scorer.log_probs(
                    x.to(dev, non_blocking=True),
                    y.to(dev, non_blocking=True),
                    None if mask is None else mask.to(dev, non_blocking=True),
                )
                nll = -logp.double().cpu().numpy()  # (K,) in row-major order
                tpos = (idx + 1).reshape(-1) if mask_np is None else (idx + 1)[mask_np]  # (K,)
                where = np.broadcast_to(j, idx.shape)  # (B, T) position in the window
                ppos = where.reshape(-1) if mask_np is None else where[mask_np]  # (K,)
                pos_nll += np.bincount(ppos, weights=nll, minlength=max_length)
                pos_tok += np.bincount(ppos, minlength=max_length)
                text = nll * (seq[tpos] != data.prefix)  # end-of-text targets: 0 bytes
                # Targets come in increasing position, so their documents are sorted: reduceat.
                docs = np.searchsorted(data.offsets, tpos - 1, side="right") - 1
                cut = np.flatnonzero(np.concatenate([[True], docs[1:] != docs[:-1]]))
                nll_doc[docs[cut]] += np.add.reduceat(nll, cut)
                nll_text_doc[docs[cut]] += np.add.reduceat(text, cut)
                done_tokens += len(nll)
                meter.update(b0 + len(st), done_tokens)
    finally:
        meter.close()
        if training:
            scorer.model.train()
    seconds = time.perf_counter() - t0
    docs = DocumentScores(doc_tokens, nll_doc, nll_text_doc, data.bytes.copy(), data.words.copy())
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
        position_nll=pos_nll,
        position_tokens=pos_tok,
        seconds=seconds,
        counted_on=data.counted_on,
    )
