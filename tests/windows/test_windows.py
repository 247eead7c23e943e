from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gptdata import SlidingWindowDataset, get_tokenizer, prepare
from reference import ReferenceDataset


def test_golden_small_case() -> None:
    ds = SlidingWindowDataset([1, 2, 3, 4, 5], max_length=2, stride=2)
    assert len(ds) == 2
    assert [t.tolist() for t in ds[0]] == [[1, 2], [2, 3]]
    assert [t.tolist() for t in ds[1]] == [[3, 4], [4, 5]]
    assert ds[0][0].dtype == torch.int64 and ds[-1][1].tolist() == [4, 5]
    x, y = ds[[1, 0]]
    assert x.shape == (2, 2) and x.tolist() == [[3, 4], [1, 2]]


@settings(max_examples=200, deadline=None)
@given(
    ids=st.lists(st.integers(0, 50256), min_size=2, max_size=80),
    max_length=st.integers(1, 12),
    stride=st.integers(1, 12),
)
def test_items_equal_reference(ids, max_length, stride) -> None:
    if len(ids) < max_length + 1:
        with pytest.raises(ValueError, match=f"needs at least {max_length + 1} tokens"):
            SlidingWindowDataset(ids, max_length=max_length, stride=stride)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = SlidingWindowDataset(
            np.array(ids, dtype=np.uint16), max_length=max_length, stride=stride
        )
    ref = ReferenceDataset(ids, max_length, stride)
    assert len(ds) == len(ref)
    for k in range(len(ref)):
        x, y = ds[k]
        assert torch.equal(x, ref[k][0]) and torch.equal(y, ref[k][1])
    cov = ds.coverage()
    covered = {
        p for k in range(len(ref)) for p in range(k * stride + 1, k * stride + max_length + 1)
    }
    assert cov.targets_covered == len(covered)
    assert cov.targets_never == len(ids) - 1 - len(covered)


@settings(max_examples=60, deadline=None)
@given(
    docs=st.lists(st.text(alphabet="ab .", min_size=1, max_size=30), min_size=1, max_size=12),
    shard_tokens=st.integers(1, 20),
    max_length=st.integers(1, 8),
    stride=st.integers(1, 8),
)
def test_store_split_windows_cross_shards(tmp_path_factory, docs, shard_tokens, max_length, stride):
    tok = get_tokenizer("gpt2")
    root = tmp_path_factory.mktemp("s") / "store"
    store = prepare(
        None, root, texts=docs, val_fraction=0, shard_tokens=shard_tokens, workers=1, quiet=True
    )
    flat: list[int] = []
    for d in docs:
        if d:
            flat += ([tok.eot_id] if flat else []) + tok.encode(d)
    split = store.split("train")
    assert split[:].tolist() == flat
    if len(flat) < max_length + 1:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stride gaps are part of what is tested here
        ds = SlidingWindowDataset(split, max_length=max_length, stride=stride)
    ref = ReferenceDataset(flat, max_length, stride)
    x, y = ds[list(range(len(ds)))]
    assert x.tolist() == [t.tolist() for t in ref.inputs]
    assert y.tolist() == [t.tolist() for t in ref.targets]


def test_sources_text_tensor_list(verdict_text) -> None:
    ids = get_tokenizer("gpt2").encode(verdict_text)
    a = SlidingWindowDataset(verdict_text, max_length=4, stride=4)
    b = SlidingWindowDataset(torch.tensor(ids), max_length=4, stride=4)
    c = SlidingWindowDataset(ids, max_length=4, stride=4)
    assert len(a) == len(b) == len(c) == len(range(0, 5145 - 4, 4))
    assert torch.equal(a[100][0], c[100][0]) and torch.equal(b[7][1], c[7][1])


def test_pickles_small_and_lazily(tmp_path) -> None:
    store = prepare(
        None, tmp_path / "s", texts=["word " * 5000], val_fraction=0, workers=1, quiet=True
    )
    ds = SlidingWindowDataset(store.split("train"), max_length=16, stride=1)
    ds[0]  # opens the memmaps
    blob = pickle.dumps(ds)
    assert len(blob) < 2000
    again = pickle.loads(blob)
    assert again.tokens._maps is None
    assert torch.equal(again[123][0], ds[123][0])


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"max_length=0 must be an integer >= 1"):
        SlidingWindowDataset([1, 2, 3], max_length=0, stride=1)
    with pytest.raises(ValueError, match=r"stride=0 must be an integer >= 1"):
        SlidingWindowDataset([1, 2, 3], max_length=1, stride=0)
    with pytest.raises(
        ValueError, match=r"max_length=256 needs at least 257 tokens, but the source has 3"
    ):
        SlidingWindowDataset([1, 2, 3], max_length=256, stride=1)
    ds = SlidingWindowDataset([1, 2, 3, 4], max_length=2, stride=1)
    with pytest.raises(
        IndexError, match=r"window 2 is out of range: this dataset has 2 windows \(0\.\.1\)"
    ):
        ds[2]


def test_coverage_and_gap_warning() -> None:
    with pytest.warns(UserWarning, match=r"stride=4 > max_length=2 leaves 2 tokens"):
        ds = SlidingWindowDataset(list(range(10)), max_length=2, stride=4)
    cov = ds.coverage()
    assert (cov.windows, cov.targets_covered, cov.gap_tokens, cov.tail_tokens) == (2, 4, 2, 3)
    over = SlidingWindowDataset(list(range(10)), max_length=4, stride=1).coverage()
    assert over.targets_never == 0 and over.overlap == pytest.approx(6 * 4 / 9)


def test_tensor_scalar_and_slice_indexes() -> None:
    # Book code indexes with torch.randint(...) results; a slice is a batch of those windows.
    ds = SlidingWindowDataset(list(range(100, 140)), max_length=4, stride=2)
    for index in (torch.tensor(3), np.int64(3), np.array(3), -ds.n_windows + 3):
        x, y = ds[index]
        assert x.tolist() == [106, 107, 108, 109] and y.tolist() == [107, 108, 109, 110]
    x, y = ds[1:7:2]
    assert x.shape == (3, 4) and x[:, 0].tolist() == [102, 106, 110]
    assert torch.equal(y, torch.stack([ds[k][1] for k in (1, 3, 5)]))
    assert ds[-2:][0][:, 0].tolist() == [ds[ds.n_windows - 2][0][0], ds[ds.n_windows - 1][0][0]]
    assert ds[5:5][0].shape == (0, 4)
    with pytest.raises(TypeError, match="integer"):
        ds[torch.tensor(1.0)]
    with pytest.raises(IndexError, match="out of range"):
        ds[torch.tensor(ds.n_windows)]
