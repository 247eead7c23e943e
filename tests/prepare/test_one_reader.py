"""The one source reader: each input rule once, through load_tokens, and every verb reads alike.

``load_tokens`` is the only code that turns a user's source into tokens and documents; evaluation
(``load_eval_data``), ``inspect``/``plan`` (``source_splits``) and the datasets call it. So each
rule below is tested on ``load_tokens``, and one test checks that the three consumers see exactly
the tokens and documents it gives.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from gptdata import TokenStore, get_tokenizer, load_tokens, prepare
from gptdata.evaluation.data import load_eval_data
from gptdata.inspect.plan import source_splits
from gptdata.prepare.corpus import count_words
from gptdata.tokenizers import token_byte_lengths

EOT = 50256


@pytest.fixture(scope="module")
def gpt2():
    return get_tokenizer("gpt2")


def ids_of(corpus) -> list[int]:
    return corpus.tokens.gather(np.array([0]), len(corpus))[0].tolist()


# --- one test per input rule ---------------------------------------------------------------


def test_a_literal_endoftext_in_a_file_is_text(tmp_path, gpt2) -> None:
    (tmp_path / "a.txt").write_text("x <|endoftext|> y")
    ids = ids_of(load_tokens(tmp_path / "a.txt"))
    assert EOT not in ids
    assert ids == gpt2.encode("x <|endoftext|> y", special="text")


def test_a_literal_endoftext_in_a_str_is_the_token_unless_asked(gpt2) -> None:
    assert ids_of(load_tokens("x<|endoftext|>y")) == [87, EOT, 88]  # the book's allowed_special
    assert EOT not in ids_of(load_tokens("x<|endoftext|>y", special_text="ordinary"))
    with pytest.raises(ValueError, match="special_text='eot' is not 'ordinary' or 'allow'"):
        load_tokens("x", special_text="eot")


def test_jsonl_reads_the_text_field_one_document_per_line(tmp_path, gpt2) -> None:
    lines = [{"body": "first doc", "text": "no"}, {"body": "second"}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    corpus = load_tokens(tmp_path / "d.jsonl", text_field="body")
    assert ids_of(corpus) == gpt2.encode("first doc") + [EOT] + gpt2.encode("second")
    assert corpus.document_lengths().tolist() == [2, 1]


def test_gzip_jsonl_reads_like_plain(tmp_path) -> None:
    doc = json.dumps({"text": "gzipped text"}) + "\n"
    (tmp_path / "p.jsonl").write_text(doc)
    with gzip.open(tmp_path / "z.jsonl.gz", "wt") as fh:
        fh.write(doc)
    assert ids_of(load_tokens(tmp_path / "z.jsonl.gz")) == ids_of(load_tokens(tmp_path / "p.jsonl"))


def test_a_byte_order_mark_is_dropped(tmp_path, gpt2) -> None:
    (tmp_path / "bom.txt").write_bytes("\ufeffHello".encode())
    assert ids_of(load_tokens(tmp_path / "bom.txt")) == gpt2.encode("Hello")


def test_each_txt_file_is_one_document_and_empty_ones_are_skipped(tmp_path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("one two\n\nthree")
    (tmp_path / "docs" / "b.txt").write_text("")
    (tmp_path / "docs" / "c.txt").write_text("four")
    corpus = load_tokens(tmp_path / "docs")
    assert len(corpus.document_ends) == 2


def test_a_str_naming_a_file_and_bytes_are_refused(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("text")
    with pytest.raises(ValueError, match=r"is a str that names an existing file.*Path\("):
        load_tokens(str(tmp_path / "a.txt"))
    with pytest.raises(TypeError, match="decode it to text first"):
        load_tokens(b"bytes")


def test_a_missing_path_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.txt does not exist\. Pass a text"):
        load_tokens(tmp_path / "nope.txt")


def test_a_store_is_read_as_stored_and_refuses_another_tokenizer(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("alpha beta gamma")
    store = prepare([tmp_path / "a.txt"], tmp_path / "s", val_fraction=0.0, quiet=True)
    corpus = load_tokens(tmp_path / "s")
    assert ids_of(corpus) == store.split("train").gather(np.array([0]), len(corpus))[0].tolist()
    assert corpus.tokenizer.name == "gpt2"
    vocab = tmp_path / "vocab.json"
    from gptdata import SimpleTokenizer

    SimpleTokenizer.from_text("alpha beta").save(vocab)
    simple = prepare(
        [tmp_path / "a.txt"], tmp_path / "w", tokenizer=vocab, val_fraction=0.0, quiet=True
    )
    with pytest.raises(ValueError, match="was made with tokenizer .*pass the same one"):
        load_tokens(simple, tokenizer="gpt2").tokenizer  # noqa: B018 - resolved when asked
    assert load_tokens(simple, tokenizer=vocab).tokenizer.vocab_size == simple.vocab_size


def test_bare_ids_carry_no_documents() -> None:
    corpus = load_tokens(np.array([1, 2, EOT, 3], dtype=np.uint16))
    assert corpus.document_ends is None and corpus.tokenizer is None
    with pytest.raises(ValueError, match="bare token IDs do not carry"):
        corpus.document_bytes()


def test_document_sizes_bytes_of_tokens_words_of_text(tmp_path) -> None:
    docs = ["Hello big world\n", "caf\u00e9 au lait"]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"text": d}) for d in docs) + "\n")
    corpus = load_tokens(tmp_path / "d.jsonl", keep_text=True)
    assert corpus.texts == docs
    assert corpus.document_bytes().tolist() == [len(d.encode("utf-8")) for d in docs]  # 16, 12
    assert corpus.document_words().tolist() == [4, 3]  # the trailing newline: an empty field
    # Without the texts, words come from the decoded tokens; GPT-2 decodes exactly.
    assert load_tokens(tmp_path / "d.jsonl").document_words().tolist() == [4, 3]
    assert count_words("") == 0


def test_the_byte_table_is_built_once_per_tokenizer(gpt2) -> None:
    first = token_byte_lengths(gpt2)
    assert token_byte_lengths(get_tokenizer("gpt2")) is first  # cached by fingerprint
    assert first[EOT] == 0 and first[15496] == len(b"Hello")
    assert not first.flags.writeable


# --- every consumer reads through it --------------------------------------------------------


@pytest.mark.parametrize("kind", ["txt-folder", "jsonl", "store", "text"])
def test_evaluate_inspect_and_windows_see_the_same_tokens(tmp_path, kind) -> None:
    texts = ["The first document <|endoftext|> says this.", "\ufeffSecond one.", "Third."]
    if kind == "txt-folder":
        (tmp_path / "in").mkdir()
        for i, t in enumerate(texts):
            (tmp_path / "in" / f"{i}.txt").write_text(t)
        source: object = tmp_path / "in"
    elif kind == "jsonl":
        (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in texts))
        source = tmp_path / "d.jsonl"
    elif kind == "store":
        (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in texts))
        prepare([tmp_path / "d.jsonl"], tmp_path / "s", val_fraction=0.0, quiet=True)
        source = TokenStore.open(tmp_path / "s").split("train")
    else:
        source = texts[0]
    corpus = load_tokens(source, special_text="ordinary" if kind == "text" else None)
    expected = ids_of(corpus)
    lengths = corpus.document_lengths().tolist()

    data = load_eval_data(source)  # evaluation: [prefix] + the same stream
    assert data.seq.tolist() == [EOT, *expected]
    assert data.lengths.tolist() == lengths

    if kind == "text":  # a str keeps the book's rule outside evaluation: the literal is eot
        expected = ids_of(load_tokens(source))
        assert EOT in expected
    loaded = source_splits(source)  # inspect and plan
    (name,) = loaded.splits
    assert np.asarray(loaded.splits[name][: len(expected)]).tolist() == expected
    if kind != "text":
        assert loaded.documents[name].tolist() == lengths

    from gptdata import SlidingWindowDataset

    ds = SlidingWindowDataset(source, max_length=2, stride=2)  # the datasets
    x, y = ds[0]
    assert x.tolist() == expected[:2] and y.tolist() == expected[1:3]


def test_the_old_readers_are_gone() -> None:
    import gptdata.evaluation.data as data
    import gptdata.inspect.pairs as pairs

    src = Path(data.__file__).read_text()
    assert "read_documents" not in src and "resolve_inputs" not in src
    assert not hasattr(pairs, "load_source")
