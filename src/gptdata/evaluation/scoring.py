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
from typing import Any, Literal

import numpy as np
import torch

from ..tokenizers import Tokenizer
from ..windows.mixture import Mixture
from .data import EvalData, load_eval_data, open_url
from .mixture import evaluate_mixture
from .models import Scorer, load_model
from .results import DocumentScores, EvalResult
from .runner import score_windows, window_table

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


def _default_by(source: Any) -> By:
    from ..storage import Location
    from ..store import Split, TokenStore

    documented = (Split, TokenStore, EvalData, os.PathLike, Location)  # files, a store
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
    instructions: bool = False,
    template: str | os.PathLike[str] = "alpaca",
    fields: str | dict[str, str] | None = None,
    storage_options: dict[str, Any] | None = None,
    cache_limit: int | None = None,
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

    Instruction examples (an ``InstructionDataset``, or ``instructions=True`` with a ``.json`` /
    ``.jsonl`` / ``.parquet`` path or a list of dicts, read with ``template`` and ``fields``):
    only the response tokens are scored, the prompt is context; see ``instructions.py``.

        >>> evaluate(model, Path("held-out.json"), instructions=True).documents.loss()  # each

    A URL (``"s3://b/stores/web"``, a store or files; ``"s3://b/sft/test.json"`` with
    ``instructions=True``) and a ``unigram:``/``bigram:`` spec's store URL are read with
    ``storage_options``; a store URL's shards through the cache, ``cache_limit`` bytes at most.
    """
    if max_length is not None:
        max_length = _whole("max_length", max_length, 1)
    if stride is not None:
        stride = _whole("stride", stride, 1)
    batch_size = _whole("batch_size", batch_size, 1)
    source = open_url(source, storage_options=storage_options, cache_limit=cache_limit)
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
        scorer = load_model(
            model, device=device, checkpoint=checkpoint, storage_options=storage_options,
            cache_limit=cache_limit,
        )  # fmt: skip
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
    from .instructions import InstructionData, is_instructions, score_instructions

    if instructions or is_instructions(source):
        if asked_by is not None:
            raise ValueError(
                f"by={asked_by!r} is for text: each instruction example is scored on its own. Drop by=."
            )
        examples = (
            source
            if isinstance(source, InstructionData)
            else InstructionData.of(
                source, tokenizer=tokenizer, template=template, fields=fields, split=split
            )
        )
        scorer.check(max_length=max_length, tokenizer=examples.tokenizer)
        result = score_instructions(
            scorer, examples, max_length=max_length, stride=stride, batch_size=batch_size,
            progress=progress,
        )  # fmt: skip
        if name is not None:
            result.name = name
        return result
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
    windows = (starts, lens, scored)
    return score_windows(
        scorer, data, windows, _scored_targets(data, by), doc_tokens,
        max_length=max_length, batch_size=batch_size, by=by, progress=progress, stride=stride,
    )  # fmt: skip
