"""examples/train_gpt.py at toy size: it trains, evaluates, and a resumed run is bit-exact."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from conftest import corpus
from gptdata import prepare

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_gpt.py"
TOY = {"context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 2, "drop_rate": 0.1}


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("train_gpt", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("ex")
    return prepare([corpus("the-verdict.txt")], root / "store", val_fraction=0.1, quiet=True)


def test_resume_is_bit_exact(example, store, tmp_path) -> None:
    cfg = dict(example.GPT_CONFIG_124M, **TOY)
    straight = example.train(store.root, steps=6, checkpoint=tmp_path / "a.pt", config=cfg)
    example.train(store.root, steps=3, checkpoint=tmp_path / "b.pt", config=cfg)
    resumed = example.train(
        store.root, steps=6, checkpoint=tmp_path / "b.pt", resume=True, config=cfg
    )
    assert resumed["step"] == straight["step"] == 6
    a, b = straight["model"].state_dict(), resumed["model"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # every weight, to the bit
    assert resumed["train_loss"] == straight["train_loss"]
    sa, sb = (
        torch.load(p, weights_only=True)["loader"] for p in (tmp_path / "a.pt", tmp_path / "b.pt")
    )
    assert sa == sb
    # evaluate ran on the val split: every one of its tokens scored, a finite loss
    val = straight["val"]
    assert val.tokens == store.split("val").n_tokens and 5 < val.loss < 20


def test_a_step_changes_the_weights(example, store, tmp_path) -> None:
    cfg = dict(example.GPT_CONFIG_124M, **TOY)
    torch.manual_seed(123)
    fresh = example.GPTModel(dict(cfg, vocab_size=store.vocab_size)).state_dict()
    one = example.train(store.root, steps=1, checkpoint=tmp_path / "c.pt", config=cfg)
    changed = [k for k, v in one["model"].state_dict().items() if not torch.equal(v, fresh[k])]
    assert "out_head.weight" in changed
