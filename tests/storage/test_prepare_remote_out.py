"""prepare -o s3://...: the same bytes as a local run, resume after a kill, force, errors, Ray."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from gptdata import TokenStore, prepare
from gptdata.prepare.remote_out import scratch_out
from gptdata.storage import Location, RemoteBusyError, RemoteNotFound, RemoteStoreWriter
from s3fixtures import needs_s3

pytestmark = needs_s3
DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    paragraphs = (DATA / "the-verdict.txt").read_text(encoding="utf-8").split("\n\n")
    for i in range(4):
        (folder / f"part{i}.jsonl").write_text(
            "".join(json.dumps({"text": p}) + "\n" for p in paragraphs[i::4])
        )
    return folder


def download(out: Location, dest: Path) -> dict[str, bytes]:
    got = {}
    for rel in out.files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        out.child(rel).get_file(dest / rel)
        got[rel] = (dest / rel).read_bytes()
    return got


def local_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


KW = {"shard_tokens": 1000, "quiet": True, "split_by": "documents"}


def test_remote_out_is_byte_identical_to_local(s3, corpus, tmp_path) -> None:
    prepare([str(corpus)], tmp_path / "local", workers=1, **KW)
    url = s3["url"] + "/stores/web"
    store = prepare([str(corpus)], url, workers=2, storage_options=s3["options"], **KW)
    out = Location(url, storage_options=s3["options"])
    remote = download(out, tmp_path / "copy")
    local = local_bytes(tmp_path / "local")
    assert len(local) >= 6 and remote == local  # every file, the manifest included
    assert out.with_suffix(".partial").files() == {}  # no lock, no staged shards left
    # The returned store is the bucket's, read through the cache; no local copy stays behind.
    assert store.url == url and store.n_tokens > 0
    assert not scratch_out(out).parent.exists() and not scratch_out(out).parent.parent.exists()
    local_train = TokenStore.open(tmp_path / "local").split("train")
    assert np.array_equal(store.split("train")[:], local_train[:])
    with pytest.raises(FileExistsError, match=r"already holds a gptdata store. Pass force=True"):
        prepare([str(corpus)], url, workers=1, storage_options=s3["options"], **KW)
    prepare([str(corpus)], url, workers=1, storage_options=s3["options"], force=True,
            **{**KW, "shard_tokens": 3000})  # fmt: skip
    prepare([str(corpus)], tmp_path / "local3", workers=1, **{**KW, "shard_tokens": 3000})
    assert download(out, tmp_path / "copy3") == local_bytes(tmp_path / "local3")


def test_inputs_and_store_both_in_the_bucket(s3, corpus, tmp_path) -> None:
    opts = s3["options"]
    for f in sorted(corpus.iterdir()):
        Location(f"{s3['url']}/corpus/{f.name}", storage_options=opts).put_file(f)
    url = s3["url"] + "/stores/both"
    prepare([s3["url"] + "/corpus/"], url, workers=2, storage_options=opts, **KW)
    prepare([s3["url"] + "/corpus/"], tmp_path / "local", workers=1, storage_options=opts, **KW)
    out = Location(url, storage_options=opts)
    assert download(out, tmp_path / "copy") == local_bytes(tmp_path / "local")


def test_an_instruction_store_with_masks_and_force(s3, tmp_path) -> None:
    from importlib import resources

    sample = str(resources.files("gptdata") / "data" / "instructions.json")
    opts = {"instructions": True, "quiet": True, "workers": 1, "test_fraction": 0.1}
    url = s3["url"] + "/sft"
    prepare([sample], url, storage_options=s3["options"], **opts)
    prepare([sample], url, storage_options=s3["options"], force=True, **opts)  # masks are ours
    prepare([sample], tmp_path / "local", **opts)
    out = Location(url, storage_options=s3["options"])
    remote = download(out, tmp_path / "copy")
    assert any(k.endswith(".mask") for k in remote) and remote == local_bytes(tmp_path / "local")


def test_refused_outputs_are_one_line(s3, corpus) -> None:
    opts = s3["options"]
    photos = Location(s3["url"] + "/photos", storage_options=opts)
    photos.child("cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(
        FileExistsError, match=r"photos/ holds 1 object\(s\) but no gptdata manifest.*force=True"
    ):
        prepare([str(corpus)], photos.url, force=True, storage_options=opts, **KW)
    assert photos.files() == {"cat.jpg": 2}
    with pytest.raises(RemoteNotFound, match=r"^bucket 'no-such-bucket-p' of s3://no-such"):
        prepare([str(corpus)], "s3://no-such-bucket-p/web", storage_options=opts, **KW)
    busy = Location(s3["url"] + "/busy", storage_options=opts)
    first = RemoteStoreWriter(busy, plan_id="other").begin()
    try:
        with pytest.raises(
            RemoteBusyError, match=r"another gptdata run .*/busy.partial/gptdata-lock.json"
        ):
            prepare([str(corpus)], busy.url, storage_options=opts, **KW)
    finally:
        first.abort()


def test_no_credentials_is_one_line(s3, corpus, monkeypatch) -> None:
    import s3fs

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(OSError, match=r"^no credentials to list s3://.*/web: set AWS_ACCESS_KEY"):
        prepare([str(corpus)], s3["url"] + "/web", storage_options=s3["options"], **KW)


KILLED = """
import os, signal, sys
from gptdata import prepare
from gptdata.prepare import remote_out
from gptdata.storage import Location
remote_out.UPLOAD_THREADS = 1  # one upload at a time: the kill lands after exactly 3
corpus, url, endpoint, split_by = sys.argv[1:5]
real, n = Location.put_file, [0]
def put_file(self, local):
    if n[0] == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # mid-upload, holding the lock object
    n[0] += 1
    real(self, local)
