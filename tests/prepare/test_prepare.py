from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import kill_after_first_unit
from gptdata import InputError, StoreError, TokenStore, get_tokenizer, prepare
from gptdata.prepare.driver import split_of
from gptdata.store import dtype_for
from reference import joined

TEXTS = [
    "The cat sat on the mat.",
    "A second document, with commas; and more words.",
    "Third: numbers 12345 and emoji \N{GRINNING FACE}.",
    "Line one\nline two\n\nline four",
]


@pytest.fixture(scope="module")
def gpt2():
    return get_tokenizer("gpt2")


def write_txt(folder: Path, texts: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, t in enumerate(texts):
        (folder / f"{i:03d}.txt").write_text(t, encoding="utf-8")
    return folder


def store_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_one_document_store_equals_encode(tmp_path, gpt2, verdict_text) -> None:
    src = tmp_path / "verdict.txt"
    src.write_text(verdict_text, encoding="utf-8")
    store = prepare([src], tmp_path / "s", val_fraction=0.0, workers=1, quiet=True)
    train = store.split("train")
    assert len(train) == 5145
    assert train[:].tolist() == gpt2.encode(verdict_text)
    assert train.n_documents == 1 and store.dtype == np.uint16
    assert store.split("val").n_tokens == 0


def test_separator_rule_between_documents_only(tmp_path, gpt2) -> None:
    store = prepare(
        [write_txt(tmp_path / "c", TEXTS)], tmp_path / "s", val_fraction=0.0, workers=1, quiet=True
    )
    train = store.split("train")
    assert train[:].tolist() == joined(gpt2, TEXTS)
    assert train[len(train) - 1] != gpt2.eot_id  # none after the last
    ends = train.document_ends()
    assert ends[-1] == len(train) and len(ends) == len(TEXTS)
    assert [int(train[int(e)]) for e in ends[:-1]] == [gpt2.eot_id] * (len(TEXTS) - 1)


def test_separator_across_shards_and_jsonl(tmp_path, gpt2) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    store = prepare(
        [path], tmp_path / "s", val_fraction=0.0, shard_tokens=12, workers=1, quiet=True
    )
    train = store.split("train")
    assert len(train.shards) > 1
    assert train[:].tolist() == joined(gpt2, TEXTS)
    rows = train.gather(np.arange(len(train) - 5), 5)
    full = np.array(joined(gpt2, TEXTS))
    assert all((rows[i] == full[i : i + 5]).all() for i in range(len(rows)))
    store.verify()


def test_formats_gz_parquet_and_texts(tmp_path, gpt2) -> None:
    gz = tmp_path / "a.jsonl.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write("".join(json.dumps({"body": t}) + "\n" for t in TEXTS[:2]))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": TEXTS[2:]}), tmp_path / "b.parquet")
    store = prepare(
        [tmp_path / "a.jsonl.gz", tmp_path / "b.parquet"],
        tmp_path / "s",
        text_field="body",
        val_fraction=0.0,
        workers=1,
        quiet=True,
    )
    assert store.split("train")[:].tolist() == joined(gpt2, TEXTS)
    from_texts = prepare(
        None, tmp_path / "t", texts=iter(TEXTS), val_fraction=0.0, workers=1, quiet=True
    )
    assert from_texts.split("train")[:].tolist() == joined(gpt2, TEXTS)


class BigVocab:
    """A stub tokenizer with a chosen vocab_size: IDs are vocab_size - 1 - ord(char)."""

    eot_id = 0

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size, self.name, self.fingerprint = vocab_size, "stub", f"stub:{vocab_size}"

    def encode(self, text, *, special="eot"):
        return [self.vocab_size - 1 - ord(c) for c in text]

    def encode_batch(self, texts, *, special="eot"):
        return [self.encode(t) for t in texts]

    def decode(self, ids):
        return "".join(chr(self.vocab_size - 1 - i) for i in ids)


