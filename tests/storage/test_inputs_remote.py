"""prepare and load_tokens reading s3:// inputs, against moto's S3 server: every input kind,
the same plan and the same store as local copies, and one-line errors."""

from __future__ import annotations

import gzip
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from s3fixtures import needs_s3, upload

pytestmark = needs_s3
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def _corpus(root: Path) -> Path:
    """One of each input kind, with a JSONL big enough to cut and a Parquet of 3 row groups."""
    corpus = root / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text("Hello, world. " * 50)
    (corpus / "sub" / "b.txt").write_text("\ufeffSecond file, with a BOM.\n")
    lines = [json.dumps({"text": f"record {i} " + "word " * (i % 40)}) for i in range(12000)]
    (corpus / "big.jsonl").write_text("\n".join(lines) + "\n")
    with gzip.open(corpus / "c.jsonl.gz", "wt") as fh:
        fh.write("".join(json.dumps({"text": f"gz {i}"}) + "\n" for i in range(300)))
    table = pa.table({"text": [f"row {i} of parquet" for i in range(900)], "id": range(900)})
    pq.write_table(table, corpus / "d.parquet", row_group_size=300)
    with (
        pa.OSFile(str(corpus / "e.arrow"), "wb") as sink,
        pa.ipc.new_stream(sink, table.schema) as writer,
    ):
        for batch in table.to_batches(max_chunksize=100):
            writer.write_batch(batch)
    hf = corpus / "wiki"  # a Dataset.save_to_disk folder, written by hand (no datasets import)
    hf.mkdir()
    with (
        pa.OSFile(str(hf / "data-00000-of-00001.arrow"), "wb") as sink,
        pa.ipc.new_stream(sink, table.schema) as writer,
    ):
        writer.write_table(table.slice(0, 50))
    (hf / "state.json").write_text(
        json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]})
    )
    (corpus / ".hidden").mkdir()
    (corpus / ".hidden" / "x.txt").write_text("never read")
    return corpus


def _relative(units, prefix: str) -> list:
    return [[(p.path[len(prefix) :], *p[1:]) for p in u.pieces] for u in units]


def test_the_remote_plan_is_the_local_plan(s3, tmp_path) -> None:
    from gptdata.prepare.sources import plan_units, resolve_inputs

    corpus = _corpus(tmp_path)
    url = upload(corpus, s3, "corpus")
    local = resolve_inputs([str(corpus)])
    remote = resolve_inputs([url + "/"], storage_options=s3["options"])
    assert [f.path[len(str(corpus)) :] for f in local] == [f.path[len(url) :] for f in remote]
    assert [f.size for f in local] == [f.size for f in remote]
    assert not any(".hidden" in f.path for f in remote)
    for unit_bytes in (1 << 12, 1 << 16, 1 << 20):  # JSONL cuts, row groups, batch runs
        lu = plan_units(local, unit_bytes=unit_bytes)
        ru = plan_units(remote, unit_bytes=unit_bytes, storage_options=s3["options"])
        assert _relative(lu, str(corpus)) == _relative(ru, url)
        if unit_bytes == 1 << 12:  # cut inside: JSONL at lines, Parquet and Arrow in pieces
            assert {p.kind for u in ru for p in u.pieces if p.start > 0} >= {
                "jsonl",
                "parquet",
                "arrow",
            }
    # a unit pickles with its options: a worker process reads it without anything else
    unit = pickle.loads(pickle.dumps(ru[0]))
    assert unit.storage_options == s3["options"]


def test_documents_are_the_local_documents(s3, tmp_path) -> None:
    from gptdata.prepare.sources import plan_units, read_documents, resolve_inputs

    corpus = _corpus(tmp_path)
    url = upload(corpus, s3, "corpus")
    local = plan_units(resolve_inputs([str(corpus)]), unit_bytes=1 << 14)
    remote = plan_units(
        resolve_inputs([url], storage_options=s3["options"]),
        unit_bytes=1 << 14,
        storage_options=s3["options"],
    )
    for lu, ru in zip(local, remote, strict=True):
        assert list(read_documents(lu)) == list(read_documents(ru))


