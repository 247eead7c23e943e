"""storage/commit.py against moto's S3 server: manifest last, resume, two writers, leases, force."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gptdata.storage import (
    Location,
    RemoteBusyError,
    RemoteNotFound,
    RemoteStoreWriter,
    check_remote_out,
)
from gptdata.storage import commit as remote_commit
from s3fixtures import needs_s3

pytestmark = needs_s3
DATA = Path(__file__).resolve().parents[1] / "data"


def make_local_store(root: Path, shard_tokens: int) -> tuple[Path, bytes, dict[str, str]]:
    """A real store (The Verdict, several shards): its folder, manifest bytes, file -> sha256."""
    from gptdata import prepare

    out = root / f"store-{shard_tokens}"
    if not out.exists():
        paragraphs = (DATA / "the-verdict.txt").read_text(encoding="utf-8").split("\n\n")
        prepare(None, out, texts=paragraphs, shard_tokens=shard_tokens, workers=1,
                split_by="documents", quiet=True)  # fmt: skip
    manifest = (out / "manifest.json").read_bytes()
    files = {}
    for split in json.loads(manifest)["splits"].values():
        for s in split["shards"]:
            files[s["file"]] = s["sha256"]
            files[s["index"]] = s["index_sha256"]
    return out, manifest, files


@pytest.fixture(scope="module")
def local_store(tmp_path_factory) -> tuple[Path, bytes, dict[str, str]]:
    return make_local_store(tmp_path_factory.mktemp("stores"), 1000)


def publish(out: Location, store: tuple[Path, bytes, dict[str, str]], **kw) -> RemoteStoreWriter:
    folder, manifest, files = store
    w = RemoteStoreWriter(out, plan_id="plan-1", **kw).begin()
    for rel, sha in files.items():
        w.stage_file(folder / rel, rel, sha256=sha)
    w.commit(manifest, files)
    return w


def download(out: Location, dest: Path) -> Path:
    for rel in out.files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        out.child(rel).get_file(dest / rel)
    return dest


def test_commit_writes_the_manifest_last_and_the_same_bytes(s3, local_store, tmp_path) -> None:
    from gptdata import TokenStore

    folder, manifest, files = local_store
    assert len(files) >= 8  # several shards, so a reader has a chance to look mid-commit
    out = Location(s3["url"] + "/stores/web", storage_options=s3["options"])
    seen: list[str] = []
    stop = threading.Event()

    def reader() -> None:  # what a reader polling the prefix would see during the commit
        look = Location(out.url, storage_options=s3["options"])
        while not stop.is_set():
            there = look.files()
            if "manifest.json" in there:
                listed = json.loads(look.child("manifest.json").read_bytes())
                missing = [f for f in remote_commit.manifest_listing(listed) if f not in there]
                seen.append("whole" if not missing else f"half: {missing}")
            else:
                seen.append("no store")

    watcher = threading.Thread(target=reader)
    watcher.start()
    try:
        w = publish(out, local_store)
    finally:
        stop.set()
        watcher.join()
    assert seen and all(s in ("whole", "no store") for s in seen), seen
    assert (w.uploaded, w.reused) == (len(files), 0)
    assert set(out.files()) == {"manifest.json", *files}  # nothing else: no marker, no lock
    assert out.with_suffix(".partial").files() == {}
    copy = download(out, tmp_path / "copy")
    for rel in ["manifest.json", *files]:
        assert (copy / rel).read_bytes() == (folder / rel).read_bytes()
    TokenStore.open(copy).verify()


def test_a_commit_cut_short_is_no_store_and_the_rerun_reuses(s3, local_store, monkeypatch) -> None:
    folder, manifest, files = local_store
    out = Location(s3["url"] + "/web", storage_options=s3["options"])
    real_copy, copies = Location.copy_to, []

    def failing_copy(self, dst):  # the writer dies after two shards were put in place
        if len(copies) == 2:
            raise KeyboardInterrupt
        copies.append(dst)
        real_copy(self, dst)

    monkeypatch.setattr(Location, "copy_to", failing_copy)
    w = RemoteStoreWriter(out, plan_id="plan-1").begin()
    for rel, sha in files.items():
        w.stage_file(folder / rel, rel, sha256=sha)
    with pytest.raises(KeyboardInterrupt):
        w.commit(manifest, files)
    w.abort()
    monkeypatch.setattr(Location, "copy_to", real_copy)
    there = out.files()
    assert "manifest.json" not in there and "gptdata-side.json" in there  # some shards, marked
    check_remote_out(out, force=False)  # the leftovers are known to be ours
    again = publish(out, local_store)
    assert (again.reused, again.uploaded) == (len(files), 0)
    assert set(out.files()) == {"manifest.json", *files}


KILLED_WRITER = """
import json, os, signal, sys
from pathlib import Path
from gptdata.storage import Location, RemoteStoreWriter
url, endpoint, folder, files_json, n = sys.argv[1:6]
files = json.loads(Path(files_json).read_text())
w = RemoteStoreWriter(Location(url, storage_options={"endpoint_url": endpoint}), plan_id="plan-1")
w.begin()
for i, (rel, sha) in enumerate(files.items()):
    if i == int(n):
        os.kill(os.getpid(), signal.SIGKILL)  # mid-upload, holding the lock
    w.stage_file(Path(folder) / rel, rel, sha256=sha)
