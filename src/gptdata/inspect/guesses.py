"""A model's guesses beside the data: P(desired) and the top predictions, for pairs and windows.

    Document ----> ' number' (1271)  p=0.0213  top 3: 13 '.' 0.061, 11 ',' 0.048, ...

Probabilities are the softmax over all the model's logits, as ``evaluate`` scores them; one below
0.001 is printed in scientific notation (1.4e-05, never 0.0000). Count baselines answer one
position at a time from their tables, a (V,) row each, never a (T, V) float64 table.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tokenizers import Tokenizer
from .pairs import MASKED, escape


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


def _segments(x: list[int], eot: int | None, documents: str) -> list[tuple[int, int]]:
    """(start, end) runs of ``x`` the model reads on their own: the whole window, or with
    ``documents="mask"`` each document (a run ends after its end-of-text), positions restarted."""
    if documents != "mask" or eot is None:
        return [(0, len(x))]
    cuts = [i + 1 for i, t in enumerate(x[:-1]) if t == eot]
    bounds = [0, *cuts, len(x)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def model_windows(
    scorers: list[Any],
    ids: Any,
    tokenizer: Tokenizer,
    *,
    max_length: int,
    stride: int,
    start: int = 0,
    count: int = 4,
    documents: str = "concat",
    top: int = 3,
) -> list[str]:
    """``count`` windows from ``start``, each target with every model's P(target) and top guesses.

    With ``documents="mask"`` each document in a window is read on its own (attention and
    positions restart after an end-of-text, as the mask gives a model in training) and a target
    with no loss (predicting the next document's start) is shown as ``[masked]``.
    """
    ids = [int(t) for t in ids]
    eot = tokenizer.eot_id
    if documents == "mask" and eot is None:
        raise ValueError(f"--documents mask needs an end-of-text ID; {tokenizer.name} has none.")
    lines: list[str] = []
    for k in range(count):
        s = start + k * stride
        if s + max_length + 1 > len(ids):
            break
        x, y = ids[s : s + max_length], ids[s + 1 : s + max_length + 1]
        lines.append(f"window {k} (tokens {s}..{s + max_length}):")
        runs = _segments(x, eot, documents)
        per_model = []
        for scorer in scorers:
            got = [predictions(scorer, x[a:b], y[a:b], top=top) for a, b in runs]
            per_model.append(tuple(np.concatenate(part) for part in zip(*got, strict=True)))
        for i in range(len(x)):
            a = next(a for a, b in runs if a <= i < b)
            context = escape(tokenizer.decode(x[a : i + 1]))
            want = f"'{escape(tokenizer.decode([y[i]]))}' ({y[i]})"
            if documents == "mask" and x[i] == eot:
                lines.append(f"  {context} ----> {MASKED}")
                continue
            names = len(scorers) > 1
            shown = " | ".join(
                guess_text(tokenizer, float(p[i]), q[i], t[i], name=scorer.name if names else "")
                for scorer, (p, q, t) in zip(scorers, per_model, strict=True)
            )
            lines.append(f"  {context} ----> {want}  {shown}")
    if not lines:
        raise ValueError(
            f"max_length={max_length} needs {max_length + 1} tokens after --start {start}, but "
            f"only {max(len(ids) - start, 0)} remain."
        )
    return lines
