"""A model's guesses over windows: each target's P(target) and top predictions, per model.

    window 0 (tokens 0..6):
      One ----> ' short' (1790)  p=1.01e-05  top 3: 15347 ' passionate' 3.10e-04, ...

The per-position numbers are ``pairs.predictions``'s (the softmax over all the model's logits, as
``evaluate`` scores them); here only the windows, document masks and models side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tokenizers import Tokenizer
from .pairs import MASKED, escape, guess_text, predictions


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
