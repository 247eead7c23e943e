"""Review of issue 12 (evaluation): behaviours the issue asks for that the implementation misses."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import gptdata
from gptdata.evaluation.data import count_words, load_eval_data
from gptdata.evaluation.models import load_model
from gptdata.inspect.pairs import model_pairs

EOT = 50256


class NanoGPTStyle(torch.nn.Module):
    """nanoGPT's GPT.forward contract: ``(logits, loss)``; without targets, logits of the last
    position only (its inference-time shortcut); with targets, logits of every position."""

    def __init__(self, vocab: int = 50304, block_size: int = 32) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(vocab, 8)
        self.head = torch.nn.Linear(8, vocab)
        self.config = type("GPTConfig", (), {"block_size": block_size, "vocab_size": vocab})()

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.emb(idx).cumsum(1)  # (B, T, 8) causal
        if targets is None:
            return self.head(h[:, [-1], :]), None  # (B, 1, V)
        logits = self.head(h)  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


def test_nanogpt_style_module_is_evaluated() -> None:
    # The issue lists nanoGPT-style modules among the models evaluate() takes.
    model = NanoGPTStyle()
    text = "A short text for a nanoGPT-style model."
    ids = gptdata.get_tokenizer("gpt2").encode(text)
    x = torch.tensor([[EOT] + ids[:-1]])
    with torch.no_grad():
        logits, _ = model(x, torch.tensor([ids]))
        want = -float(torch.log_softmax(logits[0].double(), -1)[range(len(ids)), ids].sum())
    r = gptdata.evaluate(model, text, max_length=32)
    assert r.tokens == len(ids)
    assert r.nll == pytest.approx(want, rel=1e-5)


def test_bytes_are_those_of_the_scored_text_tokens_when_text_holds_a_literal_endoftext() -> None:
    # Issue: bytes = UTF-8 bytes of the scored text tokens; end-of-text targets count 0 bytes.
    text = "Intro text.<|endoftext|>More text after the marker."
    tok = gptdata.get_tokenizer("gpt2")
    data = load_eval_data(text)
    targets = data.seq[1:].tolist()  # one document: every target after the prefix
    want = sum(len(tok.token_bytes(t)) for t in targets if t != EOT)
    assert int(data.bytes.sum()) == want
    r = gptdata.evaluate(lambda x: torch.zeros(*x.shape, 50257), text, max_length=8)
    text_targets = sum(t != EOT for t in targets)
    assert r.bits_per_byte == pytest.approx(text_targets * math.log2(50257) / want)


def test_text_file_and_the_store_prepared_from_it_score_the_same_tokens(tmp_path: Path) -> None:
    # `gptdata eval notes.txt` and `gptdata eval store` (prepared from notes.txt) must agree.
    text = "Intro text.<|endoftext|>More text after the marker.\n"
    (tmp_path / "notes.txt").write_text(text, encoding="utf-8")
    store = gptdata.prepare(
        tmp_path / "notes.txt", tmp_path / "store", val_fraction=0.0, workers=1, quiet=True
    )
    model = lambda x: torch.zeros(*x.shape, 50257)  # noqa: E731
    a = gptdata.evaluate(model, tmp_path / "notes.txt", max_length=16)
    b = gptdata.evaluate(model, store.split("train"), max_length=16)
    assert (a.tokens, a.bytes) == (b.tokens, b.bytes)
    assert a.bits_per_byte == pytest.approx(b.bits_per_byte)


def test_baseline_counted_with_another_tokenizer_is_refused(tmp_path: Path) -> None:
    # bigram:STORE from a GPT-2 store must not silently score IDs of another tokenizer.
    gptdata.prepare(
        None, tmp_path / "gpt2", texts=["the cat sat on the mat"] * 4, val_fraction=0.0,
        workers=1, quiet=True,
    )  # fmt: skip
    words = "the cat sat on the mat . the dog sat on the log ."
    simple = gptdata.SimpleTokenizer.from_text(words)
    with pytest.raises(ValueError, match=r"tokenizer"):
        gptdata.evaluate(f"bigram:{tmp_path / 'gpt2'}", words, max_length=4, tokenizer=simple)


def test_token_ids_ending_with_endoftext_make_no_phantom_document() -> None:
    # nanoGPT-style val.bin: every document ends with end-of-text, the last one too.
    tok = gptdata.get_tokenizer("gpt2")
    ids = tok.encode("Hello big world") + [EOT]
    r = gptdata.evaluate(lambda x: torch.zeros(*x.shape, 50257), ids, max_length=8, by="document")
    assert len(r.documents) == 1
    assert r.words == count_words("Hello big world") == 3
    assert r.word_perplexity == pytest.approx(math.exp(r.nll / 3))


def test_inspect_model_with_a_padded_vocabulary() -> None:
    # GPT-2 checkpoints trained with nanoGPT have 50,304 logits; a top-3 guess may be a pad ID.
    def model(x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*x.shape, 50304)  # (B, T, V)
        logits[..., 50300] = 10.0
        return logits

    tok = gptdata.get_tokenizer("gpt2")
    ids = tok.encode("Hello world again")
    lines = model_pairs(load_model(model), ids, tok)
    assert len(lines) == len(ids) - 1 and "50300" in lines[0]


def test_json_stays_valid_when_a_model_gives_a_target_zero_probability() -> None:
    # `gptdata eval --json` is machine-readable: no bare Infinity/NaN (jq and strict parsers fail).
    import json

    from gptdata.evaluation.compare import report

    def model(x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*x.shape, 50257)  # (B, T, V)
        logits[..., 11] = -float("inf")  # ',' impossible
        return logits

    r = gptdata.evaluate(model, "Hello, world", max_length=4, progress=False)

    def refuse(name: str) -> None:
        raise ValueError(f"invalid JSON constant {name}")

    json.loads(report([r], as_json=True), parse_constant=refuse)


# Follow-ups to the review: the neighbouring cases of each finding.


def test_stream_scores_a_trailing_endoftext_as_part_of_the_last_document() -> None:
    tok = gptdata.get_tokenizer("gpt2")
    a, b = tok.encode("One doc."), tok.encode("Two docs.")
    ids = a + [EOT] + b + [EOT]
    zero = lambda x: torch.zeros(*x.shape, 50257)  # noqa: E731
    r = gptdata.evaluate(zero, ids, max_length=4, by="stream")
    assert r.tokens == len(ids) and r.documents.tokens.tolist() == [len(a) + 1, len(b) + 1]
    d = gptdata.evaluate(zero, ids, max_length=4, by="document")
    assert d.documents.tokens.tolist() == [len(a), len(b)] and d.words == 4
    assert count_words("") == 0  # an empty document (two separators in a row) has no word


def test_a_literal_endoftext_is_text_in_a_file_jsonl_and_string(tmp_path: Path) -> None:
    tok = gptdata.get_tokenizer("gpt2")
    text = "a<|endoftext|>b"
    (tmp_path / "d.jsonl").write_text('{"text": "a<|endoftext|>b"}\n', encoding="utf-8")
    want = tok.encode(text, special="text")
    for source in (text, tmp_path / "d.jsonl"):
        data = load_eval_data(source)
        assert data.seq[1:].tolist() == want and EOT not in want
        assert int(data.bytes.sum()) == len(text.encode())


def test_nanogpt_style_module_in_inspect_and_with_batches_and_stride() -> None:
    model = NanoGPTStyle(block_size=8)
    tok = gptdata.get_tokenizer("gpt2")
    ids = tok.encode("Every token is scored once, with as much context as the window allows.")
    scorer = load_model(model)
    lines = model_pairs(scorer, ids[:6], tok)
    assert len(lines) == 5 and scorer.pass_targets
    r = gptdata.evaluate(model, ids, max_length=8, stride=3, batch_size=2)
    assert r.tokens == len(ids) and math.isfinite(r.nll)
    with pytest.raises(ValueError, match=r"8 positions, but max_length=9"):
        gptdata.evaluate(model, ids, max_length=9)


def test_per_document_jsonl_and_comparison_hold_null_for_non_finite(tmp_path: Path) -> None:
    import json

    from gptdata.evaluation.compare import Comparison, write_per_document

    def model(x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*x.shape, 50257)  # (B, T, V)
        logits[..., 11] = -float("inf")
        return logits

    r = gptdata.evaluate(model, "Hello, world", max_length=4, progress=False)
    assert r.to_dict()["nll"] is None and r.to_dict()["bits_per_byte"] is None
    write_per_document([r], tmp_path / "d.jsonl")
    row = json.loads((tmp_path / "d.jsonl").read_text())
    assert row["nll[function]"] is None
    c = Comparison.of(r, r).to_dict()
    assert all(v is None or math.isfinite(v) for v in c.values() if isinstance(v, float))
