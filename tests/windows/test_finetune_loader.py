"""The loader on instruction data: the book's DataLoader batches, seeds, ranks, exact resume,
forever(), packing."""

from __future__ import annotations

from functools import partial
from importlib import resources

import pytest
import torch
from torch.utils.data import DataLoader

from gptdata.windows.finetune import InstructionDataset, instruction_collate
from gptdata.windows.finetune_loader import InstructionLoader, create_dataloader
from gptdata.windows.packing import PackedInstructionDataset, packed_collate

SAMPLE = str(resources.files("gptdata") / "data" / "instructions.json")


@pytest.fixture(scope="module")
def ds() -> InstructionDataset:
    return InstructionDataset(SAMPLE)


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_seed_none_equals_the_books_dataloader(ds) -> None:
    collate = partial(instruction_collate, allowed_max_length=1024)
    torch.manual_seed(123)
    book = list(DataLoader(ds, batch_size=4, shuffle=True, collate_fn=collate, drop_last=True))
    torch.manual_seed(123)
    ours = list(create_dataloader(ds, batch_size=4, allowed_max_length=1024))
    assert len(ours) == len(book) == len(ds) // 4
    assert all(same(a, b) for a, b in zip(ours, book, strict=True))


def test_unshuffled_batches_are_the_examples_in_order(ds) -> None:
    loader = create_dataloader(ds, batch_size=3, shuffle=False, drop_last=False, mask_prompt=True)
    batches = list(loader)
    assert len(batches) == -(-len(ds) // 3)
    want = instruction_collate([ds[3], ds[4], ds[5]], mask_prompt=True)
    assert same(batches[1], want)


def test_seeds_fix_the_order(ds) -> None:
    a = list(create_dataloader(ds, batch_size=4, seed=7))
    b = list(create_dataloader(ds, batch_size=4, seed=7))
    c = list(create_dataloader(ds, batch_size=4, seed=8))
    assert all(same(x, y) for x, y in zip(a, b, strict=True))
    assert not all(same(x, y) for x, y in zip(a, c, strict=True))


def rows_of(batch) -> list[tuple[int, ...]]:
    """Each row's example tokens: the input row without its trailing pads (widths differ)."""
    inputs, _ = batch
    rows = []
    for r in inputs.tolist():
        while r and r[-1] == 50256:
            r.pop()
        rows.append(tuple(r))
    return rows


def test_ranks_share_the_examples(ds) -> None:
    n = len(ds)
    seen: list[tuple[int, ...]] = []
    for rank in range(3):
        loader = create_dataloader(
            ds, batch_size=1, seed=3, rank=rank, world_size=3, drop_last=False
        )
        assert len(loader) == -(-n // 3)
        seen += [r for b in loader for r in rows_of(b)]
    # drop_last=False pads with the order's own start, as DistributedSampler: every example
    # once, and (3 - n % 3) % 3 of them twice.
    whole = {tuple(e.token_ids) for e in ds}
    assert set(seen) == whole and len(seen) == n + (3 - n % 3) % 3


@pytest.mark.parametrize("packing", [False, True])
def test_resume_mid_epoch_and_forever(ds, packing) -> None:
    opts = dict(batch_size=2, seed=5, packing=packing, max_length=256)
    ref = create_dataloader(ds, **opts).forever()
    want = [next(ref) for _ in range(40)]  # several epochs
    first = create_dataloader(ds, **opts)
    stream = first.forever()
    got = [next(stream) for _ in range(13)]
    state = first.state_dict()
    again = create_dataloader(ds, **opts)
    again.load_state_dict(state)
    rest = again.forever()
    got += [next(rest) for _ in range(27)]
    assert all(same(a, b) for a, b in zip(got, want, strict=True))


def test_elastic_resume_and_refusals(ds) -> None:
    loader = create_dataloader(ds, batch_size=2, seed=1)
    it = iter(loader)
    for _ in range(3):
        next(it)
    state = loader.state_dict()
    assert state["samples_done"] == 6
    two_ranks = [
        create_dataloader(ds, batch_size=1, seed=1, rank=r, world_size=2) for r in range(2)
    ]
    for r in two_ranks:
        r.load_state_dict(state)
    full = list(create_dataloader(ds, batch_size=2, seed=1))
    nxt = [rows_of(next(iter(r)))[0] for r in two_ranks]
    assert sorted(nxt) == sorted(rows_of(full[3]))
    with pytest.raises(ValueError, match="other settings"):
        create_dataloader(ds, batch_size=2, seed=1, mask_prompt=True).load_state_dict(state)
    with pytest.raises(ValueError, match="other token data"):
        other = InstructionDataset(SAMPLE, template="phi3")
        create_dataloader(other, batch_size=2, seed=1).load_state_dict(state)


def test_packed_batches(ds) -> None:
    loader = create_dataloader(
        ds, batch_size=2, shuffle=False, packing=True, max_length=300, drop_last=False
    )
    packed = PackedInstructionDataset(list(ds), max_length=300)
    assert len(loader) == -(-len(packed) // 2)
    first = next(iter(loader))
    assert same(first, packed_collate([packed[0], packed[1]]))
    assert first["input_ids"].shape == (2, 300)


def test_options_refused_for_text_and_bad_settings(ds) -> None:
    with pytest.raises(TypeError, match="pass an InstructionDataset"):
        create_dataloader("some text " * 100, mask_prompt=True)
    with pytest.raises(ValueError, match="needs max_length"):
        InstructionLoader(ds, packing=True)
    with pytest.raises(ValueError, match="gives 0 batches"):
        create_dataloader(ds, batch_size=len(ds) + 1)
    with pytest.raises(ValueError, match="pass num_workers=0"):
        create_dataloader(ds, num_workers=2)
    assert len(create_dataloader(ds, num_workers=0, batch_size=2)) == len(ds) // 2
    with pytest.raises(ValueError, match="needs rank"):
        create_dataloader(ds, world_size=2)
