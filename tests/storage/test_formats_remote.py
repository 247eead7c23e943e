"""export and import to and from S3 (moto's server): issue 22.

Every remote run must equal the local run byte for byte: the export's objects equal the local
export's files, and a store imported from a bucket holds the same shards as one imported from
the local folder. Errors are one line naming the URL and the fix.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from gptdata.cli.entry import main
from gptdata.formats._common import MARKER
from gptdata.prepare.driver import prepare
from gptdata.storage import Location
from s3fixtures import upload

WORDS = "the a cat sat on mat dog ran far away under bright blue sky while birds sang".split()
FORMATS = ("nanogpt", "llmc", "megatron")


def texts(n: int = 60, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))) for _ in range(n)]


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("local") / "store"
    prepare(None, root, texts=texts(), shard_tokens=700, val_fraction=0.2, workers=1, quiet=True)
    return root


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GPTDATA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def download(url: str, s3: dict[str, Any]) -> dict[str, bytes]:
    loc = Location(url, storage_options=s3["options"])
    return {rel: loc.child(rel).read_bytes() for rel in loc.files()}


def local_files(root: Path, *, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    return {
        f.relative_to(root).as_posix(): f.read_bytes()
        for f in sorted(root.rglob("*"))
        if f.is_file() and f.relative_to(root).as_posix() not in skip
    }


def opt(s3: dict[str, Any]) -> list[str]:
    return ["--storage-option", "endpoint_url=" + s3["options"]["endpoint_url"]]


def shards(store: Path) -> dict[str, bytes]:
    return {k: v for k, v in local_files(store).items() if k.startswith("shards/")}


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_to_and_from_a_bucket_equals_the_local_export(
    fmt: str, s3: dict[str, Any], local_store: Path, tmp_path: Path
) -> None:
    assert (
        main(["export", str(local_store), "--format", fmt, "-o", str(tmp_path / "here"), "--quiet"])
        == 0
    )
    store_url = upload(local_store, s3, "stores/web")
    out = f"{s3['url']}/exports/web"
    args = ["export", store_url, "--format", fmt, "-o", out, "--quiet", "--cache-limit", "1MB"]
    assert main([*args, *opt(s3)]) == 0
    there, here = download(out, s3), local_files(tmp_path / "here")
    assert set(there) == set(here)
    # The listing names the store it came from (the URL here), everything else is equal.
    assert {k: v for k, v in there.items() if k != MARKER} == {
        k: v for k, v in here.items() if k != MARKER
    }
    # A store URL read to a local folder: the same bytes too.
    assert main([*args[:4], "-o", str(tmp_path / "down"), "--quiet", *opt(s3)]) == 0
    assert local_files(tmp_path / "down", skip=(MARKER,)) == local_files(
        tmp_path / "here", skip=(MARKER,)
    )

    # import from the bucket equals import from the local folder, shard for shard.
    assert main(["import", fmt, str(tmp_path / "here"), "-o", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["import", fmt, out, "-o", str(tmp_path / "b"), "--quiet", *opt(s3)]) == 0
    assert shards(tmp_path / "a") == shards(tmp_path / "b") != {}


def test_import_of_one_remote_file_and_a_megatron_prefix(
    s3: dict[str, Any], local_store: Path, tmp_path: Path
) -> None:
    for fmt in ("nanogpt", "megatron"):
        here = tmp_path / fmt
        assert main(["export", str(local_store), "--format", fmt, "-o", str(here), "--quiet"]) == 0
        url = upload(here, s3, f"x/{fmt}")
        name = "train.bin" if fmt == "nanogpt" else "train_text_document"
        a, b = tmp_path / f"{fmt}-a", tmp_path / f"{fmt}-b"
        assert main(["import", fmt, str(here / name), "-o", str(a), "--quiet"]) == 0
        assert main(["import", fmt, f"{url}/{name}", "-o", str(b), "--quiet", *opt(s3)]) == 0
        assert shards(a) == shards(b) != {}


def test_export_force_replaces_only_an_export(
    s3: dict[str, Any], local_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = f"{s3['url']}/exports/web"
    args = ["export", str(local_store), "--format", "llmc", "-o", out, "--quiet", *opt(s3)]
    assert main([*args, "--shards", "3"]) == 0
    first = download(out, s3)
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: {out} already holds a gptdata export")
    assert main([*args, "--force"]) == 0  # one shard per split now: the old extra shards go
    second = download(out, s3)
    assert set(second) < set(first)
    # An object gptdata did not write: refused even with --force, nothing deleted.
    Location(out, storage_options=s3["options"]).child("notes.txt").write_bytes(b"mine")
    assert main([*args, "--force"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{out}/notes.txt" in err
    assert set(download(out, s3)) == set(second) | {"notes.txt"}
    # A prefix that is not an export at all.
    other = f"{s3['url']}/data"
    Location(other, storage_options=s3["options"]).child("a.bin").write_bytes(b"x")
    assert main([*args[:5], other, "--quiet", "--force", *opt(s3)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{other}/ holds 1 object(s) but no complete {MARKER}" in err


def test_a_half_uploaded_export_is_not_an_export(
    s3: dict[str, Any], local_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gptdata.formats.export import export_store as export_remote

    out = f"{s3['url']}/exports/cut"
    real, n = Location.put_file, [0]

    def put_file(self: Location, local: Any) -> None:
        if n[0] == 1:
            raise KeyboardInterrupt  # killed after the first object
        n[0] += 1
        real(self, local)

    monkeypatch.setattr(Location, "put_file", put_file)
    with pytest.raises(KeyboardInterrupt):
        export_remote(local_store, out, storage_options=s3["options"], format="nanogpt")
    monkeypatch.setattr(Location, "put_file", real)
    assert MARKER not in download(out, s3)  # the listing goes last: no export there
    # The same command again takes the half-uploaded prefix over (no --force needed: no export
    # was there), and the result equals an export that was never cut.
    export_remote(local_store, out, storage_options=s3["options"], format="nanogpt", quiet=True)
    whole = f"{s3['url']}/exports/whole"
    export_remote(local_store, whole, storage_options=s3["options"], format="nanogpt", quiet=True)
    assert set(download(out, s3)) == set(download(whole, s3))
    assert download(out + ".exporting", s3) == {}  # the side prefix is gone after the commit
    # Another object that appeared meanwhile: the prefix is no longer only ours.
    n[0] = 0
    monkeypatch.setattr(Location, "put_file", put_file)
    with pytest.raises(KeyboardInterrupt):
        export_remote(local_store, out, storage_options=s3["options"], format="nanogpt", force=True)
    monkeypatch.setattr(Location, "put_file", real)
    Location(out, storage_options=s3["options"]).child("x.txt").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match=f"no complete {MARKER}"):
        export_remote(local_store, out, storage_options=s3["options"], format="nanogpt", force=True)


def test_one_line_errors(
    s3: dict[str, Any],
    local_store: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = "s3://no-such-bucket-x/exports/web"
    assert main(["export", str(local_store), "--format", "nanogpt", "-o", bad, *opt(s3)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: bucket 'no-such-bucket-x' of {bad}")
    assert main(["import", "nanogpt", bad, "-o", str(tmp_path / "s"), *opt(s3)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: bucket 'no-such-bucket-x' of {bad}")
    missing = f"{s3['url']}/nothing/train.bin"
    assert main(["import", "nanogpt", missing, "-o", str(tmp_path / "s"), *opt(s3)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and missing in err
    import s3fs

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    s3fs.S3FileSystem.clear_instance_cache()
    out = f"{s3['url']}/exports/web"
    assert main(["export", str(local_store), "--format", "nanogpt", "-o", out, *opt(s3)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: no credentials to list {out}")


def test_python_api_takes_urls_and_the_manifest_names_them(
    s3: dict[str, Any], local_store: Path, tmp_path: Path
) -> None:
    import json

    from gptdata.formats.export import export_store
    from gptdata.formats.importer import import_store

    out = f"{s3['url']}/api/web"
    export_store(local_store, out, format="nanogpt", storage_options=s3["options"], quiet=True)
    export_store(local_store, tmp_path / "here", format="nanogpt", quiet=True)
    assert download(out, s3)["train.bin"] == (tmp_path / "here" / "train.bin").read_bytes()
    store = import_store("nanogpt", out, tmp_path / "s", storage_options=s3["options"], quiet=True)
    assert store.split("train").n_documents > 0
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    paths = [i["path"] for i in manifest["inputs"]]
    assert paths and all(p.startswith(out + "/") for p in paths), paths


def test_hf_export_to_a_bucket_loads_as_the_local_one(
    s3: dict[str, Any], local_store: Path, tmp_path: Path
) -> None:
    datasets = pytest.importorskip("datasets")
    out = f"{s3['url']}/exports/hf"
    assert main(["export", str(local_store), "--format", "hf", "-o", out, "--quiet", *opt(s3)]) == 0
    assert main(["export", str(local_store), "--format", "hf", "-o", str(tmp_path / "here"),
                 "--quiet"]) == 0  # fmt: skip
    there = tmp_path / "there"
    for rel, data in download(out, s3).items():
        (there / rel).parent.mkdir(parents=True, exist_ok=True)
        (there / rel).write_bytes(data)
    assert (there / MARKER).is_file()  # the listing went up last, with the rest
    got, want = datasets.load_from_disk(str(there)), datasets.load_from_disk(str(tmp_path / "here"))
    assert sorted(got) == sorted(want) == ["train", "val"]
    for split in want:
        assert got[split]["input_ids"] == want[split]["input_ids"] != []


def test_import_says_the_assumed_tokenizer_with_the_url(
    s3: dict[str, Any], local_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    here = tmp_path / "nano"
    assert (
        main(["export", str(local_store), "--format", "nanogpt", "-o", str(here), "--quiet"]) == 0
    )
    for f in here.iterdir():  # a bare nanoGPT file: nothing beside it records a tokenizer
        if f.name != "train.bin":
            f.unlink()
    url = upload(here, s3, "bare")
    capsys.readouterr()
    assert main(["import", "nanogpt", f"{url}/train.bin", "-o", str(tmp_path / "s"), *opt(s3)]) == 0
    err = capsys.readouterr().err
    assert f"tokenizer: gpt2 (assumed: nothing in {url}/train.bin records a tokenizer" in err
    assert str(tmp_path) not in err.split("tokenizer:")[1]  # never the scratch copy's path


def test_import_into_a_bucket_equals_the_local_import(
    s3: dict[str, Any], local_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    here = tmp_path / "ex"
    assert main(["export", str(local_store), "--format", "llmc", "-o", str(here), "--quiet"]) == 0
    assert main(["import", "llmc", str(here), "-o", str(tmp_path / "a"), "--quiet"]) == 0
    url = f"{s3['url']}/stores/imported"
    capsys.readouterr()
    assert main(["import", "llmc", str(here), "-o", url, *opt(s3)]) == 0
    captured = capsys.readouterr()
    assert f"into {url}:" in captured.err and captured.out.startswith(f"store      {url}")
    there = download(url, s3)
    assert {k: v for k, v in there.items() if k.startswith("shards/")} == shards(tmp_path / "a")
    assert (
        json.loads(there["manifest.json"])["splits"]
        == json.loads((tmp_path / "a" / "manifest.json").read_text())["splits"]
    )
    partial = Location(url + ".partial", storage_options=s3["options"])
    assert partial.files() == {}  # nothing staged or locked is left
    # A second import is refused as prepare refuses (one line), --force replaces the store.
    assert main(["import", "llmc", str(here), "-o", url, "--quiet", *opt(s3)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {url} already holds a gptdata store") and "\n" not in err
    assert main(["import", "llmc", str(here), "-o", url, "--quiet", "--force", *opt(s3)]) == 0


def test_an_import_error_names_the_url_not_the_scratch_copy(
    s3: dict[str, Any], local_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    here = tmp_path / "ex"
    assert main(["export", str(local_store), "--format", "llmc", "-o", str(here), "--quiet"]) == 0
    url = upload(here, s3, "exports/llmc")
    capsys.readouterr()
    assert main(["import", "megatron", url, "-o", str(tmp_path / "s"), *opt(s3)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {url}") and "gptdata-import" not in err and "\n" not in err
