"""What prepare reads is what the user meant: special text, the val split, which files, errors."""

from __future__ import annotations

import errno
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import corpus
from gptdata import InputError, TokenStore, get_tokenizer, prepare
from gptdata.cli.entry import main
from gptdata.store.shards import _PartWriter

EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def gpt2():
    return get_tokenizer("gpt2")


def ids_of(store: TokenStore, split: str = "train") -> list[int]:
    return store.split(split)[:].tolist()


# --- a literal <|endoftext|> inside a document is text ------------------------------------


def test_literal_endoftext_is_ordinary_text_and_counted(tmp_path, gpt2, capsys) -> None:
    docs = [f"before {EOT} after", "plain"]
    store = prepare(None, tmp_path / "s", texts=docs, val_fraction=0, workers=1)
    expected = gpt2.encode(docs[0], special="text") + [50256] + gpt2.encode(docs[1])
    assert ids_of(store) == expected
    assert ids_of(store).count(50256) == 1  # only the separator gptdata put between documents
    assert store.manifest["options"]["special_text"] == "ordinary"
    assert store.manifest["counts"]["special_text"] == 1
    assert f"1 documents contain a literal {EOT}, encoded as ordinary text" in (
        capsys.readouterr().err
    )


def test_special_text_allow_keeps_the_old_behaviour(tmp_path, gpt2) -> None:
    docs = [f"before {EOT} after", "plain"]
    store = prepare(
        None, tmp_path / "s", texts=docs, val_fraction=0, workers=1, quiet=True,
        special_text="allow",
    )  # fmt: skip
    assert ids_of(store) == gpt2.encode(docs[0]) + [50256] + gpt2.encode(docs[1])
    assert ids_of(store).count(50256) == 2
    assert store.manifest["options"]["special_text"] == "allow"


def test_special_text_in_files_with_workers(tmp_path, gpt2) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    docs = [f"doc {i} " + ("x " * 50) + (EOT if i % 3 == 0 else "") for i in range(30)]
    for i, d in enumerate(docs):
        (folder / f"{i:02d}.txt").write_text(d)
    store = prepare([folder], tmp_path / "s", val_fraction=0, workers=2, quiet=True)
    expected: list[int] = []
    for d in docs:
        expected += ([50256] if expected else []) + gpt2.encode(d, special="text")
    assert ids_of(store) == expected
    assert store.manifest["counts"]["special_text"] == 10


# --- the validation split -----------------------------------------------------------------


@pytest.mark.parametrize("val_fraction,seed", [(0.05, 0), (0.3, 1), (0.1, 0)])
def test_two_uneven_documents_get_the_share_asked(tmp_path, val_fraction, seed, capsys) -> None:
    inputs = [corpus("the-verdict.txt"), corpus("tinyshakespeare.txt")]
    store = prepare(inputs, tmp_path / "s", val_fraction=val_fraction, seed=seed, workers=2)
    total = len(store.split("train")) + len(store.split("val"))
    share = len(store.split("val")) / total
    assert abs(share - val_fraction) < 0.01 * val_fraction + 2 / total
    assert store.manifest["options"]["split_by"] == "tail"
    err = capsys.readouterr().err
    assert f"split by tail: train {1 - share:.1%}, val {share:.1%}" in err
    assert "warning" not in err


def test_pinned_document_split_warns_when_far_off(tmp_path, capsys) -> None:
    inputs = [corpus("the-verdict.txt"), corpus("tinyshakespeare.txt")]
    store = prepare(inputs, tmp_path / "s", val_fraction=0.05, split_by="documents", workers=1)
    assert store.manifest["options"]["split_by"] == "documents"
    assert "warning: the val share 0.0% is off by more than half" in capsys.readouterr().err


def test_auto_tail_equals_pinned_tail_and_many_documents_split_by_documents(tmp_path) -> None:
    docs = [f"document {i} " + "word " * (i % 13 + 1) for i in range(60)]
    auto = prepare(None, tmp_path / "a", texts=docs, workers=1, quiet=True)
    prepare(None, tmp_path / "t", texts=docs, workers=1, quiet=True, split_by="tail")
    assert auto.manifest["options"]["split_by"] == "tail"
    for name in ("manifest.json", *sorted(p.name for p in (tmp_path / "t/shards").iterdir())):
        sub = name if name == "manifest.json" else f"shards/{name}"
        assert (tmp_path / "a" / sub).read_bytes() == (tmp_path / "t" / sub).read_bytes(), name
    even = [f"even document number {i} " + "lorem ipsum " * 20 for i in range(2000)]
    many = prepare(None, tmp_path / "m", texts=even, workers=1, quiet=True)
    assert many.manifest["options"]["split_by"] == "documents"
    share = len(many.split("val")) / (len(many.split("val")) + len(many.split("train")))
    assert 0.05 < share < 0.15


