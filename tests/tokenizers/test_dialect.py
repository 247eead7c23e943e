"""tiktoken's dialect on every tokenizer, tiktoken Encodings as tokenizers, the book's V1/V2."""

from __future__ import annotations

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

from gptdata import (
    GPTDatasetV1,
    SimpleTokenizer,
    SimpleTokenizerV1,
    SimpleTokenizerV2,
    build_vocab,
    get_tokenizer,
    load_tokens,
)
from gptdata.tokenizers.dialect import EncodingTokenizer
from gptdata.tokenizers.gpt2files import load_gpt2_encoding

EOT = "<|endoftext|>"
KEYWORDS = [
    {"allowed_special": {EOT}},
    {"allowed_special": "all"},
    {"allowed_special": set()},
    {"disallowed_special": ()},
    {"disallowed_special": "all"},
    {"allowed_special": "all", "disallowed_special": ()},
    {"allowed_special": set(), "disallowed_special": ()},
]


def outcome(fn, text, **kw):
    try:
        return fn(text, **kw)
    except ValueError:
        return "raises"


@pytest.fixture(scope="module")
def byte_encoding() -> tiktoken.Encoding:
    """A small non-GPT-2 Encoding: 256 single bytes and <|endoftext|>."""
    ranks = {bytes([b]): b for b in range(256)}
    return tiktoken.Encoding(
        "bytes-test", pat_str=r"\S+|\s+", mergeable_ranks=ranks, special_tokens={EOT: 256}
    )


@settings(max_examples=40, deadline=None)
@given(
    text=st.lists(st.sampled_from(["a", " b", EOT, "<|end", "oftext|>", "é"]), max_size=6).map(
        "".join
    ),
    kw=st.sampled_from(KEYWORDS),
)
def test_gpt2_keywords_give_tiktokens_results(text, kw) -> None:
    enc, tok = load_gpt2_encoding(), get_tokenizer("gpt2")
    assert outcome(tok.encode, text, **kw) == outcome(enc.encode, text, **kw)
    assert tok.encode_ordinary(text) == enc.encode_ordinary(text)
    assert tok.encode(text) == enc.encode(text, allowed_special={EOT})  # the default stays
    assert outcome(tok.encode_batch, [text, "x"], **kw) == outcome(
        enc.encode_batch, [text, "x"], **kw
    )


def test_tiktoken_encodings_are_tokenizers(byte_encoding) -> None:
    assert type(get_tokenizer(load_gpt2_encoding())).__name__ == "GPT2Tokenizer"
    tok = get_tokenizer(byte_encoding)
    assert isinstance(tok, EncodingTokenizer)
    assert (tok.vocab_size, tok.eot_id, tok.n_vocab, tok.eot_token) == (257, 256, 257, 256)
    text = f"ab{EOT}c"
    assert tok.encode(text) == [97, 98, 256, 99]
    for kw in KEYWORDS:
        assert outcome(tok.encode, text, **kw) == outcome(byte_encoding.encode, text, **kw)
    assert tok.decode(tok.encode(text)) == text
    assert (
        tok.fingerprint.startswith("sha256:")
        and tok.fingerprint == get_tokenizer(byte_encoding).fingerprint
    )
    corpus = load_tokens("hi there", tokenizer=byte_encoding)
    assert corpus.tokens.array.tolist() == list(b"hi there")
    with pytest.raises(ValueError, match="outside this tokenizer's range"):
        tok.decode([300])


def test_simple_tokenizers_speak_the_dialect() -> None:
    simple = SimpleTokenizer.from_text("a b c")
    eot, unk = simple.eot_id, simple.unk_id
    assert simple.encode(f"a {EOT} b") == [0, eot, 1]
    assert simple.encode(f"a {EOT} b", disallowed_special=()) == [0, unk, 1]
    with pytest.raises(ValueError, match="disallowed_special forbids"):
        simple.encode(f"a {EOT}", disallowed_special="all")
    assert simple.n_vocab == simple.vocab_size and simple.eot_token == eot


def test_v1_v2_errors_and_interface() -> None:
    with pytest.raises(TypeError, match=r"vocab must be a dict \{token: id\}"):
        SimpleTokenizerV1(["a", "b"])
    with pytest.raises(ValueError, match="needs '<\\|unk\\|>' in the vocabulary"):
        SimpleTokenizerV2(build_vocab("a b", specials=False))
    with pytest.raises(ValueError, match="same ID"):
        SimpleTokenizerV1({"a": 0, "b": 0})
    v2 = SimpleTokenizerV2(build_vocab("the cat sat. the end"))
    assert v2.vocab_size == 7 and v2.eot_id == 5 and v2.unk_id == 6
    assert v2.encode(f"cat {EOT} dog", disallowed_special=()) == [1, 6, 6]
    with pytest.raises(ValueError, match="not in this vocabulary"):
        v2.decode([99])
    ds = GPTDatasetV1("the cat sat. the end. " * 3, v2, 4, 2)
    assert ds[0][0].tolist() == v2.encode("the cat sat.")
    v1 = SimpleTokenizerV1(build_vocab("the cat"))
    with pytest.raises(KeyError, match="'dog' is not in the vocabulary"):
        v1.encode("the dog")
    with pytest.raises(KeyError):
        v1.encode(f"the {EOT}", disallowed_special=())


def test_every_tokenizer_takes_tiktokens_batch_and_decode_keywords(byte_encoding) -> None:
    # tiktoken's encode_batch(texts, num_threads=, allowed_special=, disallowed_special=) and
    # decode(ids, errors=) paste in on every tokenizer, with tiktoken's results.
    texts = [f"a {EOT} b", "c"]
    toks = [
        get_tokenizer("gpt2"),
        get_tokenizer(byte_encoding),
        SimpleTokenizer.from_text("a b c"),
        SimpleTokenizerV2(build_vocab("a b c")),
    ]
    for tok in toks:
        assert tok.encode_batch(texts, num_threads=2, allowed_special="all") == [
            tok.encode(t, allowed_special="all") for t in texts
        ]
        assert tok.encode_ordinary_batch(texts, num_threads=2) == [
            tok.encode_ordinary(t) for t in texts
        ]
        with pytest.raises(ValueError, match="special token '<\\|endoftext\\|>'"):
            tok.encode_batch(texts, disallowed_special="all")
        ids = tok.encode("a b")
        assert tok.decode(ids, errors="strict") == tok.decode(ids) == "a b"
    enc_tok = get_tokenizer(byte_encoding)
    half = list("\N{GRINNING FACE}".encode())[:2]  # two of the emoji's four bytes
    assert enc_tok.decode(half) == byte_encoding.decode(half) == "\ufffd"
    with pytest.raises(UnicodeDecodeError):
        enc_tok.decode(half, errors="strict")
