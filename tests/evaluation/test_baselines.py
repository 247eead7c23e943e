"""Count baselines (unigram, bigram) and Hugging Face models as evaluate() specs."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gptdata
from gptdata.evaluation.baselines import Bigram, Unigram


def reference_bigram(tokens: list[int], vocab: int, prefix: int) -> np.ndarray:
    """P(w | v) as a dense (V, V) table, from plain Python counts."""
    pairs = Counter(zip([prefix] + tokens[:-1], tokens, strict=True))
    ctx = Counter([prefix] + tokens[:-1])
    uni = Counter(tokens)
    n = len(tokens)
    p_uni = [(uni[w] + 1) / (n + vocab) for w in range(vocab)]
    return np.array(
        [[(pairs[v, w] + p_uni[w]) / (ctx[v] + 1) for w in range(vocab)] for v in range(vocab)]
    )


@settings(max_examples=60, deadline=None)
@given(
    tokens=st.lists(st.integers(0, 6), min_size=1, max_size=80),
    chunk=st.integers(1, 20),
)
def test_bigram_equals_plain_counts_and_sums_to_one(tokens: list[int], chunk: int) -> None:
    V, prefix = 7, 6
    arr = np.array(tokens, dtype=np.uint16)
    chunks = [arr[i : i + chunk] for i in range(0, len(arr), chunk)]
    model = Bigram.from_tokens(chunks, vocab_size=V, prefix=prefix, threads=2)
    want = reference_bigram(tokens, V, prefix)
    x = torch.arange(V)[None, :]  # every context once: (1, V)
    got = torch.exp(model(x)[0].double()).numpy()  # (V, V)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-6)
    ys = torch.tensor([tokens])
    xs = torch.tensor([[prefix] + tokens[:-1]])
    fast = model.target_log_probs(xs, ys)[0].double().numpy()
    np.testing.assert_allclose(fast, np.log(want[xs[0], ys[0]]), rtol=1e-6)


def test_bigram_golden_and_unigram_sums_to_one() -> None:
    model = Bigram.from_tokens(np.array([1, 2, 1, 2]), vocab_size=3, prefix=0)
    assert model.pair_count(1, 2) == 2 and model.pair_count(2, 2) == 0
    assert model.probability(1, 2) == pytest.approx((2 + 3 / 7) / 3)
    uni = Unigram.from_tokens(np.array([1, 2, 1, 2]), vocab_size=3)
    assert [uni.probability(w) for w in range(3)] == pytest.approx([1 / 7, 3 / 7, 3 / 7])
    sums = torch.exp(uni(torch.zeros(1, 2, dtype=torch.long)).double()).sum(-1)  # (1, 2)
    assert sums[0].tolist() == pytest.approx([1.0, 1.0])


def test_gpt2_bigram_from_a_store_sums_to_one_and_scores(tmp_path: Path) -> None:
    docs = ["the cat sat on the mat.", "the dog sat on the log.", "a cat and a dog."]
    store = gptdata.prepare(
        None, tmp_path / "s", texts=docs, val_fraction=0.0, workers=1, quiet=True
    )
    tok = gptdata.get_tokenizer("gpt2")
    ids = tok.encode("the cat")
    model = Bigram.from_tokens(store.split("train")[:], vocab_size=50257, prefix=50256)
    probs = torch.exp(model(torch.tensor([ids])).double())  # (1, 2, V)
    assert probs.sum(-1)[0].tolist() == pytest.approx([1.0, 1.0])
    r = gptdata.evaluate(f"bigram:{tmp_path / 's'}", "the cat sat", max_length=2)
    seq = [50256] + tok.encode("the cat sat")
    want = -sum(math.log(model.probability(a, b)) for a, b in zip(seq, seq[1:], strict=False))
    assert r.nll == pytest.approx(want, rel=1e-6)
    uni = gptdata.evaluate(f"unigram:{tmp_path / 's'}", "the cat sat", max_length=2)
    assert uni.loss > r.loss  # context helps on text the bigram has seen


def _tiny_gpt2(path: Path, **config: int) -> torch.nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        n_layer=1, n_head=2, n_embd=32, vocab_size=config.get("vocab_size", 50257), n_positions=64
    )
    model = transformers.GPT2LMHeadModel(cfg).eval()
    model.save_pretrained(path)
    return model


def test_hf_model_from_a_folder_matches_its_own_loss(tmp_path: Path) -> None:
    model = _tiny_gpt2(tmp_path / "m")
    text = "A short text for a tiny random model."
    r = gptdata.evaluate(f"hf:{tmp_path / 'm'}", text, max_length=64)
    ids = [50256] + gptdata.get_tokenizer("gpt2").encode(text)
    with torch.no_grad():
        hf_loss = model(torch.tensor([ids]), labels=torch.tensor([ids])).loss  # mean over n
    assert r.tokens == len(ids) - 1
    assert r.nll == pytest.approx(float(hf_loss) * (len(ids) - 1), rel=1e-5)
    direct = gptdata.evaluate(model, text, max_length=64)
    assert direct.nll == pytest.approx(r.nll, rel=1e-6)


def test_hf_model_errors(tmp_path: Path) -> None:
    _tiny_gpt2(tmp_path / "m")
    with pytest.raises(
        ValueError, match=r"has 64 positions, but max_length=128\. Pass max_length=64 or less"
    ):
        gptdata.evaluate(f"hf:{tmp_path / 'm'}", "text", max_length=128)
    _tiny_gpt2(tmp_path / "small", vocab_size=1000)
    with pytest.raises(ValueError, match=r"vocabulary of 1,000, smaller than the 50,257"):
        gptdata.evaluate(f"hf:{tmp_path / 'small'}", "text", max_length=8)
    with pytest.raises(FileNotFoundError, match=r"hf:.*nope: no such folder"):
        gptdata.evaluate(f"hf:{tmp_path / 'nope'}", "text", max_length=8)
