"""Model against model (bootstrap, verdict, per-document files, plot) and `gptdata eval`."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import gptdata
from gptdata.cli.entry import main
from gptdata.evaluation.compare import Comparison, changed_most, plot, table, write_per_document
from gptdata.evaluation.scoring import DocumentScores, EvalResult

LN2 = math.log(2)


def fake(name: str, bits: list[float], nbytes: list[int]) -> EvalResult:
    nll = np.array(bits) * LN2
    docs = DocumentScores(
        tokens=np.array(nbytes) // 2,
        nll=nll,
        nll_text=nll,
        bytes=np.array(nbytes),
        words=np.array(nbytes) // 5,
    )
    return EvalResult(
        name=name,
        source="s",
        by="document",
        max_length=4,
        stride=4,
        tokens=int(docs.tokens.sum()),
        nll=float(nll.sum()),
        nll_text=float(nll.sum()),
        bytes=int(docs.bytes.sum()),
        words=int(docs.words.sum()),
        documents=docs,
        position_nll=np.ones(4),
        position_tokens=np.array([4, 4, 4, 0]),
        seconds=1.0,
    )


def reference_bootstrap(a: EvalResult, b: EvalResult, samples: int, seed: int) -> list[float]:
    """The same paired bootstrap, one draw at a time."""
    rng = np.random.default_rng(seed)
    D = len(a.documents)
    pick = rng.integers(0, D, size=(samples, D))
    out = []
    for row in pick:
        da = a.documents.nll_text[row].sum() / LN2
        db = b.documents.nll_text[row].sum() / LN2
        out.append((da - db) / a.documents.bytes[row].sum())
    return np.percentile(out, [2.5, 97.5]).tolist()


def test_bootstrap_is_seeded_stable_and_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(5)
    nbytes = rng.integers(50, 500, 40).tolist()
    base = (np.array(nbytes) * 2.0 + rng.normal(0, 20, 40)).tolist()
    tuned = (np.array(base) - np.array(nbytes) * 0.05 + rng.normal(0, 5, 40)).tolist()
    a, b = fake("base", base, nbytes), fake("tuned", tuned, nbytes)
    c = Comparison.of(a, b, samples=500, seed=3)
    assert c == Comparison.of(a, b, samples=500, seed=3)  # same seed, same interval
    assert c != Comparison.of(a, b, samples=500, seed=4)
    assert [c.low, c.high] == pytest.approx(reference_bootstrap(a, b, 500, 3))
    assert c.diff == pytest.approx((sum(base) - sum(tuned)) / sum(nbytes))
    assert c.low < c.diff < c.high and c.low > 0
    assert c.verdict() == (
        f"tuned is better by {c.diff:.3f} bpb, 95 % CI {c.low:.3f}-{c.high:.3f} (40 documents)"
    )
    flipped = Comparison.of(b, a, samples=500, seed=3)
    assert flipped.verdict().startswith(f"tuned is better by {c.diff:.3f} bpb")


def test_no_clear_difference_and_changed_most() -> None:
    a = fake("a", [10.0, 20.0, 30.0], [10, 10, 10])
    b = fake("b", [11.0, 19.0, 30.0], [10, 10, 10])
    c = Comparison.of(a, b, samples=200)
    assert c.verdict().startswith("no clear difference: a - b = +0.000 bpb, 95 % CI -")
    lines = changed_most(a, b, count=2)
    assert lines[0] == "  document 0 (10 bytes): 1.000 -> 1.100 bpb (+1.0 bits)"
    assert lines[1] == "  document 1 (10 bytes): 2.000 -> 1.900 bpb (-1.0 bits)"
    with pytest.raises(ValueError, match=r"a and x were scored on different documents \(3 vs 1\)"):
        Comparison.of(a, fake("x", [1.0], [10]))


def test_per_document_files_and_plot(tmp_path: Path) -> None:
    a = fake("a", [8.0, 16.0], [10, 20])
    b = fake("b", [4.0, 8.0], [10, 20])
    write_per_document([a, b], tmp_path / "d.csv")
    rows = list(csv.DictReader(open(tmp_path / "d.csv")))
    assert rows[1]["document"] == "1" and rows[1]["bytes"] == "20"
    assert float(rows[1]["bits_per_byte[b]"]) == pytest.approx(0.4)
    write_per_document([a, b], tmp_path / "d.jsonl")
    first = json.loads((tmp_path / "d.jsonl").read_text().splitlines()[0])
    assert first["bits_per_byte[a]"] == pytest.approx(0.8) and first["tokens"] == 5
    plot([a, b], tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    head = "model tokens loss perplexity bits/byte word ppl tokens/s"
    assert table([a, b]).splitlines()[0].split() == head.split()


@pytest.fixture
def models(tmp_path: Path) -> Path:
    transformers = pytest.importorskip("transformers")
    for seed, name in ((0, "base"), (1, "tuned")):
        torch.manual_seed(seed)
        cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=64)
        transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / name)
    docs = [f"Document number {k}: the cat sat on the mat, {k} times over." for k in range(12)]
    gptdata.prepare(None, tmp_path / "store", texts=docs, val_fraction=0.5, workers=1, quiet=True)
    return tmp_path


def test_cli_eval_compares_two_checkpoints(
    models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, base, tuned = models / "store", models / "base", models / "tuned"
    argv = ["eval", str(store), "--model", f"hf:{base}", "--model", f"hf:{tuned}"]
    assert main([*argv, "--max-length", "16", "--json", "--quiet", "--bootstrap", "200"]) == 0
    doc = json.loads(capsys.readouterr().out)
    first, second = doc["models"]
    assert (
        first["model"] == f"hf:{base}" and first["max_length"] == 16 and first["by"] == "document"
    )
    direct = gptdata.evaluate(f"hf:{base}", store, max_length=16)
    assert first["nll"] == pytest.approx(direct.nll) and first["tokens"] == direct.tokens
    verdict = doc["comparisons"][0]["verdict"]
    assert "bpb, 95 % CI" in verdict and doc["comparisons"][0]["samples"] == 200
    again = main([*argv, "--max-length", "16", "--json", "--quiet", "--bootstrap", "200"])
    assert (
        again == 0 and json.loads(capsys.readouterr().out)["comparisons"][0]["verdict"] == verdict
    )
    out_csv, png = models / "docs.csv", models / "e.png"
    assert main([*argv, "--per-document", str(out_csv), "--plot", str(png), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "max_length 64" in out  # the models' context when --max-length is not given
    assert f"hf:{base} vs hf:{tuned}: " in out and "documents that changed most" in out
    header = out_csv.read_text().splitlines()[0]
    assert header.startswith("document,tokens,bytes,nll[hf:")
    assert png.stat().st_size > 1000


def test_cli_eval_errors(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = f"hf:{models / 'base'}"
    assert main(["eval", str(models / "store"), "--model", base, "--max-length", "128"]) == 1
    assert "has 64 positions, but --max-length 128. Pass --max-length 64 or less." in (
        capsys.readouterr().err
    )
    argv = ["eval", str(models / "store"), "--model", base, "--stride", "32", "--max-length", "16"]
    assert main(argv) == 1
    assert "--stride 32 must be between 1 and --max-length 16" in capsys.readouterr().err


def test_cli_inspect_with_a_model(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(models / "store")
    assert main(["inspect", store, "--model", f"bigram:{store}", "--max-length", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Document ----> ' number' (1271)  p=")
    assert "top 3: " in lines[0] and lines[0].count("'") >= 8


def test_huge_perplexities_saturate_and_stay_valid_json() -> None:
    r = fake("random", [5000.0, 5000.0], [10, 10])  # 2 words, ~3466 nats per word
    assert r.word_perplexity == math.inf
    doc = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert doc["word_perplexity"] is None and doc["bits_per_byte"] == pytest.approx(500.0)
