"""``prepare(..., instructions=True)``: instruction files in, documents with response masks out.

Each input (a ``.json`` list, ``.jsonl``, ``.parquet``, ``.arrow`` or a ``datasets`` folder) is
one work unit, so the cut depends on the inputs alone and the store is byte-identical for any
``workers``. Each example is one document: ``encode(prompt + response)`` as the book's
``InstructionDataset`` encodes it, with the mask ``[0] * len(encode(prompt)) + [1] * rest``
(the book's prompt count, exercise 7.2); the end-of-text after it is response (``store.masks``).
Examples go to train, val or test by a seeded hash of their text (``store.splits.split_of``).

    [{"instruction": "Say hi.", "output": "Hi!"}] -> 1 document of 35 tokens, mask 27 x 0, 8 x 1
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..storage import Location, expand, is_remote
from ..store import dtype_for, write_json_atomic
from ..store.masks import example_mask
from ..store.shards import _PartWriter
from ..store.splits import split_of
from ..tokenizers import Tokenizer
from .instructions import (
    TEMPLATES,
    InstructionStats,
    Template,
    get_template,
    parse_fields,
    read_examples,
)
from .sources import InputError, InputFile, Piece, WorkUnit

BATCH_EXAMPLES = 4096  # encode this many examples per call: bounded memory, little overhead


def _size(path: str) -> tuple[int, int]:
    """Bytes and newest mtime of a file, or of every file under a folder."""
    if os.path.isfile(path):
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    size = mtime = 0
    for dirpath, _, names in os.walk(path):
        for name in sorted(names):
            st = os.stat(os.path.join(dirpath, name))
            size, mtime = size + st.st_size, max(mtime, st.st_mtime_ns)
    return size, mtime


def _remote_instruction_inputs(item: str, opts: Mapping[str, Any] | None) -> list[InputFile]:
    """A URL as local paths are taken: a glob's objects, one object, or a ``save_to_disk``
    prefix (one input, as a local folder is)."""
    root = Location(item, storage_options=opts)
    if glob.has_magic(root.path):
        hits = [(loc.url, size) for loc, size in expand(item, storage_options=opts)]
    elif below := root.files():
        hits = [(root.url, sum(below.values()))]  # _records says if it is no datasets prefix
    else:
        hits = [(loc.url, size) for loc, size in expand(item, storage_options=opts)]
    return [InputFile(url, "jsonl", size) for url, size in hits]


def resolve_instruction_inputs(
    inputs: Any, *, storage_options: Mapping[str, Any] | None = None
) -> list[InputFile]:
    """Instruction inputs as named (globs expanded, sorted): each a file or a ``datasets`` folder,
    local or on object storage (``s3://bucket/sft/*.jsonl``, with fsspec's ``storage_options``).

    ["data/*.json"] -> [InputFile("data/a.json", ...), InputFile("data/b.json", ...)]
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs or [])
    files: dict[str, InputFile] = {}  # a path named twice is read once
    for item in items:
        item = os.fspath(item)
        if is_remote(item):
            for f in _remote_instruction_inputs(item, storage_options):
                files.setdefault(f.path, f)
            continue
        if glob.has_magic(item):
            paths = sorted(glob.glob(item))
            if not paths:
                raise InputError(f"no instruction files match {item!r}. Check the pattern.")
        elif not os.path.exists(item):
            raise InputError(f"instruction data '{item}' does not exist. Check the path.")
        else:
            paths = [item]
        for path in paths:
            size, mtime = _size(path)
            files.setdefault(path, InputFile(path, "jsonl", size, mtime))  # kind: instructions.py
    if not files:
        raise InputError("no instruction inputs given.")
    return list(files.values())


def instruction_units(
    files: list[InputFile], *, storage_options: Mapping[str, Any] | None = None
) -> list[WorkUnit]:
    """One work unit per input: instruction files are small, and a unit never splits a file."""
    opts = dict(storage_options) if storage_options else None
    return [
        WorkUnit(i, (Piece(f.path, f.kind, 0, f.size),), storage_options=opts)
        for i, f in enumerate(files)
    ]


def split_names(options: dict[str, Any]) -> tuple[str, ...]:
    """The splits a store gets: train and val, and test when ``test_fraction`` > 0."""
    return ("train", "val", "test") if options.get("test_fraction", 0) > 0 else ("train", "val")