@pytest.mark.parametrize("workers", [1, 2])
def test_prepare_from_s3_equals_prepare_from_local_copies(s3, tmp_path, workers) -> None:
    from gptdata import prepare

    corpus = _corpus(tmp_path)
    url = upload(corpus, s3, "corpus")
    shutil.copytree(corpus / "sub", tmp_path / "more")
    upload(tmp_path / "more", s3, "more")
    here = prepare(
        [corpus, str(tmp_path / "more" / "*.txt")], tmp_path / "local", workers=workers, quiet=True
    )
    there = prepare(
        [url + "/", f"{s3['url']}/more/*.txt"],
        tmp_path / "remote",
        workers=workers,
        quiet=True,
        storage_options=s3["options"],
    )
    a, b = tmp_path / "local", tmp_path / "remote"
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    for rel in files:
        if rel != "manifest.json":
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    ma, mb = (json.loads((d / "manifest.json").read_bytes()) for d in (a, b))
    # The manifest differs only where it names the inputs (and so in its id, a hash of it all).
    assert [i["bytes"] for i in ma.pop("inputs")] == [i["bytes"] for i in mb.pop("inputs")]
    ma.pop("store_id"), mb.pop("store_id")
    assert ma == mb
    assert "testing" not in (b / "manifest.json").read_text()  # no storage option is recorded
    assert here.n_tokens == there.n_tokens
    assert any(rel.startswith("shards/00001.") for rel in files)  # two units: a JSONL cut


def test_load_tokens_reads_urls_and_locations(s3, tmp_path) -> None:
    from gptdata import load_tokens
    from gptdata.storage import Location

    corpus = _corpus(tmp_path)
    url = upload(corpus, s3, "corpus")
    local = load_tokens(corpus / "c.jsonl.gz", keep_text=True)
    by_url = load_tokens(url + "/c.jsonl.gz", storage_options=s3["options"], keep_text=True)
    loc = Location(url + "/c.jsonl.gz", storage_options=s3["options"])
    by_location = load_tokens(loc)  # carries its options: what verbs pass through to here
    assert local.tokens.array.tolist() == by_url.tokens.array.tolist()
    assert by_url.tokens.array.tolist() == by_location.tokens.array.tolist()
    assert local.document_ends.tolist() == by_location.document_ends.tolist()
    assert by_url.texts == local.texts
    both = load_tokens([Path(corpus / "a.txt"), loc])  # local and remote, in one source
    assert len(both.document_ends) == 1 + 300
    from gptdata.inspect.plan import source_splits

    assert source_splits(loc).documents["text"].tolist() == local.document_lengths().tolist()


def test_load_tokens_reads_a_store_on_s3(s3, tmp_path, monkeypatch) -> None:
    # Was refused before issue 22's reading part: a store URL is now that store, cached locally
    # (tests/storage/test_read_remote_store.py covers the rest).
    from gptdata import load_tokens, prepare

    monkeypatch.setenv("GPTDATA_CACHE_DIR", str(tmp_path / "cache"))
    corpus = _corpus(tmp_path)
    prepare([corpus / "a.txt"], tmp_path / "store", quiet=True, workers=1)
    url = upload(tmp_path / "store", s3, "stores/web")
    remote = load_tokens(url, storage_options=s3["options"])
    local = load_tokens(tmp_path / "store")
    assert remote.tokens[:].tolist() == local.tokens[:].tolist()


def test_prepare_cli_with_storage_option(s3, tmp_path, capsys) -> None:
    from gptdata.cli.entry import main

    corpus = _corpus(tmp_path)
    url = upload(corpus, s3, "corpus")
    argv = ["prepare", url + "/*.jsonl.gz", "-o", str(tmp_path / "s"), "--quiet", "--workers", "1"]
    assert main(argv + ["--storage-option", f"endpoint_url={s3['options']['endpoint_url']}"]) == 0
    assert "300 documents" in capsys.readouterr().out.replace(",", "")


def test_plan_inspect_and_eval_read_a_url(s3, tmp_path, capsys) -> None:
    from gptdata.cli.entry import main

    corpus = _corpus(tmp_path)
    url = upload(corpus, s3, "corpus") + "/*.jsonl.gz"
    opt = ["--storage-option", f"endpoint_url={s3['options']['endpoint_url']}"]
    local = str(corpus / "*.jsonl.gz")
    sizes = ["--max-length", "8", "--stride", "8", "--batch-size", "2"]
    assert main(["plan", url, *sizes, *opt]) == 0
    remote_plan = capsys.readouterr().out
    assert main(["plan", local, *sizes]) == 0
    assert remote_plan == capsys.readouterr().out  # the same documents, tokens and windows
    assert main(["inspect", url, "--max-length", "4", *opt]) == 0
    remote_pairs = capsys.readouterr().out
    assert main(["inspect", local, "--max-length", "4"]) == 0
    assert remote_pairs == capsys.readouterr().out
    uni = "unigram:" + str(_store(tmp_path, corpus))
    assert main(["eval", url, "--model", uni, "--max-length", "16", *opt]) == 0
    assert "tokens" in capsys.readouterr().out


def _store(tmp_path, corpus):
    from gptdata import prepare

    if not (tmp_path / "uni").exists():
        prepare([corpus], tmp_path / "uni", quiet=True, workers=1, val_fraction=0.0)
    return tmp_path / "uni"


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gptdata", *args], capture_output=True, text=True, env=env
    )


