"""`inspect` and `plan` read every input `prepare` reads, with the same documents."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from gptdata import TokenStore, prepare
from gptdata.cli.entry import main
from gptdata.inspect.plan import source_splits

DOCS = {
    "a.txt": ["The first file is one document,\n\nblank lines and all."],
    "b.jsonl": ["Line one of b.", "Line two of b, a little longer than one.", "Three."],
    "c.jsonl.gz": ["Gzipped first.", "Gzipped second."],
    "d.parquet": ["Parquet row zero.", "Parquet row one, the last document."],
}


def write_inputs(folder: Path, field: str = "text") -> Path:
    folder.mkdir()
    for name, texts in DOCS.items():
        path = folder / name
        if name.endswith(".txt"):
            path.write_text(texts[0])
        elif name.endswith(".jsonl"):
            path.write_text(
                "".join(json.dumps({field: t, "id": i}) + "\n" for i, t in enumerate(texts))
            )
        elif name.endswith(".jsonl.gz"):
            with gzip.open(path, "wt") as fh:
                fh.writelines(json.dumps({field: t}) + "\n" for t in texts)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({field: texts}), path)
    return folder


@pytest.fixture
def inputs(tmp_path) -> Path:
    return write_inputs(tmp_path / "in")


def reference(path: Path, tmp_path: Path, **kw) -> tuple[np.ndarray, np.ndarray]:
    """What prepare makes of the same input: the train split's IDs and document lengths."""
    store = prepare(
        [path], tmp_path / f"store-{path.name}", val_fraction=0, workers=1, quiet=True, **kw
    )
    split = store.split("train")
    return split[:], split.document_lengths()


@pytest.mark.parametrize("name", [*DOCS, "."])
def test_same_tokens_and_documents_as_prepare(inputs, tmp_path, name) -> None:
    path = inputs if name == "." else inputs / name
    loaded = source_splits(path)
    ids, lengths = reference(path, tmp_path)
    assert list(loaded.splits) == ["text"]
    assert loaded.splits["text"].tolist() == ids.tolist()
    assert loaded.documents["text"].tolist() == lengths.tolist()
    expected_docs = sum(len(v) for v in DOCS.values()) if name == "." else len(DOCS[name])
    assert len(loaded.documents["text"]) == expected_docs


def test_plan_counts_jsonl_lines_as_documents(capsys, inputs) -> None:
    code = main(
        ["plan", str(inputs / "b.jsonl"), "--max-length", "2", "--stride", "2", "--batch-size", "1"]
    )
    out = capsys.readouterr().out
    n = len(source_splits(inputs / "b.jsonl").splits["text"])
    assert code == 0 and f"split text: {n:,} tokens, 3 documents" in out
    assert '{"text"' not in out  # the JSON syntax is not read as text


def test_plan_of_a_folder_equals_plan_of_its_store(capsys, inputs, tmp_path) -> None:
    store = prepare([inputs], tmp_path / "s", val_fraction=0, workers=1, quiet=True)
    args = ["--max-length", "4", "--stride", "2", "--batch-size", "2"]
    assert main(["plan", str(inputs), *args]) == 0
    from_folder = capsys.readouterr().out
    assert main(["plan", str(store.root), *args]) == 0
    from_store = capsys.readouterr().out
    assert from_folder.replace("split text:", "split train:") == from_store
    assert f"{store.split('train').n_documents} documents" in from_folder


def test_inspect_reads_jsonl_text_not_json(capsys, inputs) -> None:
    assert main(["inspect", str(inputs / "b.jsonl"), "--max-length", "3"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "Line one of ---->  b"


def test_glob_and_text_field(capsys, tmp_path) -> None:
    folder = write_inputs(tmp_path / "content", field="content")
    assert (
        main(
            [
                "plan",
                str(folder / "*.jsonl*"),
                "--text-field",
                "content",
                *"--max-length 2 --stride 2 --batch-size 1".split(),
            ]
        )
        == 0
    )
    assert ", 5 documents" in capsys.readouterr().out
    code = main(["inspect", str(folder / "b.jsonl")])
    assert code == 1 and capsys.readouterr().err == (
        f"error: {folder / 'b.jsonl'}:1: no field 'text' in this record. Name the text field "
        "with --text-field.\n"
    )


def test_python_sources(inputs, tmp_path) -> None:
    store = prepare([inputs], tmp_path / "s", val_fraction=0, workers=1, quiet=True)
    assert list(source_splits(store).splits) == ["train"]
    assert list(source_splits(TokenStore.open(store.root).split("train")).splits) == ["train"]
    assert source_splits("Hello, world").splits["text"].tolist() == [15496, 11, 995]
    assert source_splits([1, 2, 3]).documents["ids"].tolist() == [3]
    with pytest.raises(ValueError, match=r"is a str that names an existing file.*Pass Path\("):
        source_splits(str(inputs / "a.txt"))


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"batch_size": 0}, r"batch_size=0 must be an integer >= 1\."),
        ({"world_size": 0}, r"world_size=0 must be an integer >= 1\."),
        ({"emb_dims": (256, -5)}, r"emb_dims=\(256, -5\) must hold one or more integers >= 1"),
        ({"emb_dims": ()}, r"emb_dims=\(\) must hold one or more integers >= 1"),
    ],
)
def test_plan_report_checks_its_numbers(kw, message) -> None:
    from gptdata.inspect.plan import plan_report

    loaded = source_splits(list(range(100)))
    args = {"max_length": 4, "stride": 4, "batch_size": 2, **kw}
    with pytest.raises(ValueError, match=message):
        plan_report(loaded, **args)
