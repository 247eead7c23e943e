"""gptdata's Megatron export read by Megatron-Core itself: IndexedDataset and GPTDataset.

GPTDataset's index helpers come compiled in the megatron-core wheel (helpers_cpp), so this runs
on CPU with no build step.
"""

from __future__ import annotations

import numpy as np
import pytest

from gptdata import SimpleTokenizer, prepare
from gptdata.formats import export_store, import_store
from gptdata.tokenizers import ENDOFTEXT, UNK

indexed_dataset = pytest.importorskip("megatron.core.datasets.indexed_dataset")
gpt_dataset = pytest.importorskip("megatron.core.datasets.gpt_dataset")
from megatron.core.datasets.utils import Split  # noqa: E402

TEXTS = [f"w{i % 5} " * (1 + i % 13) + f"end{i % 3}" for i in range(300)]


def _documents(store, split):
    sp = store.split(split)
    tokens, ends = sp[:].tolist(), sp.document_ends().tolist()
    starts = [0] + [e + 1 for e in ends[:-1]]
    return [tokens[s:e] for s, e in zip(starts, ends, strict=True)]


@pytest.fixture(params=["small", "large"])
def exported(request, tmp_path):
    if request.param == "small":
        tok = SimpleTokenizer.from_text(" ".join(TEXTS))
        texts = TEXTS
    else:  # vocab_size 65,537: int32 tokens (code 4), IDs up to 65,536
        tok = SimpleTokenizer([f"w{i}" for i in range(65535)] + [ENDOFTEXT, UNK])
        texts = [t.replace("end", "w6553") + " zzz" for t in TEXTS]
    store = prepare(
        None,
        tmp_path / "store",
        texts=texts,
        tokenizer=tok,
        val_fraction=0.2,
        shard_tokens=200,
        workers=1,
        quiet=True,
    )
    export_store(store, tmp_path / "m", format="megatron", quiet=True)
    return store, tok, tmp_path / "m"


@pytest.mark.parametrize("split", ["train", "val"])
def test_indexed_dataset_reads_every_document(exported, split):
    store, tok, folder = exported
    ds = indexed_dataset.IndexedDataset(str(folder / f"{split}_text_document"))
    docs = _documents(store, split)
    assert len(ds) == len(docs)
    # Megatron's own DType.optimal_dtype: uint16 below 65,500 IDs
    assert ds.index.dtype == (np.uint16 if tok.vocab_size < 65500 else np.int32)
    assert ds.document_indices.tolist() == list(range(len(docs) + 1))
    assert ds.sequence_lengths.tolist() == [len(d) + 1 for d in docs]
    for i, doc in enumerate(docs):
        assert ds[i].tolist() == doc + [tok.eot_id]


class _Tok:
    """The three things GPTDataset asks of its tokenizer."""

    def __init__(self, tok):
        self.vocab_size, self.eod = tok.vocab_size, tok.eot_id
        self.unique_identifiers = {"class": "gptdata-crosscheck", "vocab_size": tok.vocab_size}


def test_gpt_dataset_samples(exported, tmp_path):
    store, tok, folder = exported
    prefix = str(folder / "train_text_document")
    ds = indexed_dataset.IndexedDataset(prefix)
    length = 32
    config = gpt_dataset.GPTDatasetConfig(
        random_seed=1234,
        sequence_length=length,
        blend=([prefix], None),
        split="100,0,0",
        tokenizer=_Tok(tok),
        reset_position_ids=True,
        reset_attention_mask=True,
        eod_mask_loss=True,
        path_to_cache=str(tmp_path / "cache"),
    )
    gpt = gpt_dataset.GPTDataset(
        ds, prefix, np.arange(len(ds), dtype=np.int32), None, Split.train, config
    )
    # One epoch: every document once, in GPTDataset's shuffled document order.
    assert sorted(gpt.document_index.tolist()) == list(range(len(ds)))
    stream = np.concatenate([ds[int(d)] for d in gpt.document_index]).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum([len(ds[int(d)]) for d in gpt.document_index])])
    assert len(gpt) == (len(stream) - 1) // length
    for i in range(len(gpt)):
        k = int(gpt.shuffle_index[i])
        doc_pos, offset = gpt.sample_index[k]
        first = int(starts[doc_pos] + offset)
        sample = gpt[i]
        assert sample["tokens"].tolist() == stream[first : first + length].tolist()
        assert sample["labels"].tolist() == stream[first + 1 : first + length + 1].tolist()
        eod = sample["tokens"] == tok.eot_id
        assert (sample["loss_mask"][eod] == 0).all() and (sample["loss_mask"][~eod] == 1).all()


def test_megatron_round_trip(exported, tmp_path):
    store, tok, folder = exported
    vocab = tmp_path / "vocab.json"
    tok.save(vocab)
    back = import_store("megatron", folder, tmp_path / "back", tokenizer=vocab, quiet=True)
    for split in ("train", "val"):
        assert _documents(back, split) == _documents(store, split)
