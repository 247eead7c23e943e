"""gptdata's blending index equals megatron-core's, array for array.

Two routes: the compiled ``build_blending_indices`` fed megatron-core's own ``normalize`` (once,
as a ``BlendedDataset`` built directly; twice, as ``--data-path``), and a real ``BlendedDataset``
over stand-in datasets. Skips cleanly where megatron-core or its compiled helper is missing.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

from gptdata.windows.blending import build_blending_indices, megatron_weights, split_sizes

utils = pytest.importorskip("megatron.core.datasets.utils")
try:
    from megatron.core.datasets import helpers_cpp
except ImportError:  # older wheels compile it on demand
    try:
        utils.compile_helpers()
        from megatron.core.datasets import helpers_cpp
    except Exception as exc:  # noqa: BLE001
        pytest.skip(
            f"megatron-core's helpers cannot be compiled here: {exc}", allow_module_level=True
        )

CASES = [
    ([30, 70], 10),
    ([1, 1, 2], 8),
    ([0.7, 0.2, 0.1], 1000),
    ([0.989, 0.01, 0.001], 5000),
    ([1, 1, 1], 1002),
    ([0.5], 17),
    ([3, 1e-3, 2, 7, 0.25], 20_000),
]
rng = np.random.default_rng(0)
CASES += [
    (rng.random(int(k)).tolist(), int(n))
    for k, n in zip(rng.integers(2, 9, 25), rng.integers(1, 50_000, 25), strict=True)
]


def megatron_arrays(weights: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    d = np.zeros(size, dtype=np.int16)
    j = np.zeros(size, dtype=np.int64)
    helpers_cpp.build_blending_indices(
        d, j, np.asarray(weights, np.float64), len(weights), size, False
    )
    return d, j


@pytest.mark.parametrize(("raw", "size"), CASES)
@pytest.mark.parametrize("twice", [True, False])
def test_arrays_equal(raw, size, twice) -> None:
    theirs = np.asarray(utils.normalize(list(raw)), dtype=np.float64)
    if twice:
        theirs = np.asarray(utils.normalize(theirs.tolist()), dtype=np.float64)
    ours = megatron_weights(raw, normalize_twice=twice)
    assert ours.tolist() == theirs.tolist()  # bit for bit
    d, j = build_blending_indices(ours, size)
    md, mj = megatron_arrays(theirs, size)
    assert np.array_equal(d, md) and np.array_equal(j, mj)


@pytest.mark.parametrize(("raw", "size"), CASES[:12])
def test_blended_dataset_route(raw, size) -> None:
    blended = pytest.importorskip("megatron.core.datasets.blended_dataset")
    w = megatron_weights(raw, normalize_twice=False)
    target, buffer = split_sizes(w, size)

    class Stand:  # what BlendedDataset asks of a dataset: a length and identifiers
        def __init__(self, i: int, n: int) -> None:
            self.n, self.index_split = n, utils.Split.train
            self.unique_identifiers = {"class": "Stand", "i": i}
            self.unique_description = f"stand-{i}"

        def __len__(self) -> int:
            return self.n

        def __getitem__(self, k: int) -> dict:
            return {"k": k}

    config = types.SimpleNamespace(
        path_to_cache=None,
        mmap_bin_files=False,
        defer_npy_index_mmap=False,
        fast_cache_load=False,
        mid_level_dataset_surplus=0.005,
    )
    try:
        ds = blended.BlendedDataset(
            [Stand(i, int(b)) for i, b in enumerate(buffer)], w.tolist(), int(target.sum()), config
        )
    except Exception as exc:  # noqa: BLE001 - the constructor's needs vary across releases
        pytest.skip(f"BlendedDataset could not be built over stand-ins: {exc}")
    # The builder normalized once (w); BlendedDataset normalizes again: the --data-path route.
    d, j = build_blending_indices(megatron_weights(raw), int(target.sum()))
    assert np.array_equal(ds.dataset_index, d) and np.array_equal(ds.dataset_sample_index, j)
