"""Review of issues 11 and 13: behaviours the issues ask for that the API does not (yet) have.

Each test states what a user porting tiktoken / torch / book code expects and fails today.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import gptdata

ROOT = Path(__file__).resolve().parents[1]


def _toy_encoding():
    """A tiktoken Encoding with two specials, built offline (byte-level ranks only)."""
    tiktoken = pytest.importorskip("tiktoken")
    return tiktoken.Encoding(
        name="toy",
        pat_str=r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
        mergeable_ranks={bytes([i]): i for i in range(256)},
        special_tokens={"<|endoftext|>": 256, "<|fim_prefix|>": 257},
    )


def test_encoding_tokenizer_special_tokens_set_is_tiktokens() -> None:
    # Issue 11: "Tokenizers speak tiktoken's dialect"; an Encoding is accepted wherever a
    # tokenizer is. cl100k_base / o200k_base have several specials; the wrapper reports one.
    enc = _toy_encoding()
    tok = gptdata.get_tokenizer(enc)
    assert tok.special_tokens_set == enc.special_tokens_set == {"<|endoftext|>", "<|fim_prefix|>"}


def test_encoding_tokenizer_encode_batch_takes_tiktoken_keywords() -> None:
    # tiktoken's encode_batch(texts, allowed_special=...) works, and so does gptdata's
    # GPT2Tokenizer.encode_batch(..., allowed_special=...); the Encoding wrapper raises TypeError.
    enc = _toy_encoding()
    tok = gptdata.get_tokenizer(enc)
    texts = ["a<|endoftext|>", "b<|fim_prefix|>c"]
    assert tok.encode_batch(texts, allowed_special="all") == enc.encode_batch(
        texts, allowed_special="all"
    )
    assert tok.encode_batch(texts, disallowed_special=()) == enc.encode_batch(
        texts, disallowed_special=()
    )


def test_gpt2_decode_takes_tiktoken_errors_keyword() -> None:
    # tiktoken: decode(tokens, errors="replace"); a half emoji with errors="strict" raises
    # UnicodeDecodeError. gptdata's decode has no errors= and raises TypeError.
    tok = gptdata.get_tokenizer("gpt2")
    half = tok.encode("\N{GRINNING FACE}")[:1]
    assert tok.decode(half, errors="replace") == "\ufffd"
    with pytest.raises(UnicodeDecodeError):
        tok.decode(half, errors="strict")


def test_book_dataset_indexes_with_a_0d_tensor() -> None:
    # The classic GPTDatasetV1 keeps Python lists, so dataset[torch.tensor(3)] works (e.g. an
    # index from torch.randint). gptdata's raises a NumPy IndexError about 0-d arrays.
    ids = list(range(100, 140))
    ds = gptdata.SlidingWindowDataset(ids, max_length=4, stride=1)
    x, y = ds[torch.tensor(3)]
    assert x.tolist() == [103, 104, 105, 106] and y.tolist() == [104, 105, 106, 107]


# Issue 11's test_every_abandoned_pass_warns is superseded by issue 19 (passes are independent,
# as torch's are; a side pass neither warns nor moves the state): see tests/test_traps.py.


def test_readme_names_only_test_files_that_exist() -> None:
    # "Coming from the book" says tests/test_readme.py runs the right-hand column; the file
    # that does is tests/test_readme_book.py, and tests/test_readme.py does not exist.
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"tests/[\w/]+\.py", text))
    assert named, "README names no test file"
    missing = sorted(p for p in named if not (ROOT / p).is_file())
    assert not missing, missing


def test_inspect_mask_target_text_hides_masked_targets() -> None:
    # Issue 13 / README: `inspect --windows --documents mask` shows targets masked (-100). The ID
    # line does, but the text line under it still prints the masked token ("second"), so the
    # window reads as if the model learns to guess the next document's first word.
    from gptdata.inspect.pairs import window_rows

    tok = gptdata.get_tokenizer("gpt2")
    ids = tok.encode("hello world<|endoftext|>second doc here")  # E at input position 2
    lines = window_rows(ids, tok, max_length=3, stride=3, documents="mask")
    ids_line = next(line for line in lines if line.startswith("  target ["))
    text_line = [line for line in lines if line.startswith("  target ")][1]
    assert ids_line.endswith("-100]")
    assert "second" not in text_line, text_line