def test_tail_split_never_moves_a_token_when_documents_are_added(tmp_path, gpt2) -> None:
    docs = [f"story {i}: " + "once upon a time " * (5 + i % 9) for i in range(40)]
    kw = {"workers": 1, "quiet": True, "split_by": "tail"}
    small = prepare(None, tmp_path / "a", texts=docs, **kw)
    big = prepare(None, tmp_path / "b", texts=docs + ["a new one " * 30], **kw)
    for split in ("train", "val"):
        a = gpt2.decode(ids_of(small, split)).split(EOT)
        b = gpt2.decode(ids_of(big, split)).split(EOT)
        assert b[: len(a)] == a


# --- which files are read -----------------------------------------------------------------


def test_the_same_file_reached_twice_is_read_once(tmp_path, gpt2) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha")
    (tmp_path / "link.txt").symlink_to(folder / "a.txt")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        store = prepare(
            [folder, folder / "a.txt", "c/a.txt", "./c/a.txt", tmp_path / "link.txt"],
            tmp_path / "s",
            val_fraction=0,
            workers=1,
            quiet=True,
        )
    finally:
        os.chdir(cwd)
    assert ids_of(store) == gpt2.encode("alpha")
    assert len(store.manifest["inputs"]) == 1


def test_fifo_hidden_folders_and_stores_are_not_read(tmp_path, gpt2) -> None:
    folder = tmp_path / "c"
    (folder / ".git").mkdir(parents=True)
    (folder / ".git" / "notes.txt").write_text("hidden")
    (folder / "a.txt").write_text("alpha")
    os.mkfifo(folder / "x.txt")
    old = prepare([folder / "a.txt"], folder / "old-store", val_fraction=0, workers=1, quiet=True)
    assert old.split("train").n_documents == 1
    (folder / "old-store.partial").mkdir()
    (folder / "old-store.partial" / "gptdata-side.json").write_text(
        json.dumps({"format": "gptdata-side-folder", "role": "partial", "plan": "p"})
    )
    (folder / "old-store.partial" / "leftover.txt").write_text("side")
    cmd = [sys.executable, "-m", "gptdata", "prepare", "--val-fraction", "0", "--workers", "1"]
    for inputs in ([str(folder)], [str(folder / "**")]):
        out = tmp_path / f"s{len(inputs[0])}"
        result = subprocess.run(
            [*cmd, *inputs, "-o", str(out)], capture_output=True, text=True, timeout=60
        )  # a FIFO that were opened would hang here
        assert result.returncode == 0, result.stderr
        store = TokenStore.open(out)
        assert ids_of(store) == gpt2.encode("alpha"), inputs
    with pytest.raises(InputError, match=r"x\.txt' is not a regular file"):
        prepare([folder / "x.txt"], tmp_path / "f", workers=1, quiet=True)
    with pytest.raises(InputError, match=r"old-store' is a gptdata store"):
        prepare([folder / "old-store"], tmp_path / "g", workers=1, quiet=True)


def test_bom_is_dropped_from_txt(tmp_path, gpt2) -> None:
    (tmp_path / "a.txt").write_bytes(b"\xef\xbb\xbfHello")
    store = prepare([tmp_path / "a.txt"], tmp_path / "s", val_fraction=0, workers=1, quiet=True)
    assert ids_of(store) == gpt2.encode("Hello")


def test_non_utf8_file_names_work(tmp_path, gpt2) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.txt")  # Latin-1 bytes: not valid UTF-8
    Path(folder, name).write_text("latte")
    store = prepare([folder], tmp_path / "s", val_fraction=0, workers=1, quiet=True)
    assert ids_of(store) == gpt2.encode("latte")
    assert store.manifest["inputs"][0]["path"].endswith("caf\\xe9.txt")


# --- bad inputs: one line, names the file and the fix, nothing left that blocks -----------


def _no_side(tmp_path: Path) -> bool:
    return not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


