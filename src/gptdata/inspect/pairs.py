"""Seeing the data: next-token pairs and windows, in IDs and text, and a model's guesses.

    >>> print("\\n".join(context_pairs(ids[50:], tok, max_length=2)))
    [290] ----> 4920
    [290, 4920] ----> 2241
     and ---->  established
     and established ---->  himself

Nothing here trains anything; it prints what the dataset and loader will produce, so a stride,
a max_length or a tokenizer can be checked before hours are spent.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import numpy as np

from ..tokenizers import Tokenizer


def escape(text: str) -> str:
    """Show control and other invisible characters as escapes: 'a\\nb' -> 'a\\\\nb'."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif unicodedata.category(ch)[0] == "C":
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


def _text(tok: Tokenizer, ids: list[int]) -> str:
    return escape(tok.decode(ids))


MASKED = "[masked]"  # a target with no loss (-100) in the text line of `inspect --documents mask`


def _target_text(tok: Tokenizer, ids: list[int]) -> str:
    """Target text with each masked (-100) target shown as ``[masked]``, not as the token the
    window holds there: the model is not trained to guess it. [13, -100, 32] -> '.[masked]A'"""
    parts: list[str] = []
    run: list[int] = []
    for i in [*ids, None]:  # None flushes the last run
        if i is not None and i != -100:
            run.append(i)
            continue
        if run:
            parts.append(_text(tok, run))
            run = []
        if i == -100:
            parts.append(MASKED)
    return "".join(parts)


def context_pairs(ids: Any, tok: Tokenizer, *, max_length: int = 4) -> list[str]:
    """For each prefix of the first ``max_length`` tokens: prefix ----> next token, IDs then text."""
    ids = [int(i) for i in ids[: max_length + 1]]
    if len(ids) < 2:
        raise ValueError(f"need at least 2 tokens from --start, got {len(ids)}.")
    steps = range(1, len(ids))
    lines = [f"{ids[:i]} ----> {ids[i]}" for i in steps]
    lines += [f"{_text(tok, ids[:i])} ----> {_text(tok, [ids[i]])}" for i in steps]
    return lines


def window_rows(
    ids: Any,
    tok: Tokenizer,
    *,
    max_length: int,
    stride: int,
    start: int = 0,
    count: int = 4,
    documents: str = "concat",
) -> list[str]:
    """The dataset's (input, target) rows from ``start``, as IDs and text.

    A window holding an end-of-text gets a ``doc_ids`` line marking where each document starts;
    with ``documents="mask"`` the targets show -100 where no loss is taken (``[masked]`` in the
    text line), and positions restart.
    """
    from ..windows.dataset import SlidingWindowDataset

    n = len(ids)
    if n - start < max_length + 1:
        raise ValueError(
            f"max_length={max_length} needs {max_length + 1} tokens after "
            f"--start {start}, but only {max(n - start, 0)} remain."
        )
    if documents not in ("concat", "mask"):
        raise ValueError(f"documents={documents!r} is not one of 'concat', 'mask'.")
    if documents == "mask" and tok.eot_id is None:
        raise ValueError(
            f"--documents mask needs an end-of-text ID, but tokenizer {tok.name} has none."
        )
    ds = SlidingWindowDataset(np.asarray(ids[start:]), max_length=max_length, stride=stride)
    marked = None
    if tok.eot_id is not None:
        marked = ds.with_format(documents="mask", batch_format="dict", eot_id=tok.eot_id)
    lines = []
    for k in range(min(count, len(ds))):
        x, y = ds[k]
        xs, ys = x.tolist(), y.tolist()
        item = marked[k] if marked is not None else None
        lines.append(
            f"window {k} (tokens {start + k * stride}..{start + k * stride + max_length}):"
        )
        lines.append(f"  input  {xs}")
        targets = item["targets"].tolist() if item is not None and documents == "mask" else ys
        lines.append(f"  target {targets}")
        # A boundary: an end-of-text among the inputs, also at the last one (where the next
        # document starts only in the targets and every doc_id is still 0).
        if item is not None and tok.eot_id in xs:
            doc_ids = item["doc_ids"].tolist()
            ends = ""
            if xs[-1] == tok.eot_id:
                ends = f"  (document {doc_ids[-1]} ends at the last input)"
            lines.append(f"  doc_ids {doc_ids}{ends}")
            if documents == "mask":
                lines.append(f"  positions {item['position_ids'].tolist()}")
        lines.append(f"  input  {_text(tok, xs)!s}")
        lines.append(f"  target {_target_text(tok, targets)!s}")
    return lines


