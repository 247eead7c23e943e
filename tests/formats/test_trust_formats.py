"""Issue 18 (import/export) and issue 19 (trainer formats): the promises the store keeps.

Each test failed on the code before it: held-out shards trained on, a tokenizer guessed, a
replaced or corrupt store exported, a user's folder deleted by --force, import memory growing
with document length, a 40-line traceback for a full disk, and the trainers' format needs.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from gptdata import SimpleTokenizer, TokenStore, prepare
from gptdata.formats import FormatError, export_store, import_store
from gptdata.formats._stream import pieces
from gptdata.formats.llmc import shard_sizes
from gptdata.formats.megatron import megatron_dtype
from gptdata.store import StoreError
from plain_formats import make_store, read_llmc, read_megatron, split_stream, store_documents

TEXTS = [f"{w} " * (1 + i % 9) + "end ." for i, w in enumerate(["the", "cat", "a", "dog"] * 21)]
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


@pytest.fixture
def simple(tmp_path):
    vocab = tmp_path / "vocab.json"
    tok = SimpleTokenizer.from_text(" ".join(TEXTS))
    tok.save(vocab)
    store = make_store(tmp_path / "store", TEXTS, tokenizer=tok, shard_tokens=50)
    return store, vocab


def _cli(*args, code=None):
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "gptdata", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV)


def _llmc_shard(path, tokens, *, dtype=np.uint16):
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, len(tokens))
    path.write_bytes(header.tobytes() + np.asarray(tokens, dtype=dtype).tobytes())


# --- held-out data is never trained on ---------------------------------------------------


def test_llmc_validation_shards_go_to_val_by_their_words(tmp_path):
    folder = tmp_path / "fineweb"
    folder.mkdir()
    _llmc_shard(folder / "fineweb_train_000001.bin", [50256, 1, 2, 50256, 3])
    _llmc_shard(folder / "fineweb_validation_000000.bin", [50256, 7, 8])
    _llmc_shard(folder / "fineweb-val-000001.bin", [50256, 9])
    store = import_store("llmc", folder, tmp_path / "s", tokenizer="gpt2", quiet=True)
    assert store_documents(store, "train") == [[1, 2], [3]]
    assert store_documents(store, "val") == [[9], [7, 8]]  # by name: "-" sorts before "_"


@pytest.mark.parametrize("name", ["valid_000000.bin", "fineweb_validation_000000.bin"])
def test_one_validation_file_goes_to_val(tmp_path, name):
    _llmc_shard(tmp_path / name, [50256, 4, 5])
    store = import_store("llmc", tmp_path / name, tmp_path / "s", tokenizer="gpt2", quiet=True)
    assert store.split("val").n_documents == 1 and store.split("train").n_documents == 0


@pytest.mark.parametrize("fmt", ["llmc", "nanogpt"])
def test_test_files_in_a_folder_are_refused_and_alone_go_to_val(tmp_path, fmt):
    folder = tmp_path / "data"
    folder.mkdir()
    for name, ids in (("fineweb_train_000001.bin", [4]), ("fineweb_test_000000.bin", [5])):
        if fmt == "llmc":
            _llmc_shard(folder / name, [50256, *ids])
        else:
            np.array([*ids, 50256], dtype=np.uint16).tofile(folder / name)
    if fmt == "llmc":  # a nanoGPT folder is train.bin / val.bin only
        with pytest.raises(FormatError, match=r"looks like a 'test' split, .* never puts it"):
            import_store(fmt, folder, tmp_path / "s", tokenizer="gpt2", quiet=True)
        assert not (tmp_path / "s").exists()
    one = import_store(
        fmt, folder / "fineweb_test_000000.bin", tmp_path / "one", tokenizer="gpt2", quiet=True
    )
    assert store_documents(one, "val") == [[5]] and one.split("train").n_documents == 0


def test_nanogpt_validation_file_goes_to_val(tmp_path):
    np.array([4, 5, 50256, 6, 50256], dtype=np.uint16).tofile(tmp_path / "validation.bin")
    store = import_store(
        "nanogpt", tmp_path / "validation.bin", tmp_path / "s", tokenizer="gpt2", quiet=True
    )
    assert store_documents(store, "val") == [[4, 5], [6]]


# --- a tokenizer is never guessed --------------------------------------------------------


@pytest.mark.parametrize("fmt", ["nanogpt", "llmc", "megatron"])
def test_export_records_the_tokenizer_and_import_uses_it(simple, tmp_path, fmt):
    store, vocab = simple
    export_store(store, tmp_path / "x", format=fmt, tokenizer=vocab, shard_tokens=40, quiet=True)
    back = import_store(fmt, tmp_path / "x", tmp_path / "back", quiet=True)  # no tokenizer given
    assert back.fingerprint == store.fingerprint
    assert back.n_documents == store.n_documents == len(TEXTS)  # not 1 GPT-2 document


def test_unrecorded_file_without_tokenizer_is_refused_not_gpt2(simple, tmp_path):
    store, _ = simple
    export_store(store, tmp_path / "x", format="nanogpt", quiet=True)  # records the name only
    with pytest.raises(FormatError, match=r"records tokenizer simple .* Pass the tokenizer"):
        import_store("nanogpt", tmp_path / "x", tmp_path / "back", quiet=True)


def test_disagreeing_tokenizer_is_refused_naming_both(simple, tmp_path):
    store, vocab = simple
    export_store(store, tmp_path / "x", format="llmc", tokenizer=vocab, quiet=True)
    r = _cli(
        "import", "llmc", str(tmp_path / "x"), "--tokenizer", "gpt2", "-o", str(tmp_path / "b")
    )
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "records tokenizer simple" in r.stderr
    assert "tokenizer given is gpt2" in r.stderr


def test_summary_says_which_tokenizer_was_assumed(tmp_path):
    np.array([4, 5, 50256, 6, 50256], dtype=np.uint16).tofile(tmp_path / "train.bin")
    r = _cli("import", "nanogpt", str(tmp_path / "train.bin"), "-o", str(tmp_path / "s"))
    assert r.returncode == 0, r.stderr
    assert "tokenizer: gpt2 (assumed: nothing in" in r.stderr


# --- export reads exactly one store, and only a sound one --------------------------------


def test_store_replaced_during_export_fails_with_the_loaders_message(simple, tmp_path):
    store, vocab = simple
    opened = TokenStore.open(store.root)
    make_store(store.root.parent / "other", ["x y z"] * 9)
    prepare(None, store.root, texts=["x y z"] * 9, tokenizer=vocab, force=True, quiet=True)
    with pytest.raises(StoreError, match=r"the store was replaced while being read"):
        export_store(opened, tmp_path / "x", format="nanogpt", quiet=True)
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.exporting").exists()


@pytest.mark.parametrize("fmt", ["nanogpt", "megatron", "llmc", "hf"])
def test_corrupt_store_is_refused(simple, tmp_path, fmt):
    if fmt == "hf":
        pytest.importorskip("datasets")
    store, _ = simple
    shard = store.root / store.split("train").shards[0].file
    data = np.fromfile(shard, dtype=np.uint16)
    data[1] = store.vocab_size + 3  # same size, so only an ID check sees it
    data.tofile(shard)
    with pytest.raises(FormatError, match=rf"token ID {store.vocab_size + 3} at position 1 "):
        export_store(store, tmp_path / "x", format=fmt, quiet=True)
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.exporting").exists()


def test_force_keeps_a_folder_the_user_made(simple, tmp_path):
    store, _ = simple
    out = tmp_path / "x"
    export_store(store, out, format="megatron", quiet=True)
    (out / "my-notes").mkdir()
    with pytest.raises(
        FileExistsError, match=r"1 folder\(s\) gptdata export did not write .*my-notes"
    ):
        export_store(store, out, format="megatron", force=True, quiet=True)
    assert (out / "my-notes").is_dir()


def test_unwritable_output_is_refused_before_reading_inputs(tmp_path):
    missing = tmp_path / "nothing.bin"  # the output is checked first, so this is never opened
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(OSError, match=r"out=.*a-file/s: cannot create it, .* not a writable"):
        import_store("nanogpt", missing, tmp_path / "a-file" / "s", quiet=True)


# --- memory follows the work -------------------------------------------------------------

PEAK = """
import resource, sys
import numpy as np
from gptdata.formats import import_store
import_store("nanogpt", sys.argv[1], sys.argv[2], tokenizer="gpt2", quiet=True)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_import_without_end_of_text_streams(tmp_path):
    n = 15_000_000  # 30 MB of uint16: a whole-document copy would add 60+ MB
    rng = np.random.default_rng(0)
    body = rng.integers(0, 50000, n, dtype=np.uint16)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    body.tofile(tmp_path / "a" / "train.bin")  # no end-of-text at all: one document
    with_eot = body.copy()
    with_eot[::1000] = 50256
    with_eot.tofile(tmp_path / "b" / "train.bin")
    peaks = []
    for d in ("a", "b"):
        r = _cli(str(tmp_path / d / "train.bin"), str(tmp_path / f"s{d}"), code=PEAK)
        assert r.returncode == 0, r.stderr
        peaks.append(int(r.stdout.split()[-1]) / 1024)  # MB (ru_maxrss is KiB on Linux)
    assert peaks[0] < peaks[1] + 20, peaks
    assert TokenStore.open(tmp_path / "sa").split("train").n_documents == 1