@pytest.mark.parametrize(
    "make,match",
    [
        (
            lambda p: p.write_bytes(gzip.compress(b'{"text": "a"}\n' * 2000)[:-40]),
            r"docs\.jsonl\.gz: truncated or not gzip .*gzip -t",
        ),
        (lambda p: p.write_bytes(b'{"text": "a"}\n'), r"docs\.jsonl\.gz: truncated or not gzip"),
    ],
)
def test_bad_gzip(tmp_path, make, match) -> None:
    make(tmp_path / "docs.jsonl.gz")
    with pytest.raises(InputError, match=match):
        prepare([tmp_path / "docs.jsonl.gz"], tmp_path / "s", workers=1, quiet=True)
    assert _no_side(tmp_path)


def test_json_nested_too_deep(tmp_path) -> None:
    deep = '{"text": "ok", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (tmp_path / "docs.jsonl").write_text('{"text": "fine"}\n' + deep + "\n")
    with pytest.raises(InputError, match=r"docs\.jsonl:2: JSON nested too deeply"):
        prepare([tmp_path / "docs.jsonl"], tmp_path / "s", workers=1, quiet=True)
    assert _no_side(tmp_path)


def test_parquet_that_is_not_parquet(tmp_path) -> None:
    pytest.importorskip("pyarrow")
    (tmp_path / "data.parquet").write_text("id,text\n1,hello\n")
    with pytest.raises(InputError, match=r"data\.parquet: not a readable Parquet file"):
        prepare([tmp_path / "data.parquet"], tmp_path / "s", workers=1, quiet=True)
    assert _no_side(tmp_path)


def test_corrupt_resume_marker_means_not_done(tmp_path, gpt2, monkeypatch) -> None:
    prep = sys.modules["gptdata.prepare.driver"]  # gptdata.prepare is the function

    (tmp_path / "a.txt").write_text("alpha beta")
    args = ([tmp_path / "a.txt"], tmp_path / "s")
    kw = {"val_fraction": 0, "workers": 1, "quiet": True}

    def killed(*a, **k):
        raise KeyboardInterrupt  # a run stopped after its units, before its commit

    with monkeypatch.context() as m:
        m.setattr(prep, "_commit", killed)
        with pytest.raises(KeyboardInterrupt):
            prepare(*args, **kw)
    marker = tmp_path / "s.partial" / "units" / "00000.json"
    marker.write_text('{"index": 0, "tokens": ')  # torn by a crash
    store = prepare(*args, **kw)
    assert ids_of(store) == gpt2.encode("alpha beta")


def test_full_disk_is_one_line_and_the_next_run_works(tmp_path, gpt2, monkeypatch, capsys) -> None:
    (tmp_path / "a.txt").write_text("alpha beta")
    real = _PartWriter._write

    def full(self, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_PartWriter, "_write", full)
    argv = ["prepare", str(tmp_path / "a.txt"), "-o", str(tmp_path / "s"), "--workers", "1"]
    assert main([*argv, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no space left on the disk of" in err and "s.partial" in err
    monkeypatch.setattr(_PartWriter, "_write", real)
    assert main([*argv, "--quiet", "--val-fraction", "0"]) == 0
    assert ids_of(TokenStore.open(tmp_path / "s")) == gpt2.encode("alpha beta")


def test_python_names_arguments_cli_names_flags(tmp_path, capsys) -> None:
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9")
    with pytest.raises(InputError, match=r"pass errors='replace' \(U\+FFFD\) or errors='skip'"):
        prepare([tmp_path / "bad.txt"], tmp_path / "s", workers=1, quiet=True)
    assert main(["prepare", str(tmp_path / "bad.txt"), "-o", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert "pass --errors replace (U+FFFD) or --errors skip" in err and "errors=" not in err
    with pytest.raises(ValueError, match=r"val_fraction=1\.5 must be"):
        prepare([tmp_path / "bad.txt"], tmp_path / "s", val_fraction=1.5)
    with pytest.raises(SystemExit) as stop:  # the CLI checks it while parsing
        main(["prepare", str(tmp_path / "bad.txt"), "-o", "x", "--val-fraction", "1.5"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument --val-fraction: must be in [0, 1)" in err and "val_fraction" not in err


def test_shards_hold_no_stray_separator(tmp_path) -> None:
    docs = [f"a {EOT} b", f"{EOT}", "c"]
    store = prepare(None, tmp_path / "s", texts=docs, val_fraction=0, workers=1, quiet=True)
    ids = np.asarray(ids_of(store))
    assert (ids == 50256).sum() == 2  # exactly the two separators between three documents
