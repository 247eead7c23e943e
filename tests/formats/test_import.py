"""gptdata import: round trips through every format, hand-written inputs, and bad input."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gptdata import SimpleTokenizer, TokenStore
from gptdata.formats import FormatError, export_store, import_store
from gptdata.formats._common import split_on
from gptdata.formats.megatron import megatron_dtype
from plain_formats import make_store, split_stream, store_documents, word_tokenizer

GPT2_EOT = 50256


@pytest.fixture
def sharded(tmp_path):
    texts = [f"{w} " * (1 + i % 9) + "end" for i, w in enumerate(["the", "cat", "a", "dog"] * 25)]
    store = make_store(tmp_path / "sharded", texts, val_fraction=0.3, shard_tokens=23)
    tok = tmp_path / "vocab.json"
    SimpleTokenizer.from_text(" ".join(texts)).save(tok)
    return store, tok


def _same_documents(a, b):
    assert a.splits == b.splits
    for split in a.splits:
        assert store_documents(a, split) == store_documents(b, split)


@pytest.mark.parametrize("fmt", ["megatron", "nanogpt", "llmc"])
def test_round_trip(sharded, tmp_path, fmt):
    store, tok = sharded
    export_store(store, tmp_path / "x", format=fmt, shard_tokens=40, quiet=True)
    back = import_store(fmt, tmp_path / "x", tmp_path / "back", tokenizer=tok, quiet=True)
    back.verify()
    assert back.fingerprint == store.fingerprint and back.dtype == store.dtype
    _same_documents(store, back)
    assert back.manifest["options"]["imported_from"] == fmt


@pytest.mark.parametrize("fmt", ["megatron", "llmc"])
def test_round_trip_large_vocab(tmp_path, fmt):
    vocab = tmp_path / "vocab.json"
    word_tokenizer(65537).save(vocab)
    store = make_store(
        tmp_path / "s", ["w0 w65534 qq", "w1", "w65533 w2"], tokenizer=SimpleTokenizer.load(vocab)
    )
    assert store.dtype == np.uint32
    export_store(store, tmp_path / "x", format=fmt, quiet=True)
    back = import_store(fmt, tmp_path / "x", tmp_path / "b", tokenizer=vocab, quiet=True)
    _same_documents(store, back)
    assert store_documents(back)[0] == [0, 65534, 65536]


def _write_megatron(prefix, sequences, doc_idx, *, code=8, dtype="<u2"):
    lengths = [len(s) for s in sequences]
    item = np.dtype(dtype).itemsize
    pointers = [item * sum(lengths[:i]) for i in range(len(lengths))]
    with open(f"{prefix}.idx", "wb") as fh:
        fh.write(b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1, code, len(lengths), len(doc_idx)))
        fh.write(struct.pack(f"<{len(lengths)}i", *lengths))
        fh.write(struct.pack(f"<{len(lengths)}q", *pointers))
        fh.write(struct.pack(f"<{len(doc_idx)}q", *doc_idx))
    np.array([t for s in sequences for t in s], dtype=dtype).tofile(f"{prefix}.bin")


def test_megatron_document_index(tmp_path):
    """Several sequences per document are joined; a trailing EOD is dropped only when present."""
    prefix = tmp_path / "data_text_document"
    seqs = [[1, 2], [3, GPT2_EOT], [4, 5, GPT2_EOT], [GPT2_EOT], [6, 7]]
    _write_megatron(prefix, seqs, [0, 2, 3, 4, 5])
    store = import_store("megatron", prefix, tmp_path / "s", quiet=True)
    assert store_documents(store) == [[1, 2, 3], [4, 5], [6, 7]]
    assert store.manifest["stats"]["empty"] == 1  # the document that was only an EOD
    assert store.split("train")[:].tolist() == [1, 2, 3, GPT2_EOT, 4, 5, GPT2_EOT, 6, 7]


def test_megatron_int32_from_other_tools(tmp_path):
    prefix = tmp_path / "p"
    _write_megatron(prefix, [[100, 50000, GPT2_EOT], [7]], [0, 1, 2], code=4, dtype="<i4")
    store = import_store("megatron", str(prefix) + ".idx", tmp_path / "s", quiet=True)
    assert store_documents(store) == [[100, 50000], [7]]


def test_nanogpt_split_on_eot(tmp_path):
    stream = [5, 6, GPT2_EOT, 7, GPT2_EOT, GPT2_EOT, 8, 9]  # no EOT after the last document
    np.array(stream, dtype=np.uint16).tofile(tmp_path / "train.bin")
    np.array([1, GPT2_EOT], dtype=np.uint16).tofile(tmp_path / "val.bin")
    store = import_store("nanogpt", tmp_path, tmp_path / "s", quiet=True)
    assert store_documents(store, "train") == [[5, 6], [7], [8, 9]]
    assert store_documents(store, "val") == [[1]]


def _llmc(path, tokens, *, magic=20240520, version=1, count=None, dtype="<u2"):
    header = np.zeros(256, dtype="<i4")
    header[:3] = (magic, version, len(tokens) if count is None else count)
    path.write_bytes(header.tobytes() + np.array(tokens, dtype=dtype).tobytes())


def test_llmc_documents_span_shards(tmp_path):
    _llmc(tmp_path / "fineweb_val_000000.bin", [GPT2_EOT, 1, 2, GPT2_EOT, 3])
    _llmc(tmp_path / "fineweb_train_000001.bin", [GPT2_EOT, 10, 11])
    _llmc(tmp_path / "fineweb_train_000002.bin", [12, GPT2_EOT, 13])
    store = import_store("llmc", tmp_path, tmp_path / "s", quiet=True)
    assert store_documents(store, "val") == [[1, 2], [3]]
    assert store_documents(store, "train") == [[10, 11, 12], [13]]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 5), max_size=60),
    st.integers(1, 7),
)
def test_split_on_matches_list_reference(stream, block):
    arr = np.array(stream, dtype=np.uint16)
    blocks = (arr[i : i + block] for i in range(0, len(arr), block))
    assert [d.tolist() for d in split_on(blocks, 0)] == split_stream(stream, 0)


# -- bad input ----------------------------------------------------------------------------------


@pytest.fixture
def megatron_prefix(tmp_path):
    prefix = tmp_path / "d_text_document"
    _write_megatron(prefix, [[1, 2, GPT2_EOT], [3, GPT2_EOT]], [0, 1, 2])
    return prefix


def test_truncated_idx(megatron_prefix, tmp_path):
    idx = megatron_prefix.with_suffix(".idx")
    idx.write_bytes(idx.read_bytes()[:-5])
    with pytest.raises(
        FormatError,
        match=r"d_text_document.idx: 77 bytes, but the header's 2 sequences and 3 document-index entries need 82",
    ):
        import_store("megatron", megatron_prefix, tmp_path / "s", quiet=True)
    idx.write_bytes(idx.read_bytes()[:20])
    with pytest.raises(FormatError, match=r"shorter than the 34-byte header: truncated"):
        import_store("megatron", megatron_prefix, tmp_path / "s", quiet=True)
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()


def test_megatron_multimodal_is_refused(megatron_prefix, tmp_path):
    idx = megatron_prefix.with_suffix(".idx")
    idx.write_bytes(idx.read_bytes() + b"\x00\x00")  # one mode byte per sequence
    with pytest.raises(FormatError, match=r"need 82 \(it carries sequence modes: multimodal"):
        import_store("megatron", megatron_prefix, tmp_path / "s", quiet=True)


def test_megatron_wrong_magic_and_bin_size(megatron_prefix, tmp_path):
    idx = megatron_prefix.with_suffix(".idx")
    good = idx.read_bytes()
    idx.write_bytes(b"TNTIDX\x00\x00\x00" + good[9:])
    with pytest.raises(FormatError, match=r"magic b'TNTIDX.*not a Megatron indexed-dataset"):
        import_store("megatron", megatron_prefix, tmp_path / "s", quiet=True)
    idx.write_bytes(good)
    binf = megatron_prefix.with_suffix(".bin")
    binf.write_bytes(binf.read_bytes()[:-2])
    with pytest.raises(FormatError, match=r"8 bytes, but the index describes 5 tokens x 2 bytes"):
        import_store("megatron", megatron_prefix, tmp_path / "s", quiet=True)


def test_llmc_bad_headers(tmp_path):
    f = tmp_path / "train_000000.bin"
    _llmc(f, [GPT2_EOT, 1, 2], magic=20240521)
    with pytest.raises(FormatError, match=r"magic 20240521, expected 20240520 \(uint16\)"):
        import_store("llmc", f, tmp_path / "s", quiet=True)
    _llmc(f, [GPT2_EOT, 1, 2], count=4)
    with pytest.raises(
        FormatError, match=r"1,030 bytes, but the header's 4 uint16 tokens need 1,032"
    ):
        import_store("llmc", f, tmp_path / "s", quiet=True)
    _llmc(f, [GPT2_EOT, 1], version=7)
    with pytest.raises(FormatError, match=r"version 7 with magic 20240520; expected 1"):
        import_store("llmc", f, tmp_path / "s", quiet=True)
    f.write_bytes(b"\x00" * 100)
    with pytest.raises(FormatError, match=r"100 bytes, shorter than llm.c's 1,024-byte header"):
        import_store("llmc", f, tmp_path / "s", quiet=True)


def test_ids_too_large_for_the_tokenizer(tmp_path):
    np.array([1, 2, 60000, GPT2_EOT], dtype=np.uint16).tofile(tmp_path / "train.bin")
    with pytest.raises(FormatError, match=r"token ID 60000 at position 2 is outside 0..50256"):
        import_store("nanogpt", tmp_path / "train.bin", tmp_path / "s", quiet=True)
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()
    (tmp_path / "odd.bin").write_bytes(b"\x01\x00\x02")
    with pytest.raises(FormatError, match=r"3 bytes is odd, so not a file of uint16 tokens"):
        import_store("nanogpt", tmp_path / "odd.bin", tmp_path / "s", quiet=True)


def test_ids_too_large_for_the_target_format(tmp_path):
    store = make_store(tmp_path / "s", ["w0 w65534 w3"], tokenizer=word_tokenizer(65537))
    with pytest.raises(FormatError, match=r"Use format='megatron' or 'llmc'"):
        export_store(store, tmp_path / "n", format="nanogpt", quiet=True)
    with pytest.raises(FormatError, match=r"vocab_size 2,147,483,649 does not fit .* \(int32\)"):
        megatron_dtype(2**31 + 1)


def test_unknown_format_and_existing_output(megatron_prefix, tmp_path):
    with pytest.raises(ValueError, match=r"unknown format 'hf': choose one of megatron, nanogpt"):
        import_store("hf", megatron_prefix, tmp_path / "s")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match=r"not a gptdata store .* never deletes it"):
        import_store("megatron", megatron_prefix, tmp_path / "mine", quiet=True)
    with pytest.raises(FileExistsError, match=r"not a gptdata store .* even with force=True"):
        import_store("megatron", megatron_prefix, tmp_path / "mine", force=True, quiet=True)
    assert (tmp_path / "mine" / "keep.txt").exists()
    import_store("megatron", megatron_prefix, tmp_path / "s", quiet=True)
    again = import_store("megatron", megatron_prefix, tmp_path / "s", force=True, quiet=True)
    assert isinstance(again, TokenStore) and store_documents(again) == [[1, 2], [3]]


def test_cli_import(megatron_prefix, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    cmd = [sys.executable, "-m", "gptdata", "import", "megatron", str(megatron_prefix)]
    ok = subprocess.run([*cmd, "-o", str(tmp_path / "s")], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "split      train: 4 tokens, 2 documents" in ok.stdout
    bad = subprocess.run([*cmd, "-o", str(tmp_path / "s")], capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "--force" in bad.stderr
