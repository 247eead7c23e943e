"""Mixtures: Megatron's order over sources, per-source epochs, loader features, resume, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gptdata import Mixture, SlidingWindowDataset, create_dataloader
from gptdata.windows.blending import build_blending_indices, megatron_weights
from gptdata.windows.mixture import report, report_text

# Three sources whose token values say where they came from: a window's first token / 10_000.
A = np.arange(0, 4001, dtype=np.int64)  # 1000 windows of 4 (stride 4)
B = np.arange(10_000, 10_401, dtype=np.int64)  # 100 windows
C = np.arange(20_000, 20_041, dtype=np.int64)  # 10 windows


def mix(**kw) -> Mixture:
    options = {"max_length": 4, "stride": 4, "seed": 3} | kw
    return Mixture([(0.7, A), (0.2, B), (0.1, C)], **options)


def sources_of(x: torch.Tensor) -> list[int]:
    return (x[:, 0] // 10_000).tolist()


def test_order_is_megatrons() -> None:
    m = mix()
    d, _ = build_blending_indices(megatron_weights([0.7, 0.2, 0.1]), 64)
    x, y = m.get_batch(np.arange(64))
    assert sources_of(x) == d.tolist()
    assert torch.equal(x[:, 1:], y[:, :-1]) and x.is_contiguous() and y.is_contiguous()


def test_size_defaults_to_one_epoch_of_the_largest_share() -> None:
    m = mix()
    assert m.size == 1428  # 1000 / 0.7
    rows = report(m)
    assert rows[0]["samples"] == 1000 and rows[0]["epochs"] == pytest.approx(1.0)
    assert rows[2]["upsampled"] and rows[2]["epochs"] > 14
    assert "upsampled" in report_text(m).splitlines()[2]


def test_per_source_epochs_reshuffle() -> None:
    m = mix()
    d, windows = m.locate(np.arange(len(m)))
    small = windows[d == 2]  # source C: 10 windows per epoch
    epochs = [small[i : i + 10] for i in range(0, 140, 10)]
    assert all(sorted(e.tolist()) == list(range(10)) for e in epochs)
    assert len({tuple(e.tolist()) for e in epochs}) > 5  # a new shuffle each epoch
    plain = mix(shuffle=False)
    d2, w2 = plain.locate(np.arange(len(plain)))
    assert w2[d2 == 2][:20].tolist() == list(range(10)) * 2


def test_two_mixtures_share_a_source_independently() -> None:
    m1 = Mixture([(0.5, A), (0.5, C)], max_length=4, stride=4, seed=1)
    m2 = Mixture([(0.9, B), (0.1, C)], max_length=4, stride=4, seed=1)
    _, first = m1.locate(np.arange(20))
    m2.locate(np.arange(200))  # drawing from C in m2 moves nothing in m1
    assert m1.locate(np.arange(20))[1].tolist() == first.tolist()


def loader(m: Mixture, **kw):
    return create_dataloader(m, **({"batch_size": 8} | kw))


def flat(batches) -> list[list[int]]:
    return [row for x, _ in batches for row in x.tolist()]


@pytest.mark.parametrize("cut", [3, 100])  # mid-epoch of all; 100 crosses C's epoch ends
def test_resume_mid_epoch_and_across_a_source_epoch(cut: int) -> None:
    full = list(loader(mix()))
    first = loader(mix())
    it = iter(first)
    for _ in range(cut):
        next(it)
    state = first.state_dict()
    again = loader(mix())
    again.load_state_dict(state)
    assert flat(list(again)) == flat(full[cut:])


def test_forever_continues_the_stream_and_resumes() -> None:
    m = mix(size=200)
    stream = loader(m).forever()
    got = [next(stream) for _ in range(60)]  # 25 batches per epoch: crosses two epochs
    x = torch.cat([b[0] for b in got])
    assert torch.equal(x, m.get_batch(np.arange(480))[0])


def test_state_names_the_other_mixture() -> None:
    state = loader(mix()).state_dict()
    other = loader(Mixture([(0.6, A), (0.3, B), (0.1, C)], max_length=4, stride=4, seed=3))
    with pytest.raises(ValueError, match="another mixture \\(weights"):
        other.load_state_dict(state)
    swapped = loader(Mixture([(0.7, A), (0.2, C), (0.1, B)], max_length=4, stride=4, seed=3))
    with pytest.raises(ValueError, match="another mixture \\(sources"):
        swapped.load_state_dict(state)


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_disjoint_and_complete(world_size: int) -> None:
    m = mix(size=300)
    whole = flat(loader(m, drop_last=False, batch_size=4))
    parts = [
        flat(loader(m, rank=r, world_size=world_size, drop_last=False, batch_size=4, seed=3))
        for r in range(world_size)
    ]
    seen = [row for p in parts for row in p]
    n = len(m)
    pad = -(-n // world_size) * world_size - n  # drop_last=False pads with the stream's start
    assert sorted(seen) == sorted(whole + whole[:pad])
    # Rank r holds samples r, r + world_size, ...: disjoint positions of one stream.
    assert parts[0][:3] == [whole[0], whole[world_size], whole[2 * world_size]]


def test_num_workers_equal_in_process() -> None:
    m = mix(size=300)
    assert flat(loader(m, num_workers=2)) == flat(loader(m))


def test_document_masks_with_mixtures() -> None:
    eot = 50256
    a = np.array([1, 2, eot, 3, 4, 5, 6, eot, 7] * 20, dtype=np.int64)
    kw = {"max_length": 4, "stride": 4, "documents": "mask", "eot_id": eot}
    m = Mixture([(0.5, a), (0.5, A)], **kw, batch_format="dict", seed=1)
    batch = next(iter(create_dataloader(m, batch_size=8)))
    assert (batch["targets"] == -100).any()  # masks reach the mixture's batches
    # Row by row, what each source's own dataset gives for the same window.
    sources, windows = m.locate(np.arange(8))
    for s, ds in enumerate([SlidingWindowDataset(x, **kw, batch_format="dict") for x in (a, A)]):
        rows = np.flatnonzero(sources == s)
        own = ds.get_batch(windows[rows])
        for key in ("input_ids", "targets", "position_ids"):
            assert torch.equal(batch[key][rows], own[key]), key


@pytest.mark.parametrize(
    ("pairs", "match"),
    [
        ([(-0.1, A), (1.0, B)], "weight 0 is -0.1"),
        ([(0.0, A), (0.0, B)], "sum to 0"),
        ([(0.5, A), (0.5, None)], "entry 1 has no source"),
        ([(0.5, A), 0.5], "entry 1 is 0.5"),
        ([], "at least one"),
    ],
)
def test_bad_input_one_line(pairs, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        Mixture(pairs, max_length=4, stride=4)
    assert "\n" not in str(err.value)


def test_missing_path_is_an_error(tmp_path) -> None:
    with pytest.raises(Exception, match="missing|exist|not found|No such"):
        Mixture([(0.5, A), (0.5, tmp_path / "nope")], max_length=4, stride=4)
