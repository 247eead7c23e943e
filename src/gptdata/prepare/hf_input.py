"""Hugging Face ``datasets`` on disk as ``prepare`` input, read with pyarrow alone.

* a folder written by ``Dataset.save_to_disk``: ``state.json`` lists its ``data-XXXXX-of-XXXXX.arrow``
  files, in row order; they are Arrow IPC *stream* files.
* a folder written by ``DatasetDict.save_to_disk``: ``dataset_dict.json`` names one such folder per
  split; every split is read (gptdata makes its own train/val split by content hash), unless one
  is held out (test, validation, dev, ...): then the folder is refused, since reading it would
  train on held-out text. Point at ``folder/train`` to take one split only.
* bare ``.arrow`` files (IPC stream, as ``datasets`` writes, or IPC file format).

Rows are documents, the string column ``text_field`` as for JSONL and Parquet; a null is an empty
document. ``datasets`` itself is not imported. Work units are runs of record batches.

    >>> hf_data_files("wiki/")        # a Dataset.save_to_disk folder
    ['wiki/data-00000-of-00002.arrow', 'wiki/data-00001-of-00002.arrow']
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

STATE = "state.json"
DATASET_DICT = "dataset_dict.json"
# Split names that mean "not for training": reading them into a corpus would train on them.
HELD_OUT = {"test", "testing", "validation", "valid", "val", "eval", "evaluation", "dev", "heldout"}


class HFInputError(ValueError):
    """A Hugging Face folder or .arrow file that cannot be read; names the file."""


def is_hf_folder(folder: str) -> bool:
    """Whether ``folder`` was written by ``save_to_disk``: a ``dataset_dict.json``, or a
    ``state.json`` naming ``_data_files`` (another tool's ``state.json`` does not count)."""
    if os.path.isfile(os.path.join(folder, DATASET_DICT)):
        return True
    try:
        with open(os.path.join(folder, STATE), encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(state, dict) and "_data_files" in state


def hf_data_files(folder: str) -> list[str] | None:
    """The .arrow files of a save_to_disk folder in row order, or None for another folder."""
    if os.path.isfile(os.path.join(folder, DATASET_DICT)):
        meta = _load_json(os.path.join(folder, DATASET_DICT))
        splits = meta.get("splits") if isinstance(meta, dict) else None
        if not isinstance(splits, list) or not splits:
            raise HFInputError(f"{folder}/{DATASET_DICT}: no 'splits' list; not a DatasetDict.")
        held = [str(x) for x in splits if str(x).lower() in HELD_OUT]
        if held:
            rest = [str(x) for x in splits if str(x) not in held]
            hint = f"{os.path.join(folder, rest[0])}" if rest else "one split's folder"
            raise HFInputError(
                f"{folder} is a DatasetDict with held-out split(s) {', '.join(held)}: reading it "
                "whole would train on them (gptdata makes its own val split). Point at "
                f"{hint} instead."
            )
        files: list[str] = []
        for split in splits:
            sub = hf_data_files(os.path.join(folder, str(split)))
            if sub is None:
                raise HFInputError(
                    f"{folder}: split {split!r} has no {STATE}; the DatasetDict is incomplete."
                )
            files += sub
        return files
    state_path = os.path.join(folder, STATE)
    if not os.path.isfile(state_path):
        return None
    state = _load_json(state_path)
    entries = state.get("_data_files") if isinstance(state, dict) else None
    if not isinstance(entries, list):
        raise HFInputError(f"{state_path}: no '_data_files' list; not a save_to_disk folder.")
    files = []
    for entry in entries:
        name = entry.get("filename") if isinstance(entry, dict) else None
        path = os.path.join(folder, str(name))
        if not isinstance(name, str) or not os.path.isfile(path):
            raise HFInputError(f"{state_path}: lists data file {name!r}, which is missing.")
        files.append(path)
    return files


def _load_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HFInputError(f"{path}: unreadable ({exc}).") from None


def _ipc() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.ipc as ipc
    except ImportError:
        raise HFInputError(
            "reading .arrow / Hugging Face datasets folders needs pyarrow. "
            "Fix: pip install 'gptdata[parquet]'"
        ) from None
    return pa, ipc


def _batches(path: str) -> Iterator[Any]:
    """Record batches of an Arrow IPC stream (or file), memory-mapped: bodies are not copied."""
    pa, ipc = _ipc()
    try:
        source = pa.memory_map(path, "r")
        if source.read(6) == b"ARROW1":  # the IPC *file* format (feather v2)
            source.seek(0)
            reader = ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)
            return
        source.seek(0)
        yield from ipc.open_stream(source)
    except pa.ArrowInvalid as exc:
        raise HFInputError(
            f"{path}: not an Arrow IPC stream or file ({_first_line(exc)}). Hugging Face "
            "datasets writes these with save_to_disk; remove it from the inputs or rewrite it."
        ) from None
    except OSError as exc:  # pyarrow's ArrowIOError: the file ends inside a record batch
        raise HFInputError(
            f"{path}: truncated or unreadable Arrow file ({_first_line(exc)}). Write it again "
            "(e.g. save_to_disk once more) or remove it from the inputs."
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def arrow_batch_count(path: str) -> int:
    """How many record batches the file holds (reads only the stream's metadata)."""
    return sum(1 for _ in _batches(path))


def read_arrow(path: str, start: int, end: int, text_field: str) -> Iterator[str | None]:
    """The ``text_field`` value of every row in record batches ``start..end-1``."""
    for i, batch in enumerate(_batches(path)):
        if i >= end:
            break
        if i < start:
            continue
        names = batch.schema.names
        if text_field not in names:
            raise HFInputError(
                f"{path}: no column '{text_field}' (columns: {', '.join(names)}). "
                "Name the text column with --text-field."
            )
        column = batch.column(names.index(text_field))
        kind = str(column.type)
        if kind not in ("string", "large_string", "string_view"):
            raise HFInputError(
                f"{path}: column '{text_field}' holds {kind}, not strings. "
                "Name the text column with --text-field."
            )
        yield from column.to_pylist()
