"""storage/cache.py against moto's S3 server: verify once, corruption, LRU eviction, processes."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from gptdata.storage import Location, RemoteFile, ShardCache, StorageError
from s3fixtures import needs_s3

pytestmark = needs_s3
STORE_ID = "7d2c0883d5ea8d5c56cb8b97f70df031"


def upload_shards(
    s3, n: int, size: int = 1000, prefix: str = "store"
) -> tuple[Location, list[RemoteFile]]:
    """``n`` random shards under s3://bucket/prefix/shards/, as a manifest would list them."""
    store = Location(f"{s3['url']}/{prefix}", storage_options=s3["options"])
    files = []
    for i in range(n):
        data = os.urandom(size)
        rel = f"shards/{i:05d}.train.000.bin"
        store.child(rel).write_bytes(data)
        files.append(RemoteFile(rel, hashlib.sha256(data).hexdigest(), size))
    return store, files


def test_download_verified_once(s3, tmp_path: Path) -> None:
    store, files = upload_shards(s3, 2)
    cache = ShardCache(tmp_path, limit=None)
    with cache.fetch(store, files[0], store_id=STORE_ID) as path:
        assert path == tmp_path / "shards" / STORE_ID / files[0].rel
        assert hashlib.sha256(path.read_bytes()).hexdigest() == files[0].sha256
    with cache.fetch(store, files[0], store_id=STORE_ID):
        pass
    assert cache.downloads == 1  # the hit costs a stat, not a download or a hash
    other = ShardCache(tmp_path)  # another reader of the same cache folder
    other.fetch(store, files[0], store_id=STORE_ID).release()
    assert other.downloads == 0
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "00000.train.000.bin",
        "00000.train.000.bin.lock",
    ]  # no temp file left behind


def test_corruption_is_detected_and_nothing_kept(s3, tmp_path: Path) -> None:
    store, files = upload_shards(s3, 1)
    wrong = RemoteFile(files[0].rel, "0" * 64, files[0].size)
    cache = ShardCache(tmp_path)
    with pytest.raises(
        StorageError,
        match=r"shards/00000.train.000.bin does not match its manifest: sha256 .* expected 0000000000000000\.\.\. \(1,000 bytes\).*gptdata verify",
    ):
        cache.fetch(store, wrong, store_id=STORE_ID)
    folder = tmp_path / "shards" / STORE_ID / "shards"
    assert [p.name for p in folder.iterdir() if not p.name.endswith(".lock")] == []


def test_truncated_copy_is_fetched_again(s3, tmp_path: Path) -> None:
    store, files = upload_shards(s3, 1)
    cache = ShardCache(tmp_path)
    with cache.fetch(store, files[0], store_id=STORE_ID) as path:
        pass
    path.write_bytes(b"short")
    with cache.fetch(store, files[0], store_id=STORE_ID) as path:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == files[0].sha256
    assert cache.downloads == 2


def test_a_replaced_store_is_a_new_namespace(s3, tmp_path: Path) -> None:
    store, old = upload_shards(s3, 1)
    cache = ShardCache(tmp_path)
    cache.fetch(store, old[0], store_id="a" * 32).release()
    _, new = upload_shards(s3, 1)  # same URL, new bytes: a new manifest, a new store_id
    with cache.fetch(store, new[0], store_id="b" * 32) as path:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == new[0].sha256
    with pytest.raises(ValueError, match="is not a store id"):
        cache.fetch(store, new[0], store_id="../x")


def test_eviction_under_a_small_limit_in_lru_order(s3, tmp_path: Path) -> None:
    store, files = upload_shards(s3, 4)
    cache = ShardCache(tmp_path, limit=3000)  # three shards of 1,000 bytes
    for f in files[:3]:
        cache.fetch(store, f, store_id=STORE_ID).release()
    cache.fetch(store, files[0], store_id=STORE_ID).release()  # 0 is now the most recent
    cache.fetch(store, files[3], store_id=STORE_ID).release()  # evicts 1, the least recent
    names = [p.name for _, _, p in cache.entries()]
    assert sorted(names) == ["00000.train.000.bin", "00002.train.000.bin", "00003.train.000.bin"]
    assert cache.size() <= 3000


def test_a_file_in_use_is_never_evicted(s3, tmp_path: Path) -> None:
    store, files = upload_shards(s3, 3)
    cache = ShardCache(tmp_path, limit=1500)
    held = cache.fetch(store, files[0], store_id=STORE_ID)
    with cache.fetch(store, files[1], store_id=STORE_ID) as second:
        assert held.path.exists() and second.exists()  # over the limit, but both in use
    held.release()
    cache.fetch(store, files[2], store_id=STORE_ID).release()
    assert not held.path.exists() and cache.size() <= 1500
    with pytest.raises(
        StorageError,
        match=r"is 1,000 bytes, more than the whole cache limit \(999 bytes\)\. Raise --cache-limit",
    ):
        ShardCache(tmp_path / "tiny", limit=999).fetch(store, files[0], store_id=STORE_ID)


def test_prefetch_downloads_ahead(s3, tmp_path: Path) -> None:
    store, files = upload_shards(s3, 5, size=200_000)
    cache = ShardCache(tmp_path, workers=2)
    stream = cache.stream(store, files, store_id=STORE_ID, ahead=2)
    first = next(stream)
    ahead = [cache.path_for(STORE_ID, f.rel) for f in files[1:3]]
    deadline = time.time() + 20
    while time.time() < deadline and not all(p.exists() for p in ahead):
        time.sleep(0.02)  # the next two download while the first is read
    assert all(p.exists() for p in ahead)
    assert not cache.path_for(STORE_ID, files[4].rel).exists()  # only `ahead` of need
    first.release()
    got = [first.path]
    for shard in stream:
        with shard as path:
            got.append(path)
    assert [hashlib.sha256(p.read_bytes()).hexdigest() for p in got] == [f.sha256 for f in files]
    cache.close()
    assert cache.downloads == 5


def _reader(args: tuple[str, Location, list[RemoteFile]]) -> tuple[int, list[str]]:
    root, store, files = args
    cache = ShardCache(root)
    sums = []
    for f in files:
        with cache.fetch(store, f, store_id=STORE_ID) as path:
            sums.append(hashlib.sha256(path.read_bytes()).hexdigest())
    return cache.downloads, sums


def test_concurrent_readers_in_processes(s3, tmp_path: Path) -> None:
    store, files = upload_shards(s3, 4, size=300_000)
    with mp.get_context("spawn").Pool(3) as pool:
        results = pool.map(_reader, [(str(tmp_path), store, files)] * 3)
    assert all(sums == [f.sha256 for f in files] for _, sums in results)
    assert sum(n for n, _ in results) == len(files)  # each shard downloaded once, in all
    leftovers = [p for p in (tmp_path / "shards").rglob("*.tmp")]
    assert leftovers == []


def _fetch_in_child(cache: ShardCache, store: Location, file: RemoteFile) -> None:
    cache.fetch(store, file, store_id=STORE_ID).release()


def test_a_forked_cache_never_waits_on_the_parents_downloads(s3, tmp_path: Path) -> None:
    store, files = upload_shards(s3, 1)
    cache = ShardCache(tmp_path)
    path = cache.path_for(STORE_ID, files[0].rel)
    cache._pending[path] = Future()  # a prefetch in flight at the fork: no thread of the child
    child = mp.get_context("fork").Process(target=_fetch_in_child, args=(cache, store, files[0]))
    child.start()
    child.join(60)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail("the forked process waited on a download only its parent's thread could end")
    assert child.exitcode == 0 and path.exists()
