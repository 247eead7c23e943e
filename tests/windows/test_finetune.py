"""The book's chapter-7 batches: collate against a plain re-implementation, prompt masks, packing."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gptdata import InstructionDataset, instruction_collate
from gptdata.windows.finetune import Example
from gptdata.windows.packing import (
    PackedInstructionDataset,
    packed_collate,
    padding_report,
    plan_rows,
)


def book_collate(
    batch, pad_token_id=50256, ignore_index=-100, allowed_max_length=None, prompt_lengths=None
):
    """Written from the book's description: one item at a time, lists and slices."""
    width = max(len(ids) + 1 for ids in batch)
    inputs, targets = [], []
    for k, ids in enumerate(batch):
        padded = list(ids) + [pad_token_id]
        padded += [pad_token_id] * (width - len(padded))
        x, y = padded[:-1], padded[1:]
        pads = [j for j, t in enumerate(y) if t == pad_token_id]
        for j in pads[1:]:
            y[j] = ignore_index
        if prompt_lengths is not None:
            stop = prompt_lengths[k] - 1
            y[:stop] = [ignore_index] * len(y[:stop])
        if allowed_max_length is not None:
            x, y = x[:allowed_max_length], y[:allowed_max_length]
        inputs.append(x)
        targets.append(y)
    return torch.tensor(inputs), torch.tensor(targets)


def test_golden_batch_checked_by_hand() -> None:
    x, y = instruction_collate([[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]], pad_token_id=50256)
    assert x.tolist() == [[0, 1, 2, 3, 4], [5, 6, 50256, 50256, 50256], [7, 8, 9, 50256, 50256]]
    assert y.tolist() == [
        [1, 2, 3, 4, 50256],
        [6, 50256, -100, -100, -100],
        [8, 9, 50256, -100, -100],
    ]
    assert x.dtype == y.dtype == torch.int64
    # A pad ID inside an example is "the first" pad, by value, as in the book.
    _, y = instruction_collate([[1, 9, 2], [3]], pad_token_id=9)
    assert y.tolist() == [[9, 2, -100], [9, -100, -100]]


def test_mask_prompt_golden_exercise_7_2() -> None:
    # prompt length 3: targets[:2] ignored, so the first trained target is the 4th token.
    x, y = instruction_collate([Example([10, 11, 12, 13, 14], 3)], pad_token_id=0, mask_prompt=True)
    assert y.tolist() == [[-100, -100, 13, 14, 0]]
    # The book's own dataset items, (instruction_length, ids), are accepted as they are.
    _, y2 = instruction_collate([(3, [10, 11, 12, 13, 14])], pad_token_id=0, mask_prompt=True)
    assert torch.equal(y, y2)
    with pytest.raises(ValueError, match="mask_prompt=True needs each example's prompt length"):
        instruction_collate([[1, 2]], mask_prompt=True)


batches = st.lists(st.lists(st.integers(0, 6), min_size=0, max_size=9), min_size=1, max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    batch=batches,
    pad=st.integers(0, 6),
    allowed=st.one_of(st.none(), st.integers(1, 12)),
    data=st.data(),
)
def test_collate_equals_the_book(batch, pad, allowed, data) -> None:
    x, y = instruction_collate(batch, pad_token_id=pad, allowed_max_length=allowed)
    bx, by = book_collate(batch, pad_token_id=pad, allowed_max_length=allowed)
    assert torch.equal(x, bx) and torch.equal(y, by)
    prompts = [data.draw(st.integers(0, len(ids) + 1)) for ids in batch]
    examples = [Example(ids, p) for ids, p in zip(batch, prompts, strict=True)]
    x, y = instruction_collate(
        examples, pad_token_id=pad, allowed_max_length=allowed, mask_prompt=True
    )
    bx, by = book_collate(
        batch, pad_token_id=pad, allowed_max_length=allowed, prompt_lengths=prompts
    )
    assert torch.equal(x, bx) and torch.equal(y, by)


def test_dataset_in_a_torch_dataloader_as_the_book() -> None:
    records = [
        {"instruction": "Name a color.", "input": "", "output": "Blue."},
        {"instruction": "Rewrite as a question.", "input": "It rains.", "output": "Does it rain?"},
    ]
    ds = InstructionDataset(records)
    assert ds[0].prompt_length == len(ds.tokenizer.encode(ds.texts[0][0]))
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=2,
        shuffle=False,
        collate_fn=partial(instruction_collate, allowed_max_length=1024),
    )
    x, y = next(iter(loader))
    bx, by = book_collate([e.token_ids for e in ds.examples])
    assert torch.equal(x, bx) and torch.equal(y, by)
    packed = PackedInstructionDataset(ds, max_length=128)  # both (36 + 49 tokens) in one row
    assert (
        packed.rows == [[0, 1]] and packed[0][0][: len(ds[0].token_ids)].tolist() == ds[0].token_ids
    )
    phi3 = InstructionDataset(records, template="phi3")[0]
    assert phi3.token_ids == ds.tokenizer.encode("<|user|>\nName a color.\n<|assistant|>:\nBlue.")