def model_pairs(scorer: Any, ids: list[int], tokenizer: Tokenizer, *, top: int = 3) -> list[str]:
    """Each ``context ----> desired`` pair with P(desired) and the model's top predictions.

    One forward pass over ``ids[:-1]``: position ``i - 1`` predicts ``ids[i]``. Probabilities
    are the softmax over all the model's logits, as ``evaluate`` scores them: a padded vocabulary
    (nanoGPT's 50,304 for GPT-2's 50,257) keeps its extra IDs, shown as ``<pad 50300>``.
    ``scorer`` may be a list of scorers: each pair then shows every model, side by side.
    """
    if len(ids) < 2:
        raise ValueError(f"need at least 2 tokens from --start, got {len(ids)}.")
    scorers = scorer if isinstance(scorer, list) else [scorer]
    got = [predictions(s, ids[:-1], ids[1:], top=top) for s in scorers]
    lines = []
    for i in range(1, len(ids)):
        want = ids[i]
        shown = " | ".join(
            guess_text(tokenizer, float(p[i - 1]), q[i - 1], t[i - 1],
                       name=s.name if len(scorers) > 1 else "")
            for s, (p, q, t) in zip(scorers, got, strict=True)
        )  # fmt: skip
        context = escape(tokenizer.decode(ids[:i]))
        lines.append(f"{context} ----> '{escape(tokenizer.decode([want]))}' ({want})  {shown}")
    return lines


def probability(p: float, digits: int = 4) -> str:
    """0.25 -> '0.2500'; 1.4e-05 -> '1.40e-05' (never '0.0000'); 0 -> '0'."""
    if p == 0:
        return "0"
    return f"{p:.{digits}f}" if p >= 10 ** -(digits - 1) else f"{p:.2e}"


def predictions(
    scorer: Any, x: list[int], y: list[int], *, top: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One forward pass over ``x``: P(y[i]) (T,), the top probabilities (T, top) and IDs (T, top).

    A model with ``next_log_probs(context_id)`` (a count baseline) is asked row by row.
    """
    import torch

    row = getattr(scorer.model, "next_log_probs", None)
    if row is not None:
        p_y, best_p, best = [], [], []
        for v, w in zip(x, y, strict=True):
            probs = torch.exp(row(v))  # (V,) float32, one row at a time
            q, t = probs.topk(min(top, probs.shape[-1]))  # (top,)
            p_y.append(float(probs[w]))
            best_p.append(q.numpy())
            best.append(t.numpy())
        return np.array(p_y), np.array(best_p), np.array(best)
    xt = torch.tensor([x], dtype=torch.long, device=scorer.device)  # (1, T)
    yt = torch.tensor([y], dtype=torch.long, device=scorer.device)  # (1, T)
    with torch.inference_mode():
        logits = scorer.logits(xt, yt)[0].float()  # (T, V); nanoGPT-style models too
        probs = torch.softmax(logits, dim=-1)  # (T, V)
        q, t = probs.topk(min(top, probs.shape[-1]), dim=-1)  # (T, top)
        p_y = probs.gather(-1, yt[0, :, None])[:, 0]  # (T,)
    return p_y.cpu().double().numpy(), q.cpu().double().numpy(), t.cpu().numpy()


def guess_text(
    tokenizer: Tokenizer, p: float, best_p: np.ndarray, best: np.ndarray, *, name: str = ""
) -> str:
    """'p=0.0213  top 3: 13 '.' 0.061, ...', prefixed by the model's name when there are two."""

    def shown(t: int) -> str:  # an ID past the tokenizer's vocabulary is the model's padding
        return escape(tokenizer.decode([t])) if t < tokenizer.vocab_size else f"<pad {t}>"

    guesses = ", ".join(
        f"{int(t)} '{shown(int(t))}' {probability(float(q), 3)}"
        for t, q in zip(best, best_p, strict=True)
    )
    head = f"{name}: " if name else ""
    return f"{head}p={probability(p)}  top {len(best)}: {guesses}"
