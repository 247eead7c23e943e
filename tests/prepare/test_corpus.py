"""load_tokens: every kind of source -> the same tokens prepare would store, never a file name."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from gptdata import SimpleTokenizer, TokenStore, get_tokenizer, load_tokens, prepare
from gptdata.prepare.corpus import ArrayTokens, Corpus
from reference import joined

TEXTS = ["The cat sat on the mat.", "A second document, with commas.", "Third one: 12345."]


@pytest.fixture(scope="module")
def gpt2():
    return get_tokenizer("gpt2")


def test_txt_file_is_one_document(tmp_path, gpt2) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(TEXTS[0])
    corpus = load_tokens(path)
    assert corpus.tokens.gather(np.array([0]), len(corpus))[0].tolist() == gpt2.encode(TEXTS[0])
    assert corpus.document_ends.tolist() == [len(corpus)]
    assert corpus.tokens.array.dtype == np.uint16  # compact, as in a store
    assert corpus.tokenizer.name == "gpt2"
    assert "notes.txt" in corpus.description


@pytest.mark.parametrize("kind", ["jsonl", "jsonl.gz", "parquet", "folder", "list"])
def test_files_match_prepare(tmp_path, gpt2, kind) -> None:
    if kind == "jsonl":
        src: object = tmp_path / "d.jsonl"
        src.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    elif kind == "jsonl.gz":
        src = tmp_path / "d.jsonl.gz"
        with gzip.open(src, "wt") as fh:
            fh.write("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    elif kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        src = tmp_path / "d.parquet"
        pq.write_table(pa.table({"text": TEXTS}), src)
    else:
        folder = tmp_path / "docs"
        folder.mkdir()
        for i, t in enumerate(TEXTS):
            (folder / f"{i}.txt").write_text(t)
        src = folder if kind == "folder" else sorted(folder.iterdir())
    corpus = load_tokens(src)
    assert corpus.tokens.array.tolist() == joined(gpt2, TEXTS)
    store = prepare(src, tmp_path / "s", val_fraction=0.0, workers=1, quiet=True)
    train = store.split("train")
    assert corpus.tokens.array.tolist() == train[:].tolist()
    assert corpus.document_ends.tolist() == train.document_ends().tolist()


def test_store_path_store_and_split(tmp_path) -> None:
    store = prepare(None, tmp_path / "s", texts=TEXTS * 20, val_fraction=0.2, quiet=True)
    train = store.split("train")
    for source in (tmp_path / "s", store, train):
        corpus = load_tokens(source)
        assert corpus.tokens.fingerprint == train.fingerprint
        assert corpus.document_ends.tolist() == train.document_ends().tolist()
        assert corpus.tokenizer.name == "gpt2"
    val = load_tokens(tmp_path / "s", split="val")
    assert val.tokens.fingerprint == store.split("val").fingerprint
    assert load_tokens(TokenStore.open(tmp_path / "s"), split="val").tokens.name == "val"
    with pytest.raises(KeyError, match="no split 'test'"):
        load_tokens(tmp_path / "s", split="test")


def test_short_str_naming_a_file_is_refused(tmp_path, monkeypatch) -> None:
    path = tmp_path / "the-verdict.txt"
    path.write_text("I HAD always thought Jack Gisburn rather a cheap genius")
    with pytest.raises(ValueError, match=r"names an existing file.*Pass Path\("):
        load_tokens(str(path))
    with pytest.raises(ValueError, match="names an existing folder"):
        load_tokens(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="the-verdict.txt"):
        load_tokens("the-verdict.txt")
    # Text that merely looks like a name, or long text, stays text.
    assert len(load_tokens("no-such-file.txt")) > 0
    assert len(load_tokens("the-verdict.txt\nand more")) > 0


def test_arrays_keep_their_dtype() -> None:
    a = np.arange(100, dtype=np.uint16)
    corpus = load_tokens(a)
    assert corpus.tokens.array is a  # no copy
    assert corpus.tokens.gather(np.array([3]), 2).dtype == np.uint16
    t = torch.arange(10, dtype=torch.int32)
    assert load_tokens(t).tokens.array.dtype == np.int32
    assert load_tokens([1, 2, 3]).tokens.array.tolist() == [1, 2, 3]
    assert corpus.document_ends is None and corpus.tokenizer is None
    # The same IDs in another dtype are the same data for loader state.
    assert load_tokens(a.astype(np.int64)).tokens.fingerprint == corpus.tokens.fingerprint
    assert isinstance(load_tokens(ArrayTokens(a)), Corpus)


def test_bad_sources() -> None:
    with pytest.raises(ValueError, match="must be 1-D"):
        load_tokens(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="must be integers"):
        load_tokens([1.5, 2.0])
    with pytest.raises(TypeError, match="decode it to text"):
        load_tokens(b"hello")


def test_documents_need_a_separator(tmp_path) -> None:
    class NoEot(SimpleTokenizer):
        pass

    tok = NoEot.from_text(" ".join(TEXTS))
    tok.eot_id = None
    folder = tmp_path / "d"
    folder.mkdir()
    for i, t in enumerate(TEXTS[:2]):
        (folder / f"{i}.txt").write_text(t)
    with pytest.raises(ValueError, match="no <\\|endoftext\\|> token"):
        load_tokens(folder, tokenizer=tok)
    os.remove(folder / "1.txt")
    assert load_tokens(folder, tokenizer=tok).tokens.array.tolist() == tok.encode(TEXTS[0])


def test_empty_files_are_an_error(tmp_path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(ValueError, match="no non-empty documents"):
        load_tokens(Path(path))


def test_a_literal_endoftext_in_a_file_is_text_as_prepare_reads_it(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one <|endoftext|> two", encoding="utf-8")
    ids = load_tokens(tmp_path / "a.txt").tokens.array.tolist()
    store = prepare([tmp_path / "a.txt"], tmp_path / "s", val_fraction=0, workers=1, quiet=True)
    assert ids == store.split("train")[:].tolist()
    assert 50256 not in ids  # the literal was encoded as the characters it is