# --- one line for every failure, signals handled ------------------------------------------


def test_hf_export_with_a_shard_gone_is_one_line(simple, tmp_path):
    pytest.importorskip("datasets")
    store, _ = simple
    (store.root / store.split("train").shards[-1].file).unlink()
    r = _cli("export", str(store.root), "--format", "hf", "--quiet", "-o", str(tmp_path / "x"))
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr[-3000:]
    assert "DatasetGenerationError" not in r.stderr and not (tmp_path / "x.exporting").exists()


def test_hf_export_with_a_shard_gone_mid_way_is_one_error(simple, tmp_path):
    pytest.importorskip("datasets")
    store, _ = simple
    opened = TokenStore.open(store.root)  # checked whole here; the shard goes after
    (store.root / store.split("train").shards[-1].file).unlink()
    with pytest.raises(StoreError) as info:
        export_store(opened, tmp_path / "x", format="hf", quiet=True)
    assert "replaced while being read" in str(info.value) and "\n" not in str(info.value)
    assert type(info.value).__name__ != "DatasetGenerationError"
    assert not (tmp_path / "x.exporting").exists()


def test_hf_export_disk_full_names_the_path(simple, tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    import errno

    from gptdata.formats import hf

    def full(path, vocab_size):
        def check(block, base):
            raise OSError(errno.ENOSPC, "No space left on device")

        return check

    monkeypatch.setattr(hf, "_vocab_check", full)
    store, _ = simple
    with pytest.raises(OSError, match=r"no space left on the device while writing .*x\.exporting"):
        export_store(store, tmp_path / "x", format="hf", quiet=True)
    assert not (tmp_path / "x.exporting").exists()


SLOW = """
import sys, time
from gptdata.formats import _common
update = _common.Progress.update
_common.Progress.update = lambda self, n: (time.sleep(0.05), update(self, n))
from gptdata.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("verb", ["import", "export"])
def test_sigterm_is_one_line_and_leaves_nothing(simple, tmp_path, verb):
    store, vocab = simple
    if verb == "import":
        np.tile(np.array([4, 5, 50256], dtype=np.uint16), 3000).tofile(tmp_path / "train.bin")
        args = ["import", "nanogpt", str(tmp_path / "train.bin"), "--tokenizer", "gpt2"]
        out, side = tmp_path / "s", tmp_path / "s.partial"
    else:
        args = ["export", str(store.root), "--format", "nanogpt"]
        out, side = tmp_path / "x", tmp_path / "x.exporting"
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW, *args, "-o", str(out)],
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    for _ in range(400):
        if side.exists():
            break
        time.sleep(0.01)
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("terminated (SIGTERM)"), err
    assert "does not resume" in lines[0] and "Run the same command again to resume" not in err
    assert not side.exists() and not out.exists()


# --- issue 19: the trainers' own needs ------------------------------------------------------


def test_nanogpt_meta_pkl_for_a_word_level_tokenizer(simple, tmp_path):
    store, vocab = simple
    export_store(store, tmp_path / "x", format="nanogpt", tokenizer=vocab, quiet=True)
    meta = pickle.loads((tmp_path / "x" / "meta.pkl").read_bytes())
    tok = SimpleTokenizer.load(vocab)
    assert meta["vocab_size"] == tok.vocab_size
    assert meta["itos"] == dict(enumerate(tok.vocab))
    assert meta["stoi"] == {s: i for i, s in enumerate(tok.vocab)}
    ids = np.fromfile(tmp_path / "x" / "train.bin", dtype=np.uint16)[:4].tolist()
    assert [meta["itos"][i] for i in ids] == [tok.vocab[i] for i in ids]  # sample.py's decode
    export_store(store, tmp_path / "y", format="nanogpt", quiet=True)  # no tokenizer file given
    assert pickle.loads((tmp_path / "y" / "meta.pkl").read_bytes()) == {
        "vocab_size": tok.vocab_size
    }


def test_gpt2_nanogpt_export_has_no_meta_pkl(tmp_path):
    store = prepare(None, tmp_path / "g", texts=["Hello world", "again"], workers=1, quiet=True)
    export_store(store, tmp_path / "x", format="nanogpt", quiet=True)
    assert not (tmp_path / "x" / "meta.pkl").exists()
    assert json.loads((tmp_path / "x" / "meta.json").read_text())["name"] == "gpt2"


@pytest.mark.parametrize(
    ("total", "kw", "want"),
    [
        (41, {"shard_tokens": 20}, [20, 21]),  # tail 1 < 20 // 10: joins the one before
        (25, {"shard_tokens": 10}, [10, 10, 5]),
        (21, {"shard_tokens": 10, "min_shard_tokens": 0}, [10, 10, 1]),
        (10, {"shard_tokens": 100}, [10]),  # a single short shard stays
        (10, {"shard_tokens": 100, "shards": 3}, [4, 3, 3]),
    ],
)
def test_llmc_shard_sizes(total, kw, want):
    assert shard_sizes(total, **kw) == want


def test_llmc_export_no_tiny_tail_and_equal_shards(simple, tmp_path):
    store, _ = simple
    total = len(store.split("train")) + 1  # llm.c puts E before every document
    stream = []
    export_store(store, tmp_path / "x", format="llmc", shard_tokens=total - 2, quiet=True)
    files = sorted((tmp_path / "x").glob("train_*.bin"))
    assert len(files) == 1  # a 2-token tail would stop llm.c's loader: it joined shard 0
    export_store(store, tmp_path / "y", format="llmc", shards=4, quiet=True)
    files = sorted((tmp_path / "y").glob("train_*.bin"))
    sizes = [read_llmc(f)[0][2] for f in files]
    for f in files:
        stream += read_llmc(f)[1]
    assert len(files) == 4 and max(sizes) - min(sizes) <= 1 and sum(sizes) == total
    r = _cli(
        "export", str(store.root), "--format", "llmc", "--shards", "2", "-o", str(tmp_path / "z")
    )
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "z").glob("train_*.bin"))) == 2


@pytest.mark.parametrize(("vocab", "code"), [(50257, 8), (65499, 8), (65500, 4), (65536, 4)])
def test_megatron_dtype_matches_its_tool(vocab, code):
    assert megatron_dtype(vocab)[1] == code


def test_megatron_export_of_a_65500_vocab_is_int32(tmp_path):
    from plain_formats import word_tokenizer

    tok = word_tokenizer(65500)
    store = make_store(tmp_path / "s", ["w0 w1", "w65497"], tokenizer=tok)
    export_store(store, tmp_path / "m", format="megatron", quiet=True)
    got = read_megatron(tmp_path / "m" / "train_text_document")
    assert got["code"] == 4 and got["sequences"][1] == [65497, tok.eot_id]


@settings(max_examples=200, deadline=None)
@given(
    stream=hst.lists(hst.integers(0, 3), max_size=40),
    block=hst.integers(1, 7),
)
def test_pieces_join_to_the_list_reference(stream, block):
    """Streaming pieces, joined at each document end, are the plain list-slicing documents."""
    arr = np.array(stream, dtype=np.int64)
    blocks = (arr[i : i + block] for i in range(0, len(arr), block))
    docs, cur = [], []
    for piece, last in pieces(blocks, 0):
        cur += piece.tolist()
        if last:
            docs.append(cur)
            cur = []
    assert cur == [] and docs == split_stream(stream, 0)


def test_disk_full_names_the_file_being_written(simple, tmp_path, monkeypatch):
    import errno

    from gptdata.formats import _common, _storeblocks

    real = _common.os.replace

    class Full:
        def __init__(self, fh):
            self.fh, self.name = fh, fh.name

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def write_all(out, block):
        return real_write_all(Full(out), block)

    real_write_all = _storeblocks.write_all
    monkeypatch.setattr("gptdata.formats.nanogpt.write_all", write_all)
    store, _ = simple
    with pytest.raises(OSError, match=r"no space left on the device while writing .*train\.bin"):
        export_store(store, tmp_path / "x", format="nanogpt", quiet=True)
    assert real is _common.os.replace and not (tmp_path / "x.exporting").exists()


def test_too_many_shards_for_a_split_is_refused_before_any_output(simple, tmp_path):
    store, _ = simple
    total = len(store.split("train")) + 1
    with pytest.raises(
        FormatError, match=rf"split 'train': shards={total + 1:,}: use 1\.\.{total:,}"
    ):
        export_store(store, tmp_path / "x", format="llmc", shards=total + 1, quiet=True)
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.exporting").exists()
