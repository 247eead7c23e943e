"""A store never reads outside itself, never crashes on a manifest, and notices being replaced.

Each test tampers with a real store (one rule at a time) and checks the one-line error, from the
Python API and from ``gptdata info`` / ``gptdata verify``.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gptdata import StoreError, TokenStore, prepare
from gptdata.cli.entry import main

TEXTS = [f"Document {i}: the cat sat on mat number {i}, then it left." for i in range(8)]
# One document per 40-token shard where TEXTS fits two: every shard of the old store changes size.
OTHER = [f"Another text {i}, " + "longer than the first kind by some words; " * 3 for i in range(9)]
OUTSIDE_BYTES = 12_346  # a size no shard has: it must never show up in an error message


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("base") / "store"
    prepare(None, root, texts=TEXTS, shard_tokens=40, val_fraction=0, workers=1, quiet=True)
    return root


@pytest.fixture
def store(base, tmp_path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(base, root)
    return root


def load(root: Path) -> dict[str, Any]:
    return json.loads((root / "manifest.json").read_text())


def save(root: Path, manifest: Any) -> None:
    (root / "manifest.json").write_text(json.dumps(manifest))


def first_shard(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["splits"]["train"]["shards"][0]


def outside_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.bin"
    path.write_bytes(b"\x01" * OUTSIDE_BYTES)
    return path


def assert_cli_error(root: Path, capsys, pattern: str) -> None:
    """`gptdata info` and `gptdata verify`: one `error:` line naming the problem, exit 1."""
    for verb in ("info", "verify"):
        code = main([verb, str(root)])
        out, err = capsys.readouterr()
        assert code == 1 and out == "", (verb, out)
        assert err.startswith("error: ") and err.count("\n") == 1, (verb, err)
        assert re.search(pattern, err), (verb, err)


# ---- paths: relative, normalized, inside the store, resolving inside it -----------------------


def _absolute(root: Path, m: dict[str, Any], tmp_path: Path) -> str:
    return str(outside_file(tmp_path))


def _dotdot(root: Path, m: dict[str, Any], tmp_path: Path) -> str:
    outside_file(tmp_path)
    return "../secret.bin"


def _inner_dotdot(root: Path, m: dict[str, Any], tmp_path: Path) -> str:
    return "shards/../shards/" + Path(first_shard(m)["file"]).name


def _double_slash(root: Path, m: dict[str, Any], tmp_path: Path) -> str:
    return "shards//" + Path(first_shard(m)["file"]).name


def _backslash(root: Path, m: dict[str, Any], tmp_path: Path) -> str:
    return "shards\\" + Path(first_shard(m)["file"]).name


PATH_CASES: dict[str, Callable[[Path, dict[str, Any], Path], str]] = {
    "absolute": _absolute,
    "dotdot": _dotdot,
    "inner-dotdot": _inner_dotdot,
    "double-slash": _double_slash,
    "backslash": _backslash,
}


@pytest.mark.parametrize("key", ["file", "index"])
@pytest.mark.parametrize("case", list(PATH_CASES))
def test_paths_must_be_normalized_and_relative(store, tmp_path, capsys, case, key) -> None:
    m = load(store)
    first_shard(m)[key] = PATH_CASES[case](store, m, tmp_path)
    save(store, m)
    with pytest.raises(StoreError, match=rf"'splits\.train\.shards\[0\]\.{key}' is .*normalized"):
        TokenStore.open(store)
    assert_cli_error(store, capsys, r"normalized paths inside its folder")


def test_absolute_path_to_a_copy_of_the_shard_is_refused(store, tmp_path) -> None:
    # Today's reader accepted this: right size, so it served a file outside the store.
    m = load(store)
    copy = tmp_path / "copy.bin"
    shutil.copy(store / first_shard(m)["file"], copy)
    first_shard(m)["file"] = str(copy)
    save(store, m)
    with pytest.raises(StoreError, match=r"shards\[0\]\.file' is '/.*normalized paths inside"):
        TokenStore.open(store)


@pytest.mark.parametrize("key", ["file", "index"])
def test_symlink_pointing_outside_is_refused_without_leaking(store, tmp_path, capsys, key) -> None:
    m = load(store)
    expected = TokenStore.open(store).split("train")[:3].tolist()
    target = store / first_shard(m)[key]
    real = target.with_name("real." + key)
    target.rename(real)
    target.symlink_to(real.name)  # a symlink that stays inside the store is fine
    assert TokenStore.open(store).split("train")[:3].tolist() == expected
    target.unlink()
    target.symlink_to(outside_file(tmp_path))
    with pytest.raises(StoreError, match=r"resolves outside the store") as info:
        TokenStore.open(store)
    msg = str(info.value)
    assert "12,346" not in msg and "12346" not in msg and "1,543" not in msg
    assert_cli_error(store, capsys, r"resolves outside the store")


def test_verify_rechecks_paths_swapped_after_open(store, tmp_path) -> None:
    opened = TokenStore.open(store)
    target = store / first_shard(load(store))["file"]
    target.unlink()
    target.symlink_to(outside_file(tmp_path))
    with pytest.raises(StoreError, match=r"\.bin: now resolves outside the store\.$"):
        opened.verify()


def test_symlinked_shards_folder_outside_is_refused(store, tmp_path) -> None:
    moved = tmp_path / "elsewhere"
    shutil.move(store / "shards", moved)
    (store / "shards").symlink_to(moved)
    with pytest.raises(StoreError, match=r"shards\[0\]\.file' is .*resolves outside the store"):
        TokenStore.open(store)


def test_manifest_symlinked_outside_is_refused(store, tmp_path) -> None:
    outside = tmp_path / "m.json"
    shutil.move(store / "manifest.json", outside)
    (store / "manifest.json").symlink_to(outside)
    with pytest.raises(StoreError, match=r"the manifest resolves outside the store"):
        TokenStore.open(store)


# ---- dtype: only what gptdata writes ----------------------------------------------------------


@pytest.mark.parametrize("dtype", ["object", "int16", "float64", "int64", "<u2", None, 2])
def test_dtype_must_be_one_gptdata_writes(store, capsys, dtype) -> None:
    m = load(store)
    m["dtype"] = dtype
    save(store, m)
    with pytest.raises(StoreError, match=r"'dtype' is .*; gptdata stores only uint16 or uint32"):
        TokenStore.open(store)
    assert_cli_error(store, capsys, r"'dtype' is .*stores only uint16 or uint32")


def test_dtype_must_match_vocab_size(store) -> None:
    m = load(store)
    m["dtype"] = "uint32"
    save(store, m)
    with pytest.raises(StoreError, match=r"'dtype' is uint32, but vocab_size 50,257 is stored as"):
        TokenStore.open(store)


def test_int16_sized_to_pass_would_serve_negative_ids(store) -> None:
    # int16 has uint16's size, so sizes and indexes all check out; only the dtype rule stops it.
    m = load(store)
    m["dtype"] = "int16"
    save(store, m)
    with pytest.raises(StoreError, match=r"'dtype' is 'int16'"):
        TokenStore.open(store)


# ---- every field: type and range --------------------------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(m: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = m
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if value is _DELETE:
            del node[last]
        else:
            node[int(last) if isinstance(node, list) else last] = value

    return edit


_DELETE = object()
SHARD = "splits/train/shards/0"

FIELD_CASES = [
    # (edit, pattern naming the field)
    (_set("splits", []), r"'splits' must be a non-empty object .* got a list"),
    (_set("splits", {}), r"'splits' must be a non-empty object .* \(empty\)"),
    (_set("splits/train", []), r"'splits\.train' must be an object"),
    (_set("splits/train/shards", {}), r"'splits\.train\.shards' must be a list"),
    (
        _set("splits/train/tokens", "99"),
        r"'splits\.train\.tokens' must be an integer, got a string",
    ),
    (_set("splits/train/tokens", -1), r"'splits\.train\.tokens' is -1, but must be >= 0"),
    (_set("splits/train/tokens", 10**30), r"'splits\.train\.tokens' is .*, more than a store"),
    (_set("splits/train/documents", 2.0), r"'splits\.train\.documents' must be an integer"),
    (_set("splits/train/documents", -3), r"'splits\.train\.documents' is -3"),
    (_set(SHARD, "x"), r"'splits\.train\.shards\[0\]' must be an object"),
    (_set(SHARD + "/tokens", True), r"shards\[0\]\.tokens' must be an integer, got a boolean"),
    (_set(SHARD + "/tokens", -5), r"shards\[0\]\.tokens' is -5, but must be >="),
    (_set(SHARD + "/documents", 0), r"shards\[0\]\.documents' is 0, but must be >= 1"),
    (_set(SHARD + "/documents", "1"), r"shards\[0\]\.documents' must be an integer"),
    (_set(SHARD + "/sha256", 5), r"shards\[0\]\.sha256' must be 64 lowercase hex"),
    (_set(SHARD + "/index_sha256", "abc"), r"shards\[0\]\.index_sha256' must be 64 lowercase"),
    (_set(SHARD + "/file", 7), r"shards\[0\]\.file' must be a non-empty string, got an integer"),
    (_set(SHARD + "/index", ""), r"shards\[0\]\.index' must be a non-empty string"),
    (_set(SHARD + "/index", "manifest.json"), r"shards\[0\]\.index' is 'manifest\.json'"),
    (_set("tokenizer", "gpt2"), r"'tokenizer' must be an object"),
    (_set("tokenizer/name", 3), r"'tokenizer\.name' must be a non-empty string"),
    (_set("tokenizer/fingerprint", None), r"'tokenizer\.fingerprint' must be a non-empty string"),
    (_set("tokenizer/vocab_size", "50257"), r"'tokenizer\.vocab_size' must be an integer"),
    (_set("tokenizer/vocab_size", 0), r"'tokenizer\.vocab_size' is 0, but must be >= 1"),
    (_set("tokenizer/eot_id", 50257), r"'tokenizer\.eot_id' is 50,257, outside the vocabulary"),
    (_set("tokenizer/eot_id", -1), r"'tokenizer\.eot_id' is -1, but must be >= 0"),
    (_set("tokenizer/eot_id", None), r"'tokenizer\.eot_id' is null, but a split holds several"),
    (_set("store_id", 5), r"'store_id' must be 32 lowercase hex digits"),
    (_set("counts/documents", -1), r"'counts\.documents' is -1, but must be >= 0"),
    (_set("counts/documents", 99), r"'counts\.documents' is 99, but the splits hold 8 .* 8\.\.8\."),
    (_set("options", []), r"'options' must be an object"),
    (_set("inputs", {}), r"'inputs' must be a list"),
    (_set("inputs", [{"path": 3}]), r"'inputs\[0\]\.path' must be a string"),
    (_set("inputs", [{"path": "a", "bytes": "9"}]), r"'inputs\[0\]\.bytes' must be an integer"),
    (_set("stats", {"empty": "0"}), r"'stats\.empty' must be an integer"),
    (_set("stats", [1]), r"'stats' must be an object"),
]
MISSING = [
    "tokenizer",
    "dtype",
    "splits",
    "tokenizer/name",
    "tokenizer/fingerprint",
    "tokenizer/vocab_size",
    "tokenizer/eot_id",
    "splits/train/tokens",
    "splits/train/documents",
    "splits/train/shards",
    *(f"{SHARD}/{k}" for k in ("file", "index", "tokens", "documents", "sha256", "index_sha256")),
]


@pytest.mark.parametrize(("edit", "pattern"), FIELD_CASES, ids=[p for _, p in FIELD_CASES])
def test_each_field_is_type_and_range_checked(store, capsys, edit, pattern) -> None:
    m = load(store)
    edit(m)
    save(store, m)
    with pytest.raises(StoreError, match=pattern) as info:
        TokenStore.open(store)
    assert str(info.value).endswith("Re-run gptdata prepare.")
    assert_cli_error(store, capsys, pattern)


@pytest.mark.parametrize("path", MISSING)
def test_missing_field_is_named(store, capsys, path) -> None:
    m = load(store)
    _set(path, _DELETE)(m)
    save(store, m)
    field = re.escape(path.replace("/0/", "[0]/").replace("/", "."))  # splits.train.shards[0].file
    pattern = rf"'{field}' is missing\. Re-run gptdata prepare\."
    with pytest.raises(StoreError, match=pattern):
        TokenStore.open(store)
    assert_cli_error(store, capsys, pattern)


@pytest.mark.parametrize("key", ["tokens", "documents"])
def test_split_totals_must_add_up(store, capsys, key) -> None:
    m = load(store)
    m["splits"]["train"][key] += 1
    save(store, m)
    pattern = rf"split 'train' declares \d+ {key}, its shards add up to \d+\. Re-run gptdata"
    with pytest.raises(StoreError, match=pattern):
        TokenStore.open(store)
    assert_cli_error(store, capsys, pattern)


def test_shard_claiming_fewer_tokens_than_its_documents_need(store) -> None:
    m = load(store)
    shard = first_shard(m)
    shard["tokens"] = 2 * shard["documents"] - 2
    save(store, m)
    with pytest.raises(StoreError, match=r"shards\[0\]\.tokens' is \d+, but must be >= \d+"):
        TokenStore.open(store)


def test_the_same_file_named_twice_is_refused(store) -> None:
    m = load(store)
    shards = m["splits"]["train"]["shards"]
    shards[1]["file"] = shards[0]["file"]
    save(store, m)
    with pytest.raises(StoreError, match=r"shards\[1\]\.file' is .*which another entry names"):
        TokenStore.open(store)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            b'{"format": "gptdata-token-store", "version": 1, ',
            r"corrupt manifest \(JSONDecodeError",
        ),
        (b"[" * 100_000 + b"]" * 100_000, r"corrupt manifest \(RecursionError"),
        (b"\xff\xfe{}", r"corrupt manifest \(UnicodeDecodeError"),
    ],
    ids=["truncated", "deep", "not-utf8"],
)
def test_malformed_json(store, capsys, text, pattern) -> None:
    (store / "manifest.json").write_bytes(text)
    with pytest.raises(StoreError, match=pattern):
        TokenStore.open(store)
    assert_cli_error(store, capsys, pattern)


def test_index_larger_than_declared_is_not_read(store) -> None:
    m = load(store)
    index = store / first_shard(m)["index"]
    index.write_bytes(index.read_bytes() + b"\0" * 8 * 1000)
    with pytest.raises(StoreError, match=r"\.idx: 1,00\d\.0 documents, manifest says \d+\."):
        TokenStore.open(store)


# ---- a store replaced while a reader uses it ---------------------------------------------------

READ_IN_CHILD = (
    "import pickle, sys\n"
    "from gptdata import StoreError\n"
    "split = pickle.loads(sys.stdin.buffer.read())\n"
    "try:\n"
    "    print(split[:5].tolist())\n"
    "except StoreError as exc:\n"
    "    print('StoreError:', exc)\n"
)


def read_in_child(split: Any) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", READ_IN_CHILD],
        input=pickle.dumps(split),
        capture_output=True,
        env=env,
        check=True,
        timeout=60,
    )
    return done.stdout.decode()


def replace_store(root: Path, texts: list[str]) -> None:
    prepare(
        None, root, texts=texts, shard_tokens=40, val_fraction=0, workers=1, quiet=True, force=True
    )


def test_worker_notices_store_replaced_while_reading(store) -> None:
    split = TokenStore.open(store).split("train")
    before = split[:5].tolist()  # this process maps the shards now
    assert read_in_child(split) == f"{before}\n"  # a worker reopens them: same store, same bytes
    replace_store(store, OTHER)
    out = read_in_child(split)
    assert out.startswith(f"StoreError: {store}: the store was replaced while being read")
    assert "store_id" in out and "Open it again with TokenStore.open" in out
    assert split[:5].tolist() == before  # maps already open keep the old, consistent bytes


def test_loader_worker_notices_store_replaced(store) -> None:
    from gptdata import create_dataloader

    split = TokenStore.open(store).split("train")
    loader = create_dataloader(split, batch_size=2, max_length=4, stride=4, num_workers=1, seed=0)
    replace_store(store, OTHER)
    with pytest.raises(StoreError, match=r"the store was replaced while being read"):
        next(iter(loader))


def test_store_without_store_id_still_gets_the_size_check(store) -> None:
    # Stores written before store_id existed: accepted, and a replaced shard of another size
    # is still caught when a worker reopens it.
    m = load(store)
    del m["store_id"]
    save(store, m)
    split = TokenStore.open(store).split("train")
    assert split.store_id is None and len(split) > 0
    assert read_in_child(split).startswith("[")
    replace_store(store, OTHER)
    m = load(store)
    del m["store_id"]
    save(store, m)
    out = read_in_child(split)
    assert out.startswith("StoreError: ") and "replaced while being read" in out
    assert "holds" in out and "the manifest read" in out


def test_shard_truncated_after_open_is_an_error_not_short_data(store) -> None:
    split = TokenStore.open(store).split("train")
    shard = store / split.shards[0].file
    shard.write_bytes(shard.read_bytes()[:-4])
    with pytest.raises(StoreError, match=r"replaced while being read .*holds \d+ tokens"):
        split[:]


# ---- reading past the end ----------------------------------------------------------------------


@pytest.fixture
def one_shard(tmp_path) -> Any:
    prepare(None, tmp_path / "one", texts=TEXTS[:2], val_fraction=0, workers=1, quiet=True)
    return TokenStore.open(tmp_path / "one").split("train")


@pytest.mark.parametrize("fixture", ["one_shard", "many_shards"])
def test_gather_rejects_negative_start(request, fixture) -> None:
    # numpy would wrap -3 to the last tokens (of the last shard) and serve them as a window.
    split = request.getfixturevalue(fixture)
    with pytest.raises(IndexError, match=r"window tokens\[-3:1\] reads past the split 'train'"):
        split.gather(np.array([0, -3]), 4)
    assert split.gather(np.array([], dtype=np.int64), 4).shape == (0, 4)


@pytest.mark.parametrize("fixture", ["one_shard", "many_shards"])
def test_gather_rejects_window_past_the_end(request, fixture) -> None:
    split = request.getfixturevalue(fixture)
    n = len(split)
    assert split.gather(np.array([n - 4]), 4).shape == (1, 4)  # the last full window is fine
    with pytest.raises(IndexError, match=rf"tokens\[{n - 3}:{n + 1}\] reads past the split"):
        split.gather(np.array([0, n - 3]), 4)


@pytest.fixture
def many_shards(store) -> Any:
    split = TokenStore.open(store).split("train")
    assert len(split.shards) > 2
    return split


def test_slice_past_the_end_is_an_error(many_shards) -> None:
    n = len(many_shards)
    assert len(many_shards._slice(n - 3, n)) == 3
    with pytest.raises(IndexError, match=rf"tokens\[{n - 3}:{n + 2}\] reads past the split"):
        many_shards._slice(n - 3, n + 2)
    with pytest.raises(IndexError, match=r"tokens\[-1:2\] reads past"):
        many_shards._slice(-1, 2)
    with pytest.raises(IndexError, match=rf"token {n} is outside 0\.\.{n - 1}"):
        many_shards[n]


# ---- one token count everywhere ----------------------------------------------------------------


def summary(capsys, *args: Any, **kwargs: Any) -> str:
    prepare(*args, workers=1, quiet=False, **kwargs)
    err = capsys.readouterr().err
    return next(line for line in err.splitlines() if line.startswith("prepared "))


def test_token_totals_agree_everywhere(tmp_path, capsys) -> None:
    root = tmp_path / "s"
    line = summary(capsys, None, root, texts=TEXTS, shard_tokens=40, val_fraction=0.3)
    store = TokenStore.open(root)
    splits = [store.split(s) for s in store.splits]
    stream = sum(len(sp) for sp in splits)
    text = sum(int(sp.document_lengths().sum()) for sp in splits)
    separators = sum(sp.n_documents - 1 for sp in splits if sp.n_documents)
    assert stream == text + separators == store.n_tokens
    assert f": {len(TEXTS)} documents, {stream:,} tokens in " in line
    assert main(["info", str(root)]) == 0
    info = capsys.readouterr().out
    assert (
        f"total      {stream:,} tokens ({text:,} of text + {separators:,} separators), "
        f"{len(TEXTS)} documents"
    ) in info
    assert main(["verify", str(root)]) == 0
    assert f"({stream:,} tokens, {len(TEXTS)} documents," in capsys.readouterr().out


def test_one_input_file_is_one_document(tmp_path, capsys) -> None:
    # The tail split cuts it into a train head and a val tail: still one document.
    src = tmp_path / "book.txt"
    src.write_text(" ".join(TEXTS * 20), encoding="utf-8")
    line = summary(capsys, [src], tmp_path / "s", val_fraction=0.1)
    store = TokenStore.open(tmp_path / "s")
    assert [store.split(s).n_documents for s in store.splits] == [1, 1]
    assert store.n_documents == 1 and store.n_separators == 0
    assert f": 1 documents, {store.n_tokens:,} tokens in " in line
    assert main(["info", str(tmp_path / "s")]) == 0
    assert ", 1 documents\n" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "s")]) == 0
    assert ", 1 documents, structure" in capsys.readouterr().out


def test_reading_tokenizer_is_the_one_that_made_the_ids(tmp_path: Path) -> None:
    from gptdata import SimpleTokenizer, prepare

    tok = SimpleTokenizer.from_text("a b c")
    kw = {"val_fraction": 0, "workers": 1, "quiet": True}
    store = prepare(None, tmp_path / "s", texts=["a b c"], tokenizer=tok, **kw)
    assert store.reading_tokenizer(tok).fingerprint == store.fingerprint
    with pytest.raises(ValueError, match=r"made with tokenizer .* tokenizer=PATH"):
        store.reading_tokenizer("gpt2")
    gpt2_store = prepare(None, tmp_path / "g", texts=["x"], **kw)
    assert gpt2_store.reading_tokenizer(tok).name == "gpt2"  # GPT-2 IDs read as GPT-2
