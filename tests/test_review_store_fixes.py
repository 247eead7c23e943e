"""Fixes for the review of issues 10 and 14 beyond tests/test_review_store.py: what --force may
replace inside a store, export's lock and commit check, Megatron prefixes, Arrow inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gptdata import prepare
from gptdata._sidefolders import foreign_entry, swap_in
from gptdata.formats import export_store
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

    def user_makes_out(sp, path, *, progress):
        out.mkdir(exist_ok=True)
        (out / "mine.txt").write_text("precious")
        return real(sp, path, progress=progress)

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
        "train.bin",
    ]
    assert not side.exists()
