"""Issue 18, evaluation: comparisons never reach a wrong verdict, memory follows the work, and
every failure is one line before any work. Each test failed on the code before this change."""

from __future__ import annotations

import json
import math
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import gptdata
from gptdata.cli.entry import main
from gptdata.evaluation.baselines import Bigram, Unigram
from gptdata.evaluation.compare import Comparison
from gptdata.evaluation.models import load_model
from gptdata.inspect.pairs import model_pairs

EOT = 50256
COMMA = 11  # ','


def zeros(x: torch.Tensor) -> torch.Tensor:
    return torch.zeros(*x.shape, 50257)  # (B, T, V): uniform


def no_comma(x: torch.Tensor) -> torch.Tensor:
    logits = torch.zeros(*x.shape, 50257)  # (B, T, V)
    logits[..., COMMA] = -float("inf")  # ',' gets probability 0
    return logits


def nan_after_comma(x: torch.Tensor) -> torch.Tensor:
    logits = torch.zeros(*x.shape, 50257)  # (B, T, V)
    logits[x == COMMA] = float("nan")  # NaN logits wherever the input is ','
    return logits


def docs_file(tmp_path: Path, count: int = 12, comma_in: int = 7) -> Path:
    rows = [f"Document number {k} is plain text" for k in range(count)]
    rows[comma_in] = "Document seven, with a comma, twice"
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in rows), encoding="utf-8")
    return path


# Comparisons never reach a wrong verdict


def test_an_infinite_loss_is_reported_and_refuses_a_verdict(tmp_path: Path) -> None:
    src = docs_file(tmp_path)
    base = gptdata.evaluate(zeros, src, max_length=16, progress=False, name="A")
    bad = gptdata.evaluate(no_comma, src, max_length=16, progress=False, name="B")
    assert base.nonfinite_documents == 0 and base.nonfinite() is None
    assert bad.nonfinite_documents == 1
    assert bad.nonfinite() == "infinite loss on 1 document (doc 7)"
    assert bad.to_dict()["nonfinite_documents"] == 1
    c = Comparison.of(bad, base)
    assert c.verdict() == "B has infinite bits per byte on 1 document (doc 7): no comparison"
    assert math.isnan(c.diff) and math.isnan(c.low)
    c = gptdata.compare([base, bad], metric="loss")
    assert c.verdict() == "B has infinite loss on 1 document (doc 7): no comparison"


def test_nan_logits_stay_nan_never_perplexity_inf(tmp_path: Path) -> None:
    src = docs_file(tmp_path)
    r = gptdata.evaluate(nan_after_comma, src, max_length=16, progress=False)
    assert math.isnan(r.loss) and math.isnan(r.perplexity)  # was: perplexity inf
    assert r.nonfinite() == "NaN loss on 1 document (doc 7)"
    base = gptdata.evaluate(zeros, src, max_length=16, progress=False)
    assert "no comparison" in gptdata.compare([base, r]).verdict()


