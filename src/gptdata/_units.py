"""What a worker does with one work unit: read, encode, split, write parts, record it as done.

Runs in worker processes or Ray tasks; everything it needs travels in its arguments.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ._shards import _add_tail, _PartWriter
from ._splits import split_of
from .sources import ReadStats, WorkUnit, read_documents
from .store import dtype_for, write_json_atomic
from .tokenizers import ENDOFTEXT, Tokenizer

BATCH_CHARS = 1 << 20  # tokenize ~1 MB of text at a time: bounded memory, little call overhead


def _encode_batch(
    tokenizer: Tokenizer, batch: list[str], special_text: str, stats: ReadStats
) -> list[Any]:
    """Token IDs per document; a literal <|endoftext|> is ordinary text unless 'allow'ed.

    The bulk path stays as it was: only documents that contain the literal (a substring search,
    C speed) are encoded again one by one with ``special="text"``.
    """
    encode_arrays = getattr(tokenizer, "encode_arrays", None)
    hits = [i for i, text in enumerate(batch) if ENDOFTEXT in text]
    stats.special_text += len(hits)
    if special_text == "allow" or not hits:
        # GPT-2 hands back numpy arrays directly (fastokens: no Python int per token).
        return list(encode_arrays(batch) if encode_arrays else map(tokenizer.encode, batch))
    plain = list(batch)
    for i in hits:
        plain[i] = ""
    encoded = list(encode_arrays(plain) if encode_arrays else map(tokenizer.encode, plain))
    for i in hits:
        ids = np.asarray(tokenizer.encode(batch[i], special="text"))
        if tokenizer.eot_id is not None and (ids == tokenizer.eot_id).any():
            raise ValueError(
                f"tokenizer {tokenizer.name} turns the literal {ENDOFTEXT} inside a document "
                "into its special token and cannot encode it as text. Pass "
                "special_text='allow' to keep it as a separator, or remove it from the text."
            )
        encoded[i] = ids
    return encoded


def tokenize_unit(
    unit: WorkUnit, tokenizer: Tokenizer, options: dict[str, Any], side: str
) -> dict[str, Any]:
    """Tokenize one work unit into its shard files and return (and record) its metadata.

    Runs in a worker process (or Ray task); everything it needs travels in the arguments.
    """
    if delay := os.environ.get("GPTDATA_TEST_UNIT_DELAY"):
        time.sleep(float(delay))  # lets the kill-and-resume test land its kill mid-run
    folder = Path(side) / "shards"
    dtype = dtype_for(tokenizer.vocab_size)
    vocab_size = tokenizer.vocab_size
    writers = {
        s: _PartWriter(
            folder, f"{unit.index:05d}.{s}", dtype, tokenizer.eot_id, options["shard_tokens"]
        )
        for s in ("train", "val")
    }
    stats = ReadStats()
    tokens = sum_sq = documents = 0
    by_tail = options["split_by"] == "tail" and options["val_fraction"] > 0
    order: list[bool] = []  # auto: each document's split, so a later tail split keeps the order

    def flush(batch: list[str]) -> None:
        nonlocal tokens, sum_sq, documents
        encoded = _encode_batch(tokenizer, batch, options["special_text"], stats)
        for text, ids in zip(batch, encoded, strict=True):
            arr = np.asarray(ids)
            if arr.size and (arr.max() >= vocab_size or (arr.dtype.kind == "i" and arr.min() < 0)):
                bad = int(arr.max() if arr.max() >= vocab_size else arr.min())
                raise ValueError(
                    f"tokenizer {tokenizer.name} produced ID {bad}, outside "
                    f"0..{vocab_size - 1}; refusing to write a wrapped-around store."
                )
            tokens += arr.size
            sum_sq += arr.size * arr.size
            documents += 1
            if by_tail:
                _add_tail(writers, arr.astype(dtype), options)
                continue
            split = split_of(text, options["val_fraction"], options["seed"])
            order.append(split == "val")
            writers[split].add(arr.astype(dtype))

    batch: list[str] = []
    size = 0
    for text in read_documents(
        unit, text_field=options["text_field"], errors=options["errors"], stats=stats
    ):
        batch.append(text)
        size += len(text)
        if size >= BATCH_CHARS:
            flush(batch)
            batch, size = [], 0
    flush(batch)
    units = Path(side) / "units"
    if order:
        bits = np.packbits(np.array(order, dtype=bool)).tobytes()
        (units / f"{unit.index:05d}.order.tmp").write_bytes(bits)
        os.replace(units / f"{unit.index:05d}.order.tmp", units / f"{unit.index:05d}.order")
    result = {
        "index": unit.index,
        "tokens": tokens,
        "sum_sq": sum_sq,
        # input documents: a tail split puts one document in both splits
        "stats": {**asdict(stats), "documents": documents},
        "parts": {s: w.finish() for s, w in writers.items()},
    }
    write_json_atomic(units / f"{unit.index:05d}.json", result)
    return result


class _UnitTask:
    """Picklable ``fn(unit)`` for executors: the tokenizer and options travel with it."""

    def __init__(self, tokenizer: Tokenizer, options: dict[str, Any], side: str) -> None:
        self.tokenizer, self.options, self.side = tokenizer, options, side

    def __call__(self, unit: WorkUnit) -> dict[str, Any]:
        return tokenize_unit(unit, self.tokenizer, self.options, self.side)

    def prewarm(self) -> None:
        if hasattr(self.tokenizer, "prewarm"):
            self.tokenizer.prewarm()