def tokenize_instruction_unit(
    unit: WorkUnit, tokenizer: Tokenizer, options: dict[str, Any], side: str
) -> dict[str, Any]:
    """Encode one input's examples into shard parts with masks; record the unit as done."""
    if delay := os.environ.get("GPTDATA_TEST_UNIT_DELAY"):
        import time

        time.sleep(float(delay))  # lets the kill-and-resume test land its kill mid-run
    spec = options["instructions"]
    text = spec["template_text"]
    template = (
        Template.from_text(text, name=spec["template"]) if text else get_template(spec["template"])
    )
    dtype = dtype_for(tokenizer.vocab_size)
    folder = Path(side) / "shards"
    writers = {
        s: _PartWriter(
            folder,
            f"{unit.index:05d}.{s}",
            dtype,
            tokenizer.eot_id,
            options["shard_tokens"],
            masks=True,
        )
        for s in split_names(options)
    }
    stats = InstructionStats()
    tokens = 0
    batch: list[tuple[str, str]] = []

    def flush() -> None:
        nonlocal tokens
        # special="text": a literal "<|endoftext|>" in an example is text, as InstructionDataset.
        full = tokenizer.encode_batch([p + r for p, r in batch], special="text")
        prompts = tokenizer.encode_batch([p for p, _ in batch], special="text")
        for (p, r), ids, prompt in zip(batch, full, prompts, strict=True):
            arr = np.asarray(ids, dtype=np.int64)
            if arr.size and (arr.max() >= tokenizer.vocab_size or arr.min() < 0):
                raise ValueError(f"tokenizer {tokenizer.name} produced an ID outside its vocab.")
            split = split_of(
                p + r, options["val_fraction"], options["seed"], options.get("test_fraction", 0)
            )
            writers[split].add(arr.astype(dtype), example_mask(arr.size, len(prompt)))
            tokens += arr.size
        batch.clear()

    path = unit.pieces[0].path
    for example in read_examples(
        path,
        fields=spec["fields"],
        errors=options["errors"],
        stats=stats,
        storage_options=unit.storage_options,
    ):
        batch.append(template.render(*example))
        if len(batch) >= BATCH_EXAMPLES:
            flush()
    if batch:
        flush()
    result = {
        "index": unit.index,
        "tokens": tokens,
        "stats": {
            "bytes": unit.pieces[0].end,
            "documents": stats.examples,
            # bad records (errors="skip"); only when there are some, as the text readers' stats
            **({"bad_records": stats.skipped} if stats.skipped else {}),
        },
        "parts": {s: w.finish() for s, w in writers.items()},
    }
    write_json_atomic(Path(side) / "units" / f"{unit.index:05d}.json", result)
    return result


def instruction_options(
    template: str | os.PathLike[str], fields: Any, split_by: str
) -> dict[str, Any]:
    """The manifest's ``options.instructions``: the template's name and text, the field names.

    A template file's text travels in the options (workers never reread it, and a changed file
    is a new plan). Instruction data is split by example: ``split_by`` must be documents/auto.
    """
    if split_by == "tail":
        raise ValueError(
            "split_by='tail' cuts documents, but an instruction example is never cut: use "
            "split_by='documents' (the default for instructions)."
        )
    name = os.fspath(template)
    text = None
    if name not in TEMPLATES:
        get_template(name)  # the template's own checks (a file without {output} is refused)
        text = Path(name).read_text(encoding="utf-8")
    return {"template": name, "template_text": text, "fields": parse_fields(fields)}


def split_setup(
    instructions: bool,
    template: str | os.PathLike[str],
    fields: Any,
    split_by: str,
    errors: str,
    test_fraction: float,
    from_texts: bool,
) -> tuple[dict[str, Any] | None, str]:
    """``prepare``'s options for instruction data and a test split: (the manifest's
    ``options.instructions`` or None, the split policy). Both split whole documents.

    (False, ..., split_by="auto", test_fraction=0.1) -> (None, "documents")
    """
    spec = None
    if instructions:
        if from_texts:
            raise ValueError(
                "instructions=True reads files; pass a list of dicts to InstructionDataset."
            )
        spec = instruction_options(template, fields, split_by)
        if errors not in ("strict", "skip"):
            raise ValueError(f"errors={errors!r}: instruction data takes 'strict' or 'skip'.")
    if test_fraction > 0 or instructions:
        if split_by == "tail":
            raise ValueError(
                "test_fraction needs a document split (whole documents to test); pass "
                "split_by='documents' or 'auto'."
            )
        split_by = "documents"
    return spec, split_by
