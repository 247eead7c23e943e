"""documents="mask" and batch_format=: Megatron-LM's semantics against a plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from gptdata import SimpleTokenizer, SlidingWindowDataset, create_dataloader, prepare
from gptdata.windows.documents import Format
from gptdata.windows.loader import GPTDataLoader
from reference import eot_heavy_ids

E = 50256  # GPT-2's <|endoftext|>


def reference(row: list[int], eot: int) -> dict[str, list[int]]:
    """One (L + 1)-token row, token by token, as Megatron-LM's loop reads it."""
    inputs, targets = row[:-1], row[1:]
    out: dict[str, list[int]] = {"targets": [], "positions": [], "doc_ids": [], "labels": []}
    doc = pos = 0
    for i, tok in enumerate(inputs):
        if i > 0 and inputs[i - 1] == eot:  # the token after a separator starts a document
            doc, pos = doc + 1, 0
        out["doc_ids"].append(doc)
        out["positions"].append(pos)
        pos += 1
        out["targets"].append(-100 if tok == eot else targets[i])
        out["labels"].append(-100 if i > 0 and inputs[i - 1] == eot else tok)
    return out


# Each row holds max_length + 1 = 9 tokens: 8 inputs, and the last target.
CASES = {
    "none": [1, 2, 3, 4, 5, 6, 7, 8, 9],
    "one": [1, 2, E, 4, 5, 6, 7, 8, 9],
    "many": [1, E, 3, E, 5, 6, E, 8, 9],
    "first": [E, 2, 3, 4, 5, 6, 7, 8, 9],
    "last input": [1, 2, 3, 4, 5, 6, 7, E, 9],
    "last target": [1, 2, 3, 4, 5, 6, 7, 8, E],
    "consecutive": [1, E, E, E, 5, 6, 7, E, E],
    "all": [E] * 9,
}


def check_rows(rows: list[list[int]], eot: int = E) -> None:
    block = np.array(rows, dtype=np.int64)
    d = Format("mask", "dict", eot)(block)
    hf = Format("mask", "hf", eot)(block)
    x, y = Format("mask", "tuple", eot)(block)
    for b, row in enumerate(rows):
        ref = reference(row, eot)
        assert d["input_ids"][b].tolist() == row[:-1] == hf["input_ids"][b].tolist()
        assert d["targets"][b].tolist() == ref["targets"] == y[b].tolist()
        assert d["position_ids"][b].tolist() == ref["positions"] == hf["position_ids"][b].tolist()
        assert d["doc_ids"][b].tolist() == ref["doc_ids"]
        assert hf["labels"][b].tolist() == ref["labels"]
        assert x[b].tolist() == row[:-1]
    for t in (*d.values(), *hf.values(), x, y):
        assert t.dtype == torch.int64 and t.shape == block[:, :-1].shape


def test_golden_megatron_example() -> None:
    # The example of Megatron-LM's _get_ltor_masks_and_position_ids: loss mask
    # [1,1,1,0,1,1,0,1], positions [0,1,2,3,0,1,2,0]; the separator belongs to its document.
    d = Format("mask", "dict", E)(np.array([[10, 11, 12, E, 20, 21, E, 30, 31]]))
    assert d["targets"].tolist() == [[11, 12, E, -100, 21, E, -100, 31]]
    assert d["position_ids"].tolist() == [[0, 1, 2, 3, 0, 1, 2, 0]]
    assert d["doc_ids"].tolist() == [[0, 0, 0, 0, 1, 1, 1, 2]]


@pytest.mark.parametrize("name", list(CASES))
def test_case_against_reference(name: str) -> None:
    check_rows([CASES[name]])


def test_all_cases_in_one_batch() -> None:
    # Rows of one batch must not leak into each other (the computation runs over the flat block).
    check_rows(list(CASES.values()))
    check_rows(list(CASES.values())[::-1])


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda width: st.lists(
            st.lists(st.sampled_from([0, 1, 2, 7]), min_size=width + 1, max_size=width + 1),
            min_size=1,
            max_size=6,
        )
    )
)
def test_hypothesis_against_reference(rows: list[list[int]]) -> None:
    check_rows(rows, eot=7)


def test_concat_formats() -> None:
    block = np.array([CASES["many"], CASES["one"]])
    x, y = Format("concat", "tuple")(block)
    assert x.tolist() == block[:, :-1].tolist() and y.tolist() == block[:, 1:].tolist()
    d = Format("concat", "dict")(block)
    assert d["targets"].tolist() == block[:, 1:].tolist()  # nothing masked
    assert d["position_ids"].tolist() == [list(range(8))] * 2
    assert d["doc_ids"].tolist() == [[0] * 8] * 2
    hf = Format("concat", "hf")(block)
    assert hf["labels"].tolist() == block[:, :-1].tolist()
    assert hf["labels"].data_ptr() != hf["input_ids"].data_ptr()  # a copy, safe to edit
    b = Format("concat", "block")(block)
    assert b.shape == (2, 9) and b.tolist() == block.tolist()


