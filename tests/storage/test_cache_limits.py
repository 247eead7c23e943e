"""The shard cache's limit: sizes as strings, fork safety, back within the limit at rest,
a warning when a pass cannot fit, no lock files left for evicted shards (moto's S3 server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gptdata.cli.options import parse_size as cli_parse_size
from gptdata.storage import ShardCache
from gptdata.storage.sizes import cache_limit_bytes, parse_size
from gptdata.store import TokenStore


def run_or_fail(code: str, args: list[str], *, timeout: float, hang: str) -> str:
    """Run ``code`` in its own process group; past ``timeout``, kill the group (DataLoader
    workers too, not left behind) and fail with ``hang``. Returns its stdout."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(hang)
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.mark.parametrize(
    "text, size",
    [("10MB", 10**7), ("512MiB", 512 << 20), ("4096", 4096), (" 1.5 kb ", 1500), ("2TiB", 2 << 40)],
)
def test_cache_limit_takes_the_clis_sizes(text: str, size: int) -> None:
    assert cache_limit_bytes(text) == parse_size(text) == cli_parse_size(text) == size
    assert ShardCache(Path("/nonexistent"), limit=text).limit == size


@pytest.mark.parametrize(
    "value, match",
    [
        ("ten", r"^cache_limit='ten' is not a size: .* e\.g\. cache_limit='10GB' \(KB, MB"),
        ("10 parsecs", r"^cache_limit='10 parsecs' is not a size"),
        (0, r"^cache_limit=0 must be at least 1 byte, or None for no limit\.$"),
        (1.5, r"^cache_limit=1\.5 is not a size: give bytes as an int .* cache_limit='10GB'"),
        (True, r"^cache_limit=True is not a size"),
    ],
)
def test_a_bad_cache_limit_is_one_line_naming_it(value: object, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        TokenStore.open("s3://bucket/stores/web", cache_limit=value)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"--cache-limit 'ten' is not a size.* --cache-limit 10GB"):
        cli_parse_size("ten")


# A thread of the parent holds shards/.evict.lock (inside evict) when the main thread forks, as
# a prefetch thread did when a num_workers=2 pass forked its workers after a num_workers=0 pass:
# the child's copy of that lock must not outlive the parent's thread, nor a held shard's lock
# outlive its release. In a subprocess with a timeout, so a hang fails the test, not the suite.
FORK_WHILE_EVICTING = """
import os, sys, threading
from pathlib import Path
import gptdata.storage.eviction as eviction
from gptdata.storage import ShardCache
from gptdata.storage.locks import LockFile

root = Path(sys.argv[1])
cache = ShardCache(root, limit=10**9)
shard = root / "shards" / "s" / "a.bin"
shard.parent.mkdir(parents=True)
shard.write_bytes(b"x")
held = LockFile(str(shard) + ".lock")
held.lock(shared=True)  # a shard the parent reads across the fork
entered, go = threading.Event(), threading.Event()
scan = eviction.scan

def slow_scan(directory):
    entered.set()
    go.wait()
    return scan(directory)

eviction.scan = slow_scan
thread = threading.Thread(target=cache.evict)
thread.start()
entered.wait()
eviction.scan = scan
pid = os.fork()
if pid == 0:  # a DataLoader worker: it evicts too, once the parent's evictor is done
    cache.evict()
    os._exit(0)
go.set()
thread.join()
held.close()
cache.evict()  # the parent again: waited forever on the gate the child kept
free = LockFile(str(shard) + ".lock", create=False)
assert free.lock(wait=False), "the shard's lock outlived its release (kept by the child)"
_, status = os.waitpid(pid, 0)
assert status == 0, status
print("ok")
"""


def test_a_fork_while_a_thread_evicts_never_deadlocks(tmp_path: Path) -> None:
    out = run_or_fail(
        FORK_WHILE_EVICTING, [str(tmp_path)], timeout=60,
        hang="deadlock: the forked child kept the parent's .evict.lock (or a shard's lock)",
    )  # fmt: skip
    assert out.strip() == "ok"