def test_no_credentials_is_one_line_on_the_command_line(s3, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ACCESS_KEY_ID")}
    env.pop("AWS_SECRET_ACCESS_KEY", None)
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    out = _cli(
        [
            "prepare",
            s3["url"] + "/corpus/",
            "-o",
            str(tmp_path / "s"),
            "--storage-option",
            f"endpoint_url={s3['options']['endpoint_url']}",
        ],
        env,
    )
    assert out.returncode == 1
    assert out.stderr.startswith(f"error: no credentials to list {s3['url']}/corpus")
    assert "AWS_ACCESS_KEY_ID" in out.stderr and "aws configure" in out.stderr
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("rel", "match"),
    [
        ("missing.txt", r"^s3://.*/missing.txt does not exist: check the path"),
        ("nothing/*.jsonl", r"^no object matches s3://.*/nothing/\*\.jsonl: check the pattern"),
    ],
)
def test_missing_objects_are_one_line(s3, tmp_path, rel, match) -> None:
    from gptdata import prepare
    from gptdata.storage import RemoteNotFound

    with pytest.raises(RemoteNotFound, match=match) as info:
        prepare(f"{s3['url']}/{rel}", tmp_path / "s", quiet=True, storage_options=s3["options"])
    assert "\n" not in str(info.value)


