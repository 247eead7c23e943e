"""The repository stands alone: benchmarks make their corpora, tests say what they skip and why."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

import conftest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench_corpus():
    spec = importlib.util.spec_from_file_location("bench_corpus", ROOT / "bench" / "corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_corpus"] = module
    spec.loader.exec_module(module)
    return module


def test_no_benchmark_reaches_outside_the_checkout() -> None:
    for path in sorted((ROOT / "bench").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"\.\./shared|[\"']shared[\"']|shared_path|ROOT\.parent", text), (
            path.name
        )


def test_bench_corpus_is_deterministic_real_text(bench_corpus, tmp_path) -> None:
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    size = 200_000
    written, n = bench_corpus.write_corpus(a, size=size, form="jsonl")
    assert bench_corpus.write_corpus(b, size=size, form="jsonl") == (written, n)
    assert a.read_bytes() == b.read_bytes()
    assert size <= written == a.stat().st_size and not (tmp_path / "a.jsonl.tmp").exists()
    rows = [json.loads(line) for line in a.read_text().splitlines()]
    assert len(rows) == n and [r["id"] for r in rows] == [f"{i:07d}" for i in range(n)]
    names = [r["source"] for r in rows]
    assert names == sorted(names)  # the library in sorted order
    assert all(r["text"].strip() for r in rows)
    assert "def " in rows[0]["text"] or "import " in rows[0]["text"]  # Python source


def test_bench_corpus_folder_and_prose(bench_corpus, tmp_path) -> None:
    written, n = bench_corpus.write_corpus(tmp_path / "f", size=50_000, form="folder")
    files = sorted((tmp_path / "f").rglob("*.txt"))
    assert len(files) == n and sum(f.stat().st_size for f in files) == written >= 50_000
    written, n = bench_corpus.write_corpus(
        tmp_path / "p.txt", size=30_000, form="single", prose=True
    )
    prose = (tmp_path / "p.txt").read_text()
    assert len(prose.encode()) == written >= 30_000
    lines = prose.splitlines()
    code = [line for line in lines if line.startswith(("def ", "class ", "import ", "from "))]
    assert len(code) < len(lines) / 50 and prose.count(". ") > 50  # sentences, not code


def test_bench_corpus_cycles_without_repeating_a_document(bench_corpus, monkeypatch) -> None:
    files = bench_corpus.library_files()[:3]
    monkeypatch.setattr(bench_corpus, "library_files", lambda: files)
    docs = []
    for _, (_name, text) in zip(range(7), bench_corpus.documents(), strict=False):
        docs.append(text)
    assert len(set(docs)) == len(docs)
    assert docs[3].startswith("# pass 2 over the standard library: ") and docs[3].endswith(docs[0])


@pytest.mark.parametrize(("text", "size"), [("20MB", 20_000_000), ("1.5KB", 1500), ("300", 300)])
def test_parse_size(bench_corpus, text, size) -> None:
    assert bench_corpus.parse_size(text) == size


def test_the_test_corpora_ship_with_the_tests() -> None:
    # A fresh clone runs every test: no test skips for text that lives outside the checkout.
    verdict = conftest.corpus("the-verdict.txt")
    assert verdict.parent == Path(conftest.__file__).resolve().parent / "data"
    assert len(verdict.read_text(encoding="utf-8")) == 20479  # the book's count
    assert conftest.corpus("tinyshakespeare.txt").stat().st_size == 1115394