# The user trial's scenario, small: a num_workers=0 pass, then a num_workers=2 pass, on one
# TokenStore of many shards with a limit below what a pass needs. In a subprocess with a timeout
# (the deadlock hung it forever); it reports what the cache holds at rest and what it warned.
TWO_PASSES = """
import json, sys, warnings
from pathlib import Path
from gptdata.store import TokenStore
from gptdata.windows.loader import create_dataloader

url, endpoint, limit, cache = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
store = TokenStore.open(url, storage_options={"endpoint_url": endpoint}, cache_limit=limit)
batches = []
with warnings.catch_warnings(record=True) as said:
    warnings.simplefilter("always")
    for nw in [0, 2, 0]:
        kw = dict(batch_size=2, max_length=16, stride=16, seed=1, num_workers=nw)
        batches.append(sum(1 for _ in create_dataloader(store.split("train"), **kw)))
shards = cache / "shards" / str(store.store_id) / "shards"
kept = [p for p in shards.iterdir() if p.suffix in (".bin", ".idx")]
print(json.dumps({
    "batches": batches,
    "size": sum(p.stat().st_size for p in kept),
    "orphan_locks": sorted(p.name for p in shards.glob("*.lock") if not p.with_suffix("").exists()),
    "warnings": [str(w.message) for w in said if "cache_limit" in str(w.message)],
}))
"""


def test_two_passes_under_a_small_limit_end_within_it_and_warn_once(
    s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from test_read_remote_store import texts, upload

    from gptdata.prepare.driver import prepare

    local = tmp_path / "local"
    prepare(None, local, texts=texts(), shard_tokens=200, val_fraction=0, workers=1, quiet=True)
    shards = TokenStore.open(local).split("train").shards
    need = sum(s.tokens * 2 for s in shards)
    limit = max(s.tokens * 2 for s in shards) * 3 + 1  # three shards of the pass's many
    assert len(shards) >= 10
    url = upload(local, s3)
    cache = tmp_path / "cache"
    monkeypatch.setenv("GPTDATA_CACHE_DIR", str(cache))
    args = [url, s3["options"]["endpoint_url"], str(limit), str(cache)]
    out = run_or_fail(
        TWO_PASSES, args, timeout=150,
        hang="deadlock: a num_workers=2 pass after a num_workers=0 pass never ended",
    )  # fmt: skip
    got = json.loads(out)
    assert got["batches"][0] == got["batches"][1] == got["batches"][2] > 0
    assert got["size"] <= limit  # at rest: every file released, so back within the limit
    assert got["orphan_locks"] == []  # an evicted shard's lock file goes with it
    assert got["warnings"] == [
        f"cache_limit={limit:,} bytes is less than the {need:,} bytes of the {len(shards)} "
        f"shards this pass reads from {url} (train): shards are evicted before they are read "
        "again, so each pass downloads them again. Raise --cache-limit (cache_limit= in Python) "
        f"to at least {need:,} bytes."
    ]  # once, though three passes found it so


def test_a_release_brings_the_cache_back_within_its_limit(s3, tmp_path: Path) -> None:
    from test_cache import STORE_ID, upload_shards

    store, files = upload_shards(s3, 2)
    cache = ShardCache(tmp_path, limit=1500)
    first = cache.fetch(store, files[0], store_id=STORE_ID)
    second = cache.fetch(store, files[1], store_id=STORE_ID)
    assert cache.size() == 2000  # both in use: above the limit, by design
    first.release()  # the eviction that had to stop above the limit runs again, now
    assert cache.size() == 1000 and not first.path.exists()
    second.release()  # within the limit already: no scan, nothing goes
    assert second.path.exists()


def test_lock_files_go_with_their_shards(s3, tmp_path: Path) -> None:
    from test_cache import STORE_ID, upload_shards

    from gptdata.storage import RemoteFile, StorageError

    store, files = upload_shards(s3, 3)
    cache = ShardCache(tmp_path, limit=2000)
    with pytest.raises(StorageError, match="does not match its manifest"):
        cache.fetch(store, RemoteFile(files[2].rel, "0" * 64, 1000), store_id=STORE_ID)
    for f in files:  # the third download evicts the first shard
        cache.fetch(store, f, store_id=STORE_ID).release()
    folder = tmp_path / "shards" / STORE_ID / "shards"
    assert sorted(p.name for p in folder.iterdir()) == [
        "00001.train.000.bin",
        "00001.train.000.bin.lock",
        "00002.train.000.bin",
        "00002.train.000.bin.lock",
    ]
    with cache.fetch(store, files[1], store_id=STORE_ID):
        (folder / "gone.bin.lock").touch()  # left by a killed download
        held = folder / "held.bin.lock"
        from gptdata.storage.locks import LockFile

        lock = LockFile(held)
        lock.lock()  # a download in progress elsewhere: its lock stays
        cache.evict()
        assert not (folder / "gone.bin.lock").exists() and held.exists()
        lock.close()
