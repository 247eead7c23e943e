"""The shard cache's limit: sizes as strings, fork safety, back within the limit at rest,
a warning when a pass cannot fit, no lock files left for evicted shards (moto's S3 server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gptdata.cli.options import parse_size as cli_parse_size
from gptdata.storage import ShardCache
from gptdata.storage.sizes import cache_limit_bytes, parse_size
from gptdata.store import TokenStore


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
    import subprocess
    import sys

    try:
        done = subprocess.run(
            [sys.executable, "-c", FORK_WHILE_EVICTING, str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("deadlock: the forked child kept the parent's .evict.lock (or a shard's lock)")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
