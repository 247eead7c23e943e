"""Packed fine-tuning rows: several instruction examples per row instead of padding.

Each example is its token IDs plus one end-of-text; examples are placed in order, first fit,
into rows of ``max_length + 1`` tokens (inputs are a row's first ``max_length``, targets its
last), never split across rows; the rest of a row is end-of-text. The row then goes through
``documents.Format("mask", "dict")``, the document masks gptdata uses for pretraining windows:
targets are -100 where the input is an end-of-text (across example boundaries and on the fill),
positions restart and ``doc_ids`` count the examples, so attention stays inside each example.
``mask_prompt=True`` also sets each example's prompt targets to -100, as ``instruction_collate``.

    examples [1, 2] and [3] (eot 0), max_length=5 -> row [1, 2, 0, 3, 0, 0]
    input_ids [1, 2, 0, 3, 0]   targets [2, 0, -100, 0, -100]   doc_ids [0, 0, 0, 1, 1]

``padding_report`` counts what padding costs per epoch against packing (``plan --instructions``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .documents import Format
from .finetune import GPT2_EOT_ID, IGNORE_INDEX, Example, _as_example

TooLong = Literal["error", "truncate"]


def plan_rows(lengths: Sequence[int], *, max_length: int) -> list[list[int]]:
    """Example indices per row: first fit in order, each example ``length + 1`` tokens.

    lengths [3, 4, 1], max_length=5 (rows of 6; needs 4, 5, 2) -> [[0, 2], [1]]
    """
    capacity = max_length + 1
    rows: list[list[int]] = []
    free: list[int] = []
    for i, n in enumerate(lengths):
        need = min(n + 1, capacity)
        for r, room in enumerate(free):
            if need <= room:
                rows[r].append(i)
                free[r] -= need
                break
        else:
            rows.append([i])
            free.append(capacity - need)
    return rows


class PackedInstructionDataset:
    """Rows of packed examples: ``ds[r]`` -> ``(row, prompt_mask)``, each ``(max_length + 1,)``.

    ``too_long="error"`` refuses an example longer than ``max_length`` tokens (with its
    end-of-text, it fills a row of ``max_length + 1``); ``"truncate"`` keeps its first tokens.
    Batch with ``collate_fn=packed_collate``.
    """

    def __init__(
        self,
        examples: Sequence[Example],
        *,
        max_length: int,
        eot_id: int = GPT2_EOT_ID,
        too_long: TooLong = "error",
        mask_prompt: bool = False,
    ) -> None:
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length={max_length!r} must be an integer >= 1.")
        if too_long not in ("error", "truncate"):
            raise ValueError(f"too_long={too_long!r} must be 'error' or 'truncate'.")
        self.items = [_as_example(e, i) for i, e in enumerate(examples)]
        longest = max((len(ids) for ids, _ in self.items), default=0)
        if too_long == "error" and longest > max_length:
            over = sum(len(ids) > max_length for ids, _ in self.items)
            raise ValueError(
                f"{over:,} example(s) are longer than max_length={max_length} tokens (longest "
                f"{longest:,}); packing never splits an example. Raise max_length, or pass "
                "too_long='truncate'."
            )
        self.max_length, self.eot_id, self.mask_prompt = max_length, eot_id, mask_prompt
        self.rows = plan_rows([len(ids) for ids, _ in self.items], max_length=max_length)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        row = np.full(self.max_length + 1, self.eot_id, dtype=np.int64)  # (L + 1,)
        prompt = np.zeros(self.max_length + 1, dtype=bool)  # (L + 1,) True on prompt tokens
        at = 0
        for i in self.rows[index]:
            ids, prompt_length = self.items[i]
            ids = ids[: self.max_length]  # truncated: its end-of-text still closes it
            row[at : at + len(ids)] = ids
            if self.mask_prompt and prompt_length:
                prompt[at : at + min(prompt_length, len(ids))] = True
            at += len(ids) + 1
        return row, prompt


def packed_collate(
    batch: Sequence[tuple[np.ndarray, np.ndarray]], *, eot_id: int = GPT2_EOT_ID
) -> dict[str, torch.Tensor]:
    """Packed rows -> ``{"input_ids", "targets", "position_ids", "doc_ids"}``, each ``(B, L)``.

    A prompt token's target is -100 when the next token is prompt too (the book's
    ``targets[:prompt_length - 1]``), so the last prompt token still learns the response's start.
    """
    rows = np.stack([r for r, _ in batch])  # (B, L + 1)
    prompt = np.stack([p for _, p in batch])  # (B, L + 1)
    out = Format("mask", "dict", eot_id)(rows)
    assert isinstance(out, dict)
    both = prompt[:, :-1] & prompt[:, 1:]  # (B, L): input and target inside one prompt
    # A copy: in a row without an end-of-text, the document-mask format's targets may be a view
    # of the same buffer as input_ids (writing -100 into them changed input_ids; hypothesis).
    targets = out["targets"].clone()  # (B, L)
    targets[torch.from_numpy(both)] = IGNORE_INDEX
    out["targets"] = targets
    return out


@dataclass(frozen=True)
class PaddingReport:
    """Per epoch: tokens, padding and loss tokens for padded batches and for packed rows."""

    examples: int
    tokens: int  # example tokens, each with its end-of-text
    padded_batches: int
    padded_pad_tokens: int
    packed_rows: int
    packed_pad_tokens: int
    loss_tokens_per_batch: float

    def __str__(self) -> str:
        return (
            f"{self.examples:,} examples, {self.tokens:,} tokens with end-of-text: padded "
            f"batches add {self.padded_pad_tokens:,} pad tokens in {self.padded_batches:,} "
            f"batches; packed: {self.packed_rows:,} rows, {self.packed_pad_tokens:,} fill "
            f"tokens; {self.loss_tokens_per_batch:,.1f} loss tokens per padded batch"
        )


def padding_report(
    examples: Sequence[Example],
    *,
    batch_size: int,
    max_length: int,
    mask_prompt: bool = False,
) -> PaddingReport:
    """Pad tokens per epoch, padded (in order, ``instruction_collate`` widths capped at
    ``max_length``) against packed into rows of ``max_length``; loss tokens per padded batch.

    lengths [3, 1], batch_size=2, max_length=8 -> padded: inputs (2, 3), 2 pads, 4 loss
    tokens; packed: one row of 9 holding 4 + 2 tokens, 3 fill.
    """
    items = [_as_example(e, i) for i, e in enumerate(examples)]
    lengths = np.array([min(len(ids), max_length) for ids, _ in items])
    tokens = int((lengths + 1).sum())
    pads = loss = 0
    batches = 0
    for start in range(0, len(items), batch_size):
        part = lengths[start : start + batch_size]
        # instruction_collate's inputs are as wide as the longest example (its width minus
        # one), cut to max_length; a row's targets are its tokens after the first plus its
        # end-of-text, so a row of n tokens trains n targets and pads width - n inputs.
        width = min(int(part.max()), max_length)
        pads += int((width - np.minimum(part, width)).sum())
        trained = np.minimum(part, width)
        if mask_prompt:
            prompts = np.array([p or 0 for _, p in items[start : start + batch_size]])
            trained = trained - np.minimum(np.maximum(prompts - 1, 0), trained)
        loss += int(trained.sum())
        batches += 1
    rows = plan_rows([int(n) for n in lengths], max_length=max_length)
    return PaddingReport(
        examples=len(items),
        tokens=tokens,
        padded_batches=batches,
        padded_pad_tokens=pads,
        packed_rows=len(rows),
        packed_pad_tokens=len(rows) * (max_length + 1) - min(tokens, len(rows) * (max_length + 1)),
        loss_tokens_per_batch=loss / max(batches, 1),
    )
