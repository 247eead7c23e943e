"""plan --blend, inspect --blend and evaluate on a mixture: Megatron's syntax, the numbers, one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import corpus
from gptdata import Mixture, evaluate, get_tokenizer
from gptdata.cli import main
from gptdata.inspect.blend import cumulative_shares, parse_blend


@pytest.fixture
def two_files(tmp_path):
    web = tmp_path / "web.txt"
    web.write_text(corpus("the-verdict.txt").read_text(encoding="utf-8"))
    code = tmp_path / "code.txt"
    code.write_text(corpus("tinyshakespeare.txt").read_text(encoding="utf-8")[:8000])
    return web, code


def test_plan_blend_counts_each_source(capsys, two_files) -> None:
    web, code = two_files
    argv = ["plan", "--blend", "0.7", str(web), "0.3", str(code), "--max-length", "64"]
    assert main([*argv, "--stride", "64", "--batch-size", "4", "--samples", "1000"]) == 0
    out = capsys.readouterr().out
    mix = Mixture([(0.7, web), (0.3, code)], max_length=64, stride=64)
    drawn = mix.index.counts_at(1000)
    assert drawn.tolist() == [700, 300]  # Megatron's rule on 1,000 samples: exact shares
    epochs = 300 / len(mix.datasets[1])
    assert f"code.txt: share 0.300, {len(mix.datasets[1]):,} windows, 300 samples" in out
    assert f"{epochs:.2f} epochs: upsampled" in out
    assert "batches per epoch  250 (batch_size=4)" in out
    assert "1,000 samples of max_length 64 (64,000 tokens)" in out


def test_plan_blend_tokens_and_plot(capsys, two_files, tmp_path) -> None:
    web, code = two_files
    png = tmp_path / "shares.png"
    argv = ["plan", "--blend", "1", str(web), "1", str(code), "--max-length", "10"]
    argv += ["--stride", "10", "--batch-size", "2", "--tokens", "995", "--plot", str(png)]
    assert main(argv) == 0
    assert "100 samples of max_length 10" in capsys.readouterr().out  # ceil(995 / 10)
    assert png.stat().st_size > 1000
    mix = Mixture([(1, web), (1, code)], max_length=10, stride=10)
    n, shares = cumulative_shares(mix, 100)
    assert np.allclose(shares.sum(axis=1), 1.0) and abs(shares[-1, 0] - 0.5) <= 1 / 100


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["0.7", "A", "0.3"], "takes weight and path pairs .* got 3 words"),
        (["x", "A"], "'x' \\(word 1\\) is not a weight"),
        (["-1", "A"], "weight -1 of A must be a number >= 0"),
        (["0", "A", "0", "B"], "the weights add up to 0"),
        (["1", "missing.txt"], "missing.txt does not exist"),
    ],
)
def test_bad_blends_are_one_line(tmp_path, monkeypatch, words, message) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "A").write_text("a")
    (tmp_path / "B").write_text("b")
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        parse_blend(words)


def test_cli_bad_blend_exits_with_one_line(capsys, two_files) -> None:
    web, _ = two_files
    argv = ["plan", "--blend", "0.5", str(web), "0.5", "--max-length", "8", "--stride", "8"]
    assert main([*argv, "--batch-size", "2"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --blend takes weight and path pairs")
    assert main(["plan", str(web), "--blend", "1", str(web), "--max-length", "8", "--stride",
                 "8", "--batch-size", "2"]) != 0  # fmt: skip
    assert "not both" in capsys.readouterr().err


def test_inspect_blend_names_the_source_of_each_window(capsys, two_files) -> None:
    web, code = two_files
    argv = ["inspect", "--blend", "0.5", str(web), "0.5", str(code), "--max-length", "8"]
    assert main([*argv, "-n", "6"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    mix = Mixture([(0.5, web), (0.5, code)], max_length=8, stride=8)
    sources, windows = mix.locate(np.arange(6))
    tok = get_tokenizer("gpt2")
    for k, line in enumerate(lines):
        name = ["web.txt", "code.txt"][int(sources[k])]
        assert line.startswith(f"sample {k}: {name} window {int(windows[k]):,}: ")
        ds = mix.datasets[int(sources[k])]
        ids = ds.tokens.gather(np.array([int(windows[k]) * 8]), 8)[0].tolist()
        assert line.endswith(tok.decode(ids).replace("\n", "\\n"))


class Bigramish(torch.nn.Module):
    """Logits that depend on the input token, so sources score differently."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Embedding(50257, 8)
        self.out = torch.nn.Linear(8, 50257)
        self.context_length = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.table(x))  # (B, T, V)


def test_evaluate_on_a_mixture_reports_each_source_and_the_total(two_files) -> None:
    web, code = two_files
    model = Bigramish()
    mix = Mixture([(0.7, web), (0.3, code)], max_length=16, stride=16)
    r = evaluate(model, mix, progress=False)
    alone = [evaluate(model, p, progress=False) for p in (web, code)]
    parts = list(r.sources.values())
    assert [p.tokens for p in parts] == [a.tokens for a in alone]
    assert [p.nll for p in parts] == pytest.approx([a.nll for a in alone], rel=1e-9)
    assert r.tokens == sum(a.tokens for a in alone)
    assert r.loss == pytest.approx(sum(a.nll for a in alone) / r.tokens, rel=1e-9)
    assert r.weighted_loss == pytest.approx(0.7 * alone[0].loss + 0.3 * alone[1].loss)
    assert len(r.documents) == 2 and parts[0].loss != pytest.approx(parts[1].loss)
