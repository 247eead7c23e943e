"""storage/urls.py against moto's S3 server: listing, globs, ranged and streaming reads, errors."""

from __future__ import annotations

import importlib.util
import os
import pickle

import pytest

from gptdata.storage import (
    Location,
    RemoteAccessDenied,
    RemoteNotFound,
    StorageError,
    expand,
    is_remote,
    parse_storage_options,
)
from gptdata.storage.urls import _filesystem, translate
from s3fixtures import needs_s3


def test_is_remote() -> None:
    assert is_remote("s3://b/k") and is_remote("gs://b") and is_remote("az://c/p")
    assert not is_remote("corpus/") and not is_remote("http://x/y") and not is_remote(None)
    assert not is_remote(os.path.join("s3:", "b"))  # what Path("s3://b") has become


def test_parse_storage_options() -> None:
    got = parse_storage_options(
        ["endpoint_url=http://127.0.0.1:9000", "anon=true", "key=0123", "client_kwargs.x=2"]
    )
    assert got == {
        "endpoint_url": "http://127.0.0.1:9000",
        "anon": True,
        "key": "0123",  # a credential stays a string
        "client_kwargs": {"x": 2},
    }
    with pytest.raises(ValueError, match=r"'anon' is not key=value.*--storage-option endpoint"):
        parse_storage_options(["anon"])


def test_location_names_and_pickle() -> None:
    loc = Location("s3://bucket/stores/web/", storage_options={"anon": True})
    assert (loc.url, loc.bucket, loc.key, loc.name) == (
        "s3://bucket/stores/web",
        "bucket",
        "stores/web",
        "web",
    )
    assert loc.child("shards", "a.bin").url == "s3://bucket/stores/web/shards/a.bin"
    assert loc.with_suffix(".partial").url == "s3://bucket/stores/web.partial"
    assert pickle.loads(pickle.dumps(loc)) == loc
    with pytest.raises(ValueError, match="names no bucket"):
        Location("s3://")
    with pytest.raises(ValueError, match="not a URL of object storage"):
        Location("store/")


def test_names_match_the_store_layout() -> None:
    from gptdata.storage import commit
    from gptdata.store import layout

    assert (commit.FORMAT, commit.MANIFEST) == (layout.FORMAT, layout.MANIFEST)
    assert (commit.SIDE_MARKER, commit.SIDE_FORMAT) == (
        layout.SIDE_MARKER,
        layout.SIDE_FORMAT,
    )


def test_other_clouds_need_their_package() -> None:
    if importlib.util.find_spec("fsspec") is None or importlib.util.find_spec("gcsfs"):
        pytest.skip("needs fsspec without gcsfs")
    # Not S3-specific: gs:// goes to gcsfs, which this venv does not have.
    with pytest.raises(StorageError, match=r"gcs:// needs the gcsfs package.*pip install gcsfs"):
        _filesystem("gcs", "gcsfs", {})


def test_translate_is_one_line_for_service_codes() -> None:
    class ClientError(Exception):  # the shape of botocore's, without botocore
        response = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}

    err = translate(ClientError("An error occurred (AccessDenied)\nmore"), "s3://b/k", "write")
    assert isinstance(err, RemoteAccessDenied)
    assert str(err).startswith("access denied to write s3://b/k: ask for permission on bucket 'b'")
    assert "\n" not in str(err)


@needs_s3
def test_listing_and_globs(s3) -> None:
    root = Location(s3["url"], storage_options=s3["options"])
    for key, data in {
        "corpus/a.txt": b"aa",
        "corpus/sub/b.txt": b"bbb",
        "more/x.jsonl.gz": b"x",
    }.items():
        root.child(key).write_bytes(data)
    root.child("corpus.partial/z.txt").write_bytes(b"not below corpus/")
    corpus = root.child("corpus")
    assert corpus.files() == {"a.txt": 2, "sub/b.txt": 3}
    assert [
        (loc.url, n) for loc, n in expand(s3["url"] + "/corpus/", storage_options=s3["options"])
    ] == [
        (s3["url"] + "/corpus/a.txt", 2),
        (s3["url"] + "/corpus/sub/b.txt", 3),
    ]
    hits = expand(s3["url"] + "/*/*.jsonl.gz", storage_options=s3["options"])
    assert [(loc.url, n) for loc, n in hits] == [(s3["url"] + "/more/x.jsonl.gz", 1)]
    assert expand(s3["url"] + "/more/x.jsonl.gz", storage_options=s3["options"])[0][1] == 1
    with pytest.raises(RemoteNotFound, match=r"no object matches s3://.*/\*\.parquet"):
        expand(s3["url"] + "/*.parquet", storage_options=s3["options"])
    assert root.child("nothing").files() == {}
    assert corpus.exists() and not root.child("nothing").exists()