"""


def test_resume_after_a_kill_mid_upload(s3, local_store, tmp_path) -> None:
    folder, manifest, files = local_store
    out = Location(s3["url"] + "/killed", storage_options=s3["options"])
    (tmp_path / "files.json").write_text(json.dumps(files))
    args = [out.url, s3["options"]["endpoint_url"], str(folder), str(tmp_path / "files.json"), "3"]
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, *args], timeout=120)
    assert proc.returncode == -9
    partial = out.with_suffix(".partial")
    assert "gptdata-lock.json" in partial.files() and out.files() == {}
    # Its lock names a process of this host that is gone: taken over at once, not after the lease.
    w = publish(out, local_store)
    assert (w.reused, w.uploaded) == (3, len(files) - 3)
    assert set(out.files()) == {"manifest.json", *files}


def test_two_writers(s3, local_store) -> None:
    out = Location(s3["url"] + "/two", storage_options=s3["options"])
    first = RemoteStoreWriter(out, plan_id="plan-1").begin()
    second = RemoteStoreWriter(out, plan_id="plan-1")
    with pytest.raises(
        RemoteBusyError,
        match=r"another gptdata run \(\w+ on .*\) is writing this output: it holds s3://.*/two.partial/gptdata-lock.json for \d+ s more",
    ):
        second.begin()
    first.abort()
    publish(out, local_store)
    with pytest.raises(FileExistsError, match=r"already holds a gptdata store. Pass force=True"):
        second.begin()


def test_a_stale_lease_is_taken_over(s3, local_store) -> None:
    folder, manifest, files = local_store
    out = Location(s3["url"] + "/stale", storage_options=s3["options"])
    slow = RemoteStoreWriter(out, plan_id="plan-1", lease_s=1.5, heartbeat=False).begin()
    with pytest.raises(RemoteBusyError, match="another gptdata run"):
        RemoteStoreWriter(out, plan_id="plan-1").begin()  # the lease still runs
    for rel, sha in files.items():
        slow.stage_file(folder / rel, rel, sha256=sha)
    expires = json.loads(slow.lock.loc.read_bytes())["expires"]
    time.sleep(max(0.0, expires - time.time()) + 0.1)  # silent past its lease
    fresh = RemoteStoreWriter(out, plan_id="plan-1").begin()  # it has run out
    with pytest.raises(RemoteBusyError, match=rf"this run \({slow.run_id}\) lost the lock"):
        slow.commit(manifest, files)
    assert "manifest.json" not in out.files()
    for rel, sha in files.items():
        assert fresh.stage_file(folder / rel, rel, sha256=sha)  # the slow run's uploads
    fresh.commit(manifest, files)
    assert set(out.files()) == {"manifest.json", *files}


def test_force_replaces_only_a_gptdata_store(s3, local_store, tmp_path) -> None:
    out = Location(s3["url"] + "/forced", storage_options=s3["options"])
    publish(out, local_store)
    with pytest.raises(FileExistsError, match="already holds a gptdata store"):
        RemoteStoreWriter(out, plan_id="p").begin()
    out.child("my-notes.txt").write_bytes(b"mine")
    with pytest.raises(
        FileExistsError,
        match=r"also holds s3://.*/forced/my-notes.txt, which gptdata did not write",
    ):
        RemoteStoreWriter(out, plan_id="p", force=True).begin()
    assert "my-notes.txt" in out.files() and "manifest.json" in out.files()
    out.child("my-notes.txt").delete()
    bigger = make_local_store(tmp_path, 2000)  # fewer, larger shards: other names
    publish(out, bigger, force=True)
    assert set(out.files()) == {"manifest.json", *bigger[2]}  # the old shards are gone
    assert out.child("manifest.json").read_bytes() == bigger[1]

    other = Location(s3["url"] + "/photos", storage_options=s3["options"])
    other.child("cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(
        FileExistsError,
        match=r"photos/ holds 1 object\(s\) but no gptdata manifest; gptdata never deletes them, even with force=True",
    ):
        RemoteStoreWriter(other, plan_id="p", force=True).begin()
    squatter = Location(s3["url"] + "/new.partial/x", storage_options=s3["options"])
    squatter.write_bytes(b"x")
    with pytest.raises(
        FileExistsError, match=r"new.partial/ holds 1 object\(s\) and was not made by gptdata"
    ):
        RemoteStoreWriter(
            Location(s3["url"] + "/new", storage_options=s3["options"]), plan_id="p"
        ).begin()


def test_a_reader_during_a_replacement_never_gets_wrong_bytes(s3, local_store, tmp_path) -> None:
    from gptdata.storage import RemoteFile, ShardCache, StorageError

    out = Location(s3["url"] + "/replaced", storage_options=s3["options"])
    publish(out, local_store)
    old = json.loads(out.child("manifest.json").read_bytes())
    shard = old["splits"]["train"]["shards"][0]
    replacement = make_local_store(tmp_path, 2000)
    publish(out, replacement, force=True)
    cache = ShardCache(tmp_path / "cache")  # a reader that opened the old manifest
    with pytest.raises(
        (StorageError, RemoteNotFound), match="does not match its manifest|does not exist"
    ):
        cache.fetch(out, RemoteFile(shard["file"], shard["sha256"]), store_id=old["store_id"])


def test_a_missing_bucket_is_one_line(s3) -> None:
    out = Location("s3://no-such-bucket-w/web", storage_options=s3["options"])
    with pytest.raises(
        RemoteNotFound,
        match=r"^bucket 'no-such-bucket-w' of s3://no-such-bucket-w/web does not exist",
    ):
        RemoteStoreWriter(out, plan_id="p").begin()


def test_a_staged_object_rewritten_since_its_sidecar_is_staged_again(s3, tmp_path) -> None:
    partial = Location(f"{s3['url']}/web.partial", storage_options=s3["options"])
    local = tmp_path / "00000.train.000.bin"
    local.write_bytes(b"\x01\x02" * 500)
    rel = "shards/00000.train.000.bin"
    assert remote_commit.stage_file(partial, local, rel) is False  # uploaded
    assert remote_commit.stage_file(partial, local, rel) is True  # the same object: reused
    assert partial.child("sums", rel + ".sha256").read_bytes().decode().count(" ") == 2  # + tag
    # Another writer puts different bytes of the same size there: the sidecar no longer holds.
    partial.child(rel).write_bytes(b"\x07\x08" * 500)
    assert remote_commit.staged_sum(partial, rel) is None
    assert remote_commit.stage_file(partial, local, rel) is False  # uploaded again
    assert partial.child(rel).read_bytes() == local.read_bytes()
    # A sidecar from before version tags (sha256 and size only) is still read.
    sha, size, _tag = partial.child("sums", rel + ".sha256").read_bytes().decode().split()
    partial.child("sums", rel + ".sha256").write_bytes(f"{sha} {size}\n".encode())
    assert remote_commit.staged_sum(partial, rel) == (sha, int(size))
