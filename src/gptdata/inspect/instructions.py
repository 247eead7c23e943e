"""One instruction example as the model sees it: prompt tokens (context) and response tokens
(scored), and with a model, each response token's probability.

    example 0 of 38 (template alpaca): 58 tokens read, 44 prompt + 14 response; 15 targets scored
      input    [21106, 318, ..., 13]
      target   [-100, -100, ..., 50256]   (-100: a prompt target, context only)
      prompt   'Below is an instruction ... The cat chased the mouse.'
      response '\\n\\n### Response:\\nThe mouse was chased by the cat.' + end-of-text

The split is evaluation's (``evaluation.instructions.response_masks``, i.e. the book's collate
with ``mask_prompt=True``): what is marked response here is exactly what ``gptdata eval
--instructions`` scores and what prompt-masked fine-tuning trains on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..tokenizers import Tokenizer
from ..windows.finetune import IGNORE_INDEX, InstructionDataset
from .pairs import escape, guess_text, predictions


def example_lines(
    ds: InstructionDataset,
    *,
    start: int = 0,
    count: int = 1,
    scorers: Sequence[Any] = (),
    top: int = 3,
) -> list[str]:
    """``count`` examples from ``start``: IDs, targets with -100 on the prompt, the prompt and
    response text, and with ``scorers`` each response token's P(token) and top guesses."""
    from ..evaluation.instructions import response_masks

    if not 0 <= start < len(ds):
        raise ValueError(
            f"--start {start:,}: the data has {len(ds):,} examples, so --start can be at most "
            f"{len(ds) - 1:,}."
        )
    tok: Tokenizer = ds.tokenizer
    if tok.eot_id is None:
        raise ValueError(f"tokenizer {tok.name} has no end-of-text, which ends every example.")
    eot = int(tok.eot_id)
    examples = [ds[k] for k in range(start, min(start + count, len(ds)))]
    masks = response_masks(examples, pad_token_id=eot)
    lines: list[str] = []
    for k, (ex, mask) in enumerate(zip(examples, masks, strict=True), start=start):
        ids = list(ex.token_ids)
        targets = [*ids[1:], eot]
        first = len(ids) - int(mask.sum())  # the first scored target; tokens ids[first + 1:] + eot
        shown = [t if m else IGNORE_INDEX for t, m in zip(targets, mask.tolist(), strict=True)]
        prompt, response = ids[: first + 1], ids[first + 1 :]
        lines.append(
            f"example {k} of {len(ds):,} (template {ds.template.name}): {len(ids):,} tokens "
            f"read, {len(prompt):,} prompt + {len(response):,} response; "
            f"{int(mask.sum()):,} targets scored (the response and its end-of-text)"
        )
        lines.append(f"  input    {ids}")
        lines.append(f"  target   {shown}   (-100: a prompt target, context only)")
        lines.append(f"  prompt   '{escape(tok.decode(prompt))}'")
        lines.append(f"  response '{escape(tok.decode(response))}' + end-of-text ({eot})")
        if scorers:
            lines += _response_guesses(scorers, ids, targets, first, tok, top=top, index=k)
    return lines


def _response_guesses(
    scorers: Sequence[Any],
    ids: list[int],
    targets: list[int],
    first: int,
    tok: Tokenizer,
    *,
    top: int,
    index: int,
) -> list[str]:
    """Each scored target with every model's P(target) (one forward pass over the example)."""
    for s in scorers:
        if s.max_positions is not None and len(ids) > s.max_positions:
            raise ValueError(
                f"example {index} has {len(ids):,} tokens, more than model {s.name}'s "
                f"{s.max_positions:,} positions; inspect reads an example in one pass. "
                "gptdata eval --instructions scores it with rolling windows."
            )
    got = [predictions(s, ids, targets, top=top) for s in scorers]
    named = len(scorers) > 1
    lines = ["  response tokens, each with P(token | the prompt and the response before it):"]
    for i in range(first, len(targets)):
        want = targets[i]
        text = "<|endoftext|>" if want == tok.eot_id else escape(tok.decode([want]))
        shown = " | ".join(
            guess_text(tok, float(p[i]), q[i], t[i], name=s.name if named else "")
            for s, (p, q, t) in zip(scorers, got, strict=True)
        )
        lines.append(f"    '{text}' ({want})  {shown}")
    return lines
