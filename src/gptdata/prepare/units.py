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

from ..store import dtype_for, write_json_atomic
from ..store.shards import TAIL_DTYPE, _add_tail, _PartWriter
from ..store.splits import split_of
from ..tokenizers import ENDOFTEXT, Tokenizer
from .sources import ReadStats, WorkUnit, read_documents

BATCH_CHARS = 1 << 20  # tokenize ~1 MB of text at a time: bounded memory, little call overhead


def encode_texts(
    tokenizer: Tokenizer, batch: list[str], special_text: str, stats: ReadStats
) -> list[Any]:
    """Token IDs per document; a literal <|endoftext|> is ordinary text unless 'allow'ed.

    One substring search over the joined batch (~1 GB/s) finds whether any document holds the
    literal; only then are the documents searched one by one, to count them.
    """
    hits = []
    if ENDOFTEXT in "".join(batch):
        hits = [i for i, text in enumerate(batch) if ENDOFTEXT in text]
        stats.special_text += len(hits)
    special = "eot" if special_text == "allow" else "text"
    encode_arrays = getattr(tokenizer, "encode_arrays", None)
    if encode_arrays is not None:
        # GPT-2 hands back numpy arrays directly (fastokens: no Python int per token).
        encoded = encode_arrays(batch, special=special)
    else:
        encoded = [tokenizer.encode(text, special=special) for text in batch]
    if special == "text" and tokenizer.eot_id is not None:
        for i in hits:
            if (np.asarray(encoded[i]) == tokenizer.eot_id).any():
                raise ValueError(
                    f"tokenizer {tokenizer.name} turns the literal {ENDOFTEXT} inside a "
                    "document into its special token and cannot encode it as text. Pass "
                    "special_text='allow' to keep it as a separator, or remove it from the text."
                )
    return encoded


def _out_of_range(tokenizer: Tokenizer, arr: np.ndarray) -> None:
    bad = int(arr.max() if arr.max() >= tokenizer.vocab_size else arr.min())
    raise ValueError(
        f"tokenizer {tokenizer.name} produced ID {bad}, outside "
        f"0..{tokenizer.vocab_size - 1}; refusing to write a wrapped-around store."
    )


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
        for s in (
            ("train", "val", "test") if options.get("test_fraction", 0) > 0 else ("train", "val")
        )
    }
    stats = ReadStats()
    tokens = documents = 0
    by_tail = options["split_by"] == "tail" and options["val_fraction"] > 0
    f, seed, test = options["val_fraction"], options["seed"], options.get("test_fraction", 0)
    order: list[str] = []  # each document's split, so that auto can still choose a tail split
    seen: dict[int, int] = {}  # tail split: copies of each document so far in this unit
    tail_meta: list[tuple[int, int]] = []  # tail split: (key, length) per document

    def flush(batch: list[str]) -> None:
        nonlocal tokens, documents
        encoded = encode_texts(tokenizer, batch, options["special_text"], stats)
        documents += len(batch)
        # Per-document work is the hot loop (~10 µs a document): nothing in it that can wait.
        if by_tail:
            for ids in encoded:
                arr = np.asarray(ids)
                if arr.size and (arr.max() >= vocab_size or arr.min() < 0):
                    _out_of_range(tokenizer, arr)
                tokens += arr.size
                tail_meta.append((_add_tail(writers, arr.astype(dtype), options, seen), arr.size))
            return
        for text, ids in zip(batch, encoded, strict=True):
            arr = np.asarray(ids)
            if arr.size and (arr.max() >= vocab_size or (arr.dtype.kind == "i" and arr.min() < 0)):
                _out_of_range(tokenizer, arr)
            tokens += arr.size
            split = split_of(text, f, seed, test)
            order.append(split)
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
    if options["split_by"] == "tail":  # copy numbers over the whole input: see _fix_copies
        tails = np.array(tail_meta, dtype=TAIL_DTYPE)
        (units / f"{unit.index:05d}.tail.tmp").write_bytes(tails.tobytes())
        os.replace(units / f"{unit.index:05d}.tail.tmp", units / f"{unit.index:05d}.tail")
    if order:
        bits = np.packbits(np.array(order) == "val").tobytes()
        (units / f"{unit.index:05d}.order.tmp").write_bytes(bits)
        os.replace(units / f"{unit.index:05d}.order.tmp", units / f"{unit.index:05d}.order")
    result = {
        "index": unit.index,
        "tokens": tokens,
        # input documents: a tail split puts one document in both splits
        "stats": {**asdict(stats), "documents": documents},
        "parts": {s: w.finish() for s, w in writers.items()},
    }
    write_json_atomic(units / f"{unit.index:05d}.json", result)
    return result


class _UnitTask:
    """Picklable ``fn(unit)`` for executors: the tokenizer and options travel with it."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        options: dict[str, Any],
        side: str,
        *,
        instructions: bool = False,
    ) -> None:
        self.tokenizer, self.options, self.side = tokenizer, options, side
        self.instructions = instructions

    def __call__(self, unit: WorkUnit) -> dict[str, Any]:
        if self.instructions:
            from .instruction_units import tokenize_instruction_unit

            return tokenize_instruction_unit(unit, self.tokenizer, self.options, self.side)
        return tokenize_unit(unit, self.tokenizer, self.options, self.side)

    def prewarm(self) -> None:
        if hasattr(self.tokenizer, "prewarm"):
            self.tokenizer.prewarm()