@pytest.mark.parametrize("vocab_size,dtype", [(65536, np.uint16), (65537, np.uint32)])
def test_dtype_edge(tmp_path, vocab_size, dtype) -> None:
    assert dtype_for(vocab_size) == dtype
    store = prepare(
        [write_txt(tmp_path / "c", ["ab"])],
        tmp_path / "s",
        tokenizer=BigVocab(vocab_size),
        val_fraction=0.0,
        workers=1,
        quiet=True,
    )
    assert store.dtype == dtype
    assert store.split("train")[:].tolist() == [
        vocab_size - 1 - ord("a"),
        vocab_size - 1 - ord("b"),
    ]
    assert (
        json.loads((tmp_path / "s" / "manifest.json").read_text())["dtype"] == np.dtype(dtype).name
    )


def test_out_of_range_ids_refused(tmp_path) -> None:
    class Liar(BigVocab):
        def encode(self, text, *, special="eot"):
            return [self.vocab_size]  # one too large: uint16 would silently wrap

    with pytest.raises(ValueError, match=r"produced ID 100, outside 0\.\.99"):
        prepare(
            [write_txt(tmp_path / "c", ["x"])],
            tmp_path / "s",
            tokenizer=Liar(100),
            val_fraction=0.0,
            workers=1,
            quiet=True,
        )
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()


def test_workers_byte_identical(tmp_path, shakespeare_path) -> None:
    text = shakespeare_path.read_text()
    docs = [text[i : i + 3000] for i in range(0, len(text), 3000)]
    folder = write_txt(tmp_path / "c", docs)
    one = prepare([folder], tmp_path / "one", workers=1, quiet=True, shard_tokens=20_000)
    two = prepare([folder], tmp_path / "two", workers=2, quiet=True, shard_tokens=20_000)
    assert store_bytes(tmp_path / "one") == store_bytes(tmp_path / "two")
    assert one.split("val").n_documents > 0 and two.split("train").n_documents > 0


def test_split_stable_when_documents_added(tmp_path) -> None:
    docs = [f"document number {i} " * (i % 7 + 1) for i in range(200)]
    kw = {"workers": 1, "quiet": True, "split_by": "documents"}  # auto picks tail for 200 docs
    small = prepare(None, tmp_path / "a", texts=docs, **kw)
    big = prepare(None, tmp_path / "b", texts=docs + [f"extra {i}" for i in range(100)], **kw)
    gpt2 = get_tokenizer("gpt2")
    val_small = {gpt2.decode(small.split("val")[:].tolist())}
    val_docs = [d for d in docs if split_of(d, 0.1, 0) == "val"]
    assert val_small == {"<|endoftext|>".join(val_docs)}
    assert 5 < len(val_docs) < 40
    big_val = gpt2.decode(big.split("val")[:].tolist()).split("<|endoftext|>")
    assert [d for d in big_val if not d.startswith("extra")] == val_docs


def test_single_document_val_gets_tail(tmp_path, gpt2, verdict_text) -> None:
    src = tmp_path / "v.txt"
    src.write_text(verdict_text)
    store = prepare([src], tmp_path / "s", val_fraction=0.1, workers=1, quiet=True)
    ids = gpt2.encode(verdict_text)
    n_val = int(len(ids) * 0.1)
    assert store.split("val")[:].tolist() == ids[-n_val:]
    assert store.split("train")[:].tolist() == ids[:-n_val]
    store.verify()
    assert len(list((tmp_path / "s" / "shards").iterdir())) == 4  # no stray files


@pytest.mark.parametrize(
    "content,match",
    [
        (b"good\n\xff\xfe bad", r"bad\.txt: invalid UTF-8 at byte offset 5\. .*errors=.replace."),
        (b"\x89PNG\x00\x00\x00", r"bad\.txt: looks like a binary file"),
    ],
)
def test_bad_text_files(tmp_path, content, match) -> None:
    folder = write_txt(tmp_path / "c", ["fine"])
    (folder / "bad.txt").write_bytes(content)
    with pytest.raises(InputError, match=match):
        prepare([folder], tmp_path / "s", workers=1, quiet=True)
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()


