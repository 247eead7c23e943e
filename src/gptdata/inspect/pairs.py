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
    from .guesses import guess_text, predictions

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