Location.put_file = put_file
prepare([corpus], url, workers=1, storage_options={"endpoint_url": endpoint},
        shard_tokens=1000, quiet=True, split_by=split_by)
"""


def test_a_killed_upload_resumes_with_the_same_bytes(s3, corpus, tmp_path) -> None:
    url = s3["url"] + "/killed"
    out = Location(url, storage_options=s3["options"])
    args = [str(corpus), url, s3["options"]["endpoint_url"], "documents"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", KILLED, *args], env=env, timeout=300)
    assert proc.returncode == -9
    staged = out.with_suffix(".partial").files()
    assert "gptdata-lock.json" in staged and out.files() == {}  # no store: no manifest
    assert sum(k.startswith("sums/") for k in staged) == 3
    uploads = []
    real = Location.put_file

    def counting(self, local):
        uploads.append(self.url)
        real(self, local)

    Location.put_file = counting  # type: ignore[method-assign]
    try:
        prepare([str(corpus)], url, workers=1, storage_options=s3["options"], **KW)
    finally:
        Location.put_file = real  # type: ignore[method-assign]
    prepare([str(corpus)], tmp_path / "local", workers=1, **KW)
    local = local_bytes(tmp_path / "local")
    assert download(out, tmp_path / "copy") == local
    shards = [k for k in local if k != "manifest.json"]
    assert len(uploads) == len(shards) - 3  # the 3 staged before the kill were reused


def test_a_killed_upload_of_a_tail_split_does_not_tokenize_again(
    s3, corpus, tmp_path, monkeypatch
) -> None:
    """split_by="auto" settling on "tail" rewrites the parts at commit time, which drops the
    units' markers: the rerun must still only upload, from the manifest the commit left."""
    from gptdata.prepare import units

    url = s3["url"] + "/killed-tail"
    args = [str(corpus), url, s3["options"]["endpoint_url"], "auto"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", KILLED, *args], env=env, timeout=300)
    assert proc.returncode == -9

    def no_tokenizing(self, unit):
        raise AssertionError(f"unit {unit.index} tokenized again")

    monkeypatch.setattr(units._UnitTask, "__call__", no_tokenizing)
    kw = {**KW, "split_by": "auto"}
    store = prepare([str(corpus)], url, workers=1, storage_options=s3["options"], **kw)
    assert store.manifest["options"]["split_by"] == "tail"  # the case that rewrote the parts
    monkeypatch.undo()
    prepare([str(corpus)], tmp_path / "local", workers=1, **kw)
    out = Location(url, storage_options=s3["options"])
    assert download(out, tmp_path / "copy") == local_bytes(tmp_path / "local")


def test_ray_engine_writes_straight_to_the_bucket(s3, corpus, tmp_path, monkeypatch) -> None:
    pytest.importorskip("ray")
    from gptdata.prepare import ray_engine

    # Ray's socket paths must stay under ~107 bytes: a short folder in the system temp.
    temp = tempfile.mkdtemp(prefix="r")
    real_init = ray_engine.RayExecutor.__init__
    reused: list[bool] = []
    real_stage = RemoteStoreWriter.stage_file

    def init(self, **kw):
        real_init(self, **{**kw, "temp_dir": temp})

    def stage(self, *args, **kw):  # the driver's commit: every shard a task already staged
        reused.append(real_stage(self, *args, **kw))
        return reused[-1]

    monkeypatch.setattr(ray_engine.RayExecutor, "__init__", init)
    monkeypatch.setattr(RemoteStoreWriter, "stage_file", stage)
    url = s3["url"] + "/ray"
    try:
        prepare([str(corpus)], url, engine="ray", workers=2, storage_options=s3["options"], **KW)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    prepare([str(corpus)], tmp_path / "local", workers=1, **KW)
    out = Location(url, storage_options=s3["options"])
    assert download(out, tmp_path / "copy") == local_bytes(tmp_path / "local")
    assert reused and all(reused)  # the driver uploaded no shard: the tasks did


def test_cli_prepare_to_a_bucket_and_its_errors(s3, corpus, capsys) -> None:
    from gptdata.cli.entry import main

    endpoint = "endpoint_url=" + s3["options"]["endpoint_url"]
    url = s3["url"] + "/cli"
    args = ["prepare", str(corpus), "-o", url, "--storage-option", endpoint, "--quiet"]
    assert main([*args, "--shard-tokens", "1000"]) == 0
    assert "manifest.json" in Location(url, storage_options=s3["options"]).files()
    capsys.readouterr()
    assert main(args) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: {url} already holds a gptdata store")
    bad = ["prepare", str(corpus), "-o", "s3://no-such-bucket-c/x", "--storage-option", endpoint]
    assert main(bad) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: bucket 'no-such-bucket-c' of s3://no-such-bucket-c/x does not")
    assert err.count("\n") == 0