def test_errors_replace_and_skip(tmp_path) -> None:
    folder = write_txt(tmp_path / "c", ["fine"])
    (folder / "bad.txt").write_bytes(b"caf\xe9")
    rep = prepare([folder], tmp_path / "r", errors="replace", val_fraction=0, workers=1, quiet=True)
    assert "caf\ufffd" in get_tokenizer("gpt2").decode(rep.split("train")[:].tolist())
    skip = prepare([folder], tmp_path / "k", errors="skip", val_fraction=0, workers=1, quiet=True)
    assert skip.split("train").n_documents == 1
    assert skip.manifest["stats"]["invalid_utf8"] == 1


@pytest.mark.parametrize(
    "lines,match",
    [
        ('{"text": "ok"}\n{"text": broken\n', r"docs\.jsonl:2: malformed JSON"),
        ('{"text": "ok"}\n\n{"body": "x"}\n', r"docs\.jsonl:3: no field 'text'.*text_field="),
        ('{"text": 5}\n', r"docs\.jsonl:1: field 'text' is int, not a string"),
    ],
)
def test_bad_jsonl(tmp_path, lines, match) -> None:
    (tmp_path / "docs.jsonl").write_text(lines)
    with pytest.raises(InputError, match=match):
        prepare([tmp_path / "docs.jsonl"], tmp_path / "s", workers=1, quiet=True)
    assert not (tmp_path / "s.partial").exists()


def test_missing_paths_and_empty_corpus(tmp_path) -> None:
    with pytest.raises(InputError, match=r"input '.*nope\.txt' does not exist"):
        prepare([tmp_path / "nope.txt"], tmp_path / "s", quiet=True)
    with pytest.raises(InputError, match=r"no files match '.*\*\.jsonl'"):
        prepare([str(tmp_path / "*.jsonl")], tmp_path / "s", quiet=True)
    folder = write_txt(tmp_path / "c", ["", ""])
    with pytest.raises(InputError, match=r"empty corpus.*2 empty"):
        prepare([folder], tmp_path / "s", workers=1, quiet=True)
    assert not (tmp_path / "s").exists() and not (tmp_path / "s.partial").exists()


def test_empty_documents_skipped_and_counted(tmp_path, gpt2) -> None:
    store = prepare(
        [write_txt(tmp_path / "c", ["a", "", "b"])],
        tmp_path / "s",
        val_fraction=0,
        workers=1,
        quiet=True,
    )
    assert store.split("train")[:].tolist() == joined(gpt2, ["a", "b"])
    assert store.manifest["stats"]["empty"] == 1


def test_existing_store_needs_force(tmp_path) -> None:
    folder = write_txt(tmp_path / "c", ["a b c"])
    prepare([folder], tmp_path / "s", workers=1, quiet=True)
    with pytest.raises(FileExistsError, match="already exists. Pass force=True"):
        prepare([folder], tmp_path / "s", workers=1, quiet=True)
    write_txt(folder, ["x y z"])
    store = prepare([folder], tmp_path / "s", workers=1, quiet=True, force=True, val_fraction=0)
    assert get_tokenizer("gpt2").decode(store.split("train")[:].tolist()) == "x y z"


@pytest.fixture
def small_store(tmp_path) -> Path:
    prepare(
        [write_txt(tmp_path / "c", TEXTS * 3)],
        tmp_path / "s",
        shard_tokens=30,
        val_fraction=0,
        workers=1,
        quiet=True,
    )
    return tmp_path / "s"


def first_shard(root: Path) -> Path:
    return (
        root
        / json.loads((root / "manifest.json").read_text())["splits"]["train"]["shards"][0]["file"]
    )


def test_open_catches_truncated_shard(small_store) -> None:
    shard = first_shard(small_store)
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(
        StoreError, match=r"00000\.train\.000\.bin: .* bytes, but the manifest says"
    ):
        TokenStore.open(small_store)


