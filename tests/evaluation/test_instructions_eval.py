"""Issue 21: evaluating a fine-tuned model on instruction examples, the response tokens only.

The scored targets are ``instruction_collate(..., mask_prompt=True)``'s non-ignored ones; the
numbers are checked against a hand computation with a model whose logits are a fixed function of
the current input token (so each target's log-probability is known without running windows).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gptdata
from gptdata.cli.entry import main
from gptdata.evaluation.instructions import InstructionData, instruction_windows
from gptdata.prepare.instructions import ALPACA_PREAMBLE, get_template
from gptdata.windows.finetune import Example, InstructionDataset, instruction_collate

SAMPLE = Path(gptdata.__file__).parent / "data" / "instructions.json"
V = 50257
EOT = 50256


def table_logits(x: torch.Tensor) -> torch.Tensor:
    """(B, T) -> (B, T, V): logits a fixed function of each input token alone."""
    v = torch.arange(V, dtype=torch.float64)  # (V,)
    ids, where = torch.unique(x, return_inverse=True)  # rows once per distinct token: fast
    rows = (3.0 * torch.cos(ids[:, None].double() * 0.37 + v * 0.011)).float()  # (U, V)
    return rows[where]  # (B, T, V)


class TableModel(torch.nn.Module):
    """The same logits for a token wherever it stands: context-free, so windows cannot matter."""

    context_length = 256

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return table_logits(idx)


def hand_log_prob(context_token: int, target: int) -> float:
    row = table_logits(torch.tensor([[context_token]]))[0, 0].double().numpy()  # (V,)
    top = row.max()
    return float(row[target] - top - math.log(np.exp(row - top).sum()))


@pytest.fixture(scope="module")
def ds() -> InstructionDataset:
    return InstructionDataset(SAMPLE)


def test_scored_targets_are_the_prompt_masked_collates(ds: InstructionDataset) -> None:
    x = InstructionData.from_dataset(ds, name="sample")
    # One batch of every example, as a trainer would build it: the same mask row by row.
    _, targets = instruction_collate(list(ds), mask_prompt=True)  # (E, longest)
    for k, ex in enumerate(ds):
        n = len(ex.token_ids)
        o = x.data.offsets[k]
        want = (targets[k, :n] != -100).numpy()
        assert np.array_equal(x.targets_scored[o : o + n], want)
        assert x.first[k] == ex.prompt_length - 1  # the first trained target: the header's \n
        assert not x.targets_scored[o + n : o + n + 1].any()  # into the next example: never


class Examples(list):
    """Bare examples with what InstructionData reads of a dataset: a tokenizer and a template."""

    tokenizer = gptdata.get_tokenizer("gpt2")
    template = get_template("alpaca")


examples = st.lists(
    st.lists(st.integers(0, 1000), min_size=2, max_size=30).flatmap(
        lambda ids: st.integers(1, len(ids)).map(lambda p: Example(ids, p))
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None)
@given(examples, st.integers(1, 12), st.data())
def test_windows_score_each_response_target_once(batch, max_length, data) -> None:
    stride = data.draw(st.integers(1, max_length))
    x = InstructionData.from_dataset(Examples(batch), name="random")  # type: ignore[arg-type]
    _, targets = instruction_collate(batch, mask_prompt=True)  # (E, longest)
    for k, ex in enumerate(batch):
        n, o = len(ex.token_ids), x.data.offsets[k]
        assert np.array_equal(x.targets_scored[o : o + n], (targets[k, :n] != -100).numpy())
    starts, lengths, scored = instruction_windows(x, max_length=max_length, stride=stride)
    hits = [
        s + ln - j for s, ln, sc in zip(starts, lengths, scored, strict=True) for j in range(sc)
    ]
    want = (np.flatnonzero(x.targets_scored) + 1).tolist()  # scored targets, as seq positions
    assert sorted(hits) == want  # every response target exactly once, no prompt target
    assert (lengths <= max_length).all() and (scored >= 1).all()
    for s, ln, sc in zip(starts, lengths, scored, strict=True):
        k = np.searchsorted(x.data.offsets, s, side="right") - 1
        o = x.data.offsets[k]
        assert o <= s and s + ln <= o + x.data.lengths[k]  # never across examples
        # Context before the first scored target: all of the example, or max_length - stride.
        assert s == o or ln - sc >= max_length - stride


def test_response_scores_equal_a_hand_computation(ds: InstructionDataset) -> None:
    r = gptdata.evaluate(TableModel(), ds, progress=False)
    template = get_template("alpaca")
    records = json.loads(SAMPLE.read_text(encoding="utf-8"))
    tok = ds.tokenizer
    total_nll = total_text = 0.0
    total_tokens = total_bytes = 0
    for k, ex in enumerate(ds):
        seq = [*ex.token_ids, EOT]
        p = ex.prompt_length
        lps = [hand_log_prob(seq[i], seq[i + 1]) for i in range(p - 1, len(seq) - 1)]
        nll = -sum(lps)
        text_nll = -sum(lps[:-1])  # the end-of-text target: 0 bytes, out of the text sum
        _, response = template.render(
            records[k]["instruction"], records[k]["input"], records[k]["output"]
        )
        nbytes = len(response.encode("utf-8"))  # the response text, its header included
        assert tok.decode(seq[p:-1]) == response
        assert r.documents.tokens[k] == len(lps) == len(seq) - p
        assert r.documents.nll[k] == pytest.approx(nll, rel=1e-5)
        assert r.documents.nll_text[k] == pytest.approx(text_nll, rel=1e-5)
        assert r.documents.bytes[k] == nbytes
        assert r.documents.loss()[k] == pytest.approx(nll / len(lps), rel=1e-5)
        assert r.documents.perplexity()[k] == pytest.approx(math.exp(nll / len(lps)), rel=1e-5)
        bpb = text_nll / math.log(2) / nbytes
        assert r.documents.bits_per_byte()[k] == pytest.approx(bpb, rel=1e-5)
        total_nll, total_text = total_nll + nll, total_text + text_nll
        total_tokens, total_bytes = total_tokens + len(lps), total_bytes + nbytes
    # Totals are sums over all examples, not means of per-example means.
    assert r.tokens == total_tokens and r.bytes == total_bytes
    assert r.loss == pytest.approx(total_nll / total_tokens, rel=1e-5)
    assert r.bits_per_byte == pytest.approx(total_text / math.log(2) / total_bytes, rel=1e-5)
    assert r.by == "response" and len(r.documents) == len(ds) == 38


def test_a_path_with_instructions_true_reads_as_the_dataset(ds: InstructionDataset) -> None:
    a = gptdata.evaluate(TableModel(), ds, progress=False)
    b = gptdata.evaluate(TableModel(), SAMPLE, instructions=True, progress=False)
    c = gptdata.evaluate(
        TableModel(), json.loads(SAMPLE.read_text()), instructions=True, progress=False
    )
    assert a.nll == pytest.approx(b.nll) and b.nll == pytest.approx(c.nll)
    assert b.source == f"{SAMPLE} (template alpaca)"


class NoPrompt(torch.nn.Module):
    """Probability 0 for every token of the alpaca preamble: scoring one prompt target -> inf."""

    context_length = 256

    def __init__(self, banned: list[int]) -> None:
        super().__init__()
        self.banned = torch.tensor(banned)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*idx.shape, V)  # (B, T, V)
        logits[..., self.banned] = float("-inf")
        return logits


def prompt_only_tokens(ds: InstructionDataset) -> list[int]:
    """The preamble's target tokens that no response holds ('Below', ' describes', ...)."""
    response = {t for ex in ds for t in ex.token_ids[ex.prompt_length :]}
    return sorted(set(ds.tokenizer.encode(ALPACA_PREAMBLE)[1:]) - response - {EOT})


