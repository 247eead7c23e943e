"""Issue 19: your own model everywhere a model is taken (`py:FILE.py:NAME`, `--checkpoint`),
named results, the public `compare`, and `inspect --model` with windows, masks and two models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import gptdata
from gptdata.cli.entry import main
from gptdata.evaluation.models import load_model

# The book's chapter-4 shape, shrunk: token and position embeddings, one linear head.
MODEL_PY = """
import torch
from torch import nn

GPT_CONFIG = {"vocab_size": 50257, "context_length": 16, "emb_dim": 8}


class GPTModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.out_head(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, V)


def make():
    torch.manual_seed(0)
    return GPTModel(GPT_CONFIG)


model = make()
not_a_model = 3
"""

TEXT = "Every token is scored once, with as much left context as the window allows. " * 6


@pytest.fixture
def book(tmp_path: Path) -> tuple[Path, Path, torch.nn.Module]:
    """(model file, checkpoint saved as the book saves it, the trained model itself)."""
    path = tmp_path / "mymodel.py"
    path.write_text(MODEL_PY, encoding="utf-8")
    scope: dict = {}
    exec(MODEL_PY, scope)
    torch.manual_seed(1)
    trained = scope["GPTModel"](scope["GPT_CONFIG"])  # other weights than make()'s
    ckpt = tmp_path / "model_and_optimizer.pth"
    torch.save({"model_state_dict": trained.state_dict(), "optimizer_state_dict": {}}, ckpt)
    return path, ckpt, trained.eval()


def test_py_spec_with_a_checkpoint_scores_as_the_model_itself(book, tmp_path: Path) -> None:
    path, ckpt, trained = book
    want = gptdata.evaluate(trained, TEXT, max_length=16, progress=False)
    got = gptdata.evaluate(f"py:{path}:make", TEXT, checkpoint=ckpt, progress=False)
    assert got.nll == pytest.approx(want.nll, rel=1e-6) and got.max_length == 16
    assert got.name == f"py:{path}:make"
    plain = tmp_path / "plain.pth"
    torch.save(trained.state_dict(), plain)  # a bare state dict loads the same
    again = gptdata.evaluate(f"py:{path}:model", TEXT, checkpoint=plain, progress=False)
    assert again.nll == pytest.approx(want.nll, rel=1e-6)
    untrained = gptdata.evaluate(f"py:{path}:make", TEXT, progress=False)
    assert abs(untrained.nll - want.nll) > 1e-3  # the checkpoint was loaded, not ignored


def test_py_spec_in_the_cli(book, tmp_path: Path, capsys) -> None:
    path, ckpt, _ = book
    src = tmp_path / "val.txt"
    src.write_text(TEXT, encoding="utf-8")
    spec = f"py:{path}:make"
    assert main(["eval", str(src), "--model", spec, "--checkpoint", str(ckpt), "--json",
                 "--quiet"]) == 0  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert doc["models"][0]["model"] == spec and doc["models"][0]["max_length"] == 16
    assert main(["inspect", str(src), "--model", spec, "--checkpoint", str(ckpt)]) == 0
    assert " p=" in capsys.readouterr().out


@pytest.mark.parametrize("name,match", [
    ("missing", r"py:.*mymodel\.py:missing: .*mymodel\.py has no attribute 'missing'"),
    ("GPTModel", r"py:.*mymodel\.py:GPTModel: GPTModel needs arguments \(cfg\)"),
    ("not_a_model", r"py:.*mymodel\.py:not_a_model: not_a_model is int, not a model"),
])  # fmt: skip
def test_py_spec_errors_name_the_file_and_attribute(book, name: str, match: str) -> None:
    path, _, _ = book
    with pytest.raises(ValueError, match=match):
        load_model(f"py:{path}:{name}")


def test_checkpoint_errors_are_one_line_naming_the_file(book, tmp_path: Path, capsys) -> None:
    path, _, _ = book
    wrong = tmp_path / "wrong.pth"
    torch.save({"tok_emb.weight": torch.zeros(3, 3)}, wrong)
    with pytest.raises(ValueError, match=r"--checkpoint .*wrong\.pth does not fit py:"):
        load_model(f"py:{path}:make", checkpoint=wrong)
    src = tmp_path / "val.txt"
    src.write_text(TEXT, encoding="utf-8")
    code = main(["eval", str(src), "--model", f"py:{path}:make", "--checkpoint",
                 str(tmp_path / "none.pth")])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error: --checkpoint") and err.count("\n") == 1
    with pytest.raises(ValueError, match="py:FILE.py:NAME"):
        load_model(f"hf:{tmp_path}", checkpoint=wrong)


def test_name_and_max_length_from_the_model(book) -> None:
    path, _, trained = book
    r = gptdata.evaluate(trained, TEXT, name="tuned", progress=False)  # pos_emb: 16 positions
    assert r.name == "tuned" and r.max_length == 16

    def bare(x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*x.shape, 50257)

    with pytest.raises(ValueError, match="does not state its context length"):
        gptdata.evaluate(bare, TEXT, progress=False)


def test_public_compare_gives_the_cli_numbers(book, tmp_path: Path, capsys) -> None:
    path, ckpt, trained = book
    lines = [f"Held-out document {k}: the cat sat on mat {k}, then ran." for k in range(12)]
    src = tmp_path / "val.jsonl"
    src.write_text("".join(json.dumps({"text": t}) + "\n" for t in lines), encoding="utf-8")
    a = gptdata.evaluate(f"py:{path}:make", src, progress=False)
    b = gptdata.evaluate(f"py:{path}:make", src, checkpoint=ckpt, progress=False)
    c = gptdata.compare([a, b], metric="bits_per_byte", samples=300, seed=5)
    assert isinstance(c, gptdata.Comparison) and c.documents == 12 and c.warning is None
    assert main(["eval", str(src), "--model", f"py:{path}:make", "--model", f"py:{path}:make",
                 "--json", "--quiet", "--bootstrap", "300", "--seed", "5"]) == 0  # fmt: skip
    same = json.loads(capsys.readouterr().out)["comparisons"][0]
    assert same["diff"] == 0.0  # one model twice: no difference
    cli = gptdata.compare([a, a], samples=300, seed=5)
    assert (cli.diff, cli.low, cli.high) == (same["diff"], same["low"], same["high"])
    with pytest.raises(ValueError, match="compare takes two EvalResults"):
        gptdata.compare([a, b, a])
    assert math.isfinite(c.low) and c.low <= c.diff <= c.high


def test_inspect_model_honours_windows_n_and_mask(book, tmp_path: Path, capsys) -> None:
    path, _, _ = book
    src = tmp_path / "docs.jsonl"
    src.write_text('{"text": "One short doc."}\n{"text": "Another one here."}\n', encoding="utf-8")
    spec = f"py:{path}:make"
    args = ["inspect", str(src), "--model", spec, "--max-length", "6", "--windows"]
    assert main([*args, "-n", "2", "--stride", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("window ") == 2 and out.count(" p=") == 12
    assert main([*args, "-n", "1", "--stride", "2", "--documents", "mask"]) == 0
    out = capsys.readouterr().out
    # 'One short doc.' is 4 tokens: the end-of-text's target (the next start) has no loss.
    assert out.count("window ") == 1 and "[masked]" in out and out.count(" p=") == 5
    masked_line = next(line for line in out.splitlines() if "[masked]" in line)
    after = out.splitlines()[out.splitlines().index(masked_line) + 1]
    assert after.startswith("  Another ---->")  # the next document is read on its own
    assert (
        main(["inspect", str(src), "--model", spec, "--max-length", "6", "--documents", "mask"])
        == 0
    )
    assert "[masked]" in capsys.readouterr().out  # without --windows: the first window


def test_inspect_two_models_side_by_side_and_small_probabilities(book, tmp_path: Path, capsys):
    path, _, _ = book
    extra = tmp_path / "tiny.py"
    extra.write_text(
        "import torch\n"
        "def peaked(x):\n    out = torch.zeros(*x.shape, 50257)\n    out[..., 13] = 20.0\n"
        "    return out\n",
        encoding="utf-8",
    )
    src = tmp_path / "t.txt"
    src.write_text("Hello there. Hello again.", encoding="utf-8")
    a, b = f"py:{path}:make", f"py:{extra}:peaked"
    assert main(["inspect", str(src), "--model", a, "--model", b, "--max-length", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(f"{a}: p=" in x and f" | {b}: p=" in x for x in lines)
    # peaked gives every token but '.' exp(-20) / ... ~ 2e-09 / 1.4e-05 region: never 0.0000
    assert "p=0.0000" not in "\n".join(lines) and "e-" in lines[0].split(f"{b}: p=")[1]