def test_verify_catches_flipped_byte(small_store) -> None:
    TokenStore.open(small_store).verify()
    shard = first_shard(small_store)
    data = bytearray(shard.read_bytes())
    data[3] ^= 0x01
    shard.write_bytes(bytes(data))
    store = TokenStore.open(small_store)  # structure is still fine
    with pytest.raises(StoreError, match=r"00000\.train\.000\.bin: sha256 mismatch"):
        store.verify()


def test_open_catches_unknown_version_and_counts(small_store) -> None:
    mpath = small_store / "manifest.json"
    manifest = json.loads(mpath.read_text())
    manifest["splits"]["train"]["tokens"] += 1
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=r"split 'train' declares .* tokens, its shards add up to"):
        TokenStore.open(small_store)
    manifest["version"] = 99
    mpath.write_text(json.dumps(manifest))
    with pytest.raises(
        StoreError, match="store format version 99, but this gptdata reads version 1"
    ):
        TokenStore.open(small_store)


def test_open_catches_bad_document_index(small_store) -> None:
    index = first_shard(small_store).with_suffix(".idx")
    ends = np.fromfile(index, dtype="<u8")
    ends[-1] += 3
    ends.tofile(index)
    with pytest.raises(
        StoreError, match=r"\.idx: document index is not increasing or does not end"
    ):
        TokenStore.open(small_store)


def test_not_a_store(tmp_path) -> None:
    with pytest.raises(StoreError, match="not a token store"):
        TokenStore.open(tmp_path)


def test_killed_run_resumes_to_identical_bytes(tmp_path) -> None:
    texts = [f"Document {i}: " + "lorem ipsum dolor sit amet " * 400 for i in range(400)]
    folder = write_txt(tmp_path / "c", texts)  # ~4.5 MB -> 1 MB units, several of them
    reference = prepare([folder], tmp_path / "ref", workers=1, quiet=True)
    assert len(reference.split("train").shards) > 2
    out = tmp_path / "s"
    cmd = [
        sys.executable,
        "-m",
        "gptdata",
        "prepare",
        str(folder),
        "-o",
        str(out),
        "--workers",
        "1",
        "--quiet",
    ]
    kill_after_first_unit(cmd, out, unit_delay="0.4")
    with pytest.raises(StoreError, match="run it again to resume"):
        TokenStore.open(out)
    result = subprocess.run(cmd[:-1], capture_output=True, text=True, check=True)
    assert "resuming" in result.stderr
    assert store_bytes(out) == store_bytes(tmp_path / "ref")
    assert not out.with_name("s.partial").exists()


def _thread_budget(unit):
    return {"index": unit.index, "threads": os.environ.get("RAYON_NUM_THREADS")}


def test_workers_get_their_share_of_cores() -> None:
    from gptdata.prepare.driver import LocalExecutor
    from gptdata.prepare.sources import WorkUnit

    results = list(LocalExecutor(2).run(_thread_budget, [WorkUnit(0, ()), WorkUnit(1, ())]))
    assert sorted(r["index"] for r in results) == [0, 1]
    assert {r["threads"] for r in results} == {str(max(1, (os.cpu_count() or 1) // 2))}


def test_jsonl_gz_error_names_the_line(tmp_path) -> None:
    path = tmp_path / "docs.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write('{"text": "a"}\n{"text": "b"}\n{"text": oops}\n')
    with pytest.raises(InputError, match=r"docs\.jsonl\.gz:3: malformed JSON"):
        prepare([path], tmp_path / "s", workers=1, quiet=True)


def test_jsonl_error_line_numbers_in_later_units(tmp_path) -> None:
    lines = [json.dumps({"text": "x" * 2000}) for _ in range(1500)]  # ~3 MB: several units
    lines[1200] = '{"text": broken'
    (tmp_path / "big.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"big\.jsonl:1201: malformed JSON"):
        prepare([tmp_path / "big.jsonl"], tmp_path / "s", workers=2, quiet=True)
