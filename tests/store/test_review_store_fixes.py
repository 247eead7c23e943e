"""Fixes for the review of issues 10 and 14 beyond tests/test_review_store.py: what --force may
replace inside a store, export's lock and commit check, Megatron prefixes, Arrow inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gptdata import prepare
from gptdata.formats import export_store
from gptdata.store.sidefolders import foreign_entry, swap_in
from plain_formats import make_store


def test_force_refuses_a_store_holding_an_export_folder_and_leaves_it(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store")
    export_store(store, tmp_path / "store" / "nanogpt", format="nanogpt", quiet=True)
    before = sorted(p.name for p in (tmp_path / "store").rglob("*"))
    with pytest.raises(FileExistsError, match=r"store/nanogpt.*force=True replaces only"):
        prepare(None, tmp_path / "store", texts=["new"], workers=1, quiet=True, force=True)
    assert sorted(p.name for p in (tmp_path / "store").rglob("*")) == before


def test_force_refuses_a_foreign_file_inside_shards(tmp_path: Path) -> None:
    make_store(tmp_path / "store")
    (tmp_path / "store" / "shards" / "README").write_text("mine")
    assert foreign_entry(tmp_path / "store") == "shards/README"
    with pytest.raises(FileExistsError, match=r"shards/README"):
        prepare(None, tmp_path / "store", texts=["new"], workers=1, quiet=True, force=True)
    assert (tmp_path / "store" / "shards" / "README").read_text() == "mine"


def test_force_still_replaces_a_plain_store(tmp_path: Path) -> None:
    make_store(tmp_path / "store")
    assert foreign_entry(tmp_path / "store") is None
    again = prepare(None, tmp_path / "store", texts=["new"], workers=1, quiet=True, force=True)
    assert again.n_documents == 1


def test_commit_refuses_a_file_put_into_the_store_while_prepare_ran(tmp_path: Path) -> None:
    """swap_in checks again at commit: the old store and the new work both stay."""
    make_store(tmp_path / "store")
    make_store(tmp_path / "side", texts=["other text"])
    (tmp_path / "store" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        swap_in(tmp_path / "side", tmp_path / "store", force=True, plan_id="p")
    assert (tmp_path / "store" / "notes.txt").read_text() == "mine"
    assert (tmp_path / "side" / "manifest.json").is_file()


def test_export_refuses_an_out_made_during_the_run_even_with_force(tmp_path, monkeypatch):
    from gptdata.formats import export as export_mod

    store = make_store(tmp_path / "store")
    out = tmp_path / "out"
    real = export_mod.write_nanogpt

    def user_makes_out(sp, path, **kw):
        out.mkdir(exist_ok=True)
        (out / "mine.txt").write_text("precious")
        return real(sp, path, **kw)

    monkeypatch.setattr(export_mod, "write_nanogpt", user_makes_out)
    with pytest.raises(FileExistsError, match="appeared during the export"):
        export_store(store, out, format="nanogpt", quiet=True, force=True)
    assert (out / "mine.txt").read_text() == "precious"
    assert not (tmp_path / "out.exporting").exists()


def test_a_killed_export_of_ours_is_taken_over_and_no_lock_file_stays(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store")
    side = tmp_path / "out.exporting"
    side.mkdir()
    (side / "gptdata-export.json").write_text('{"format": "gptdata-export", "complete": false}')
    (side / "train.bin").write_bytes(b"half")
    export_store(store, tmp_path / "out", format="nanogpt", quiet=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "gptdata-export.json",
        "meta.json",
        "meta.pkl",  # not a GPT-2 store: nanoGPT's own meta.pkl too
        "train.bin",
    ]
    assert not side.exists()


# --- import: Megatron prefixes, held-out splits, missing inputs --------------------------------


def _vocab(tmp_path: Path) -> Path:
    from gptdata import SimpleTokenizer
    from plain_formats import TEXTS

    tok = tmp_path / "vocab.json"
    SimpleTokenizer.from_text(" ".join(TEXTS)).save(tok)
    return tok


def test_megatron_folder_with_dotted_prefixes_keeps_train_and_val(tmp_path: Path) -> None:
    from gptdata.formats import import_store
    from plain_formats import store_documents

    store = make_store(tmp_path / "store")
    export_store(store, tmp_path / "meg", format="megatron", quiet=True)
    folder = tmp_path / "folder"
    folder.mkdir()
    for split in ("train", "valid"):
        for ext in (".bin", ".idx"):
            src = tmp_path / "meg" / f"train_text_document{ext}"
            (folder / f"c4.en_{split}_text_document{ext}").write_bytes(src.read_bytes())
    back = import_store("megatron", folder, tmp_path / "back", tokenizer=_vocab(tmp_path))
    assert store_documents(back, "train") == store_documents(store, "train")
    assert store_documents(back, "val") == store_documents(store, "train")


def test_held_out_split_is_refused_with_the_fix_and_nothing_written(tmp_path: Path) -> None:
    from gptdata.formats import FormatError, import_store

    store = make_store(tmp_path / "store")
    export_store(store, tmp_path / "meg", format="megatron", quiet=True)
    for ext in (".bin", ".idx"):
        src = tmp_path / "meg" / f"train_text_document{ext}"
        (tmp_path / "meg" / f"dev_text_document{ext}").write_bytes(src.read_bytes())
    with pytest.raises(FormatError, match=r"dev_text_document looks like a 'dev' split.*Move it"):
        import_store("megatron", tmp_path / "meg", tmp_path / "back", quiet=True)
    assert not (tmp_path / "back").exists() and not (tmp_path / "back.partial").exists()
    # Named alone, the prefix is the user's explicit choice: it is imported, as val (issue 18:
    # held-out data is never trained on).
    # The export recorded its tokenizer (SimpleTokenizer of plain_formats.TEXTS): pass it.
    from gptdata import SimpleTokenizer
    from plain_formats import TEXTS

    one = import_store(
        "megatron",
        tmp_path / "meg" / "dev_text_document",
        tmp_path / "one",
        tokenizer=SimpleTokenizer.from_text(" ".join(TEXTS)),
        quiet=True,
    )
    assert one.split("val").n_documents == store.split("train").n_documents


def test_llmc_folder_with_a_test_shard_is_refused(tmp_path: Path) -> None:
    from gptdata.formats import FormatError, import_store

    store = make_store(tmp_path / "store")
    export_store(store, tmp_path / "llmc", format="llmc", quiet=True)
    src = next((tmp_path / "llmc").glob("train_*.bin"))
    (tmp_path / "llmc" / "test_000000.bin").write_bytes(src.read_bytes())
    with pytest.raises(FormatError, match=r"test_000000.bin looks like a 'test' split"):
        import_store("llmc", tmp_path / "llmc", tmp_path / "back", quiet=True)
    assert not (tmp_path / "back.partial").exists()


@pytest.mark.parametrize("fmt", ["megatron", "nanogpt", "llmc"])
def test_cli_import_of_a_missing_path_is_one_line_and_leaves_nothing(tmp_path, fmt) -> None:
    import os
    import subprocess
    import sys

    import gptdata

    src = str(Path(gptdata.__file__).resolve().parent.parent)
    r = subprocess.run(
        [sys.executable, "-m", "gptdata", "import", fmt, "nothere", "-o", "x"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": src},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: nothere")
    assert "not found" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --- prepare: Arrow and save_to_disk inputs met in a folder walk --------------------------------


def _save(folder: Path, texts: list[str]) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(folder))


def test_walk_reads_a_dataset_dict_folder_listed_files_only(tmp_path: Path) -> None:
    """A DatasetDict met in a walk: every split's listed files, never a stray cache-*.arrow."""
    datasets = pytest.importorskip("datasets")
    datasets.disable_progress_bars()
    corpus = tmp_path / "corpus"
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["a b", "c d"]}),
            "extra": datasets.Dataset.from_dict({"text": ["e f"]}),
        }
    )
    dd.save_to_disk(str(corpus / "hf"))
    stray = next((corpus / "hf" / "train").glob("*.arrow"))
    (corpus / "hf" / "train" / "cache-123.arrow").write_bytes(stray.read_bytes())
    (corpus / "state.json").write_text('{"not": "a dataset"}')  # another tool's state.json
    (corpus / "notes.txt").write_text("notes")
    store = prepare(corpus, tmp_path / "store", workers=1, quiet=True, val_fraction=0.0)
    assert store.n_documents == 4
    names = [Path(i["path"]).name for i in store.manifest["inputs"]]
    assert "cache-123.arrow" not in names


