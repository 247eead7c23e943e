"""Chapter 2 of the book, cell by cell, through gptdata: every printed value checked.

The book's outputs are the literals below. Where the book builds something with plain torch
(its GPTDatasetV1, DataLoader, nn.Embedding), the reference is computed here the classic way
(tests/reference.py) and compared. tiktoken.get_encoding("gpt2") downloads, so the test uses
gptdata's offline build of the same Encoding in its place.
"""

from __future__ import annotations

import pytest
import torch

import gptdata
from gptdata import (
    GPTDatasetV1,
    GPTEmbedding,
    SimpleTokenizerV1,
    SimpleTokenizerV2,
    build_vocab,
    create_dataloader_v1,
)
from gptdata.tokenizers.book import split_words
from gptdata.tokenizers.gpt2files import load_gpt2_encoding
from reference import ClassicGPTDatasetV1, classic_dataloader_v1

VOCAB_HEAD = (
    "! \" ' ( ) , -- . : ; ? A Ah Among And Are Arrt As At Be Begin Burlington But By Carlo "
    "Chicago Claude Come Croft Destroyed Devonshire Don Dubarry Emperors Florence For Gallery "
    "Gideon Gisburn Gisburns Grafton Greek Grindle Grindles HAD Had Hang Has He Her Hermia"
).split()