def test_hf_labels_give_our_loss_minus_the_last_target() -> None:
    torch.manual_seed(0)
    rows = np.array(list(CASES.values()))
    d, hf = Format("mask", "dict", E)(rows), Format("mask", "hf", E)(rows)
    vocab = E + 1
    logits = torch.randn(*d["input_ids"].shape, vocab, dtype=torch.float64)  # (B, L, V)
    # What a Hugging Face causal LM does with labels: shift them itself.
    hf_loss = F.cross_entropy(
        logits[:, :-1].reshape(-1, vocab), hf["labels"][:, 1:].reshape(-1), reduction="sum"
    )
    ours = F.cross_entropy(logits.reshape(-1, vocab), d["targets"].reshape(-1), reduction="none")
    last = ours.reshape(d["targets"].shape)[:, -1].sum()
    assert torch.allclose(hf_loss, ours.sum() - last)
    # The mistake the docs warn about: our shifted targets passed as labels score each
    # position against the token two ahead.
    wrong = F.cross_entropy(
        logits[:, :-1].reshape(-1, vocab), d["targets"][:, 1:].reshape(-1), reduction="sum"
    )
    two_ahead = torch.tensor(rows[:, 2:])  # (B, L - 1): inputs[i + 2]
    two_ahead[d["targets"][:, 1:] == -100] = -100
    assert torch.allclose(
        wrong,
        F.cross_entropy(logits[:, :-1].reshape(-1, vocab), two_ahead.reshape(-1), reduction="sum"),
    )
    assert not torch.allclose(wrong, hf_loss)


def test_hf_labels_with_transformers_loss() -> None:
    loss_utils = pytest.importorskip("transformers.loss.loss_utils")
    torch.manual_seed(1)
    rows = np.array(list(CASES.values()))
    d, hf = Format("mask", "dict", E)(rows), Format("mask", "hf", E)(rows)
    logits = torch.randn(*d["input_ids"].shape, E + 1)
    theirs = loss_utils.ForCausalLMLoss(logits, hf["labels"], vocab_size=E + 1)
    ours = F.cross_entropy(logits[:, :-1].reshape(-1, E + 1), d["targets"][:, :-1].reshape(-1))
    assert torch.allclose(theirs, ours)


def test_dataset_and_items() -> None:
    ids = CASES["many"] + CASES["consecutive"]
    ds = SlidingWindowDataset(ids, max_length=8, stride=3, documents="mask", batch_format="dict")
    assert ds.format.eot_id == E  # gpt2's, without an eot_id=
    for k in range(len(ds)):
        item, ref = ds[k], reference(ids[3 * k : 3 * k + 9], E)
        assert item["targets"].tolist() == ref["targets"] and item["input_ids"].shape == (8,)
        assert item["doc_ids"].tolist() == ref["doc_ids"]
    loader = torch.utils.data.DataLoader(ds, batch_size=2)  # __getitems__ + default collate
    first = next(iter(loader))
    assert set(first) == {"input_ids", "targets", "position_ids", "doc_ids"}
    assert first["position_ids"].tolist() == ds.get_batch([0, 1])["position_ids"].tolist()
    assert ds.with_format(documents="concat", batch_format="tuple")[0][1].tolist() == ids[1:9]


def test_eot_id_from_store_tokenizer_or_argument(tmp_path) -> None:
    text = tmp_path / "a.jsonl"
    text.write_text('{"text": "one two"}\n{"text": "three four five"}\n{"text": "six"}\n')
    split = prepare([text], tmp_path / "s", val_fraction=0.0, workers=1, quiet=True).split("train")
    ds = SlidingWindowDataset(split, max_length=4, stride=1, documents="mask", batch_format="hf")
    assert ds.format.eot_id == split.eot_id == E
    tok = SimpleTokenizer.from_text("a b c")
    ids = tok.encode("a b <|endoftext|> c a")
    simple = SlidingWindowDataset(ids, max_length=4, stride=1, tokenizer=tok, documents="mask")
    assert simple.format.eot_id == tok.eot_id
    assert simple[0][1].tolist() == [ids[1], ids[2], -100, ids[4]]
    mine = SlidingWindowDataset(ids, max_length=4, stride=1, documents="mask", eot_id=ids[0])
    assert mine[0][1].tolist()[0] == -100


def test_errors() -> None:
    ids = list(range(20))
    with pytest.raises(ValueError, match=r"batch_format='block' hands out raw rows"):
        SlidingWindowDataset(ids, max_length=4, stride=4, documents="mask", batch_format="block")
    with pytest.raises(ValueError, match=r"documents='masked' is not one of"):
        SlidingWindowDataset(ids, max_length=4, stride=4, documents="masked")
    with pytest.raises(ValueError, match=r"batch_format='list' is not one of"):
        SlidingWindowDataset(ids, max_length=4, stride=4, batch_format="list")
    with pytest.raises(ValueError, match=r"eot_id=-1 must be an integer token ID >= 0"):
        SlidingWindowDataset(ids, max_length=4, stride=4, documents="mask", eot_id=-1)
    tok = SimpleTokenizer.from_text("a b")
    tok.eot_id = None  # a vocabulary without a separator
    with pytest.raises(ValueError, match=r"documents='mask' needs the end-of-text ID.*eot_id=ID"):
        SlidingWindowDataset(ids, max_length=4, stride=4, tokenizer=tok, documents="mask")


