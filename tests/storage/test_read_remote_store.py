"""Reading a token store on S3 (moto's server) through the local cache: issue 22.

A store is prepared locally, uploaded with plain s3fs puts, then read by URL; every read must
equal the local store's, byte for byte, and download only what it touches.
"""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import gptdata.windows.batches as batches_module
from gptdata.cli.entry import main
from gptdata.prepare.driver import prepare
from gptdata.store import StoreError, TokenStore
from gptdata.windows.batches import Item, _BatchSampler, _Rows
from gptdata.windows.loader import create_dataloader
from s3fixtures import upload

WORDS = "the a cat sat on mat dog ran far away under bright blue sky while birds sang".split()


TINY_PY = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok_emb = nn.Embedding(50257, 8)
        self.out_head = nn.Linear(8, 50257, bias=False)

    def forward(self, idx):
        return self.out_head(self.tok_emb(idx))  # (B, T, V)


def base():
    torch.manual_seed(0)
    return Tiny()
"""


def texts(n: int = 60, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))) for _ in range(n)]


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("local") / "store"
    prepare(None, root, texts=texts(), shard_tokens=700, val_fraction=0, workers=1, quiet=True)
    return root


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GPTDATA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def batches(loader: Any) -> list[np.ndarray]:
    return [np.concatenate([x.numpy(), y.numpy()[:, -1:]], axis=1) for x, y in loader]


def test_open_reads_only_the_manifest_and_equals_local(s3, cache, local_store) -> None:
    url = upload(local_store, s3)
    local = TokenStore.open(local_store)
    store = TokenStore.open(url, storage_options=s3["options"])
    assert len(local.split("train").shards) == 4
    assert store.manifest == local.manifest and store.url == url
    assert not list(cache.rglob("*.bin"))  # nothing downloaded at open
    remote, here = store.split("train"), local.split("train")
    assert np.array_equal(remote[:], here[:])
    assert np.array_equal(remote.document_ends(), here.document_ends())
    starts = np.array([0, 650, 1400, len(here) - 40])
    assert np.array_equal(remote.gather(starts, 40), here.gather(starts, 40))
    store.verify()
    assert "store      s3://" in store.describe()


def test_missing_store_and_truncated_shard(s3, cache, local_store) -> None:
    with pytest.raises(StoreError, match=r"not a token store \(no manifest.json\).*prepare"):
        TokenStore.open(f"{s3['url']}/nothing", storage_options=s3["options"])
    url = upload(local_store, s3)
    import s3fs

    fs = s3fs.S3FileSystem(**s3["options"])
    rel = TokenStore.open(local_store).split("train").shards[1].file
    fs.pipe_file(f"{url}/{rel}", b"\0\0")
    with pytest.raises(StoreError, match=r"2 bytes, but the manifest implies .* re-run gptdata"):
        TokenStore.open(url, storage_options=s3["options"])


def test_loader_batches_equal_the_local_store(s3, cache, local_store) -> None:
    url = upload(local_store, s3)
    kw = dict(batch_size=4, max_length=32, stride=32, shuffle=True, seed=3)
    want = batches(create_dataloader(TokenStore.open(local_store), **kw))
    store = TokenStore.open(url, storage_options=s3["options"])
    got = batches(create_dataloader(store, **kw))
    assert len(got) == len(want) and all(
        np.array_equal(a, b) for a, b in zip(got, want, strict=True)
    )


def test_workers_read_a_store_url(s3, cache, local_store) -> None:
    url = upload(local_store, s3)
    kw = dict(batch_size=4, max_length=32, stride=32, shuffle=True, seed=5)
    want = batches(create_dataloader(TokenStore.open(local_store), **kw))
    store = TokenStore.open(url, storage_options=s3["options"])
    got = batches(create_dataloader(store, num_workers=2, **kw))  # each worker its own split
    assert len(got) == len(want) and all(
        np.array_equal(a, b) for a, b in zip(got, want, strict=True)
    )


def touched(split: Any, starts: np.ndarray, length: int) -> set[int]:
    first = np.searchsorted(split._starts, starts, side="right") - 1
    last = np.searchsorted(split._starts, starts + length - 1, side="right") - 1
    return set(first.tolist()) | set(last.tolist())


@pytest.mark.parametrize("rank", [0, 1])
def test_a_rank_downloads_only_the_shards_its_windows_touch(s3, cache, local_store, rank) -> None:
    url = upload(local_store, s3)
    store = TokenStore.open(url, storage_options=s3["options"])
    # Unshuffled, the first batches of each rank lie in the first shards only.
    kw = dict(batch_size=2, max_length=32, stride=32, shuffle=False, world_size=2)
    loader = create_dataloader(store, rank=rank, **kw)
    want_loader = create_dataloader(TokenStore.open(local_store), rank=rank, **kw)
    it, want = iter(loader), iter(want_loader)
    for _ in range(3):
        (x, y), (wx, wy) = next(it), next(want)
        assert np.array_equal(x.numpy(), wx.numpy()) and np.array_equal(y.numpy(), wy.numpy())
    split = loader.dataset.tokens
    split.cache.close()  # let prefetches finish: they count too
    order = loader._epoch_order()
    need = touched(split, order * 32, 33)
    got = {
        k
        for k, s in enumerate(split.shards)
        if (cache / "shards" / split.store_id / s.file).exists()
    }
    assert got <= need  # never a shard its windows do not touch
    assert 0 in got and got != set(range(4))  # 3 batches: the first shards, not all four


def test_a_small_cache_limit_evicts_and_downloads_again(s3, cache, local_store) -> None:
    url = upload(local_store, s3)
    shards = TokenStore.open(local_store).split("train").shards
    biggest = max(s.tokens for s in shards) * 2
    store = TokenStore.open(url, storage_options=s3["options"], cache_limit=biggest * 2 + 1)
    kw = dict(batch_size=4, max_length=32, stride=32, shuffle=False)
    want = batches(create_dataloader(TokenStore.open(local_store), **kw))
    loader = create_dataloader(store, **kw)
    split = loader.dataset.tokens
    assert split._mapped == 1  # the limit holds two shards: one read, the rest may go
    with pytest.warns(UserWarning, match=r"cache_limit=.* bytes is less than the .* shards"):
        for _ in range(2):  # the second pass finds the first shards evicted
            got = batches(loader)
            assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    downloads = split.downloads
    split.close()  # releases what it held: files in use (or downloading) may sit above the limit
    assert split.cache.evict() is not None and split.cache.size() <= biggest * 2 + 1
    assert downloads > len(shards)  # evicted shards were downloaded again


def test_a_store_replaced_while_read_fails_with_the_loaders_message(
    s3, cache, local_store, tmp_path
) -> None:
    url = upload(local_store, s3)
    store = TokenStore.open(url, storage_options=s3["options"])
    split = store.split("train")
    other = tmp_path / "other"
    prepare(
        None, other, texts=texts(seed=1), shard_tokens=700, val_fraction=0, workers=1, quiet=True
    )
    upload(other, s3)
    with pytest.raises(StoreError, match=r"s3://.*the store was replaced while being read"):
        split.gather(np.array([0]), 8)


def test_load_tokens_and_the_cli_read_a_store_url(s3, cache, local_store, tmp_path, capsys) -> None:
    from gptdata import load_tokens

    url = upload(local_store, s3)
    corpus = load_tokens(url, storage_options=s3["options"])
    here = TokenStore.open(local_store).split("train")
    assert np.array_equal(corpus.tokens[:100], here[:100])
    assert corpus.tokenizer is not None
    opt = f"endpoint_url={s3['options']['endpoint_url']}"
    model = tmp_path / "tiny.py"
    model.write_text(TINY_PY, encoding="utf-8")
    for verb in (
        ["inspect"],
        ["plan", "--max-length", "32", "--batch-size", "2", "--stride", "32"],
        ["eval", "--model", f"py:{model}:base", "--split", "train", "--max-length", "32"],
    ):
        argv = [verb[0], url, "--storage-option", opt, "--cache-limit", "10MB", *verb[1:]]
        assert main(argv) == 0, capsys.readouterr().err
    assert "perplexity" in capsys.readouterr().out.lower()
    assert (
        main(
            [
                "plan",
                url,
                "--storage-option",
                opt,
                "--cache-limit",
                "ten",
                "--batch-size",
                "2",
                "--stride",
                "32",
                "--max-length",
                "32",
            ]
        )
        == 1
    )
    assert "--cache-limit 'ten' is not a size" in capsys.readouterr().err
    manifest = json.loads((local_store / "manifest.json").read_text())
    assert manifest["store_id"] in {p.name for p in (cache / "shards").iterdir()}


def test_export_of_a_store_url_equals_the_local_export(s3, cache, local_store, tmp_path) -> None:
    from gptdata.formats.export import export_store

    url = upload(local_store, s3)
    export_store(local_store, tmp_path / "here", format="nanogpt", quiet=True)
    store = TokenStore.open(url, storage_options=s3["options"], cache_limit=10**6)
    export_store(store, tmp_path / "there", format="nanogpt", quiet=True)
    here, there = tmp_path / "here" / "train.bin", tmp_path / "there" / "train.bin"
    assert here.read_bytes() == there.read_bytes()


def test_info_and_verify_take_a_store_url(s3, cache, local_store, capsys) -> None:
    url = upload(local_store, s3)
    opt = ["--storage-option", f"endpoint_url={s3['options']['endpoint_url']}"]
    assert main(["info", str(local_store)]) == 0
    here = capsys.readouterr().out
    assert main(["info", url, *opt]) == 0
    there = capsys.readouterr().out
    assert there.splitlines()[0] == f"store      {url}"
    assert there.splitlines()[1:] == here.splitlines()[1:]  # the same manifest, read remotely
    assert not (cache / "shards").exists() or not any((cache / "shards").rglob("*.bin"))
    assert main(["verify", url, *opt, "--cache-limit", "10MB"]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {url} verified (")
    assert main(["verify", f"{s3['url']}/nothing-here", *opt]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nothing-here" in err and err.count("\n") == 0


def cached(split: Any, root: Path) -> set[int]:
    """The shards of ``split`` whose data file is in the cache folder ``root``."""
    return {
        k
        for k, s in enumerate(split.shards)
        if (root / "shards" / split.store_id / s.file).exists()
    }


# With workers, the pass's plan (the shards in the order its windows need them) is drawn in the
# main process after the workers started, so it travels with the items; without it a worker
# downloads a shard only when a read waits on it. Checked by what the cache holds, not by timing.


def test_workers_download_the_next_shards_of_the_plan(s3, cache, local_store, monkeypatch) -> None:
    url = upload(local_store, s3)
    store = TokenStore.open(url, storage_options=s3["options"])
    # One batch per worker fetch (not ~1 MiB of them), so the first fetches stay in shard 0.
    monkeypatch.setattr(batches_module, "WORKER_TRANSFER_BYTES", 1)
    loader = create_dataloader(
        store, batch_size=2, max_length=32, stride=32, shuffle=False, num_workers=2
    )
    split = loader.dataset.tokens
    assert len(split.shards) == 4 and split.shards[0].tokens > 8 * 66  # 8 fetches: shard 0
    it = iter(loader)
    next(it)
    del it  # the workers stop; a worker's process finishes its downloads before it exits
    assert split.downloads == 0  # the main process read nothing: the workers did
    # Each worker read shard 0, so each downloaded the next two of the plan (AHEAD) behind it.
    assert cached(split, cache) == {0, 1, 2}


def test_a_pickled_split_follows_the_plan_its_items_carry(s3, cache, local_store) -> None:
    url = upload(local_store, s3)
    store = TokenStore.open(url, storage_options=s3["options"])
    loader = create_dataloader(store, batch_size=2, max_length=32, stride=32, shuffle=False)
    items = iter(_BatchSampler(loader, 0, per_item=1, plan=True))
    first = next(items)
    assert isinstance(first, Item) and first.plan is not None
    assert first.plan[1].tolist() == [0, 1, 2, 3]  # unshuffled: the shards in order
    assert next(items).plan is first.plan  # one plan per pass, not one per item
    rows = pickle.loads(pickle.dumps(_Rows(loader.dataset)))  # as a spawned worker gets it
    got = rows[first]  # (2, 33)
    assert np.array_equal(got.numpy(), loader.dataset.tokens.gather(first.indices * 32, 33))
    split = rows.dataset.tokens
    split.cache.close()  # wait for the prefetches
    assert split._plan == [0, 1, 2, 3] and cached(split, cache) == {0, 1, 2}


def test_read_plan_orders_shards_by_first_need(s3, cache, local_store) -> None:
    url = upload(local_store, s3)
    split = TokenStore.open(url, storage_options=s3["options"]).split("train")
    size = split.shards[0].tokens  # shard 1 starts at size + 1 (the implied end-of-text)
    assert split.read_plan(np.array([size + 5, 0, size + 9]), 4) == [1, 0]
    assert split.read_plan(np.array([size - 2]), 8) == [0, 1]  # a window across the boundary
    assert split.read_plan(np.array([], dtype=np.int64), 8) == []
    assert split.downloads == 0  # planning downloads nothing


def test_a_warm_cache_maps_the_plans_shards_at_the_first_read(s3, cache, local_store) -> None:
    url = upload(local_store, s3)
    kw = dict(batch_size=2, max_length=32, stride=32, shuffle=False)
    batches(create_dataloader(TokenStore.open(url, storage_options=s3["options"]), **kw))
    loader = create_dataloader(TokenStore.open(url, storage_options=s3["options"]), **kw)
    next(iter(loader))
    split = loader.dataset.tokens
    # All four held and read as plain views: no lock, stat or map per shard inside the pass.
    assert sorted(split._held) == [0, 1, 2, 3] and split.downloads == 0
    assert all(isinstance(v, np.ndarray) for v in split._vlist)


def test_a_partly_warm_cache_still_downloads_ahead_of_the_reader(s3, cache, local_store) -> None:
    url = upload(local_store, s3)
    first = TokenStore.open(url, storage_options=s3["options"]).split("train")
    first.gather(np.array([0, first.shards[0].tokens + 1]), 8)  # no plan: shards 0 and 1 only
    first.close()
    assert cached(first, cache) == {0, 1}
    kw = dict(batch_size=2, max_length=32, stride=32, shuffle=False)
    loader = create_dataloader(TokenStore.open(url, storage_options=s3["options"]), **kw)
    next(iter(loader))  # reads shard 0: the next two of the plan are 1 (here) and 2 (not)
    split = loader.dataset.tokens
    split.cache.close()  # let the prefetch finish
    assert sorted(split._held) == [0, 1] and split.downloads == 1  # 2 downloaded, not read
    assert cached(split, cache) == {0, 1, 2}  # shard 3 waits until shard 1 is read