def test_prompt_tokens_are_never_scored(ds: InstructionDataset) -> None:
    banned = prompt_only_tokens(ds)
    assert len(banned) >= 10  # every prompt has targets among them: one scored would be inf
    r = gptdata.evaluate(NoPrompt(banned), ds, progress=False)
    assert math.isfinite(r.nll) and r.nonfinite() is None
    uniform = math.log(V - len(banned))
    assert r.loss == pytest.approx(uniform, rel=1e-6)


def test_a_store_prepared_with_instructions_scores_as_its_file(tmp_path: Path) -> None:
    store = gptdata.prepare(
        [SAMPLE], tmp_path / "store", instructions=True, val_fraction=0.2, quiet=True
    )
    records = json.loads(SAMPLE.read_text(encoding="utf-8"))
    by_ids = {tuple(ex.token_ids): k for k, ex in enumerate(InstructionDataset(records))}
    held_out = [by_ids[tuple(ex.token_ids)] for ex in InstructionDataset(store.split("val"))]
    assert 0 < len(held_out) < len(records)
    want = gptdata.evaluate(
        TableModel(), [records[k] for k in held_out], instructions=True, progress=False
    )
    for source in (tmp_path / "store", store, store.split("val")):  # the store's val split
        got = gptdata.evaluate(TableModel(), source, instructions=True, progress=False)
        np.testing.assert_allclose(got.documents.nll, want.documents.nll, rtol=1e-6)
        assert np.array_equal(got.documents.bytes, want.documents.bytes)
    train = gptdata.evaluate(TableModel(), store, instructions=True, split="train", progress=False)
    assert len(train.documents) == len(records) - len(held_out)


