"""Plain readers of other systems' formats, written from their published layouts, and small
token stores to feed them. The tests check gptdata's writers and readers against these."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from gptdata import SimpleTokenizer, prepare
from gptdata.tokenizers import ENDOFTEXT, UNK

TEXTS = [
    "the cat sat on the mat .",
    "a dog ran .",
    "the end",
    "one more document , with a comma",
    "x",
]


def word_tokenizer(vocab_size: int) -> SimpleTokenizer:
    """A SimpleTokenizer of exactly ``vocab_size`` entries: w0, w1, ..., then <|endoftext|>, <|unk|>.

    65537 -> eot 65535, unk 65536 (the largest ID needs uint32/int32)
    """
    return SimpleTokenizer([f"w{i}" for i in range(vocab_size - 2)] + [ENDOFTEXT, UNK])


def make_store(path: Path, texts=TEXTS, *, tokenizer=None, val_fraction=0.0, shard_tokens=10**8):
    tok = tokenizer or SimpleTokenizer.from_text(" ".join(texts))
    return prepare(
        None,
        path,
        texts=list(texts),
        tokenizer=tok,
        val_fraction=val_fraction,
        shard_tokens=shard_tokens,
        workers=1,
        quiet=True,
    )


def store_documents(store, split="train") -> list[list[int]]:
    """A split's documents as lists, from the store's own index (separators excluded)."""
    sp = store.split(split)
    tokens = sp[:].tolist()
    ends = sp.document_ends().tolist()
    starts = [0] + [e + 1 for e in ends[:-1]] if ends else []
    return [tokens[s:e] for s, e in zip(starts, ends, strict=True)]


def read_megatron(prefix: Path) -> dict:
    """The .idx/.bin pair field by field (Megatron-Core indexed_dataset.py layout)."""
    idx = Path(str(prefix) + ".idx").read_bytes()
    magic, version, code, n_seq, n_doc = struct.unpack("<9sQBQQ", idx[:34])
    lengths = list(struct.unpack(f"<{n_seq}i", idx[34 : 34 + 4 * n_seq]))
    pointers = list(struct.unpack(f"<{n_seq}q", idx[34 + 4 * n_seq : 34 + 12 * n_seq]))
    doc_idx = list(struct.unpack(f"<{n_doc}q", idx[34 + 12 * n_seq : 34 + 12 * n_seq + 8 * n_doc]))
    assert len(idx) == 34 + 12 * n_seq + 8 * n_doc
    dtype = {8: "<u2", 4: "<i4"}[code]
    data = np.fromfile(str(prefix) + ".bin", dtype=dtype)
    item = np.dtype(dtype).itemsize
    sequences = [
        data[p // item : p // item + n].tolist() for p, n in zip(pointers, lengths, strict=True)
    ]
    return {
        "magic": magic,
        "version": version,
        "code": code,
        "lengths": lengths,
        "pointers": pointers,
        "doc_idx": doc_idx,
        "sequences": sequences,
        "bin_tokens": len(data),
    }


def split_stream(stream: list[int], eot: int) -> list[list[int]]:
    """[5, E, 6, 7, E] -> [[5], [6, 7]]: the plain list reference for cutting at end-of-text."""
    docs, cur = [], []
    for t in stream:
        if t == eot:
            if cur:
                docs.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur:
        docs.append(cur)
    return docs


def read_llmc(path: Path) -> tuple[list[int], list[int]]:
    """(first 3 header ints, tokens) of one llm.c shard, checking the header's size rule."""
    raw = path.read_bytes()
    header = struct.unpack("<256i", raw[:1024])
    magic, version, count = header[:3]
    assert all(h == 0 for h in header[3:])
    dtype = {20240520: "<u2", 20240801: "<u4"}[magic]
    assert len(raw) == 1024 + count * np.dtype(dtype).itemsize
    return [magic, version, count], np.frombuffer(raw[1024:], dtype=dtype).tolist()
