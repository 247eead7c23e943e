"""The Python API's silent traps, each made loud or impossible (issue: the book's code unchanged).

Each test here failed on the code before: a file name trained on as text, a second pass that
silently moved the resume point, a uint16 array copied to int64, and unchecked loader input.
"""

from __future__ import annotations

import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gptdata import (
    SlidingWindowDataset,
    TokenStore,
    create_dataloader,
    get_tokenizer,
    prepare,
)
from gptdata.windows.loader import GPTDataLoader

TEXT = " ".join(f"Sentence number {i} says something new about item {i * 7}." for i in range(300))


def rows(batches) -> list[list[list[int]]]:
    return [x.tolist() for x, _ in batches]


# -- 1. a path passed as a str ----------------------------------------------------------------


def test_path_str_is_refused_and_path_reads_the_file(tmp_path) -> None:
    path = tmp_path / "the-verdict.txt"
    path.write_text(TEXT)
    with pytest.raises(ValueError, match=r"Pass Path\('.*the-verdict.txt'\) to read the file"):
        create_dataloader(str(path), batch_size=2, max_length=8, stride=8)
    with pytest.raises(ValueError, match="names an existing file"):
        SlidingWindowDataset(str(path), max_length=8, stride=8)
    from_path = create_dataloader(path, batch_size=2, max_length=8, stride=8, shuffle=False)
    from_text = create_dataloader(TEXT, batch_size=2, max_length=8, stride=8, shuffle=False)
    assert rows(from_path) == rows(from_text)


def test_store_folder_store_and_split_are_sources(tmp_path) -> None:
    docs = [f"Document {i}: " + TEXT[i * 50 : i * 50 + 400] for i in range(40)]
    store = prepare(None, tmp_path / "s", texts=docs, val_fraction=0.25, quiet=True)
    want = {}
    for name in ("train", "val"):
        split = store.split(name)
        ids = np.asarray(split[:])
        want[name] = rows(
            create_dataloader(ids, batch_size=2, max_length=8, stride=8, shuffle=False)
        )
        for source in (tmp_path / "s", store, TokenStore.open(tmp_path / "s"), split):
            loader = create_dataloader(
                source, batch_size=2, max_length=8, stride=8, shuffle=False, split=name
            )
            assert rows(loader) == want[name]
    assert want["train"] != want["val"]
    ds = SlidingWindowDataset(tmp_path / "s", max_length=8, stride=4, split="val")
    assert len(ds.tokens) == store.split("val").n_tokens


# -- 2. a second pass while one is unfinished ---------------------------------------------------


