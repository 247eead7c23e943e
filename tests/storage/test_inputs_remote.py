"""prepare and load_tokens reading s3:// inputs, against moto's S3 server: every input kind,
the same plan and the same store as local copies, and one-line errors."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from s3fixtures import needs_s3

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
    with pa.OSFile(str(corpus / "e.arrow"), "wb") as sink, pa.ipc.new_stream(
        sink, table.schema
    ) as writer:
        for batch in table.to_batches(max_chunksize=100):
            writer.write_batch(batch)
    hf = corpus / "wiki"  # a Dataset.save_to_disk folder, written by hand (no datasets import)
    hf.mkdir()
    with pa.OSFile(str(hf / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(
        sink, table.schema
    ) as writer:
        writer.write_table(table.slice(0, 50))
    (hf / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    (corpus / ".hidden").mkdir()
    (corpus / ".hidden" / "x.txt").write_text("never read")
    return corpus


def _upload(s3, local: Path, prefix: str) -> str:
    from gptdata.storage import Location

    root = Location(f"{s3['url']}/{prefix}", storage_options=s3["options"])
    for path in sorted(local.rglob("*")):
        if path.is_file():
            root.child(path.relative_to(local).as_posix()).put_file(path)
    return root.url


def _relative(units, prefix: str) -> list:
    return [[(p.path[len(prefix) :], *p[1:]) for p in u.pieces] for u in units]


def test_the_remote_plan_is_the_local_plan(s3, tmp_path) -> None:
    from gptdata.prepare.sources import plan_units, resolve_inputs

    corpus = _corpus(tmp_path)
    url = _upload(s3, corpus, "corpus")
    local = resolve_inputs([str(corpus)])
    remote = resolve_inputs([url + "/"], storage_options=s3["options"])
    assert [f.path[len(str(corpus)) :] for f in local] == [f.path[len(url) :] for f in remote]
    assert [f.size for f in local] == [f.size for f in remote]
    assert not any(".hidden" in f.path for f in remote)
    for unit_bytes in (1 << 12, 1 << 16, 1 << 20):  # JSONL cuts, row groups, batch runs
        lu = plan_units(local, unit_bytes=unit_bytes)
        ru = plan_units(remote, unit_bytes=unit_bytes, storage_options=s3["options"])
        assert _relative(lu, str(corpus)) == _relative(ru, url)
        kinds = {p.kind for u in ru for p in u.pieces if (p.start, p.kind) != (0, "txt")}
        if unit_bytes == 1 << 12:  # cut inside: JSONL at lines, Parquet and Arrow in pieces
            assert {p.kind for u in ru for p in u.pieces if p.start > 0} >= {"jsonl", "parquet", "arrow"}
    # a unit pickles with its options: a worker process reads it without anything else
    unit = pickle.loads(pickle.dumps(ru[0]))
    assert unit.storage_options == s3["options"]


def test_documents_are_the_local_documents(s3, tmp_path) -> None:
    from gptdata.prepare.sources import plan_units, read_documents, resolve_inputs

    corpus = _corpus(tmp_path)
    url = _upload(s3, corpus, "corpus")
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
    url = _upload(s3, corpus, "corpus")
    shutil.copytree(corpus / "sub", tmp_path / "more")
    _upload(s3, tmp_path / "more", "more")
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