def reference_packed(rows, prompts, eot):
    """The document-mask rule written plainly: -100 after an end-of-text input; positions restart."""
    out = {"input_ids": [], "targets": [], "position_ids": [], "doc_ids": []}
    for row, prompt in zip(rows, prompts, strict=True):
        x, y = row[:-1], list(row[1:])
        pos, doc, p, d = [], [], 0, 0
        for j, token in enumerate(x):
            pos.append(p)
            doc.append(d)
            if token == eot:
                y[j] = -100
                p, d = 0, d + 1
            else:
                p += 1
            if prompt[j] and prompt[j + 1]:
                y[j] = -100
        for key, value in zip(out, (x, y, pos, doc), strict=True):
            out[key].append(value)
    return {k: torch.tensor(v) for k, v in out.items()}


def test_packing_golden() -> None:
    ds = PackedInstructionDataset(
        [Example([1, 2], 1), Example([3], 1), Example([4, 5, 6], 2)], max_length=5, eot_id=0
    )
    assert ds.rows == [[0, 1], [2]]
    batch = packed_collate([ds[0], ds[1]], eot_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 0, 3, 0], [4, 5, 6, 0, 0]]
    assert batch["targets"].tolist() == [[2, 0, -100, 0, -100], [5, 6, 0, -100, -100]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 3, 0]]
    masked = PackedInstructionDataset(
        [Example([4, 5, 6], 2)], max_length=5, eot_id=0, mask_prompt=True
    )
    assert packed_collate([masked[0]], eot_id=0)["targets"].tolist() == [[-100, 6, 0, -100, -100]]


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 8), min_size=1, max_size=12),
    max_length=st.integers(8, 16),
    mask=st.booleans(),
    data=st.data(),
)
def test_packing_equals_the_document_mask_rule(lengths, max_length, mask, data) -> None:
    eot = 99
    examples = [
        Example([data.draw(st.integers(0, 9)) for _ in range(n)], data.draw(st.integers(0, n)))
        for n in lengths
    ]
    ds = PackedInstructionDataset(examples, max_length=max_length, eot_id=eot, mask_prompt=mask)
    placed = sorted(i for row in ds.rows for i in row)
    assert placed == list(range(len(examples)))  # every example once, never split
    items = [ds[r] for r in range(len(ds))]
    got = packed_collate(items, eot_id=eot)
    want = reference_packed([r.tolist() for r, _ in items], [p.tolist() for _, p in items], eot)
    for key in want:
        assert torch.equal(got[key], want[key]), key


def test_too_long_examples_refused_or_truncated() -> None:
    with pytest.raises(
        ValueError, match=r"1 example\(s\) are longer than max_length=3 tokens \(longest 5"
    ):
        PackedInstructionDataset([[1, 2, 3, 4, 5], [1]], max_length=3)
    ds = PackedInstructionDataset(
        [[1, 2, 3, 4, 5], [1]], max_length=3, eot_id=0, too_long="truncate"
    )
    assert ds[0][0].tolist() == [1, 2, 3, 0]
    assert plan_rows([3, 4, 1], max_length=5) == [[0, 2], [1]]


def test_padding_report_counts_what_collate_makes() -> None:
    examples = [[1, 2, 3], [4], [5, 6], [7, 8, 9, 1, 2]]
    report = padding_report(examples, batch_size=2, max_length=4)
    pads = loss = 0
    for start in (0, 2):
        x, y = instruction_collate(
            examples[start : start + 2], pad_token_id=0, allowed_max_length=4
        )
        real = [min(len(e), x.shape[1]) for e in examples[start : start + 2]]
        pads += x.numel() - sum(real)
        loss += int((y != -100).sum())
    assert (report.padded_batches, report.padded_pad_tokens) == (2, pads) == (2, 4)
    assert report.loss_tokens_per_batch == loss / 2
    assert (report.packed_rows, report.tokens) == (3, 14)
    assert report.packed_pad_tokens == 3 * 5 - 14