def test_long_examples_are_scored_with_rolling_windows(ds: InstructionDataset) -> None:
    # The windows of the docstring: targets 0..9, the response from target 3 on.
    class X:
        pass

    x = X()
    x.data, x.first = X(), np.array([3, 2])  # type: ignore[attr-defined]
    x.data.offsets, x.data.lengths = np.array([0, 11]), np.array([10, 5])  # type: ignore[attr-defined]
    starts, lengths, scored = instruction_windows(x, max_length=4, stride=2)  # type: ignore[arg-type]
    assert starts.tolist() == [0, 2, 4, 6, 11, 12]
    assert lengths.tolist() == [4, 4, 4, 4, 4, 4]
    assert scored.tolist() == [1, 2, 2, 2, 2, 1]
    # Every response target is scored once whatever the windows: a context-free model agrees.
    whole = gptdata.evaluate(TableModel(), ds, progress=False)
    for max_length, stride in ((8, 8), (8, 3), (40, 20)):
        r = gptdata.evaluate(TableModel(), ds, max_length=max_length, stride=stride, progress=False)
        assert r.tokens == whole.tokens and r.max_length == max_length
        np.testing.assert_allclose(r.documents.nll, whole.documents.nll, rtol=1e-5)


def test_a_windowed_response_keeps_its_prompt_as_context() -> None:
    """Target logits = f(the first input of the window): with max_length 4, stride 2, each
    response target is predicted from a window that starts in the prompt."""

    class FirstToken(torch.nn.Module):
        context_length = 64

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return table_logits(idx[:, :1].expand_as(idx))  # (B, T, V)

    ds = InstructionDataset([{"instruction": "Name a colour.", "output": "Blue is a colour."}])
    seq = [*ds[0].token_ids, EOT]
    p, n = ds[0].prompt_length, len(ds[0].token_ids)
    r = gptdata.evaluate(FirstToken(), ds, max_length=4, stride=2, progress=False)
    want = 0.0
    for i in range(p - 1, n):  # text evaluation's windows: [0, 4), then 2 targets at a time
        end = 4 if i < 4 else min(4 + 2 * -(-(i + 1 - 4) // 2), n)
        start = 0 if end <= 4 else end - 4
        want -= hand_log_prob(seq[start], seq[i + 1])
    assert r.nll == pytest.approx(want, rel=1e-5)


def test_comparison_over_examples(ds: InstructionDataset) -> None:
    base = gptdata.evaluate(TableModel(), ds, progress=False, name="base")
    tuned = gptdata.evaluate(
        NoPrompt(prompt_only_tokens(ds)), ds, progress=False,
        name="tuned",
    )  # fmt: skip
    c = gptdata.compare([base, tuned], samples=200, seed=0)
    assert c.documents == 38 and c.noun == "example"
    assert c.diff == pytest.approx(base.bits_per_byte - tuned.bits_per_byte, rel=1e-9)
    assert c.verdict().endswith("(38 examples)")
    assert c.low <= c.diff <= c.high
    with pytest.raises(ValueError, match="instruction results are compared over examples"):
        gptdata.compare([base, tuned], unit="chunk")
    few = [gptdata.evaluate(m, ds, progress=False) for m in (TableModel(), TableModel())]
    for r in few:  # three examples of the same scores: a warning that names the fix
        r.documents = type(r.documents)(*(v[:3] for v in vars(r.documents).values()))
    assert "warning: the interval rests on 3 examples; hold out more examples" in (
        gptdata.compare(few, samples=50).verdict()
    )


def test_refusals(ds: InstructionDataset, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="by='stream' is for text"):
        gptdata.evaluate(TableModel(), ds, by="stream", progress=False)
    template = tmp_path / "bare.txt"
    template.write_text("{output}", encoding="utf-8")
    empty = InstructionDataset(SAMPLE, template=template)
    with pytest.raises(ValueError, match="example 0 has an empty prompt"):
        gptdata.evaluate(TableModel(), empty, progress=False)
    store = tmp_path / "store"
    gptdata.prepare(None, store, texts=["Some held-out text. " * 50] * 4, quiet=True)
    with pytest.raises(ValueError, match="has no response masks; it was not prepared"):
        gptdata.evaluate(TableModel(), store, instructions=True, progress=False)
    with pytest.raises(ValueError, match="has no split 'test'"):
        gptdata.evaluate(TableModel(), store, instructions=True, split="test", progress=False)
    with pytest.raises(ValueError, match="tokenizer=.* is not the InstructionDataset's"):
        simple = gptdata.SimpleTokenizer.from_text("a b c")
        gptdata.evaluate(TableModel(), ds, tokenizer=simple, progress=False)


TINY_PY = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.tok_emb = nn.Embedding(50257, 8)
        self.pos_emb = nn.Embedding(128, 8)
        self.out_head = nn.Linear(8, 50257, bias=False)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        return self.out_head(self.tok_emb(idx) + self.pos_emb(pos))  # (B, T, V)


def base():
    return Tiny(0)


def tuned():
    return Tiny(1)
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.py"
    path.write_text(TINY_PY, encoding="utf-8")
    return path


def test_cli_eval_instructions_end_to_end(tiny: Path, capsys) -> None:
    specs = [f"py:{tiny}:base", f"py:{tiny}:tuned"]
    argv = ["eval", str(SAMPLE), "--instructions", "--quiet", "--bootstrap", "200"]
    argv += [x for s in specs for x in ("--model", s)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "38 examples, response tokens only (the prompt is context)" in out
    assert "(38 examples)" in out and "examples that changed most" in out
    assert main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    results = [gptdata.evaluate(s, SAMPLE, instructions=True, progress=False) for s in specs]
    for got, want in zip(doc["models"], results, strict=True):
        assert got["by"] == "response" and got["documents"] == 38
        assert got["nll"] == pytest.approx(want.nll, rel=1e-6)
        assert got["bits_per_byte"] == pytest.approx(want.bits_per_byte, rel=1e-6)
    c = gptdata.compare(results, samples=200, seed=0)
    (got,) = doc["comparisons"]
    assert (got["diff"], got["low"], got["high"]) == pytest.approx((c.diff, c.low, c.high))
    assert got["verdict"] == c.verdict()


def test_cli_eval_instruction_options(tiny: Path, tmp_path: Path, capsys) -> None:
    renamed = tmp_path / "renamed.jsonl"
    records = json.loads(SAMPLE.read_text())
    renamed.write_text(
        "".join(
            json.dumps({"prompt": r["instruction"], "input": r["input"], "completion": r["output"]})
            + "\n"
            for r in records
        ),
        encoding="utf-8",
    )
    argv = ["eval", str(renamed), "--instructions", "--quiet", "--model", f"py:{tiny}:base"]
    assert main([*argv, "--fields", "instruction=prompt,output=completion", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["models"][0]
    want = gptdata.evaluate(f"py:{tiny}:base", SAMPLE, instructions=True, progress=False)
    assert got["nll"] == pytest.approx(want.nll, rel=1e-6)
    assert main([*argv[:-2], "--template", "phi3", "--model", f"py:{tiny}:base"]) == 1
    assert "no field 'instruction'" in capsys.readouterr().err
    assert main(["eval", str(SAMPLE), "--template", "phi3", "--model", f"py:{tiny}:base"]) == 1
    assert capsys.readouterr().err == (
        "error: --template reads instruction examples; add --instructions.\n"
    )
    assert main([*argv, "--by", "stream"]) == 1
    assert "--by is for text" in capsys.readouterr().err
    assert main([*argv, "--bootstrap-unit", "chunk"]) == 1
    assert "--bootstrap-unit chunk is for long texts" in capsys.readouterr().err


def test_cli_inspect_instructions(tiny: Path, capsys) -> None:
    assert main(["inspect", "--instructions", str(SAMPLE)]) == 0
    out = capsys.readouterr().out.splitlines()
    ds = InstructionDataset(SAMPLE)
    ex = ds[0]
    n, p = len(ex.token_ids), ex.prompt_length
    assert out[0] == (
        f"example 0 of 38 (template alpaca): {n} tokens read, {p} prompt + {n - p} response; "
        f"{n - p + 1} targets scored (the response and its end-of-text)"
    )
    assert out[1] == f"  input    {ex.token_ids}"
    _, targets = instruction_collate([ex], mask_prompt=True)
    assert out[2].startswith(f"  target   {targets[0].tolist()}")
    assert out[4] == "  response '\\n\\n### Response:\\nThe mouse was chased by the cat.' + " + (
        "end-of-text (50256)"
    )
    assert main(["inspect", str(SAMPLE), "--instructions", "--start", "36", "-n", "5"]) == 0
    heads = [line for line in capsys.readouterr().out.splitlines() if line.startswith("example")]
    assert [h.split(" of ")[0] for h in heads] == ["example 36", "example 37"]
    argv = ["inspect", str(SAMPLE), "--instructions", "--model", f"py:{tiny}:base"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    guesses = lines[lines.index(
        "  response tokens, each with P(token | the prompt and the response before it):"
    ) + 1 :]  # fmt: skip
    assert len(guesses) == n - p + 1
    assert guesses[-1].startswith("    '<|endoftext|>' (50256)  p=")
    assert all("e-0" in g.split("top 3")[0] for g in guesses)  # scientific notation, never 0.0000
    assert main(["inspect", str(SAMPLE), "--instructions", "--windows"]) == 1
    assert "--windows shows text windows" in capsys.readouterr().err