@pytest.fixture(scope="module")
def raw_text() -> str:
    from conftest import corpus

    return corpus("the-verdict.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    return load_gpt2_encoding()  # what tiktoken.get_encoding("gpt2") returns, built offline


def test_2_2_tokenizing_text(raw_text) -> None:
    assert len(raw_text) == 20479
    assert raw_text[:99] == (
        "I HAD always thought Jack Gisburn rather a cheap genius--though a good fellow "
        "enough--so it was no "
    )
    assert split_words("Hello, world. Is this-- a test?") == [
        "Hello", ",", "world", ".", "Is", "this", "--", "a", "test", "?"
    ]  # fmt: skip
    preprocessed = split_words(raw_text)
    assert (
        preprocessed[:30]
        == (
            "I HAD always thought Jack Gisburn rather a cheap genius -- though a good fellow enough "
            "-- so it was no great surprise to me to hear that , in"
        ).split()
    )
    assert len(preprocessed) == 4690


def test_2_3_vocabulary_and_v1(raw_text) -> None:
    vocab = build_vocab(raw_text, specials=False)
    assert len(vocab) == 1130
    assert list(vocab.items())[:51] == [(t, i) for i, t in enumerate(VOCAB_HEAD)]
    tokenizer = SimpleTokenizerV1(vocab)
    text = """"It's the last he painted, you know," 
           Mrs. Gisburn said with pardonable pride."""  # noqa: W291 - the book's text
    ids = tokenizer.encode(text)
    assert ids == [1, 56, 2, 850, 988, 602, 533, 746, 5, 1126, 596, 5, 1, 67, 7, 38, 851, 1108,
                   754, 793, 7]  # fmt: skip
    decoded = '" It\' s the last he painted, you know," Mrs. Gisburn said with pardonable pride.'
    assert tokenizer.decode(ids) == decoded
    assert tokenizer.decode(tokenizer.encode(text)) == decoded


def test_2_4_unknown_word_and_v2(raw_text) -> None:
    with pytest.raises(KeyError, match="'Hello' is not in the vocabulary") as info:
        SimpleTokenizerV1(build_vocab(raw_text, specials=False)).encode(
            "Hello, do you like tea. Is this-- a test?"
        )
    assert info.value.args == ("Hello",)  # the book shows KeyError: 'Hello'
    vocab = build_vocab(raw_text)
    assert len(vocab.items()) == 1132
    assert list(vocab.items())[-5:] == [
        ("younger", 1127), ("your", 1128), ("yourself", 1129), ("<|endoftext|>", 1130),
        ("<|unk|>", 1131),
    ]  # fmt: skip
    tokenizer = SimpleTokenizerV2(vocab)
    text = " <|endoftext|> ".join(
        ("Hello, do you like tea?", "In the sunlit terraces of the palace.")
    )
    assert text == "Hello, do you like tea? <|endoftext|> In the sunlit terraces of the palace."
    assert tokenizer.encode(text) == [1131, 5, 355, 1126, 628, 975, 10, 1130, 55, 988, 956, 984,
                                      722, 988, 1131, 7]  # fmt: skip
    assert tokenizer.decode(tokenizer.encode(text)) == (
        "<|unk|>, do you like tea? <|endoftext|> In the sunlit terraces of the <|unk|>."
    )


BPE_TEXT = "Hello, do you like tea? <|endoftext|> In the sunlit terracesof someunknownPlace."
BPE_IDS = [15496, 11, 466, 345, 588, 8887, 30, 220, 50256, 554, 262, 4252, 18250, 8812, 2114,
           1659, 617, 34680, 27271, 13]  # fmt: skip


@pytest.mark.parametrize("spec", ["gpt2", "encoding"])
def test_2_5_byte_pair_encoding(spec, tiktoken_gpt2) -> None:
    tokenizer = gptdata.get_tokenizer("gpt2" if spec == "gpt2" else tiktoken_gpt2)
    assert isinstance(tokenizer, gptdata.GPT2Tokenizer)
    integers = tokenizer.encode(BPE_TEXT, allowed_special={"<|endoftext|>"})
    assert integers == BPE_IDS == tiktoken_gpt2.encode(BPE_TEXT, allowed_special={"<|endoftext|>"})
    assert tokenizer.decode(integers) == BPE_TEXT
    assert tokenizer.n_vocab == 50257 and tokenizer.eot_token == 50256
    for kw in ({"disallowed_special": ()}, {"allowed_special": "all"}):
        assert tokenizer.encode(BPE_TEXT, **kw) == tiktoken_gpt2.encode(BPE_TEXT, **kw)
    assert tokenizer.encode_ordinary(BPE_TEXT) == tiktoken_gpt2.encode_ordinary(BPE_TEXT)
    with pytest.raises(ValueError, match="disallowed_special forbids"):
        tokenizer.encode(BPE_TEXT, disallowed_special="all")
    with pytest.raises(ValueError):
        tiktoken_gpt2.encode(BPE_TEXT, disallowed_special="all")


def test_2_6_sliding_window(raw_text) -> None:
    tokenizer = gptdata.get_tokenizer("gpt2")
    enc_text = tokenizer.encode(raw_text)
    assert len(enc_text) == 5145
    enc_sample = enc_text[50:]
    context_size = 4
    assert enc_sample[:context_size] == [290, 4920, 2241, 287]
    assert enc_sample[1 : context_size + 1] == [4920, 2241, 287, 257]
    printed = [
        f"{tokenizer.decode(enc_sample[:i])} ----> {tokenizer.decode([enc_sample[i]])}"
        for i in range(1, context_size + 1)
    ]
    assert printed == [
        " and ---->  established",
        " and established ---->  himself",
        " and established himself ---->  in",
        " and established himself in ---->  a",
    ]


@pytest.mark.parametrize("tokenizer", ["gpt2", "encoding"])
def test_2_6_dataset_items_equal_classic(raw_text, tiktoken_gpt2, tokenizer) -> None:
    for max_length, stride in ((4, 1), (4, 4), (256, 128)):
        ours = GPTDatasetV1(
            raw_text, tiktoken_gpt2 if tokenizer == "encoding" else "gpt2", max_length, stride
        )
        classic = ClassicGPTDatasetV1(raw_text, tiktoken_gpt2, max_length, stride)
        assert len(ours) == len(classic)
        for k in (0, 1, len(classic) // 2, len(classic) - 1):
            assert torch.equal(ours[k][0], classic[k][0])
            assert torch.equal(ours[k][1], classic[k][1])
            assert torch.equal(ours.input_ids[k], classic.input_ids[k])
            assert torch.equal(ours.target_ids[k], classic.target_ids[k])


def test_2_6_loader_stride_1_and_4(raw_text) -> None:
    dataloader = create_dataloader_v1(raw_text, batch_size=1, max_length=4, stride=1, shuffle=False)
    data_iter = iter(dataloader)
    first_batch = next(data_iter)
    assert [t.tolist() for t in first_batch] == [[[40, 367, 2885, 1464]], [[367, 2885, 1464, 1807]]]
    second_batch = next(data_iter)
    assert [t.tolist() for t in second_batch] == [
        [[367, 2885, 1464, 1807]], [[2885, 1464, 1807, 3619]]
    ]  # fmt: skip
    dataloader = create_dataloader_v1(raw_text, batch_size=8, max_length=4, stride=4, shuffle=False)
    inputs, targets = next(iter(dataloader))
    assert inputs.tolist() == [
        [40, 367, 2885, 1464], [1807, 3619, 402, 271], [10899, 2138, 257, 7026],
        [15632, 438, 2016, 257], [922, 5891, 1576, 438], [568, 340, 373, 645],
        [1049, 5975, 284, 502], [284, 3285, 326, 11],
    ]  # fmt: skip
    assert targets.tolist() == [
        [367, 2885, 1464, 1807], [3619, 402, 271, 10899], [2138, 257, 7026, 15632],
        [438, 2016, 257, 922], [5891, 1576, 438, 568], [340, 373, 645, 1049],
        [5975, 284, 502, 284], [3285, 326, 11, 287],
    ]  # fmt: skip


def test_2_6_shuffled_batches_equal_classic_after_manual_seed(raw_text, tiktoken_gpt2) -> None:
    def epochs(loader, n=2):
        return [[(x.tolist(), y.tolist()) for x, y in loader] for _ in range(n)]

    for kwargs in (
        {"batch_size": 8, "max_length": 4, "stride": 4},
        {"batch_size": 2, "max_length": 256, "stride": 128},
        {},
    ):
        torch.manual_seed(123)
        classic = epochs(classic_dataloader_v1(raw_text, tiktoken_gpt2, **kwargs))
        torch.manual_seed(123)
        ours = epochs(create_dataloader_v1(raw_text, **kwargs))
        assert ours == classic
        assert ours[0] != ours[1]  # each epoch reshuffles, as DataLoader does


def test_2_7_token_embeddings() -> None:
    input_ids = torch.tensor([2, 3, 5, 1])
    torch.manual_seed(123)
    classic = torch.nn.Embedding(6, 3)
    torch.manual_seed(123)
    embedding = GPTEmbedding(vocab_size=6, emb_dim=3, context_length=4, positional="none")
    weight = embedding.tok_emb.weight
    assert torch.equal(weight, classic.weight)
    expected = torch.tensor(
        [
            [0.3374, -0.1778, -0.1690],
            [0.9178, 1.5810, 1.3010],
            [1.2753, -0.2010, -0.1606],
            [-0.4015, 0.9666, -1.1481],
            [-1.1589, 0.3255, -0.6315],
            [-2.8400, -0.7849, -1.4096],
        ]
    )
    assert torch.allclose(weight, expected, atol=5e-5)
    assert torch.allclose(embedding.tok_emb(torch.tensor([3])), expected[[3]], atol=5e-5)
    assert torch.allclose(embedding(input_ids[None])[0], expected[[2, 3, 5, 1]], atol=5e-5)


def test_2_8_positional_embeddings(raw_text) -> None:
    max_length, output_dim = 4, 256
    dataloader = create_dataloader_v1(
        raw_text, batch_size=8, max_length=max_length, stride=max_length, shuffle=False
    )
    inputs, _ = next(iter(dataloader))
    assert inputs.shape == torch.Size([8, 4])
    torch.manual_seed(123)
    token_embedding_layer = torch.nn.Embedding(50257, output_dim)
    pos_embedding_layer = torch.nn.Embedding(max_length, output_dim)
    token_embeddings = token_embedding_layer(inputs)
    pos_embeddings = pos_embedding_layer(torch.arange(max_length))
    assert token_embeddings.shape == torch.Size([8, 4, 256])
    assert pos_embeddings.shape == torch.Size([4, 256])
    classic = token_embeddings + pos_embeddings
    torch.manual_seed(123)
    emb = GPTEmbedding(vocab_size=50257, emb_dim=output_dim, context_length=max_length)
    ours = emb(inputs)
    assert ours.shape == classic.shape == torch.Size([8, 4, 256])
    assert torch.equal(ours, classic)
    assert torch.equal(emb.position_table(max_length), pos_embeddings)
