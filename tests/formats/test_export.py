"""gptdata export: each format read back with a plain reader written from its published layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gptdata.formats import FormatError, export_store
from gptdata.formats import _common as common
from gptdata.formats import _storeblocks as storeblocks
from plain_formats import (
    TEXTS,
    make_store,
    read_llmc,
    read_megatron,
    split_stream,
    store_documents,
    word_tokenizer,
)


@pytest.fixture
def store(tmp_path):
    return make_store(tmp_path / "store")


@pytest.fixture
def sharded(tmp_path):
    """Many small shards and a val split: exercises every shard boundary."""
    texts = [f"{w} " * (1 + i % 7) + "end" for i, w in enumerate(["the", "cat", "a", "dog"] * 30)]
    return make_store(tmp_path / "sharded", texts, val_fraction=0.3, shard_tokens=17)


def test_megatron_golden(store, tmp_path):
    export_store(store, tmp_path / "m", format="megatron", quiet=True)
    docs = store_documents(store)
    eot = store.eot_id
    got = read_megatron(tmp_path / "m" / "train_text_document")
    assert got["magic"] == b"MMIDIDX\x00\x00" and got["version"] == 1
    assert got["code"] == 8  # uint16
    assert got["lengths"] == [len(d) + 1 for d in docs]
    assert got["pointers"] == [2 * sum(len(d) + 1 for d in docs[:i]) for i in range(len(docs))]
    assert got["doc_idx"] == list(range(len(docs) + 1))
    assert got["sequences"] == [d + [eot] for d in docs]  # --append-eod
    assert not (tmp_path / "m" / "val_text_document.bin").exists()  # val is empty here


@pytest.mark.parametrize("split", ["train", "val"])
def test_megatron_many_shards(sharded, tmp_path, split):
    assert len(sharded.split(split).shards) > 3
    export_store(sharded, tmp_path / "m", format="megatron", quiet=True)
    got = read_megatron(tmp_path / "m" / f"{split}_text_document")
    docs = store_documents(sharded, split)
    assert got["sequences"] == [d + [sharded.eot_id] for d in docs]
    assert got["bin_tokens"] == sum(len(d) + 1 for d in docs)


def test_nanogpt(sharded, tmp_path):
    export_store(sharded, tmp_path / "n", format="nanogpt", quiet=True)
    eot = sharded.eot_id
    for split in ("train", "val"):
        flat = np.memmap(tmp_path / "n" / f"{split}.bin", dtype=np.uint16, mode="r").tolist()
        docs = store_documents(sharded, split)
        assert flat == [t for d in docs for t in d + [eot]]  # each document then end-of-text
    meta = json.loads((tmp_path / "n" / "meta.json").read_text())
    assert meta["vocab_size"] == sharded.vocab_size and meta["eot_id"] == eot
    assert meta["dtype"] == "uint16"
    assert meta["splits"]["val"]["documents"] == sharded.split("val").n_documents


def test_llmc_shards(sharded, tmp_path):
    export_store(sharded, tmp_path / "l", format="llmc", shard_tokens=50, quiet=True)
    eot = sharded.eot_id
    for split in ("train", "val"):
        files = sorted((tmp_path / "l").glob(f"{split}_*.bin"))
        assert [f.name for f in files] == [f"{split}_{k:06d}.bin" for k in range(len(files))]
        stream = []
        for f in files:
            (magic, version, count), tokens = read_llmc(f)
            assert (magic, version) == (20240520, 1) and count == len(tokens) <= 50
            stream += tokens
        docs = store_documents(sharded, split)
        assert stream == [t for d in docs for t in [eot] + d]  # end-of-text before each document
        assert all(read_llmc(f)[0][2] == 50 for f in files[:-1])  # cut at exactly shard_tokens


def test_hf_load_from_disk(sharded, tmp_path):
    datasets = pytest.importorskip("datasets")
    export_store(sharded, tmp_path / "h", format="hf", quiet=True)
    dd = datasets.load_from_disk(str(tmp_path / "h"))
    assert sorted(dd) == ["train", "val"]
    for split in ("train", "val"):
        assert dd[split]["input_ids"] == store_documents(sharded, split)
        assert dd[split].features["input_ids"].feature.dtype == "int32"
    one = datasets.load_from_disk(str(tmp_path / "h" / "val"))
    assert one.num_rows == sharded.split("val").n_documents


def test_split_selection(sharded, tmp_path):
    export_store(sharded, tmp_path / "v", format="nanogpt", split="val", quiet=True)
    assert sorted(p.name for p in (tmp_path / "v").glob("*.bin")) == ["val.bin"]
    with pytest.raises(ValueError, match=r"split='test': this store has train, val"):
        export_store(sharded, tmp_path / "x", format="nanogpt", split="test", quiet=True)


@pytest.mark.parametrize(
    ("vocab_size", "code", "llmc", "itemsize"),
    # Megatron: uint16 below 65,500, int32 from there (its DType.optimal_dtype); llm.c by fit
    [(65499, 8, (20240520, 1), 2), (65536, 4, (20240520, 1), 4), (65537, 4, (20240801, 7), 4)],
)
def test_dtype_edges(tmp_path, vocab_size, code, llmc, itemsize):
    tok = word_tokenizer(vocab_size)
    top = f"w{vocab_size - 3}"  # the largest word ID; 'zzz' is <|unk|>, the largest ID of all
    store = make_store(tmp_path / "s", ["w0 w1", f"{top} zzz w7", "w65490"], tokenizer=tok)
    assert max(max(d) for d in store_documents(store)) == vocab_size - 1
    docs = store_documents(store)
    export_store(store, tmp_path / "m", format="megatron", quiet=True)
    got = read_megatron(tmp_path / "m" / "train_text_document")
    assert got["code"] == code
    assert got["sequences"] == [d + [tok.eot_id] for d in docs]
    assert got["pointers"][1] == itemsize * (len(docs[0]) + 1)
    export_store(store, tmp_path / "l", format="llmc", quiet=True)
    header, tokens = read_llmc(tmp_path / "l" / "train_000000.bin")
    assert tuple(header[:2]) == llmc
    assert tokens == [t for d in docs for t in [tok.eot_id] + d]
    if vocab_size <= 65536:
        export_store(store, tmp_path / "n", format="nanogpt", quiet=True)
        flat = np.fromfile(tmp_path / "n" / "train.bin", dtype=np.uint16).tolist()
        assert split_stream(flat, tok.eot_id) == docs
    else:
        with pytest.raises(FormatError, match=r"vocab_size 65,537 does not fit uint16"):
            export_store(store, tmp_path / "n", format="nanogpt", quiet=True)
        assert not (tmp_path / "n").exists() and not (tmp_path / "n.exporting").exists()


def test_unknown_format(store, tmp_path):
    with pytest.raises(ValueError, match=r"unknown format 'parquet': choose one of megatron"):
        export_store(store, tmp_path / "o", format="parquet")


def test_refuses_to_overwrite(store, tmp_path):
    out = tmp_path / "o"
    export_store(store, out, format="nanogpt", quiet=True)
    with pytest.raises(FileExistsError, match=r"already exists. Pass force=True to replace"):
        export_store(store, out, format="nanogpt", quiet=True)
    export_store(store, out, format="megatron", force=True, quiet=True)  # our own: replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o", "store"]  # no trash left behind
    assert sorted(p.name for p in out.iterdir()) == [
        "gptdata-export.json",
        "train_text_document.bin",
        "train_text_document.idx",
    ]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"1 file\(s\) gptdata export did not write"):
        export_store(store, out, format="nanogpt", force=True, quiet=True)
    assert (out / "notes.txt").read_text() == "mine"


def test_force_never_deletes_a_foreign_folder(store, tmp_path):
    out = tmp_path / "home"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(FileExistsError, match=r"was not written by gptdata export"):
        export_store(store, out, format="nanogpt", force=True, quiet=True)
    assert (out / "thesis.tex").read_text() == "years of work"
    side = tmp_path / "other.exporting"
    side.mkdir()
    (side / "x").write_text("x")
    with pytest.raises(FileExistsError, match=r"was not started by gptdata export"):
        export_store(store, tmp_path / "other", format="nanogpt", quiet=True)
    assert (side / "x").exists()


def test_failed_export_leaves_nothing(sharded, tmp_path, monkeypatch):
    calls = []

    def boom(out, block):
        calls.append(len(block))
        if len(calls) == 3:
            raise OSError("disk full")
        return real(out, block)

    real = storeblocks.write_all
    monkeypatch.setattr("gptdata.formats.megatron.write_all", boom)
    with pytest.raises(OSError, match="disk full"):
        export_store(sharded, tmp_path / "o", format="megatron", quiet=True)
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.exporting").exists()


def test_killed_export_looks_incomplete_and_is_cleaned_up(store, tmp_path):
    side = tmp_path / "o.exporting"
    side.mkdir()
    (side / "gptdata-export.json").write_text('{"format": "gptdata-export", "complete": false}')
    (side / "train.bin").write_bytes(b"\x00\x01")
    export_store(store, tmp_path / "o", format="nanogpt", quiet=True)
    assert not side.exists()
    marker = json.loads((tmp_path / "o" / "gptdata-export.json").read_text())
    assert marker["complete"] is True
    assert marker["files"] == ["meta.json", "meta.pkl", "train.bin"]  # not GPT-2: meta.pkl


def test_copy_range_without_sendfile(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.write_bytes(bytes(range(256)) * 100)
    monkeypatch.delattr(os, "sendfile")
    with open(src, "rb") as fh, open(tmp_path / "dst", "wb", buffering=0) as out:
        common.copy_range(fh, out, 10, 1000)
    assert (tmp_path / "dst").read_bytes() == src.read_bytes()[10:1010]


def test_cli_export(store, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, "-m", "gptdata", "export", str(store.root)]
    ok = subprocess.run(
        [*cmd, "--format", "megatron", "-o", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert f"train: {len(TEXTS)} documents" in ok.stdout
    bad = subprocess.run(
        [*cmd, "--format", "tfrecord", "-o", str(tmp_path / "t")],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: unknown --format 'tfrecord': choose one of megatron")


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    docs=st.lists(st.lists(st.integers(0, 9), min_size=1, max_size=12), min_size=1, max_size=25),
    shard_tokens=st.integers(1, 40),
    llmc_tokens=st.integers(1, 30),
)
def test_every_format_against_plain_readers(tmp_path_factory, docs, shard_tokens, llmc_tokens):
    tmp = tmp_path_factory.mktemp("prop")
    texts = [" ".join(f"w{i}" for i in d) for d in docs]
    store = make_store(tmp / "s", texts, tokenizer=word_tokenizer(12), shard_tokens=shard_tokens)
    eot = store.eot_id
    assert store_documents(store) == docs  # w{i} has ID i
    export_store(store, tmp / "m", format="megatron", quiet=True)
    assert read_megatron(tmp / "m" / "train_text_document")["sequences"] == [
        d + [eot] for d in docs
    ]
    export_store(store, tmp / "n", format="nanogpt", quiet=True)
    flat = np.fromfile(tmp / "n" / "train.bin", dtype=np.uint16).tolist()
    assert flat == [t for d in docs for t in d + [eot]]
    export_store(store, tmp / "l", format="llmc", shard_tokens=llmc_tokens, quiet=True)
    stream = [t for f in sorted((tmp / "l").glob("train_*.bin")) for t in read_llmc(f)[1]]
    assert stream == [t for d in docs for t in [eot] + d]


def test_llmc_shard_tokens_must_fit_int32(store, tmp_path):
    with pytest.raises(FormatError, match=r"shard_tokens=2,147,483,648: llm.c counts"):
        export_store(store, tmp_path / "l", format="llmc", shard_tokens=2**31, quiet=True)
    assert not (tmp_path / "l").exists() and not (tmp_path / "l.exporting").exists()