@needs_s3
def test_streaming_reads_with_ranges(s3) -> None:
    data = os.urandom(3 * (1 << 20) + 123)
    loc = Location(s3["url"] + "/big.bin", storage_options=s3["options"])
    loc.write_bytes(data)
    assert loc.size() == len(data)
    assert loc.read_range(1000, 1010) == data[1000:1010]
    chunks = list(loc.iter_chunks(chunk_size=1 << 20))
    assert [len(c) for c in chunks] == [1 << 20] * 3 + [123]  # never more than a chunk at once
    assert b"".join(chunks) == data
    assert b"".join(loc.iter_chunks(chunk_size=1 << 20, start=5)) == data[5:]
    with loc.open(block_size=1 << 16) as fh:
        fh.seek(2 << 20)
        assert fh.read(7) == data[2 << 20 : (2 << 20) + 7]
    with pytest.raises(StorageError, match="is over 1,000 bytes"):
        loc.read_bytes(limit=1000)


@needs_s3
def test_no_such_bucket_and_key_are_one_line(s3) -> None:
    with pytest.raises(
        RemoteNotFound,
        match=r"^bucket 'no-such-bucket-x' of s3://no-such-bucket-x/a does not exist: check its name",
    ) as info:
        Location("s3://no-such-bucket-x/a", storage_options=s3["options"]).read_bytes()
    assert "\n" not in str(info.value) and info.value.__suppress_context__
    with pytest.raises(
        RemoteNotFound, match=r"^s3://.*/missing.bin does not exist: check the path"
    ):
        Location(s3["url"] + "/missing.bin", storage_options=s3["options"]).read_range(0, 4)


@needs_s3
def test_missing_credentials_are_one_line(s3, monkeypatch) -> None:
    import s3fs

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(
        RemoteAccessDenied, match=r"^no credentials to list s3://.*: set AWS_ACCESS_KEY_ID"
    ) as info:
        Location(s3["url"] + "/store", storage_options=s3["options"]).files()
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path) -> None:
    from gptdata.storage import ShardCache, default_cache_dir
    from gptdata.tokenizers.gpt2files import cache_dir  # the rule this one repeats

    monkeypatch.setenv("GPTDATA_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path == cache_dir()
    assert ShardCache().directory == tmp_path / "shards"
    monkeypatch.delenv("GPTDATA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "gptdata" == cache_dir()
    with pytest.raises(ValueError, match=r"cache_limit=0 must be at least 1 byte"):
        ShardCache(limit=0)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"endpoint_ur": "http://127.0.0.1:9"}, r"storage option 'endpoint_ur' is not one that"),
        ({"endpoint_url": "127.0.0.1:9000"}, r"endpoint for s3://.* is not a valid URL .*http://"),
        ({"endpoint_url": "http://127.0.0.1:90x"}, r"endpoint for s3://.* is not a valid URL"),
    ],
)
def test_a_wrong_storage_option_is_named(s3, options, match) -> None:
    with pytest.raises(StorageError, match=match) as info:
        Location(s3["url"] + "/store", storage_options=options).files()
    assert "\n" not in str(info.value) and "TypeError" not in str(info.value)


def test_a_url_with_one_slash_is_named_where_a_store_is_opened(tmp_path) -> None:
    from gptdata.store import StoreError, TokenStore

    with pytest.raises(StoreError, match=r"Did you mean the URL s3://stores/web\? A URL needs two"):
        TokenStore.open("s3:/stores/web")
    with pytest.raises(StoreError) as info:
        TokenStore.open(tmp_path / "nothing")
    assert "Did you mean" not in str(info.value)
