"""Loader arguments and states that must be refused (issue 18), and elastic resume (issue 20)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gptdata import Mixture, create_dataloader

IDS = np.arange(2000, dtype=np.int64)


def make(**kw):
    return create_dataloader(IDS, **({"batch_size": 4, "max_length": 4, "stride": 4} | kw))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": True}, r"batch_size=True must be an integer"),
        ({"batch_size": 4.0}, r"batch_size=4\.0 must be an integer"),
        ({"num_workers": 1.5}, r"num_workers=1\.5 must be an integer"),
        ({"max_length": 4.0}, r"max_length=4\.0 must be an integer"),
        ({"stride": False}, r"stride=False must be an integer"),
        ({"seed": -1}, r"seed=-1 must be an integer >= 0"),
        ({"seed": 2.0}, r"seed=2\.0 must be an integer >= 0"),
        ({"seed": True}, r"seed=True must be an integer >= 0"),
        ({"rank": None, "world_size": 2}, r"world_size=2 needs rank"),
    ],
)
def test_bad_arguments_one_line(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match) as err:
        make(**kwargs)
    assert "\n" not in str(err.value)


def test_state_needs_every_settings_key_and_a_real_version() -> None:
    state = make(seed=1).state_dict()
    for key in list(state["settings"]):
        broken = state | {"settings": {k: v for k, v in state["settings"].items() if k != key}}
        with pytest.raises(ValueError, match=rf"lacks the settings \['{key}'\]"):
            make(seed=1).load_state_dict(broken)
    for version in (True, 1.0, "1", None):
        with pytest.raises(ValueError, match="not a gptdata loader state"):
            make(seed=1).load_state_dict(state | {"version": version})


def global_order(batches_per_rank: list[list], world_size: int) -> list[int]:
    """Interleave ranks back into the global order: row j of rank r is global j*W + r."""
    out = []
    for step in zip(*batches_per_rank, strict=True):
        rows = [x[:, 0].tolist() for x, _ in step]
        for j in range(len(rows[0])):
            out += [rows[r][j] for r in range(world_size)]
    return out


def run(world_size: int, batch_size: int, *, steps: int | None = None, state=None):
    loaders = [
        make(batch_size=batch_size, rank=r, world_size=world_size, seed=7)
        for r in range(world_size)
    ]
    per_rank = []
    for loader in loaders:
        if state is not None:
            loader.load_state_dict(state)
        it = iter(loader)
        per_rank.append([next(it) for _ in range(steps)] if steps else list(it))
    return global_order(per_rank, world_size), loaders[0].state_dict()


@pytest.mark.parametrize(("world_size", "batch_size"), [(4, 2), (1, 8)])
def test_elastic_resume_same_global_batch(world_size: int, batch_size: int) -> None:
    whole, _ = run(2, 4)
    first, state = run(2, 4, steps=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same global sample: no warning
        rest, _ = run(world_size, batch_size, state=state)
    assert first + rest == whole[: len(first) + len(rest)]
    assert len(first) == 24 and len(rest) >= len(whole) - 24 - 8


def test_elastic_resume_other_global_batch_goes_to_the_next_boundary() -> None:
    whole, _ = run(2, 4)
    first, state = run(2, 4, steps=3)  # 24 global samples
    with pytest.warns(UserWarning, match=r"resuming at global sample 30 .* 6 samples are skipped"):
        rest, _ = run(1, 10, state=state)
    assert rest == whole[30 : 30 + len(rest)]


def test_elastic_resume_of_a_mixture() -> None:
    a, b = np.arange(0, 801), np.arange(10_000, 10_201)

    def make_mix(**kw):
        m = Mixture([(0.6, a), (0.4, b)], max_length=4, stride=4, seed=2)
        return create_dataloader(m, **kw)

    whole = [x[:, 0].tolist() for x, _ in make_mix(batch_size=8)]
    parts = [make_mix(batch_size=4, rank=r, world_size=2) for r in range(2)]
    its = [iter(p) for p in parts]
    got = []
    for _ in range(3):
        rows = [next(it)[0][:, 0].tolist() for it in its]
        got += [rows[r][j] for j in range(4) for r in range(2)]
    single = make_mix(batch_size=8)
    single.load_state_dict(parts[0].state_dict())
    got += [v for x, _ in single for v in x[:, 0].tolist()]
    assert got == [v for batch in whole for v in batch]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_inputs_and_targets_are_each_contiguous(num_workers: int) -> None:
    # nanoGPT's targets.view(-1) needs it; torch.stack in the classic path gives it.
    x, y = next(iter(make(seed=0, num_workers=num_workers)))
    assert x.is_contiguous() and y.is_contiguous()
    assert x.view(-1).shape == y.view(-1).shape == (16,)
    assert x.data_ptr() != y.data_ptr()
