"""Review of issues 10 and 14: each test pins a defect a user can hit with the store, prepare,
export or import. They fail on the code they were written against."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import gptdata
from gptdata import SimpleTokenizer, prepare
from gptdata.formats import FormatError, export_store, import_store
from gptdata.formats import export as export_mod
from gptdata.prepare.sources import InputError
from plain_formats import TEXTS, make_store, store_documents

SRC = str(Path(gptdata.__file__).resolve().parent.parent)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC}
    return subprocess.run(
        [sys.executable, "-m", "gptdata", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- export: never delete what gptdata did not create; one export per output -------------------


def test_export_never_deletes_a_folder_that_appears_while_it_runs(tmp_path, monkeypatch):
    """A folder the user makes at OUT during an export (no force) must survive the commit."""
    store = make_store(tmp_path / "store")
    out = tmp_path / "out"
    real = export_mod.write_nanogpt

    def user_makes_out(sp, path, **kw):
        if not out.exists():
            out.mkdir()
            (out / "mine.txt").write_text("precious")
        return real(sp, path, **kw)

    monkeypatch.setattr(export_mod, "write_nanogpt", user_makes_out)
    with pytest.raises(FileExistsError):
        export_store(store, out, format="nanogpt", quiet=True)
    assert (out / "mine.txt").read_text() == "precious"


def test_second_export_into_the_same_out_fails_at_once(tmp_path, monkeypatch):
    """Two exports into one OUT: the second must refuse, not delete the first's OUT.exporting."""
    store = make_store(tmp_path / "store")
    out = tmp_path / "out"
    real = export_mod.write_nanogpt
    second: list[BaseException | None] = []

    def start_a_second_export(sp, path, **kw):
        if not second:
            try:
                export_store(store, out, format="nanogpt", quiet=True)
                second.append(None)
            except (OSError, RuntimeError, ValueError) as exc:
                second.append(exc)
        return real(sp, path, **kw)

    monkeypatch.setattr(export_mod, "write_nanogpt", start_a_second_export)
    export_store(store, out, format="nanogpt", quiet=True)  # the first run must finish
    assert second and second[0] is not None, "the second export ran over the first one"
    assert "another" in str(second[0]) or "running" in str(second[0])
    assert (out / "train.bin").is_file()


# --- import: Megatron prefixes are strings, not suffix games ---------------------------------


def test_import_megatron_prefix_with_a_dot_in_its_name(tmp_path):
    """'data/c4.en_text_document' is a normal Megatron prefix (Megatron appends '.bin'/'.idx')."""
    store = make_store(tmp_path / "store")
    export_store(store, tmp_path / "meg", format="megatron", quiet=True)
    data = tmp_path / "data"
    data.mkdir()
    for ext in (".bin", ".idx"):
        os.rename(
            tmp_path / "meg" / f"train_text_document{ext}", data / f"c4.en_text_document{ext}"
        )
    # The store's IDs come from make_store's word tokenizer: name it, as a user must (with the
    # default gpt2 the trailing end-of-text of each document is not recognized and stays).
    tok = tmp_path / "vocab.json"
    SimpleTokenizer.from_text(" ".join(TEXTS)).save(tok)
    back = import_store(
        "megatron", data / "c4.en_text_document", tmp_path / "back", tokenizer=tok, quiet=True
    )
    assert store_documents(back) == store_documents(store)
    back2 = import_store(
        "megatron", data / "c4.en_text_document.idx", tmp_path / "b2", tokenizer=tok, quiet=True
    )
    assert store_documents(back2) == store_documents(store)


def test_import_missing_megatron_prefix_is_one_line_and_leaves_no_partial(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(FormatError, match="not found"):
        import_store("megatron", tmp_path / "nothere", out, quiet=True)
    assert not (tmp_path / "out.partial").exists()


# --- prepare: Hugging Face / Arrow inputs ------------------------------------------------------


def _save_to_disk(folder: Path, texts: list[str]) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(folder))


def test_prepare_folder_holding_a_save_to_disk_dataset_does_not_drop_it_silently(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "notes.txt").write_text("some notes")
    _save_to_disk(corpus / "wiki", ["first row", "second row", "third row"])
    try:
        store = prepare(corpus, tmp_path / "store", workers=1, quiet=True, val_fraction=0.0)
    except InputError as exc:  # refusing and naming it would also be honest
        assert "wiki" in str(exc)
        return
    assert store.n_documents == 4, "the dataset's 3 rows were silently skipped"


def test_prepare_folder_of_bare_arrow_files(tmp_path):
    _save_to_disk(tmp_path / "ds", ["first row", "second row", "third row"])
    bare = tmp_path / "bare"
    bare.mkdir()
    for p in (tmp_path / "ds").glob("*.arrow"):
        (bare / p.name).write_bytes(p.read_bytes())
    store = prepare(bare, tmp_path / "store", workers=1, quiet=True, val_fraction=0.0)
    assert store.n_documents == 3


def test_truncated_arrow_error_names_the_file(tmp_path):
    _save_to_disk(tmp_path / "ds", [f"row number {i} " * 20 for i in range(50)])
    data = next((tmp_path / "ds").glob("*.arrow")).read_bytes()
    bad = tmp_path / "cut.arrow"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises((InputError, ValueError, OSError), match="cut.arrow"):
        prepare(bad, tmp_path / "store", workers=1, quiet=True)
    assert not (tmp_path / "store.partial").exists()


# --- the CLI names flags, not Python arguments ---------------------------------------------------


