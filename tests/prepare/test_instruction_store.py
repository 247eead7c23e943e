"""prepare --instructions: masks in the store, equal for any worker count, after a kill and resume,
and equal to a direct computation; the test split; InstructionDataset read from the store."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import kill_after_first_unit
from gptdata import get_tokenizer
from gptdata.prepare.driver import prepare
from gptdata.prepare.instructions import format_example
from gptdata.store import StoreError, TokenStore
from gptdata.store.masks import MaskWriter, example_mask, read_mask
from gptdata.store.splits import split_of
from gptdata.windows.finetune import InstructionDataset

SAMPLE = str(resources.files("gptdata") / "data" / "instructions.json")


def store_bytes(root) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def write_sets(tmp_path, n_files: int = 3, per_file: int = 40):
    """Several instruction files (one work unit each): sorted names, distinct examples."""
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    for f in range(n_files):
        records = [
            {
                "instruction": f"Task {f}.{i}: repeat the word.",
                "input": "x" * (i % 3),
                "output": f"word {i} " * (1 + i % 4),
            }
            for i in range(per_file)
        ]
        path = folder / f"set{f}.json"
        path.write_text(json.dumps(records))
        paths.append(str(path))
    return paths


def test_masks_equal_a_direct_computation(tmp_path) -> None:
    store = prepare(
        [SAMPLE], tmp_path / "s", instructions=True, quiet=True, workers=1, val_fraction=0.0
    )
    tok = get_tokenizer("gpt2")
    records = json.loads(open(SAMPLE).read())
    want_ids: list[int] = []
    want_mask: list[int] = []
    for k, rec in enumerate(records):
        prompt, response = format_example(rec)
        ids = tok.encode(prompt + response, special="text")
        p = len(tok.encode(prompt, special="text"))
        if k:
            want_ids.append(tok.eot_id)
            want_mask.append(1)  # the example's end-of-text is response
        want_ids += ids
        want_mask += [0] * p + [1] * (len(ids) - p)
    train = store.split("train")
    assert train[:].tolist() == want_ids
    assert train.response_mask().astype(int).tolist() == want_mask
    assert train.response_mask(5, 50).astype(int).tolist() == want_mask[5:50]
    store.verify()


def test_one_and_two_workers_byte_identical(tmp_path) -> None:
    paths = write_sets(tmp_path)
    opts = dict(instructions=True, quiet=True, val_fraction=0.1, test_fraction=0.1)
    one = prepare(paths, tmp_path / "one", workers=1, **opts)
    prepare(paths, tmp_path / "two", workers=2, **opts)
    assert store_bytes(tmp_path / "one") == store_bytes(tmp_path / "two")
    assert one.splits == ["train", "val", "test"]
    assert all(one.split(s).has_masks for s in one.splits)


def test_killed_instruction_run_resumes_identical(tmp_path) -> None:
    paths = write_sets(tmp_path, n_files=4)
    prepare(paths, tmp_path / "ref", workers=1, quiet=True, instructions=True)
    out = tmp_path / "s"
    cmd = [
        sys.executable,
        "-m",
        "gptdata",
        "prepare",
        *paths,
        "--instructions",
        "-o",
        str(out),
        "--workers",
        "1",
        "--quiet",
    ]
    kill_after_first_unit(cmd, out, unit_delay="0.5")
    result = subprocess.run(cmd[:-1], capture_output=True, text=True, check=True)
    assert "resuming" in result.stderr
    assert store_bytes(out) == store_bytes(tmp_path / "ref")


def test_store_dataset_equals_json_dataset(tmp_path) -> None:
    prepare([SAMPLE], tmp_path / "s", instructions=True, quiet=True, val_fraction=0.0)
    direct = InstructionDataset(SAMPLE)
    stored = InstructionDataset(tmp_path / "s")
    assert len(stored) == len(direct)
    assert list(stored) == list(direct)
    assert stored.texts == direct.texts
    from_split = InstructionDataset(TokenStore.open(tmp_path / "s").split("train"))
    assert list(from_split) == list(direct)


def test_split_examples_are_the_hash_split(tmp_path) -> None:
    store = prepare(
        [SAMPLE],
        tmp_path / "s",
        instructions=True,
        quiet=True,
        val_fraction=0.05,
        test_fraction=0.1,
    )
    direct = InstructionDataset(SAMPLE)
    by_split: dict[str, list] = {"train": [], "val": [], "test": []}
    for (p, r), ex in zip(direct.texts, direct, strict=True):
        by_split[split_of(p + r, 0.05, 0, 0.1)].append(ex)
    for name in store.splits:
        assert list(InstructionDataset(tmp_path / "s", split=name)) == by_split[name]


def test_plain_store_reads_as_before(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("Hello world. " * 50)
    store = prepare([tmp_path / "a.txt"], tmp_path / "s", quiet=True, val_fraction=0.0)
    assert "mask" not in store.manifest["splits"]["train"]["shards"][0]
    assert "test_fraction" not in store.manifest["options"]
    assert store.split("train").response_mask() is None
    with pytest.raises(ValueError, match="no response masks"):
        InstructionDataset(tmp_path / "s")


def test_test_fraction_for_text_and_its_checks(tmp_path) -> None:
    docs = [f"document number {i} " * 5 for i in range(400)]
    store = prepare(
        None, tmp_path / "s", texts=docs, quiet=True, val_fraction=0.05, test_fraction=0.1
    )
    counts = {s: store.split(s).n_documents for s in store.splits}
    want = {s: sum(split_of(d, 0.05, 0, 0.1) == s for d in docs) for s in counts}
    assert counts == want and counts["test"] > 20 and counts["val"] > 5
    with pytest.raises(ValueError, match=r"val_fraction=0.5 \+ test_fraction=0.5"):
        prepare(None, tmp_path / "t", texts=docs, val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match="needs a document split"):
        prepare(None, tmp_path / "t", texts=docs, test_fraction=0.1, split_by="tail")


@given(st.floats(0, 0.5), st.floats(0, 0.45), st.text(max_size=30))
def test_test_cut_never_moves_val(val: float, test: float, text: str) -> None:
    with_test = split_of(text, val, 3, test)
    assert (with_test == "val") == (split_of(text, val, 3) == "val")


@settings(max_examples=60)
@given(
    st.lists(st.tuples(st.integers(1, 30), st.integers(0, 35)), min_size=1, max_size=12),
    st.integers(0, 400),
    st.integers(0, 400),
)
def test_packed_mask_reads_any_range(tmp_path_factory, docs, a, b) -> None:
    root = tmp_path_factory.mktemp("m")
    writer = MaskWriter()
    want: list[bool] = []
    for k, (n, p) in enumerate(docs):
        bits = example_mask(n, p)
        writer.add(bits, separator=k > 0)
        want += ([True] if k else []) + bits.tolist()
    entry = writer.write(root / "x.mask", "x.mask")
    (root / "x.mask.tmp").rename(root / "x.mask")
    assert entry["bits"] == len(want)

    class S:
        tokens = len(want)
        mask = entry

    lo, hi = sorted((min(a, len(want)), min(b, len(want))))
    got = read_mask(root, [S], np.array([0]), lo, hi)
    assert got.tolist() == want[lo:hi]


def test_tampered_mask_is_refused(tmp_path) -> None:
    prepare([SAMPLE], tmp_path / "s", instructions=True, quiet=True, val_fraction=0.0)
    mask = next((tmp_path / "s" / "shards").glob("*.mask"))
    data = bytearray(mask.read_bytes())
    data[0] ^= 0xFF
    mask.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="sha256 mismatch"):
        TokenStore.open(tmp_path / "s").verify()
    mask.write_bytes(bytes(data[:-1]))
    with pytest.raises(StoreError, match="bytes of mask"):
        TokenStore.open(tmp_path / "s")
    doc = json.loads((tmp_path / "s" / "manifest.json").read_text())
    doc["splits"]["train"]["shards"][0]["mask"]["bits"] += 1
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(StoreError, match="one bit per token"):
        TokenStore.open(tmp_path / "s")


def test_cli_prepare_instructions_book_split(tmp_path) -> None:
    out = tmp_path / "sft"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "gptdata",
            "prepare",
            SAMPLE,
            "--instructions",
            "--test-fraction",
            "0.1",
            "--val-fraction",
            "0.05",
            "-o",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "split      test:" in r.stdout
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "gptdata",
            "prepare",
            SAMPLE,
            "--instructions",
            "--split-by",
            "tail",
            "-o",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and r.stderr.startswith("error: ") and "tail" in r.stderr


def test_cli_plan_instructions_padded_vs_packed(tmp_path) -> None:
    from gptdata.windows.finetune import InstructionDataset as DS
    from gptdata.windows.packing import padding_report

    r = subprocess.run(
        [sys.executable, "-m", "gptdata", "plan", SAMPLE, "--instructions", "--max-length",
         "512", "--batch-size", "8"], capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    rep = padding_report(list(DS(SAMPLE)), batch_size=8, max_length=512)
    assert f"{rep.padded_pad_tokens:,} pad tokens per epoch" in r.stdout
    assert f"{rep.packed_rows:,} rows of 513 tokens, {rep.packed_pad_tokens:,} fill" in r.stdout
    assert f"loss tokens per padded batch: {rep.loss_tokens_per_batch:,.1f}" in r.stdout
    r = subprocess.run(
        [sys.executable, "-m", "gptdata", "plan", SAMPLE, "--max-length", "8", "--batch-size", "2"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 1 and r.stderr == (
        "error: plan needs --stride N (or --instructions). See gptdata plan --help.\n"
    )


def test_bad_records_skipped_and_counted(tmp_path) -> None:
    path = tmp_path / "d.json"
    good = {"instruction": "Say hi.", "output": "Hi!"}
    path.write_text(json.dumps([good, {"instruction": "No output."}, good | {"input": 3}]))
    with pytest.raises(Exception, match=r"record 1: no field 'output'"):
        prepare([path], tmp_path / "s", instructions=True, quiet=True)
    store = prepare([path], tmp_path / "s", instructions=True, quiet=True, errors="skip",
                    val_fraction=0.0)  # fmt: skip
    assert store.manifest["stats"] == {"bad_records": 2}
    assert store.split("train").n_documents == 1


@settings(max_examples=8, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text("ab \n", min_size=1, max_size=12).filter(str.strip),
            st.text("xy \n", max_size=12),
        ),
        min_size=1,
        max_size=12,
    ),
    st.integers(8, 80),
)
def test_masks_across_shards_equal_direct(tmp_path_factory, pairs, shard_tokens) -> None:
    """Many small shards: the implied separator between two shards is response, like a stored one."""
    root = tmp_path_factory.mktemp("h")
    path = root / "d.jsonl"
    path.write_text("".join(json.dumps({"instruction": i, "output": o}) + "\n" for i, o in pairs))
    store = prepare([path], root / "s", instructions=True, quiet=True, val_fraction=0.0,
                    shard_tokens=shard_tokens, workers=1)  # fmt: skip
    tok = get_tokenizer("gpt2")
    want: list[int] = []
    for k, (i, o) in enumerate(pairs):
        prompt, response = format_example({"instruction": i, "output": o})
        n = len(tok.encode(prompt + response, special="text"))
        p = min(len(tok.encode(prompt, special="text")), n)
        want += ([1] if k else []) + [0] * p + [1] * (n - p)
    train = store.split("train")
    assert train.response_mask().astype(int).tolist() == want
    ds = InstructionDataset(root / "s")
    assert [e.prompt_length for e in ds] == [
        min(len(tok.encode(format_example({"instruction": i, "output": o})[0], special="text")),
            len(e.token_ids))
        for (i, o), e in zip(pairs, ds, strict=True)
    ]  # fmt: skip