def test_the_cli_says_which_model_has_a_non_finite_loss(tmp_path: Path, capsys) -> None:
    src = docs_file(tmp_path)
    model = tmp_path / "m.py"
    model.write_text(
        "import torch\n"
        "def uniform(x):\n    return torch.zeros(*x.shape, 50257)\n"
        "def no_comma(x):\n    out = torch.zeros(*x.shape, 50257)\n"
        "    out[..., 11] = -float('inf')\n    return out\n",
        encoding="utf-8",
    )
    code = main(
        ["eval", str(src), "--max-length", "16", "--quiet", "--bootstrap", "50",
         "--model", f"py:{model}:uniform", "--model", f"py:{model}:no_comma"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert f"py:{model}:no_comma: infinite loss on 1 document (doc 7)" in out
    assert "no comparison" in out


def test_a_zero_probability_end_of_text_leaves_bits_per_byte_finite() -> None:
    tok = gptdata.get_tokenizer("gpt2")
    ids = tok.encode("One doc.") + [EOT] + tok.encode("Two docs.")

    def no_eot(x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*x.shape, 50257)  # (B, T, V)
        logits[..., EOT] = -float("inf")
        return logits

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not one warning per batch
        r = gptdata.evaluate(no_eot, ids, max_length=4, by="stream", progress=False)
    assert math.isinf(r.nll)  # the end-of-text target: probability 0
    assert math.isfinite(r.bits_per_byte)  # left out of the text bits, as documented
    assert r.bits_per_byte == pytest.approx(math.log2(50256) * (len(ids) - 1) / r.bytes, rel=1e-5)
    assert np.isfinite(r.documents.bits_per_byte()).all()


def _two_models_on(text: str) -> tuple[gptdata.EvalResult, gptdata.EvalResult]:
    def likes_the(x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*x.shape, 50257)  # (B, T, V)
        logits[..., [262, 13, 11, 290]] = 3.0  # ' the', '.', ',', ' and'
        return logits

    a = gptdata.evaluate(zeros, text, max_length=64, by="document", progress=False, name="a")
    b = gptdata.evaluate(likes_the, text, max_length=64, by="document", progress=False, name="b")
    return a, b


def test_one_document_never_gets_a_zero_width_interval_and_chunks_give_one() -> None:
    text = " ".join(f"The cat number {k} sat on the mat, and the dog ran." for k in range(120))
    a, b = _two_models_on(text)
    assert len(a.documents) == 1
    one = gptdata.compare([a, b])
    assert math.isnan(one.low) and math.isnan(one.high)
    assert "95 % CI" not in one.verdict() and "--bootstrap-unit chunk" in one.verdict()
    chunks = gptdata.compare([a, b], unit="chunk")
    assert chunks.units == len(a.chunks) >= 4 and chunks.low < chunks.diff < chunks.high
    assert chunks.diff == pytest.approx(one.diff)  # the same corpus difference
    assert (
        chunks.verdict().startswith("b is better by") and "chunks of 256 tokens" in chunks.verdict()
    )
    assert int(a.chunks.bytes.sum()) == a.bytes and int(a.chunks.tokens.sum()) == a.tokens


def test_few_documents_warn(tmp_path: Path, capsys) -> None:
    src = docs_file(tmp_path, count=4, comma_in=0)
    model = tmp_path / "m.py"
    model.write_text(
        "import torch\ndef uniform(x):\n    return torch.zeros(*x.shape, 50257)\n"
        "def peaked(x):\n    out = torch.zeros(*x.shape, 50257)\n    out[..., 13] = 2.0\n"
        "    return out\n",
        encoding="utf-8",
    )
    args = ["eval", str(src), "--max-length", "16", "--quiet", "--bootstrap", "100",
            "--model", f"py:{model}:uniform", "--model", f"py:{model}:peaked"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "the interval rests on 4 documents" in out and "--bootstrap-unit chunk" in out
    assert main([*args, "--bootstrap-unit", "chunk"]) == 0
    assert "chunk of 256 tokens" in capsys.readouterr().out  # 4 short documents: one chunk


# Memory follows the work, not the arguments


def test_max_length_beyond_the_source_allocates_for_the_source_only() -> None:
    tok = gptdata.get_tokenizer("gpt2")
    ids = tok.encode("A short held-out text of a few tokens. " * 20)
    small = gptdata.evaluate(zeros, ids, max_length=len(ids), progress=False)
    tracemalloc.start()
    try:
        big = gptdata.evaluate(zeros, ids, max_length=10**7, progress=False)  # was ~400 MB
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 60e6, peak
    assert big.nll == pytest.approx(small.nll) and big.max_length == 10**7
    assert len(big.position_nll) == len(ids)


def test_a_count_baseline_takes_any_length_without_allocating_it() -> None:
    uni = Unigram(np.ones(50257, dtype=np.int64))
    tracemalloc.start()
    try:
        r = gptdata.evaluate(uni, "Hello world, again.", max_length=10**12, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20e6 and r.loss == pytest.approx(math.log(50257 * 2) - math.log(2), rel=1e-6)


def test_inspect_with_a_baseline_builds_no_full_table(monkeypatch) -> None:
    tok = gptdata.get_tokenizer("gpt2")
    ids = tok.encode("the cat sat on the mat and the cat ran")
    bigram = Bigram.from_tokens(np.array(ids * 3), vocab_size=50257, prefix=EOT)

    def refuse(self, inputs):  # the (B, T, V) float64 path
        raise AssertionError("built a (T, V) table")

    monkeypatch.setattr(Bigram, "__call__", refuse)
    lines = model_pairs(load_model(bigram), ids[:6], tok)
    assert len(lines) == 5 and " ----> ' cat' (3797)" in lines[0]
    p = bigram.probability(ids[0], ids[1])
    assert f"p={p:.4f}" in lines[0]


# Every failure is one line, before any work


@pytest.mark.parametrize("flag,path", [
    ("--per-document", "no/such/folder/docs.csv"),
    ("--plot", "no/such/folder/eval.png"),
    ("--plot", "eval.txt"),
])  # fmt: skip
def test_output_paths_are_checked_before_any_work(tmp_path: Path, capsys, flag, path) -> None:
    src = docs_file(tmp_path)
    marker = tmp_path / "loaded"
    model = tmp_path / "m.py"
    model.write_text(
        "import pathlib, torch\n"
        f"pathlib.Path({str(marker)!r}).touch()\n"
        "def uniform(x):\n    return torch.zeros(*x.shape, 50257)\n",
        encoding="utf-8",
    )
    code = main(["eval", str(src), "--max-length", "8", "--quiet",
                 "--model", f"py:{model}:uniform", flag, str(tmp_path / path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and not marker.exists()  # refused before the model was even loaded
    assert err.startswith("error: ") and err.count("\n") == 1 and flag in err


def test_plan_plot_path_is_checked_before_any_work(tmp_path: Path, capsys) -> None:
    src = tmp_path / "t.txt"
    src.write_text("Some text to plan. " * 30, encoding="utf-8")
    code = main(["plan", str(src), "--max-length", "4", "--stride", "4", "--batch-size", "2",
                 "--plot", str(tmp_path / "nowhere" / "p.png")])  # fmt: skip
    captured = capsys.readouterr()
    assert code != 0 and captured.out == "" and "--plot" in captured.err


@pytest.mark.parametrize("kwargs,match", [
    ({"max_length": True}, r"max_length must be a whole number >= 1, got True \(bool\)"),
    ({"max_length": 4.0}, r"max_length must be a whole number >= 1, got 4.0 \(float\)\. Pass e\.g\. max_length=4"),
    ({"max_length": 4, "stride": 2.5}, r"stride must be a whole number"),
    ({"max_length": 4, "batch_size": False}, r"batch_size must be a whole number"),
    ({"max_length": 4, "batch_size": 0}, r"batch_size must be >= 1, got 0"),
])  # fmt: skip
def test_evaluate_arguments_are_whole_numbers(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        gptdata.evaluate(zeros, "Hello world", progress=False, **kwargs)


def test_compare_arguments_are_checked(tmp_path: Path) -> None:
    src = docs_file(tmp_path)
    r = gptdata.evaluate(zeros, src, max_length=16, progress=False)
    for kwargs, match in (({"seed": -1}, "seed must be a whole number >= 0"),
                          ({"samples": True}, "samples must be a whole number"),
                          ({"unit": "word"}, "--bootstrap-unit")):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            gptdata.compare([r, r], **kwargs)


@pytest.mark.parametrize("ids", [np.array([15496.0, 995.7]), [15496, 995.5], torch.tensor([1.0])])
def test_float_token_ids_are_refused_not_truncated(ids) -> None:
    with pytest.raises(ValueError, match="must be integers"):
        gptdata.evaluate(zeros, ids, max_length=4, progress=False)