def test_side_pass_neither_warns_nor_moves_the_state() -> None:
    # Issue 19 (replacing issue 11's warning): passes are independent, as torch's are.
    loader = create_dataloader(TEXT, batch_size=2, max_length=16, stride=16, seed=0)
    expected = rows(create_dataloader(TEXT, batch_size=2, max_length=16, stride=16, seed=0))
    it = iter(loader)
    got = [next(it)[0].tolist() for _ in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k, _batch in enumerate(loader):  # nanoGPT's estimate_loss pattern
            if k == 1:
                break
        assert loader.state_dict()["batches_done"] == 3  # the oldest live pass owns the state
        got += [x.tolist() for x, _ in it]
    assert got == expected


@pytest.mark.parametrize("seed", [None, 0])
def test_book_chapter5_loop_unchanged_by_evaluation_and_resumes(seed) -> None:
    # The book's train_model_simple evaluates on the training loader every few steps.
    def run(evaluate: bool, stop: int | None = None, state=None) -> tuple[list, dict | None]:
        loader = create_dataloader(TEXT, batch_size=2, max_length=8, stride=8, seed=seed)
        if state is not None:
            loader.load_state_dict(state)
        seen, step = [], 0
        for _epoch in range(2):
            for x, _y in loader:
                seen.append(x.tolist())
                step += 1
                if step == stop:
                    return seen, loader.state_dict()
                if evaluate and step % 2 == 0 and seed is not None:
                    for i, _eval in enumerate(loader):  # calc_loss_loader(num_batches=2)
                        if i == 2:
                            break
        return seen, None

    torch.manual_seed(5)
    plain, _ = run(False)
    torch.manual_seed(5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluated, _ = run(True)
    assert evaluated == plain
    torch.manual_seed(5)
    first, state = run(True, stop=5)
    n = len(create_dataloader(TEXT, batch_size=2, max_length=8, stride=8, seed=seed))
    assert state is not None and (state["epoch"], state["batches_done"]) == divmod(5, n)
    rest = create_dataloader(TEXT, batch_size=2, max_length=8, stride=8, seed=seed)
    rest.load_state_dict(state)
    tail = rows(rest)  # the rest of the epoch the checkpoint was taken in
    assert first + tail == plain[: len(first) + len(tail)] and tail


def test_side_pass_with_seed_none_draws_like_a_torch_iterator() -> None:
    # With seed=None the training pass and each side pass draw from torch's global generator in
    # the order a classic DataLoader's iterators do, so the chapter-5 loop matches the book's.
    from torch.utils.data import DataLoader

    from reference import ReferenceDataset

    ids = create_dataloader(TEXT, batch_size=2, max_length=8, stride=8).dataset
    ref = ReferenceDataset(ids.tokens.gather(np.array([0]), len(ids.tokens))[0].tolist(), 8, 8)

    def loop(loader) -> list:
        seen = []
        for _epoch in range(2):
            for step, (x, _y) in enumerate(loader):
                seen.append(x.tolist())
                if step % 2 == 0:
                    for i, (ex, _ey) in enumerate(loader):
                        seen.append(ex.tolist())
                        if i == 1:
                            break
        return seen

    torch.manual_seed(11)
    classic = loop(DataLoader(ref, batch_size=2, shuffle=True, drop_last=True))
    torch.manual_seed(11)
    ours = loop(create_dataloader(TEXT, batch_size=2, max_length=8, stride=8))
    assert ours == classic


@pytest.mark.parametrize("seed", [None, 3])
def test_forever_crosses_epochs_and_resumes_exactly(seed) -> None:
    def make() -> GPTDataLoader:
        return create_dataloader(
            TEXT, batch_size=3, max_length=16, stride=16, seed=seed, drop_last=False
        )

    torch.manual_seed(9)
    n = len(make())
    stream = make().forever()
    expected = [next(stream)[0].tolist() for _ in range(3 * n + 2)]
    # Every epoch is a fresh shuffle of the same windows.
    epochs = [expected[e * n : (e + 1) * n] for e in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]
    windows = [sorted(str(w) for batch in ep for w in batch) for ep in epochs]
    assert windows[0] == windows[1] == windows[2]
    if seed is not None:  # the epochs are exactly set_epoch's orders
        for e in range(3):
            loader = make()
            loader.set_epoch(e)
            assert rows(loader) == epochs[e]
    else:  # the first epoch is the classic loader's after manual_seed
        torch.manual_seed(9)
        assert rows(make()) == epochs[0]
    # (seed=None, before the first batch: nothing drawn yet, the global RNG decides, as fresh.)
    for cut in (0, 1, n - 1, n, n + 1, 2 * n, 2 * n + 1)[seed is None :]:
        torch.manual_seed(9)
        first = make()
        stream = first.forever()
        got = [next(stream)[0].tolist() for _ in range(cut)]
        state = first.state_dict()
        torch.manual_seed(1234)  # a resumed run's global RNG is not the original's
        resumed = make()
        resumed.load_state_dict(state)
        rest = resumed.forever()
        got += [next(rest)[0].tolist() for _ in range(len(expected) - cut)]
        assert got == expected, cut


def test_forever_stream_unchanged_by_a_side_pass() -> None:
    def make() -> GPTDataLoader:
        return create_dataloader(TEXT, batch_size=2, max_length=64, stride=64, seed=0)

    reference = make().forever()
    expected = [next(reference)[0].tolist() for _ in range(len(make()) + 2)]
    loader = make()
    stream = loader.forever()
    got = [next(stream)[0].tolist()]
    list(loader)  # a whole side pass
    got += [next(stream)[0].tolist() for _ in range(len(expected) - 1)]
    assert got == expected


# -- 3. in-memory arrays keep their dtype -------------------------------------------------------


def test_uint16_array_is_not_copied() -> None:
    ids = (np.arange(1_000_000) % 50257).astype(np.uint16)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ds = SlidingWindowDataset(ids, max_length=256, stride=128)
        loader = GPTDataLoader(ds, batch_size=8, seed=1)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 1_000_000, f"building allocated {grown:,} bytes"
    assert ds.tokens.array is ids
    x, y = next(iter(loader))
    assert x.dtype == torch.int64 and x.shape == (8, 256)
    start = int(x[0, 0])  # token IDs equal positions here
    assert x[0].tolist() == ids[start : start + 256].tolist()
    assert y[0].tolist() == ids[start + 1 : start + 257].tolist()


# -- the command line's library side ------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without an accelerator")
def test_pin_memory_without_accelerator_warns_and_goes_on() -> None:
    with pytest.warns(UserWarning, match="pin_memory=True, but no accelerator"):
        loader = create_dataloader(TEXT, batch_size=2, max_length=8, stride=8, pin_memory=True)
    x, _ = next(iter(loader))
    assert x.shape == (2, 8) and not loader.pin_memory


@settings(max_examples=150, deadline=None)
@given(
    start=st.one_of(st.none(), st.integers(-40, 40)),
    stop=st.one_of(st.none(), st.integers(-40, 40)),
    step=st.one_of(st.none(), st.integers(-7, 7).filter(bool)),
)
def test_split_slices_like_numpy(tmp_path_factory, start, stop, step) -> None:
    root = tmp_path_factory.getbasetemp() / "slicestore"
    if not (root / "manifest.json").exists():
        docs = [f"doc {i} " + "word " * (i % 5) for i in range(6)]
        prepare(None, root, texts=docs, val_fraction=0.0, shard_tokens=7, workers=1, quiet=True)
    split = TokenStore.open(root).split("train")
    assert len(split.shards) > 1
    full = np.asarray(split[:])
    key = slice(start, stop, step)
    assert split[key].tolist() == full[key].tolist()


def test_split_reversed(tmp_path) -> None:
    tok = get_tokenizer("gpt2")
    store = prepare(None, tmp_path / "s", texts=["a b c", "d e"], val_fraction=0.0, quiet=True)
    split = store.split("train")
    ids = tok.encode("a b c") + [tok.eot_id] + tok.encode("d e")
    assert split[::-1].tolist() == ids[::-1]
    assert split[-2::-2].tolist() == ids[-2::-2]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batches_done": -1}, r"batches_done=-1 is impossible: it must be 0\.\.\d+"),
        ({"batches_done": 10_000}, r"batches_done=10000 is impossible"),
        ({"batches_done": "3"}, r"batches_done='3' is str, not an integer"),
        ({"batches_done": 2.0}, r"batches_done=2.0 is float"),
        ({"epoch": -2}, r"epoch=-2 is impossible"),
        ({"perm_seed": "x"}, r"perm_seed='x' must be an int or None"),
        ({"settings": None}, r"'settings' a dict"),
    ],
)
def test_impossible_states_are_refused(change, message) -> None:
    loader = create_dataloader(TEXT, batch_size=2, max_length=16, stride=16, seed=0)
    state = {**loader.state_dict(), **change}
    with pytest.raises(ValueError, match=message):
        loader.load_state_dict(state)
    broken = loader.state_dict()
    del broken["epoch"]
    with pytest.raises(ValueError, match="lacks 'epoch'"):
        loader.load_state_dict(broken)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rank": -1, "world_size": 2}, r"rank=-1 must be an integer >= 0"),
        ({"rank": 2, "world_size": 2}, r"rank=2 must be in 0\.\.1 for world_size=2"),
        ({"rank": 0.5, "world_size": 2}, r"rank=0.5 must be an integer"),
        ({"rank": True, "world_size": 2}, r"rank=True must be an integer"),
        ({"world_size": 0}, r"world_size=0 must be an integer >= 1"),
        ({"seed": 1.5}, r"seed=1.5 must be an integer >= 0 or None"),
        ({"seed": "7"}, r"seed='7' must be an integer >= 0 or None"),
    ],
)
def test_rank_world_size_seed_checked_when_built(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        create_dataloader(TEXT, batch_size=2, max_length=16, stride=16, **kwargs)


def test_numpy_integers_accepted() -> None:
    loader = create_dataloader(
        TEXT, batch_size=np.int64(2), max_length=16, stride=16, seed=np.int64(4), rank=np.int64(0)
    )
    assert len(next(iter(loader))[0]) == 2


def test_path_objects_in_the_book_flow(tmp_path) -> None:
    path = Path(tmp_path / "book.txt")
    path.write_text(TEXT)
    ds = SlidingWindowDataset(path, max_length=4, stride=1)
    assert ds.corpus.document_ends.tolist() == [len(ds.tokens)]


def test_loader_class_names_the_door_for_sources(tmp_path) -> None:
    with pytest.raises(TypeError, match=r"GPTDataLoader takes a SlidingWindowDataset, got "
                       r"\w*Path.*create_dataloader\(source"):  # fmt: skip
        GPTDataLoader(tmp_path / "notes.txt")
