"""prepare on s3:// inputs lists them in a process of its own and reads through signed URLs:
the driver and its workers never import the S3 client, and the documents are the local ones."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from s3fixtures import needs_s3

pytestmark = needs_s3
pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")

CLIENT = ("s3fs", "botocore", "aiobotocore", "aiohttp", "fsspec")  # what the lister alone imports


def _corpus(root: Path) -> Path:
    """A JSONL big enough to cut, a .jsonl.gz, a Parquet of 3 row groups and a .txt."""
    root.mkdir(parents=True)
    lines = [json.dumps({"text": f"record {i} " + "word " * (i % 30)}) for i in range(4000)]
    (root / "big.jsonl").write_text("\n".join(lines) + "\n")
    with gzip.open(root / "c.jsonl.gz", "wt") as fh:
        fh.write("".join(json.dumps({"text": f"gz {i}"}) + "\n" for i in range(300)))
    table = pa.table({"text": [f"row {i} of parquet" for i in range(900)]})
    pq.write_table(table, root / "d.parquet", row_group_size=300)
    (root / "e.txt").write_text("Hello, world. " * 50)
    return root


def _upload(s3, local: Path) -> str:
    from gptdata.storage import Location

    root = Location(f"{s3['url']}/corpus", storage_options=s3["options"])
    for path in sorted(local.iterdir()):
        root.child(path.name).put_file(path)
    return root.url


def _python(code: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


READ_UNITS = f"""
import json, pickle, sys
from gptdata.prepare.sources import read_documents
units = pickle.load(open(sys.argv[1], "rb"))
docs = [list(read_documents(u)) for u in units]
print(json.dumps([docs, sorted(m for m in sys.modules if m.split(".")[0] in {CLIENT!r})]))
"""


def test_a_worker_reads_signed_units_without_the_client(s3, tmp_path) -> None:
    from gptdata.prepare.sources import plan_units, read_documents, resolve_inputs

    local = _corpus(tmp_path / "corpus")
    url = _upload(s3, local)
    files = resolve_inputs([url + "/"], storage_options=s3["options"], separate=True)
    assert files and all(f.signed for f in files)
    assert "Signature" not in repr(files) and "signed='...'" in repr(files[0])
    units = plan_units(files, unit_bytes=1 << 14, storage_options=s3["options"])
    assert len(units) > 3
    for unit in units:
        assert unit.signed and set(unit.signed) == {p.path for p in unit.pieces}
        assert "Signature" not in repr(unit)  # a signed URL is a credential: never printed
    expected = [
        list(read_documents(u))
        for u in plan_units(resolve_inputs([str(local)]), unit_bytes=1 << 14)
    ]
    (tmp_path / "units.pkl").write_bytes(pickle.dumps(units))
    docs, imported = json.loads(_python(READ_UNITS, str(tmp_path / "units.pkl")))
    assert docs == expected
    assert imported == []  # the worker never built an S3 client


DRIVER = f"""
import json, sys
from gptdata import prepare
store = prepare(sys.argv[1] + "/", sys.argv[2], workers=int(sys.argv[3]), quiet=True,
                storage_options={{"endpoint_url": sys.argv[4]}})
print(json.dumps([store.n_tokens, sorted(m for m in sys.modules if m.split(".")[0] in {CLIENT!r})]))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_the_driver_never_imports_the_client(s3, tmp_path, workers) -> None:
    from gptdata import prepare

    local = _corpus(tmp_path / "corpus")
    url = _upload(s3, local)
    out = tmp_path / "remote"
    endpoint = s3["options"]["endpoint_url"]
    n_tokens, imported = json.loads(_python(DRIVER, url, str(out), str(workers), endpoint))
    assert imported == []
    here = prepare(local, tmp_path / "local", workers=workers, quiet=True)
    assert n_tokens == here.n_tokens
    for shard in sorted((tmp_path / "local" / "shards").iterdir()):
        assert (out / "shards" / shard.name).read_bytes() == shard.read_bytes()


def test_a_filesystem_that_cannot_sign_is_read_through_fsspec(s3, tmp_path, monkeypatch) -> None:
    import s3fs

    from gptdata.prepare.sources import plan_units, read_documents, resolve_inputs

    def cannot(self, path, expiration=100, **kwargs):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    monkeypatch.setattr(s3fs.S3FileSystem, "sign", cannot)  # as gcsfs with a user login
    local = _corpus(tmp_path / "corpus")
    url = _upload(s3, local)
    files = resolve_inputs([url], storage_options=s3["options"], separate=True)
    assert files and not any(f.signed for f in files)
    units = plan_units(files, unit_bytes=1 << 14, storage_options=s3["options"])
    assert not any(u.signed for u in units)
    expected = plan_units(resolve_inputs([str(local)]), unit_bytes=1 << 14)
    assert [list(read_documents(u)) for u in units] == [list(read_documents(u)) for u in expected]


def _fails() -> None:
    from gptdata.prepare.sources import InputError

    raise InputError("'s3://b/x' holds no .txt objects. Point at the objects themselves.")


def test_the_lister_s_errors_come_back_as_raised() -> None:
    from gptdata.prepare.processes import run_apart
    from gptdata.prepare.sources import InputError

    assert run_apart(sum, [1, 2, 3]) == 6
    with pytest.raises(InputError, match=r"^'s3://b/x' holds no \.txt objects") as info:
        run_apart(_fails)
    assert info.value.__cause__ is None and info.value.__suppress_context__
