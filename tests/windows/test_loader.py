from __future__ import annotations

import multiprocessing as mp

import pytest
import torch
from torch.utils.data import DataLoader

from gptdata import SlidingWindowDataset, create_dataloader, get_tokenizer
from gptdata.windows.loader import GPTDataLoader
from reference import ReferenceDataset


@pytest.fixture(scope="module")
def ids(verdict_text_module) -> list[int]:
    return get_tokenizer("gpt2").encode(verdict_text_module)


@pytest.fixture(scope="module")
def verdict_text_module() -> str:
    from conftest import corpus

    return corpus("the-verdict.txt").read_text(encoding="utf-8")


def batches(loader):
    return [(x.tolist(), y.tolist()) for x, y in loader]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_manual_seed_equals_classic_dataloader(ids, num_workers) -> None:
    ref = ReferenceDataset(ids, 4, 4)
    torch.manual_seed(123)
    classic = batches(
        DataLoader(ref, batch_size=8, shuffle=True, drop_last=True, num_workers=num_workers)
    )
    torch.manual_seed(123)
    ours = batches(
        create_dataloader(ids, batch_size=8, max_length=4, stride=4, num_workers=num_workers)
    )
    assert ours == classic and len(ours) == len(ref) // 8


def test_defaults_match_classic(verdict_text_module) -> None:
    loader = create_dataloader(verdict_text_module)
    assert (loader.batch_size, loader.dataset.max_length, loader.dataset.stride) == (4, 256, 128)
    x, y = next(iter(loader))
    assert x.shape == y.shape == (4, 256) and x.dtype == torch.int64
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_seeded_order_independent_of_workers_and_global_rng(ids) -> None:
    torch.manual_seed(1)
    a = batches(create_dataloader(ids, batch_size=4, max_length=8, stride=8, seed=7))
    torch.manual_seed(2)
    b = batches(
        create_dataloader(
            ids,
            batch_size=4,
            max_length=8,
            stride=8,
            seed=7,
            num_workers=2,
        )
    )
    assert a == b
    loader = create_dataloader(ids, batch_size=4, max_length=8, stride=8, seed=7)
    loader.set_epoch(1)
    assert batches(loader) != a
    loader.set_epoch(0)
    assert batches(loader) == a


def test_spawn_workers(ids) -> None:
    ds = SlidingWindowDataset(ids, max_length=8, stride=8)
    loader = GPTDataLoader(
        ds, batch_size=4, seed=3, num_workers=2, multiprocessing_context=mp.get_context("spawn")
    )
    plain = GPTDataLoader(ds, batch_size=4, seed=3)
    assert batches(loader)[:5] == batches(plain)[:5]


@pytest.mark.parametrize("drop_last", [True, False])
@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_disjoint_and_complete(world_size, drop_last) -> None:
    ds = SlidingWindowDataset(list(range(403)), max_length=4, stride=4)  # 100 windows
    n = len(ds)
    per_rank = []
    for rank in range(world_size):
        loader = GPTDataLoader(
            ds, batch_size=3, drop_last=drop_last, rank=rank, world_size=world_size
        )
        got = list(loader)
        assert len(got) == len(loader)
        seen = [int(x[0]) // 4 for inputs, _ in got for x in inputs]  # token ID == position
        per_rank.append(seen)
    sizes = {len(s) for s in per_rank}
    assert len(sizes) == 1  # equal shares
    flat = [k for s in per_rank for k in s]
    if drop_last:  # full batches only; disjoint
        assert len(set(flat)) == len(flat) == world_size * ((n // world_size) // 3 * 3)
    else:
        assert set(flat) == set(range(n))
        assert len(flat) - len(set(flat)) == -n % world_size  # only the padding repeats


@pytest.mark.parametrize("num_workers_after", [0, 2])
@pytest.mark.parametrize("seed", [None, 11])
@pytest.mark.parametrize("cut", [0, 1, 7, 19])
def test_resume_exact(ids, cut, seed, num_workers_after) -> None:
    def make(nw):
        return create_dataloader(
            ids, batch_size=4, max_length=16, stride=16, seed=seed, num_workers=nw
        )

    torch.manual_seed(5)
    full = make(0)
    expected = batches(full) + batches(full)  # two epochs
    torch.manual_seed(5)
    first = make(2 if num_workers_after == 0 else 0)
    it = iter(first)
    got = [tuple(t.tolist() for t in next(it)) for _ in range(cut)]
    state = first.state_dict()
    del it
    resumed = make(num_workers_after)
    resumed.load_state_dict(state)
    got += batches(resumed)
    got += batches(resumed)
    assert (
        got[: len(expected) - (0 if seed is not None else len(expected) // 2)]
        == expected[: len(expected) - (0 if seed is not None else len(expected) // 2)]
    )


def test_state_refused_for_other_data_or_settings(ids) -> None:
    a = create_dataloader(ids, batch_size=4, max_length=16, stride=16, seed=1)
    state = a.state_dict()
    with pytest.raises(ValueError, match="saved over other token data"):
        create_dataloader(ids[:-1], batch_size=4, max_length=16, stride=16, seed=1).load_state_dict(
            state
        )
    with pytest.raises(ValueError, match=r"other settings \(seed: saved 1, now 2\)"):
        create_dataloader(ids, batch_size=4, max_length=16, stride=16, seed=2).load_state_dict(
            state
        )


def test_zero_batches_is_an_error() -> None:
    with pytest.raises(
        ValueError,
        match=r"batch_size=8 with drop_last=True gives 0 batches: there "
        r"are 5 windows \(9 tokens, max_length=4, stride=1\)",
    ):
        create_dataloader(list(range(9)), batch_size=8, max_length=4, stride=1)
    assert (
        len(
            create_dataloader(list(range(9)), batch_size=8, max_length=4, stride=1, drop_last=False)
        )
        == 1
    )


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("documents", ["concat", "mask"])
def test_pin_memory_pins_every_batch_handed_out(ids, num_workers, documents, monkeypatch) -> None:
    """Each batch the loader yields must be the pinned copy (no GPU here: pinning is recorded
    by a stand-in). With workers, a copy cut in the main process after DataLoader pinned the
    block would not be pinned."""
    from gptdata.windows import batches as batches_module
    from gptdata.windows import loader as loader_module

    pinned: list[int] = []

    def fake_pin(batch):
        tensors = batch.values() if isinstance(batch, dict) else batch
        copies = [t.clone() for t in tensors]
        pinned.extend(t.data_ptr() for t in copies)
        if isinstance(batch, dict):
            return dict(zip(batch, copies, strict=True))
        return tuple(copies)

    monkeypatch.setattr(loader_module, "_accelerator_available", lambda: True)
    monkeypatch.setattr(batches_module, "pin", fake_pin)
    loader = create_dataloader(
        ids, batch_size=4, max_length=8, stride=8, seed=0, pin_memory=True,
        num_workers=num_workers, documents=documents, batch_format="tuple",
    )  # fmt: skip
    plain = create_dataloader(
        ids, batch_size=4, max_length=8, stride=8, seed=0, num_workers=0, documents=documents,
        batch_format="tuple",
    )  # fmt: skip
    got = list(loader)
    assert len(got) == len(plain) > 10
    for batch, want in zip(got, plain, strict=True):
        assert all(t.data_ptr() in pinned for t in batch)
        assert all(torch.equal(a, b) for a, b in zip(batch, want, strict=True))