def test_truncated_arrow_in_a_folder_is_one_line_naming_it(tmp_path: Path) -> None:
    from gptdata.prepare.sources import InputError

    _save(tmp_path / "ds", [f"row {i} " * 30 for i in range(40)])
    bare = tmp_path / "bare"
    bare.mkdir()
    data = next((tmp_path / "ds").glob("*.arrow")).read_bytes()
    (bare / "part.arrow").write_bytes(data[: len(data) // 3])
    with pytest.raises((InputError, ValueError), match=r"part.arrow: truncated.*Write it again"):
        prepare(bare, tmp_path / "store", workers=1, quiet=True)
    assert not (tmp_path / "store.partial").exists()


# --- the summary names options as the caller knows them -----------------------------------------


def test_python_summary_names_arguments_and_a_tail_warning_suggests_no_tail(tmp_path, capsys):
    prepare(
        None,
        tmp_path / "s",
        texts=["one <|endoftext|> two", "three"],
        val_fraction=0.3,
        split_by="documents",
        seed=1,
        workers=1,
    )
    err = capsys.readouterr().err
    assert "(asked val_fraction=0.3)" in err
    assert "(special_text='ordinary')" in err
    from gptdata.prepare.progress import _summary
    from gptdata.store import TokenStore

    store = TokenStore.open(tmp_path / "s")
    store.manifest["options"]["split_by"] = "tail"  # as if a tail split had come out off
    assert len(store.split("val")) / store.n_tokens < 0.15  # off by more than half of 0.3
    _summary(tmp_path / "s", store, 1.0)
    err = capsys.readouterr().err
    assert "too few tokens for a tail split" in err and "split_by='tail'" not in err


# --- tail split: identical documents share val_fraction, over the whole input --------------------


def _jsonl_corpus(folder: Path) -> list[str]:
    """Two ~1.3 MB JSONL files (so several work units), a short line repeated across them."""
    import json

    folder.mkdir()
    texts = []
    for f in range(2):
        lines = []
        for i in range(40000):
            text = "same line here" if i % 3 == 0 else f"word{i % 50} other{f} " * (1 + i % 7)
            lines.append(json.dumps({"text": text}))
            texts.append(text)
        (folder / f"part{f}.jsonl").write_text("\n".join(lines) + "\n")
    return texts


def test_tail_split_numbers_identical_documents_over_all_units(tmp_path: Path) -> None:
    """The store equals a plain reference: copy number = identical documents before, in input
    order, over the whole input (not per work unit), and the repeated line's val share ~ f."""
    import numpy as np

    from gptdata import SimpleTokenizer
    from gptdata.store.splits import tail_tokens
    from plain_formats import store_documents

    texts = _jsonl_corpus(tmp_path / "c")
    tok = SimpleTokenizer.from_text(" ".join(set(texts)))
    store = prepare(
        tmp_path / "c", tmp_path / "s", tokenizer=tok, split_by="tail", val_fraction=0.1,
        workers=2, quiet=True,
    )  # fmt: skip
    assert len(store.manifest["inputs"]) == 2
    seen: dict[bytes, int] = {}
    want: dict[str, list[list[int]]] = {"train": [], "val": []}
    for text in texts:
        ids = np.array(tok.encode(text), dtype=store.dtype)
        copy = seen.get(ids.tobytes(), 0)
        seen[ids.tobytes()] = copy + 1
        k = tail_tokens(ids, 0.1, 0, copy)
        if k < len(ids):
            want["train"].append(ids[: len(ids) - k].tolist())
        if k:
            want["val"].append(ids[len(ids) - k :].tolist())
    assert store_documents(store, "train") == want["train"]
    assert store_documents(store, "val") == want["val"]
    same = tok.encode("same line here")
    n_val = sum(1 for d in want["val"] if d == same[-len(d) :] and len(d) <= len(same))
    assert 0.25 < n_val / 26668 < 0.35  # 3 tokens a copy, f=0.1: ~30 % of copies give 1 to val
