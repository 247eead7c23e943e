"""Hugging Face datasets folders and bare .arrow files as prepare input (pyarrow only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gptdata import prepare
from gptdata.prepare.sources import InputFile, plan_units, read_documents, resolve_inputs

pa = pytest.importorskip("pyarrow")
ipc = pytest.importorskip("pyarrow.ipc")

TEXTS = [f"Document {i}: {'many words here ' * (i % 5)}and the end." for i in range(2500)]


def _jsonl(path, texts):
    with open(path, "w", encoding="utf-8") as fh:
        for t in texts:
            fh.write(json.dumps({"text": t}) + "\n")


def _store_bytes(root):
    manifest = json.loads((root / "manifest.json").read_text())
    shards = {p.name: p.read_bytes() for p in sorted((root / "shards").iterdir())}
    return manifest["splits"], shards


def test_save_to_disk_gives_the_same_store_as_jsonl(tmp_path):
    datasets = pytest.importorskip("datasets")
    _jsonl(tmp_path / "docs.jsonl", TEXTS)
    ds = datasets.Dataset.from_dict({"id": list(range(len(TEXTS))), "text": TEXTS})
    ds.save_to_disk(str(tmp_path / "hf"), num_shards=2)  # two data files, several batches each
    assert len(list((tmp_path / "hf").glob("data-*.arrow"))) == 2
    a = prepare([tmp_path / "docs.jsonl"], tmp_path / "a", workers=1, quiet=True)
    b = prepare([tmp_path / "hf"], tmp_path / "b", workers=1, quiet=True)
    assert _store_bytes(a.root) == _store_bytes(b.root)
    assert [i["path"] for i in b.manifest["inputs"]] == [
        str(tmp_path / "hf" / f"data-0000{k}-of-00002.arrow") for k in (0, 1)
    ]


def test_dataset_dict_reads_every_split(tmp_path):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"content": ["a b", "c"]}),
            "extra": datasets.Dataset.from_dict({"content": ["d e f"]}),
        }
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    files = resolve_inputs([tmp_path / "dd"])
    assert [os.path.basename(os.path.dirname(f.path)) for f in files] == ["extra", "train"]
    docs = [d for u in plan_units(files) for d in read_documents(u, text_field="content")]
    assert docs == ["d e f", "a b", "c"]


def test_dataset_dict_with_a_held_out_split_is_refused(tmp_path):
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"content": ["a b", "c"]}),
            "test": datasets.Dataset.from_dict({"content": ["d e f"]}),
        }
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ValueError, match=r"held-out split\(s\) test: .* Point at .*dd/train"):
        resolve_inputs([tmp_path / "dd"])
    files = resolve_inputs([tmp_path / "dd" / "train"])  # one split, named: read
    docs = [d for u in plan_units(files) for d in read_documents(u, text_field="content")]
    assert docs == ["a b", "c"]


def _write_arrow(path, table, *, batch_rows, file_format=False):
    sink = pa.OSFile(str(path), "wb")
    writer = (ipc.new_file if file_format else ipc.new_stream)(sink, table.schema)
    for batch in table.to_batches(max_chunksize=batch_rows):
        writer.write_batch(batch)
    writer.close()
    sink.close()


@pytest.mark.parametrize("file_format", [False, True])
def test_bare_arrow_in_record_batch_units(tmp_path, file_format):
    texts = [f"row {i}" if i % 7 else None for i in range(95)]
    table = pa.table({"body": pa.array(texts, pa.large_string())})
    path = tmp_path / "part.arrow"
    _write_arrow(path, table, batch_rows=10, file_format=file_format)
    files = resolve_inputs([path])
    assert files[0].kind == "arrow"
    units = plan_units(files, unit_bytes=max(files[0].size // 4, 1))
    assert len(units) >= 3  # cut at record batches
    pieces = [p for u in units for p in u.pieces]
    assert pieces[0].start == 0 and pieces[-1].end == 10
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))
    got = [d for u in units for d in read_documents(u, text_field="body")]
    assert got == [t for t in texts if t]


def test_arrow_errors(tmp_path):
    path = tmp_path / "x.arrow"
    _write_arrow(path, pa.table({"text": [1, 2], "name": ["a", "b"]}), batch_rows=5)
    unit = plan_units([InputFile(str(path), "arrow", path.stat().st_size)])[0]
    with pytest.raises(ValueError, match=r"x.arrow: column 'text' holds int64, not strings"):
        list(read_documents(unit))
    with pytest.raises(ValueError, match=r"no column 'body' \(columns: text, name\)"):
        list(read_documents(unit, text_field="body"))
    bad = tmp_path / "bad.arrow"
    bad.write_bytes(b"not arrow at all")
    with pytest.raises(ValueError, match=r"bad.arrow: not an Arrow IPC stream or file"):
        resolve_inputs([bad]) and plan_units(resolve_inputs([bad]))
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "state.json").write_text('{"_data_files": [{"filename": "gone.arrow"}]}')
    with pytest.raises(ValueError, match=r"lists data file 'gone.arrow', which is missing"):
        resolve_inputs([tmp_path / "hf"])


def test_datasets_is_not_imported(tmp_path):
    path = tmp_path / "t.arrow"
    _write_arrow(path, pa.table({"text": ["hello world", "again"]}), batch_rows=1)
    code = (
        "import sys; sys.modules['datasets'] = None\n"  # any import of datasets would fail
        "from gptdata import prepare, SimpleTokenizer\n"
        f"s = prepare([{str(path)!r}], {str(tmp_path / 's')!r}, workers=1, quiet=True,"
        " val_fraction=0, tokenizer=SimpleTokenizer.from_text('hello world again'))\n"
        "print(s.split('train').n_documents)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"
