"""evaluate(): the window rule, every token once, exact NLL, documents, bytes, errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gptdata
from gptdata.evaluation.data import count_words, load_eval_data
from gptdata.evaluation.scoring import rolling_windows, window_table

P = 50256


def harness_windows(tokens: list[int], prefix: int, max_len: int, context_len: int):
    """The rolling-window rule of lm-evaluation-harness, written plainly from its description."""
    if not tokens:
        return []
    pred_len = max_len - context_len + 1
    first = min(max_len, len(tokens))
    out = [([prefix] + tokens[: first - 1], tokens[:first])]
    done = first
    while done < len(tokens):
        take = min(len(tokens) - done, pred_len)
        end = done + take
        out.append((tokens[end - max_len - 1 : end - 1], tokens[end - take : end]))
        done = end
    # make_disjoint_window: the input loses the scored tokens that follow its first target
    return [(a[: len(a) - len(b) + 1], b) for a, b in out]


def ours(tokens: list[int], prefix: int, max_len: int, stride: int):
    """Our windows in the same form: (disjoint input, scored targets)."""
    seq = [prefix] + tokens
    pairs = []
    for start, length, scored in rolling_windows(len(tokens), max_length=max_len, stride=stride):
        inp = seq[start : start + length]
        targets = seq[start + 1 : start + length + 1]
        assert targets[-scored:] == seq[start + length - scored + 1 : start + length + 1]
        pairs.append((inp[: length - scored + 1], targets[-scored:]))
    return pairs


@settings(max_examples=400, deadline=None)
@given(
    n=st.integers(1, 300),
    max_len=st.integers(1, 40),
    data=st.data(),
)
def test_windows_equal_the_harness_rule(n: int, max_len: int, data: st.DataObject) -> None:
    stride = data.draw(st.integers(1, max_len))
    tokens = list(range(1000, 1000 + n))
    assert ours(tokens, P, max_len, stride) == harness_windows(
        tokens, P, max_len, max_len - stride + 1
    )


@pytest.mark.parametrize(
    "n, max_len, stride", [(1, 1, 1), (1, 8, 8), (3, 8, 2), (8, 8, 8), (9, 8, 8), (20, 4, 3)]
)
def test_windows_edge_cases(n: int, max_len: int, stride: int) -> None:
    tokens = list(range(10, 10 + n))
    assert ours(tokens, P, max_len, stride) == harness_windows(
        tokens, P, max_len, max_len - stride + 1
    )


def test_window_golden() -> None:
    # t = [10..14], L = 3, s = 2: [p,10,11] scores [10,11,12]; [11,12,13] scores [13,14]
    assert rolling_windows(5, max_length=3, stride=2) == [(0, 3, 3), (2, 3, 2)]
    assert rolling_windows(1, max_length=4, stride=4) == [(0, 1, 1)]


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 60), min_size=1, max_size=8),
    max_len=st.integers(1, 16),
    data=st.data(),
)
def test_every_token_scored_once_within_its_document(
    lengths: list[int], max_len: int, data: st.DataObject
) -> None:
    stride = data.draw(st.integers(1, max_len))
    lens = np.array(lengths)
    offsets = np.concatenate([[0], np.cumsum(lens + 1)[:-1]])
    starts, wl, scored = window_table(offsets, lens, max_length=max_len, stride=stride)
    hits = np.zeros(int(offsets[-1] + lens[-1] + 1), dtype=int)
    for s, n, k in zip(starts, wl, scored, strict=True):
        assert 1 <= k <= n <= max_len
        hits[s + n - k + 1 : s + n + 1] += 1  # the scored target positions
        doc = np.searchsorted(offsets, s, side="right") - 1
        assert s + n <= offsets[doc] + lens[doc]  # input and targets stay in the document
    want = np.zeros_like(hits)
    for o, n in zip(offsets, lens, strict=True):
        want[o + 1 : o + 1 + n] = 1  # every document token once, separators never
    assert (hits == want).all()


class PrevTokenModel(torch.nn.Module):
    """Logits depend on the input token alone: the NLL can be computed by hand."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.emb = torch.nn.Embedding(vocab, 16)
        self.head = torch.nn.Linear(16, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.emb(x))  # (B, T) -> (B, T, V)

    def table(self, rows: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return torch.log_softmax(self.head(self.emb.weight[rows]).double(), dim=-1)


class ContextModel(torch.nn.Module):
    """Logits depend on every earlier token and the position: windows matter."""

    def __init__(self, vocab: int, positions: int = 64) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.emb = torch.nn.Embedding(vocab, 8)
        self.pos = torch.nn.Embedding(positions, 8)
        self.head = torch.nn.Linear(8, vocab)
        self.config = {"n_positions": positions}

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        T = x.shape[1]
        h = self.emb(x) + self.pos(torch.arange(T))  # (B, T, 8)
        h = h.cumsum(1) / torch.arange(1, T + 1)[:, None]  # causal mean
        return self.head(torch.tanh(h)), None  # nanoGPT style (logits, loss)


def simple_tok(text: str) -> gptdata.SimpleTokenizer:
    return gptdata.SimpleTokenizer.from_text(text)


TEXT = "the cat sat on the mat . the dog sat on the log . a cat and a dog ."


@pytest.mark.parametrize("stride", [1, 3, 5])
def test_nll_equals_a_hand_computation(stride: int) -> None:
    tok = simple_tok(TEXT)
    model = PrevTokenModel(tok.vocab_size)
    ids = tok.encode(TEXT)
    r = gptdata.evaluate(model, TEXT, max_length=5, stride=stride, tokenizer=tok)
    prev = [tok.eot_id] + ids[:-1]
    logp = model.table(prev)  # (n, V): row i predicts ids[i]
    want = -sum(float(logp[i, b]) for i, b in enumerate(ids))
    assert r.tokens == len(ids)
    assert r.nll == pytest.approx(want, rel=1e-6)
    assert r.loss == pytest.approx(want / len(ids), rel=1e-6)
    assert r.perplexity == pytest.approx(math.exp(want / len(ids)), rel=1e-6)


@pytest.mark.parametrize("max_len, stride, batch", [(4, 4, 3), (4, 1, 2), (6, 4, 16), (64, 64, 1)])
def test_nll_equals_one_window_at_a_time(max_len: int, stride: int, batch: int) -> None:
    tok = simple_tok(TEXT)
    model = ContextModel(tok.vocab_size)
    ids = tok.encode(TEXT)
    want = 0.0
    for inp, targets in harness_windows(ids, tok.eot_id, max_len, max_len - stride + 1):
        x = torch.tensor([inp + targets[:-1]])
        with torch.no_grad():
            logp = torch.log_softmax(model(x)[0][0].double(), dim=-1)[-len(targets) :]
        want -= float(logp[torch.arange(len(targets)), torch.tensor(targets)].sum())
    r = gptdata.evaluate(
        model, TEXT, max_length=max_len, stride=stride, batch_size=batch, tokenizer=tok
    )
    assert r.nll == pytest.approx(want, rel=1e-5)
    assert r.position_tokens.sum() == len(ids)


def test_uniform_model_golden() -> None:
    # Equal logits: every token costs ln V, perplexity is V, bits per byte is known.
    V = 50257
    text = "Hello, world. Hello again."
    r = gptdata.evaluate(lambda x: torch.zeros(*x.shape, V), text, max_length=3)
    n = len(gptdata.get_tokenizer("gpt2").encode(text))
    assert r.tokens == n
    assert r.loss == pytest.approx(math.log(V))
    assert r.perplexity == pytest.approx(V, rel=1e-5)
    assert r.bytes == len(text.encode())
    assert r.bits_per_byte == pytest.approx(n * math.log2(V) / len(text.encode()))


def _store(tmp_path: Path, docs: list[str], val_fraction: float = 0.0) -> gptdata.TokenStore:
    return gptdata.prepare(
        None, tmp_path / "store", texts=docs, val_fraction=val_fraction, workers=1, quiet=True
    )


DOCS = [
    "First document, about the sea.",
    "Second: a café in Zürich — naïve résumé.",
    "Third document\nwith two lines.\n",
    "4",
]


def test_documents_never_cross_and_sum_to_the_whole(tmp_path: Path) -> None:
    store = _store(tmp_path, DOCS)
    model = ContextModel(50257, positions=64)
    whole = gptdata.evaluate(model, store.split("train"), max_length=4, stride=2)
    assert whole.by == "document"
    tok = gptdata.get_tokenizer("gpt2")
    for k, doc in enumerate(DOCS):
        alone = gptdata.evaluate(model, tok.encode(doc), max_length=4, stride=2)
        assert whole.documents.nll[k] == pytest.approx(alone.nll, rel=1e-5)
        assert whole.documents.tokens[k] == len(tok.encode(doc))
    assert whole.nll == pytest.approx(float(whole.documents.nll.sum()))
    stream = gptdata.evaluate(model, store.split("train"), max_length=4, stride=2, by="stream")
    assert stream.tokens == whole.tokens + len(DOCS) - 1  # the separators are scored too
    assert stream.nll != pytest.approx(whole.nll)


def test_bits_per_byte_counts_bytes_of_the_decoded_text(tmp_path: Path) -> None:
    store = _store(tmp_path, DOCS)
    split = store.split("train")
    tok = gptdata.get_tokenizer("gpt2")
    r = gptdata.evaluate(PrevTokenModel(50257), split, max_length=8, by="stream")
    ids = split[:].tolist()
    texts = tok.decode(ids).split("<|endoftext|>")
    assert (
        r.bytes == sum(len(t.encode("utf-8")) for t in texts) == sum(len(d.encode()) for d in DOCS)
    )
    assert r.documents.bytes.tolist() == [len(d.encode()) for d in DOCS]
    # End-of-text targets are in nll but not in nll_text.
    assert r.nll_text < r.nll
    assert r.bits_per_byte == pytest.approx(r.nll_text / math.log(2) / r.bytes)
    doc = gptdata.evaluate(PrevTokenModel(50257), split, max_length=8)
    assert doc.words == sum(count_words(d) for d in DOCS)
    assert doc.word_perplexity == pytest.approx(math.exp(doc.nll / doc.words))
    assert doc.byte_perplexity == pytest.approx(math.exp(doc.nll / doc.bytes))
    assert doc.nll_text == pytest.approx(doc.nll)


def test_sources_agree(tmp_path: Path) -> None:
    text = "One small text file, tokenized here.\n"
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    (tmp_path / "a.jsonl").write_text('{"text": "One doc."}\n{"text": "Two docs."}\n')
    model = PrevTokenModel(50257)
    from_file = gptdata.evaluate(model, tmp_path / "a.txt", max_length=4)
    from_str = gptdata.evaluate(model, text, max_length=4)
    ids = gptdata.get_tokenizer("gpt2").encode(text)
    from_ids = gptdata.evaluate(model, torch.tensor(ids), max_length=4)
    assert from_file.nll == pytest.approx(from_str.nll) == pytest.approx(from_ids.nll)
    assert from_file.bytes == from_str.bytes == from_ids.bytes == len(text.encode())
    jl = gptdata.evaluate(model, tmp_path / "a.jsonl", max_length=4)
    assert len(jl.documents) == 2 and jl.by == "document"
    data = load_eval_data(tmp_path / "a.jsonl")
    assert data.counted_on == "text" and data.bytes.tolist() == [8, 9]


def test_store_defaults_to_val_and_refuses_an_empty_split(tmp_path: Path) -> None:
    store = _store(tmp_path, DOCS, val_fraction=0.0)
    with pytest.raises(ValueError, match=r"split 'val'.* is empty \(0 tokens\).*split='train'"):
        gptdata.evaluate(PrevTokenModel(50257), store, max_length=4)
    r = gptdata.evaluate(PrevTokenModel(50257), store, max_length=4, split="train")
    assert len(r.documents) == len(DOCS)


def test_errors() -> None:
    model = ContextModel(50257, positions=16)
    with pytest.raises(ValueError, match=r"stride=5 must be between 1 and max_length=4"):
        gptdata.evaluate(model, "some text", max_length=4, stride=5)
    with pytest.raises(
        ValueError, match=r"has 16 positions, but max_length=32\. Pass max_length=16 or less"
    ):
        gptdata.evaluate(model, "some text", max_length=32)
    with pytest.raises(
        ValueError, match=r"returned 100 logits per position, fewer than .* vocabulary of 50,257"
    ):
        gptdata.evaluate(lambda x: torch.zeros(*x.shape, 100), "some text", max_length=4)
    with pytest.raises(TypeError, match=r"returned dict; evaluation needs logits"):
        gptdata.evaluate(lambda x: {"a": 1}, "some text", max_length=4)
    with pytest.raises(ValueError, match=r"model spec 'gpt:x' is not one of hf:DIR"):
        gptdata.evaluate("gpt:x", "some text", max_length=4)


def test_training_mode_is_restored_and_dropout_is_off() -> None:
    class Drop(PrevTokenModel):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.dropout(super().forward(x), 0.5, self.training)

    m = Drop(50257)
    m.train()
    a = gptdata.evaluate(m, "Same text twice.", max_length=3)
    b = gptdata.evaluate(m, "Same text twice.", max_length=3)
    assert m.training and a.nll == b.nll


def test_a_folder_of_text_files_is_one_document_per_file(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("First file.", encoding="utf-8")
    (tmp_path / "docs" / "b.txt").write_text("Second file, longer.", encoding="utf-8")
    data = load_eval_data(tmp_path / "docs")
    assert data.documents == 2 and data.bytes.tolist() == [11, 20]
    with pytest.raises(FileNotFoundError, match=r"nope does not exist"):
        load_eval_data(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"is a str that names an existing file.*Pass Path\("):
        load_eval_data(str(tmp_path / "docs" / "a.txt"))