def batches(loader) -> list:
    out = []
    for batch in loader:
        if isinstance(batch, dict):
            out.append(batch["input_ids"].tolist())
        elif isinstance(batch, torch.Tensor):
            out.append(batch[:, :-1].tolist())
        else:
            out.append(batch[0].tolist())
    return out


def tensors(batch) -> list[torch.Tensor]:
    if isinstance(batch, dict):
        return list(batch.values())
    return [batch] if isinstance(batch, torch.Tensor) else list(batch)


FORMATS = [
    ("concat", "dict"),
    ("concat", "hf"),
    ("concat", "block"),
    ("mask", "tuple"),
    ("mask", "dict"),
    ("mask", "hf"),
]


@pytest.fixture(scope="module")
def doc_ids_corpus() -> list[int]:
    return eot_heavy_ids(E)


@pytest.mark.parametrize(("documents", "batch_format"), FORMATS)
def test_order_seeds_ranks_and_resume_unchanged(doc_ids_corpus, documents, batch_format) -> None:
    kw = dict(batch_size=4, max_length=16, stride=8, seed=5)
    plain = batches(create_dataloader(doc_ids_corpus, **kw))
    fmt = dict(documents=documents, batch_format=batch_format)
    assert batches(create_dataloader(doc_ids_corpus, **kw, **fmt)) == plain
    assert batches(create_dataloader(doc_ids_corpus, **kw, **fmt, num_workers=2)) == plain
    # Each batch, in-process or from workers, is the format applied to the classic rows.
    for path in (0, 2):
        made = create_dataloader(doc_ids_corpus, **kw, **fmt, num_workers=path)
        for (x, y), got in zip(create_dataloader(doc_ids_corpus, **kw), made, strict=True):
            want = Format(documents, batch_format, E)(torch.cat([x, y[:, -1:]], dim=1))
            assert len(tensors(want)) == len(tensors(got))
            assert all(map(torch.equal, tensors(want), tensors(got)))
    for rank in (0, 1):
        ranked = dict(kw, rank=rank, world_size=2)
        assert batches(create_dataloader(doc_ids_corpus, **ranked, **fmt)) == batches(
            create_dataloader(doc_ids_corpus, **ranked)
        )
    loader = create_dataloader(doc_ids_corpus, **kw, **fmt)
    it = iter(loader)
    for _ in range(3):
        next(it)
    resumed = create_dataloader(doc_ids_corpus, **kw, **fmt)
    resumed.load_state_dict(loader.state_dict())
    assert batches(resumed) == plain[3:]


def test_loader_overrides_dataset_format(doc_ids_corpus) -> None:
    ds = SlidingWindowDataset(doc_ids_corpus, max_length=16, stride=16)
    loader = GPTDataLoader(ds, batch_size=2, seed=0, documents="mask", batch_format="dict")
    batch = next(iter(loader))
    assert set(batch) == {"input_ids", "targets", "position_ids", "doc_ids"}
    assert ds.format.plain  # the dataset itself is unchanged
    assert (batch["targets"] == -100).sum() == (batch["input_ids"] == E).sum()


def test_hf_llama_sees_each_document_alone() -> None:
    # transformers (checked with 5.24) reads restarting position_ids, with no attention_mask and
    # no cache, as packed sequences: the "hf" batch keeps documents apart in a real HF model.
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    eot = 63
    rows = np.array([[1, 2, 3, eot, 5, 6, 7, eot, 9, 10, 11]])
    batch = Format("mask", "hf", eot)(rows)
    with torch.no_grad():
        packed = model(**batch, use_cache=False)
        for lo, hi in ((0, 4), (4, 8), (8, 10)):
            alone = model(input_ids=batch["input_ids"][:, lo:hi], use_cache=False).logits
            assert torch.allclose(packed.logits[:, lo:hi], alone, atol=1e-5)
    targets = Format("mask", "dict", eot)(rows)["targets"]  # (1, 10)
    ours = F.cross_entropy(packed.logits[0, :-1], targets[0, :-1])  # HF cannot see the last
    assert torch.allclose(packed.loss, ours, atol=1e-6)


def test_forever_keeps_the_format_across_epochs(doc_ids_corpus) -> None:
    kw = dict(batch_size=4, max_length=64, stride=64, seed=1)
    loader = create_dataloader(doc_ids_corpus, **kw, documents="mask", batch_format="dict")
    plain = create_dataloader(doc_ids_corpus, **kw)
    stream, plain_stream = loader.forever(), plain.forever()
    for _ in range(2 * len(loader) + 1):  # past two epoch ends
        batch, (x, y) = next(stream), next(plain_stream)
        assert torch.equal(batch["input_ids"], x)
        assert torch.equal(batch["targets"], y.masked_fill(x == E, -100))
