"""Hugging Face ``datasets`` on disk as ``prepare`` input, read with pyarrow alone.

* a folder written by ``Dataset.save_to_disk``: ``state.json`` lists its ``data-XXXXX-of-XXXXX.arrow``
  files, in row order; they are Arrow IPC *stream* files.
* a folder written by ``DatasetDict.save_to_disk``: ``dataset_dict.json`` names one such folder per
  split; every split is read (gptdata makes its own train/val split by content hash), unless one
  is held out (a word of its name is test, validation, dev, ...: ``heldout.py``): then the
  folder is refused, since reading it would train on held-out text. Point at ``folder/train``
  to take one split only. Every listed path must stay inside the folder holding the JSON.
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

from ..store.heldout import held_out_word

STATE = "state.json"
DATASET_DICT = "dataset_dict.json"


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


def hf_data_files(folder: str, *, _seen: frozenset[str] = frozenset()) -> list[str] | None:
    """The .arrow files of a save_to_disk folder in row order, or None for another folder.

    Every path listed in ``state.json`` / ``dataset_dict.json`` must stay inside the folder that
    holds the JSON, symlinks followed: a ``../`` or absolute entry would read files the user
    never named. ``_seen`` holds the DatasetDict folders above this one, so a loop stops.
    """
    dict_path = os.path.join(folder, DATASET_DICT)
    if os.path.isfile(dict_path):
        here = os.path.realpath(folder)
        if here in _seen:
            raise HFInputError(
                f"{dict_path}: lists a split that leads back to a folder above it (a loop of "
                "DatasetDict folders); a split must be a Dataset folder inside it."
            )
        meta = _load_json(dict_path)
        splits = meta.get("splits") if isinstance(meta, dict) else None
        if not isinstance(splits, list) or not splits:
            raise HFInputError(f"{dict_path}: no 'splits' list; not a DatasetDict.")
        held = [str(x) for x in splits if held_out_word(str(x)) is not None]
        if held:
            rest = [str(x) for x in splits if str(x) not in held]
            hint = f"{os.path.join(folder, rest[0])}" if rest else "one split's folder"
            raise HFInputError(
                f"{folder} is a DatasetDict with held-out split(s) {_short(held, quote=False)}: "
                "reading it whole would train on them (gptdata makes its own val split). Point at "
                f"{hint} instead."
            )
        files: list[str] = []
        for split in splits:
            sub_path = _inside(folder, split, dict_path, what="split")
            if os.path.realpath(sub_path) == here:
                raise HFInputError(
                    f"{dict_path}: split {_short([str(split)])} is the folder itself (the "
                    "DatasetDict lists itself); a split must be a Dataset folder inside it."
                )
            sub = hf_data_files(sub_path, _seen=_seen | {here})
            if sub is None:
                raise HFInputError(
                    f"{folder}: split {_short([str(split)])} has no {STATE}; the DatasetDict "
                    "is incomplete."
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
        path = _inside(folder, name, state_path, what="data file")
        if not os.path.isfile(path):
            raise HFInputError(
                f"{state_path}: lists data file {_short([str(name)])}, which is missing."
            )
        files.append(path)
    return files


def _short(names: list[str], limit: int = 80, *, quote: bool = True) -> str:
    """Names for a one-line message, each cut to ``limit`` characters (a hostile JSON is long)."""
    cut = [n if len(n) <= limit else n[:limit] + "..." for n in names[:5]]
    return ", ".join(repr(n) if quote else n for n in cut) + (
        f" and {len(names) - 5} more" if len(names) > 5 else ""
    )


def _inside(folder: str, entry: Any, json_path: str, *, what: str) -> str:
    """``folder/entry``, refused unless it resolves (symlinks followed) inside ``folder``."""
    if not isinstance(entry, str) or not entry or "\x00" in entry:
        raise HFInputError(f"{json_path}: lists {what} {_short([str(entry)])}, not a file name.")
    path = os.path.join(folder, entry)
    root = os.path.realpath(folder)
    real = os.path.realpath(path)
    if os.path.isabs(entry) or os.path.commonpath([root, real]) != root:
        raise HFInputError(
            f"{json_path}: lists {what} {_short([entry])}, which resolves outside {folder}; "
            "every path a save_to_disk folder lists must stay inside that folder (symlinks "
            "followed), so gptdata reads only what you named."
        )
    return path


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