def test_no_such_bucket_is_one_line(s3, tmp_path, capsys) -> None:
    from gptdata.cli.entry import main

    code = main(
        [
            "prepare",
            "s3://no-such-bucket-gptdata/corpus/",
            "-o",
            str(tmp_path / "s"),
            "--storage-option",
            f"endpoint_url={s3['options']['endpoint_url']}",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(
        "error: bucket 'no-such-bucket-gptdata' of s3://no-such-bucket-gptdata/corpus does not "
        "exist: check its name, or pass --storage-option endpoint_url=..."
    )
    assert err.count("\n") == 1


def _auth(endpoint: str, count: str) -> None:
    """moto's switch: IAM is enforced after ``count`` more requests ("inf": never)."""
    import urllib.request

    req = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=count.encode(),
        headers={"Content-Type": "text/plain"},  # not a form: moto reads the raw body
    )
    urllib.request.urlopen(req, timeout=10).read()


def test_access_denied_and_refused_keys_are_one_line(s3, tmp_path, monkeypatch) -> None:
    import boto3
    import s3fs

    from gptdata import prepare
    from gptdata.storage import RemoteAccessDenied

    endpoint = s3["options"]["endpoint_url"]
    Path(tmp_path / "a.txt").write_text("text")
    upload(tmp_path, s3, "corpus")
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
    user = f"nobody-{s3['bucket']}"
    iam.create_user(UserName=user)  # no policy: every S3 call is denied
    key = iam.create_access_key(UserName=user)["AccessKey"]
    _auth(endpoint, "0")
    try:
        s3fs.S3FileSystem.clear_instance_cache()
        with pytest.raises(RemoteAccessDenied, match=r"^the credentials were refused for s3://"):
            prepare(
                s3["url"] + "/corpus/", tmp_path / "s", quiet=True, storage_options=s3["options"]
            )
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
        s3fs.S3FileSystem.clear_instance_cache()
        with pytest.raises(
            RemoteAccessDenied,
            match=rf"^access denied to list {s3['url']}/corpus: ask for permission on bucket",
        ) as info:
            prepare(
                s3["url"] + "/corpus/", tmp_path / "s", quiet=True, storage_options=s3["options"]
            )
        assert "\n" not in str(info.value)
    finally:
        _auth(endpoint, "inf")
        s3fs.S3FileSystem.clear_instance_cache()


def test_out_on_s3_is_never_a_local_path(s3, tmp_path, monkeypatch) -> None:
    from gptdata import prepare

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("one document")
    prepare([tmp_path / "a.txt"], s3["url"] + "/stores/web", quiet=True, workers=1,
            storage_options=s3["options"])  # fmt: skip
    assert not Path("s3:").exists()  # written to the bucket (tests/storage/test_prepare_remote_out)


def test_a_prefix_skips_stores_and_reads_datasetdicts_by_the_local_rules(s3, tmp_path) -> None:
    from gptdata import prepare
    from gptdata.prepare.hf_input import HFInputError
    from gptdata.prepare.sources import resolve_inputs

    corpus = _corpus(tmp_path)
    prepare([corpus / "a.txt"], corpus / "store", quiet=True, workers=1)  # a store inside
    (corpus / "store" / "notes.txt").write_text("inside a store: never read")
    dd = corpus / "dd"  # a DatasetDict of one split, then with a held-out one
    shutil.copytree(corpus / "wiki", dd / "train")
    (dd / "dataset_dict.json").write_text(json.dumps({"splits": ["train"]}))
    url = upload(corpus, s3, "corpus")
    local = [f.path[len(str(corpus)) :] for f in resolve_inputs([corpus])]
    remote = resolve_inputs([url], storage_options=s3["options"])
    assert local == [f.path[len(url) :] for f in remote]
    assert "/dd/train/data-00000-of-00001.arrow" in local and not any("store" in p for p in local)
    with pytest.raises(ValueError, match=r"is a gptdata store .* not a corpus"):
        resolve_inputs([url + "/store/"], storage_options=s3["options"])
    with pytest.raises(ValueError, match=r"lies inside a gptdata store"):
        resolve_inputs([url + "/store/notes.txt"], storage_options=s3["options"])
    opts = s3["options"]
    upload(dd / "train", s3, "corpus/dd/test")
    from gptdata.storage import Location

    Location(url + "/dd/dataset_dict.json", storage_options=opts).write_bytes(
        json.dumps({"splits": ["train", "test"]}).encode()
    )
    with pytest.raises(
        HFInputError, match=r"held-out split\(s\) test: .* Point at s3://.*/dd/train"
    ):
        resolve_inputs([url + "/dd/"], storage_options=opts)
    Location(url + "/dd/train/state.json", storage_options=opts).write_bytes(
        json.dumps({"_data_files": [{"filename": "../../a.txt"}]}).encode()
    )
    with pytest.raises(HFInputError, match=r"resolves outside s3://.*/dd/train"):
        resolve_inputs([url + "/dd/train"], storage_options=opts)


@pytest.mark.parametrize("legacy", [False, True])
def test_arrow_ranges_find_each_batch_without_reading_bodies(tmp_path, legacy) -> None:
    from gptdata.prepare import arrow_ranges

    table = pa.table({"text": [f"row {i}" for i in range(700)]})
    path = tmp_path / "s.arrow"
    options = pa.ipc.IpcWriteOptions(use_legacy_format=legacy)
    with (
        pa.OSFile(str(path), "wb") as sink,
        pa.ipc.new_stream(sink, table.schema, options=options) as writer,
    ):
        for batch in table.to_batches(max_chunksize=100):
            writer.write_batch(batch)
    with open(path, "rb") as fh:
        layout = arrow_ranges.record_batches(fh)
        assert layout is not None and len(layout[1]) == 7
        got = pa.ipc.open_stream(arrow_ranges.piece_stream(fh, layout, 2, 5)).read_all()
    assert got.column("text").to_pylist() == [f"row {i}" for i in range(200, 500)]
    coded = pa.table({"text": pa.array(["a", "b", "a"]).dictionary_encode()})
    with (
        pa.OSFile(str(tmp_path / "d.arrow"), "wb") as sink,
        pa.ipc.new_stream(sink, coded.schema) as writer,
    ):
        writer.write_table(coded)
    with open(tmp_path / "d.arrow", "rb") as fh:
        assert arrow_ranges.record_batches(fh) is None  # dictionaries: read sequentially
    with pytest.raises(arrow_ranges.NotAStream):
        arrow_ranges.record_batches(io.BytesIO(b"\xff\xff\xff\xff\x10\x00\x00\x00" + b"\x00" * 8))


def test_a_url_through_path_is_named(tmp_path) -> None:
    from gptdata import load_tokens, prepare

    with pytest.raises(
        FileNotFoundError, match=r"the URL s3://b/notes.jsonl\? .*Path\(\) drops one"
    ):
        load_tokens(Path("s3://b/notes.jsonl"))
    with pytest.raises(ValueError, match=r"the URL s3://b/corpus\? A URL needs two slashes"):
        prepare([Path("s3://b/corpus/")], tmp_path / "s", quiet=True)


def test_a_glob_skips_hidden_names_as_a_local_glob_does(s3, tmp_path) -> None:
    import glob as localglob

    from gptdata.prepare.sources import resolve_inputs

    local = _corpus(tmp_path)
    (local / ".d").mkdir()
    (local / ".d" / "y.txt").write_text("named by the pattern")
    url = upload(local, s3, "corpus")
    for pattern in ("**/*.txt", "*/*.txt", ".d/*.txt", ".*/*.txt"):
        want = sorted(
            os.path.relpath(h, local) for h in localglob.glob(f"{local}/{pattern}", recursive=True)
        )
        files = resolve_inputs([f"{url}/{pattern}"], storage_options=s3["options"])
        got = sorted(f.path[len(url) + 1 :] for f in files)
        assert got == want, pattern
