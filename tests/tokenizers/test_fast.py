"""The fastokens backend: the exactness gate, identical IDs, and a clean fallback."""

from __future__ import annotations

import json
import sys
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gptdata import GPT2Tokenizer, get_tokenizer, prepare
from gptdata.tokenizers import fast as _fast

pytest.importorskip("fastokens")


@pytest.fixture(scope="module")
def both() -> tuple[GPT2Tokenizer, GPT2Tokenizer]:
    return GPT2Tokenizer("tiktoken"), GPT2Tokenizer("fastokens")


def test_gate_passes_and_is_recorded(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GPTDATA_CACHE_DIR", str(tmp_path))
    tok = GPT2Tokenizer("auto")
    assert tok.backend == "fastokens"
    verdicts = json.loads((tmp_path / _fast.GATE_FILE).read_text())
    assert verdicts == {_fast.installed_version(): {"ok": True, "first_mismatch": None}}
    assert _fast.installed_version() == _fast.PINNED_VERSION


def test_gate_fixture_covers_the_tricky_cases() -> None:
    fixture = _fast.gate_fixture()
    for needle in ("\u180e", "\r\n", "<|endoftext|>", "\ud800", "\u00a0don't", " " * 40):
        assert any(needle in text for text in fixture), needle
    assert len(fixture) > 400 and fixture == _fast.gate_fixture()  # seeded: the same every time


def test_golden_ids_and_specials(both) -> None:
    tik, fast = both
    for text in ["Hello, world", "a<|endoftext|>b", "x\u180ey", "a\ud800b", ""]:
        assert fast.encode(text) == tik.encode(text)
        assert fast.encode(text, special="text") == tik.encode(text, special="text")
    assert fast.encode("a<|endoftext|>b") == [64, 50256, 65]
    assert fast.encode("a\ud800b") == [64, 4210, 65]  # repaired to U+FFFD, as tiktoken does
    assert fast.encode_batch(["Hello", "a<|endoftext|>b"]) == [[15496], [64, 50256, 65]]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=())))  # surrogates included
def test_backends_agree_on_arbitrary_text(text) -> None:
    tik, fast = GPT2Tokenizer("tiktoken"), GPT2Tokenizer("fastokens")
    assert fast.encode(text) == tik.encode(text)
    assert fast.encode(text, special="text") == tik.encode(text, special="text")


def test_gate_failure_falls_back_with_one_warning(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GPTDATA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_fast, "_WARNED", False)
    real = _fast.FastGPT2.encode_arrays

    def wrong_on_180e(self, texts, *, special=True):
        out = real(self, texts, special=special)
        return [a[:0] if "\u180e" in t else a for t, a in zip(texts, out, strict=True)]

    monkeypatch.setattr(_fast.FastGPT2, "encode_arrays", wrong_on_180e)
    with pytest.warns(UserWarning, match=r"first differing input: .*\\u180e.*using tiktoken"):
        tok = GPT2Tokenizer("auto")
    assert tok.backend == "tiktoken"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        assert GPT2Tokenizer("auto").backend == "tiktoken"
    verdict = json.loads((tmp_path / _fast.GATE_FILE).read_text())[_fast.installed_version()]
    assert verdict["ok"] is False and "\\u180e" in verdict["first_mismatch"]


def test_auto_falls_back_when_missing(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "fastokens", None)  # import fastokens -> ImportError
    assert _fast.installed_version() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tok = get_tokenizer("gpt2")
    assert tok.backend == "tiktoken" and tok.encode("Hello") == [15496]
    with pytest.raises(
        RuntimeError,
        match=r"backend 'fastokens' is not installed. Fix: pip install 'gptdata\[fast\]'",
    ):
        get_tokenizer("gpt2", backend="fastokens")


def test_store_identical_across_backends(tmp_path, shakespeare_path) -> None:
    text = shakespeare_path.read_text()
    docs = [f"{i}: " + text[i : i + 5000] for i in range(0, len(text), 5000)] + ["x<|endoftext|>y"]
    a = prepare(None, tmp_path / "a", texts=docs, backend="tiktoken", workers=1, quiet=True)
    b = prepare(None, tmp_path / "b", texts=docs, backend="fastokens", workers=2, quiet=True)
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert files and all(
        (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files
    )
    assert a.split("train").n_tokens == b.split("train").n_tokens


def test_bad_backend() -> None:
    with pytest.raises(
        ValueError, match="backend='rust': choose 'auto', 'tiktoken' or 'fastokens'"
    ):
        GPT2Tokenizer("rust")
