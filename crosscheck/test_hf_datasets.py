"""gptdata's hf export read by Hugging Face datasets itself (load_from_disk), and back."""

from __future__ import annotations

import pytest

from gptdata import SimpleTokenizer, prepare
from gptdata.formats import export_store

datasets = pytest.importorskip("datasets")

TEXTS = [f"word{i % 11} " * (1 + i % 17) + "stop ." for i in range(400)]


def _documents(store, split):
    sp = store.split(split)
    tokens, ends = sp[:].tolist(), sp.document_ends().tolist()
    starts = [0] + [e + 1 for e in ends[:-1]]
    return [tokens[s:e] for s, e in zip(starts, ends, strict=True)]


def test_load_from_disk(tmp_path):
    tok = SimpleTokenizer.from_text(" ".join(TEXTS))
    store = prepare(
        None, tmp_path / "s", texts=TEXTS, tokenizer=tok, val_fraction=0.25, workers=1, quiet=True
    )
    export_store(store, tmp_path / "hf", format="hf", quiet=True)
    dd = datasets.load_from_disk(str(tmp_path / "hf"))
    assert isinstance(dd, datasets.DatasetDict) and sorted(dd) == ["train", "val"]
    for split in ("train", "val"):
        assert dd[split]["input_ids"] == _documents(store, split)
        torch_rows = dd[split].with_format("torch")
        assert torch_rows[0]["input_ids"].tolist() == _documents(store, split)[0]
    val = datasets.load_from_disk(str(tmp_path / "hf" / "val"))
    assert isinstance(val, datasets.Dataset) and val.num_rows == store.split("val").n_documents


def test_save_to_disk_is_prepare_input(tmp_path):
    ds = datasets.Dataset.from_dict({"text": TEXTS})
    ds.save_to_disk(str(tmp_path / "hf"))
    tok = SimpleTokenizer.from_text(" ".join(TEXTS))
    store = prepare([tmp_path / "hf"], tmp_path / "s", tokenizer=tok, workers=1, quiet=True)
    n = sum(store.split(s).n_documents for s in store.splits)
    assert n == len(TEXTS)