def test_cli_prepare_summary_names_flags_not_python_arguments(tmp_path):
    (tmp_path / "small.txt").write_text("tiny <|endoftext|> text")
    (tmp_path / "large.txt").write_text("many words here " * 2000)
    r = _cli(
        "prepare",
        "small.txt",
        "large.txt",
        "-o",
        "store",
        "--val-fraction",
        "0.3",
        "--split-by",
        "documents",
        "--seed",
        "1",
        "--workers",
        "1",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    lines = [
        ln
        for ln in r.stderr.splitlines()
        if ln.startswith(("split by", "warning:")) or "literal <|endoftext|>" in ln
    ]
    assert any("literal" in ln for ln in lines), r.stderr
    for ln in lines:
        for py in ("val_fraction=", "split_by=", "special_text="):
            assert py not in ln, f"CLI line names a Python argument: {ln!r}"


# --- validation split: the share asked for, for any corpus of two or more documents ------------


def test_tail_split_share_with_repeated_documents(tmp_path):
    """50 copies of one short line (boilerplate rows are common): val must not be 0 tokens."""
    store = prepare(
        None,
        tmp_path / "store",
        texts=["same line here"] * 50,
        val_fraction=0.1,
        workers=1,
        quiet=True,
    )
    share = len(store.split("val")) / store.n_tokens
    assert 0.05 <= share <= 0.15, f"val share {share:.1%} for val_fraction=0.1"


def test_off_share_warning_does_not_recommend_the_policy_already_used(tmp_path, capsys):
    prepare(
        None,
        tmp_path / "store",
        texts=["same line here"] * 50,
        val_fraction=0.1,
        workers=1,
        split_by="tail",
    )
    err = capsys.readouterr().err
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    for ln in warnings:
        assert "split_by='tail' gives" not in ln, f"already split by tail: {ln!r}"


# --- signals ---------------------------------------------------------------------------------


def _corpus(folder: Path, files: int = 60, words: int = 60_000) -> Path:
    import random

    rng = random.Random(3)
    folder.mkdir()
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(5000)]
    for k in range(files):
        (folder / f"f{k:03d}.txt").write_text(" ".join(rng.choices(vocab, k=words)))
    return folder


def _entry() -> list[str]:
    """The installed console script when there is one (what a user runs), else python -m."""
    script = Path(sys.executable).with_name("gptdata")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gptdata"]


def _signal_prepare(tmp_path: Path, corpus: Path, signum: int, delays: list[float]):
    import shutil
    import signal as _signal  # noqa: F401
    import time

    # The delay counts from the moment gptdata's own imports begin (the import-time line of
    # gptdata._startup, which the package imports first): a signal that lands while the
    # interpreter itself starts (site, encodings), before any line of gptdata has run, cannot be
    # handled by gptdata, and on a loaded machine 0.1 s after Popen can be that early.
    env = {**os.environ, "PYTHONPATH": SRC, "PYTHONPROFILEIMPORTTIME": "1"}
    for d in delays:
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        shutil.rmtree(tmp_path / "out.partial", ignore_errors=True)
        log = tmp_path / "stderr.txt"
        with open(log, "w") as err_fh:
            p = subprocess.Popen(
                [*_entry(), "prepare", str(corpus), "-o", str(tmp_path / "out"), "--workers", "2"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err_fh,
            )
            deadline = time.monotonic() + 60
            while "gptdata._startup" not in log.read_text() and p.poll() is None:
                assert time.monotonic() < deadline, "gptdata never started importing"
                time.sleep(0.002)
            time.sleep(d)
            p.send_signal(signum)
            p.wait(timeout=120)
        yield d, p.returncode, log.read_text()


def test_ctrl_c_during_start_up_prints_no_traceback(tmp_path):
    """The issue: 'Ctrl-C during start-up prints no traceback' (today: during the imports)."""
    import signal

    corpus = _corpus(tmp_path / "c", files=2, words=20_000)
    for d, rc, err in _signal_prepare(tmp_path, corpus, signal.SIGINT, [0.1, 0.15, 0.2, 0.3]):
        assert "Traceback" not in err, f"SIGINT after {d} s: rc={rc}\n{err[-400:]}"


def test_import_megatron_folder_never_puts_a_test_split_into_train(tmp_path):
    """Megatron folders often hold train/valid/test prefixes: test documents must not be
    trained on (refuse, or keep them out of train)."""
    store = make_store(tmp_path / "store")
    export_store(store, tmp_path / "meg", format="megatron", quiet=True)
    folder = tmp_path / "folder"
    folder.mkdir()
    src = tmp_path / "meg" / "train_text_document"
    for name in ("train", "valid", "test"):
        for ext in (".bin", ".idx"):
            (folder / f"{name}_text_document{ext}").write_bytes(src.with_suffix(ext).read_bytes())
    n = store.split("train").n_documents
    try:
        back = import_store("megatron", folder, tmp_path / "back", quiet=True)
    except (FormatError, ValueError) as exc:
        assert "test" in str(exc)
        return
    assert back.split("train").n_documents == n, "test_text_document was imported as train"


def test_prepare_force_keeps_files_the_user_put_inside_the_store(tmp_path):
    """--force replaces a store, but files gptdata never wrote (notes, an export made with
    -o STORE/nanogpt) are not its to delete: refuse, or keep them."""
    store = make_store(tmp_path / "store")
    (tmp_path / "store" / "my-notes.txt").write_text("precious")
    export_store(store, tmp_path / "store" / "nanogpt", format="nanogpt", quiet=True)
    try:
        make_store_force = prepare(
            None, tmp_path / "store", texts=["new text"], workers=1, quiet=True, force=True
        )
    except (FileExistsError, ValueError) as exc:
        assert "my-notes.txt" in str(exc) or "nanogpt" in str(exc)
        return
    assert make_store_force.n_documents == 1
    assert (tmp_path / "store" / "my-notes.txt").read_text() == "precious"
