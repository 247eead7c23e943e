"""Issue 18, inputs: nothing is read from outside what the user named; held-out names by words.

Every test here failed before the fix: a Hugging Face folder's JSON could point anywhere, a
DatasetDict that listed itself recursed, and held-out names were matched whole.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gptdata import prepare
from gptdata.prepare.hf_input import HFInputError, hf_data_files
from gptdata.store.heldout import held_out_word, is_val_name

pa = pytest.importorskip("pyarrow")
datasets = pytest.importorskip("datasets")


def _dataset(folder, texts=("one two", "three")):
    datasets.Dataset.from_dict({"text": list(texts)}).save_to_disk(str(folder))
    return folder


def _state(folder):
    return json.loads((folder / "state.json").read_text())


def _set_state(folder, state):
    (folder / "state.json").write_text(json.dumps(state))


@pytest.mark.parametrize("escape", ["../outside/data-00000-of-00001.arrow", "ABSOLUTE"])
def test_state_json_entry_outside_the_folder_is_refused(tmp_path, escape):
    outside = _dataset(tmp_path / "outside", ["secret text, never named"])
    mine = _dataset(tmp_path / "mine")
    state = _state(mine)
    if escape == "ABSOLUTE":
        escape = str(outside / "data-00000-of-00001.arrow")
    state["_data_files"][0]["filename"] = escape
    _set_state(mine, state)
    with pytest.raises(HFInputError, match=r"state\.json: lists data file .* resolves outside"):
        hf_data_files(str(mine))
    with pytest.raises(ValueError, match=r"resolves outside .* \(symlinks followed\)"):
        prepare([mine], tmp_path / "store", workers=1, quiet=True)
    assert not (tmp_path / "store").exists()


def test_symlinked_data_file_pointing_out_is_refused(tmp_path):
    outside = _dataset(tmp_path / "outside")
    mine = _dataset(tmp_path / "mine")
    os.symlink(outside / "data-00000-of-00001.arrow", mine / "link.arrow")
    state = _state(mine)
    state["_data_files"][0]["filename"] = "link.arrow"
    _set_state(mine, state)
    with pytest.raises(HFInputError, match=r"'link\.arrow', which resolves outside"):
        hf_data_files(str(mine))


def test_dataset_dict_split_outside_is_refused(tmp_path):
    _dataset(tmp_path / "elsewhere")
    dd = tmp_path / "dd"
    dd.mkdir()
    (dd / "dataset_dict.json").write_text(json.dumps({"splits": ["../elsewhere"]}))
    with pytest.raises(HFInputError, match=r"dataset_dict\.json: lists split '\.\./elsewhere'"):
        hf_data_files(str(dd))


@pytest.mark.parametrize("splits", [["."], [""], ["./"]])
def test_dataset_dict_listing_itself_is_one_line(tmp_path, splits):
    dd = tmp_path / "dd"
    dd.mkdir()
    (dd / "dataset_dict.json").write_text(json.dumps({"splits": splits}))
    with pytest.raises(HFInputError) as info:
        hf_data_files(str(dd))
    msg = str(info.value)
    assert "dataset_dict.json" in msg and "\n" not in msg and len(msg) < 400


def test_loop_of_folders_is_one_line_on_the_command_line(tmp_path):
    dd = tmp_path / "dd"
    (dd / "a").mkdir(parents=True)
    (dd / "dataset_dict.json").write_text(json.dumps({"splits": ["a"]}))
    os.symlink("..", dd / "a" / "up")  # a/up -> dd: a loop, and outside a/
    (dd / "a" / "dataset_dict.json").write_text(json.dumps({"splits": ["up"]}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    for verb in (["prepare", str(dd), "-o", str(tmp_path / "s")], ["inspect", str(dd)]):
        r = subprocess.run(
            [sys.executable, "-m", "gptdata", *verb], capture_output=True, text=True, env=env
        )
        assert r.returncode != 0
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
        assert "dataset_dict.json" in lines[0] and len(lines[0]) < 600
        assert "RecursionError" not in r.stderr


def test_long_hostile_entry_gives_a_short_message(tmp_path):
    mine = _dataset(tmp_path / "mine")
    state = _state(mine)
    state["_data_files"][0]["filename"] = "../" * 5000 + "etc/passwd"
    _set_state(mine, state)
    with pytest.raises(HFInputError) as info:
        hf_data_files(str(mine))
    assert len(str(info.value)) < 500


@pytest.mark.parametrize(
    ("name", "word"),
    [
        ("validation_matched", "validation"),
        ("test_other", "test"),
        ("valid_000000.bin", "valid"),
        ("fineweb_validation_000000.bin", "validation"),
        ("fineweb-val-000000.bin", "val"),
        ("dev.clean", "dev"),
        ("heldout2", "heldout"),
        ("EVAL", "eval"),
        ("train", None),
        ("fineweb_train_000001.bin", None),
        ("interval", None),  # words, not substrings
        ("devices", None),
    ],
)
def test_held_out_words(name, word):
    assert held_out_word(name) == word


def test_val_names_are_the_val_words():
    assert is_val_name("fineweb-val-000000.bin") and is_val_name("valid_000000.bin")
    assert not is_val_name("test_000000.bin") and not is_val_name("train_000000.bin")


@pytest.mark.parametrize("split", ["validation_matched", "test_other", "dev-clean"])
def test_dataset_dict_held_out_split_by_its_words_is_refused(tmp_path, split):
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["a b", "c"]}),
            split: datasets.Dataset.from_dict({"text": ["held out"]}),
        }
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ValueError, match=rf"held-out split\(s\) {split}: .* Point at .*dd/train"):
        prepare([tmp_path / "dd"], tmp_path / "s", workers=1, quiet=True)
