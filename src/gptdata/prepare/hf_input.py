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
import posixpath
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..storage import Location, StorageError, is_remote
from ..store.heldout import held_out_word
from . import arrow_ranges

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


def _dict_splits(meta: Any, json_name: str, folder: str, child: Callable[[str], str]) -> list[Any]:
    """The splits a ``dataset_dict.json`` lists, local or remote: one with a held-out name
    refuses the whole DatasetDict (it would be trained on), naming a split to point at instead."""
    splits = meta.get("splits") if isinstance(meta, dict) else None
    if not isinstance(splits, list) or not splits:
        raise HFInputError(f"{json_name}: no 'splits' list; not a DatasetDict.")
    held = [str(x) for x in splits if held_out_word(str(x)) is not None]
    if held:
        rest = [str(x) for x in splits if str(x) not in held]
        hint = child(rest[0]) if rest else "one split's folder"
        raise HFInputError(
            f"{folder} is a DatasetDict with held-out split(s) {_short(held, quote=False)}: "
            "reading it whole would train on them (gptdata makes its own val split). Point at "
            f"{hint} instead."
        )
    return splits


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
        splits = _dict_splits(
            _load_json(dict_path), dict_path, folder, lambda s: os.path.join(folder, s)
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


def _batches(
    path: str,
    storage_options: Mapping[str, Any] | None = None,
    start: int = 0,
    end: int | None = None,
) -> Iterator[Any]:
    """Record batches ``start..end-1`` of an Arrow IPC stream (or file), memory-mapped: bodies
    are not copied. A remote one (``s3://...``) is read by range: only those batches' bytes
    (``arrow_ranges``), in requests of about 4 MiB (``readers.CHUNK``: why that size).
    """
    pa, ipc = _ipc()
    try:
        if is_remote(path):
            source = Location(path, storage_options=storage_options).open(block_size=4 << 20)
        else:
            source = pa.memory_map(path, "r")
        if source.read(6) == b"ARROW1":  # the IPC *file* format (feather v2): a footer
            source.seek(0)
            reader = ipc.open_file(source)
            n = reader.num_record_batches
            for i in range(start, n if end is None else min(end, n)):
                yield reader.get_batch(i)
            return
        source.seek(0)
        layout = _remote_layout(path, storage_options) if is_remote(path) else None
        if layout is not None:
            yield from ipc.open_stream(arrow_ranges.piece_stream(source, layout, start, end))
            return
        source.seek(0)
        for i, batch in enumerate(ipc.open_stream(source)):
            if end is not None and i >= end:
                return
            if i >= start:
                yield batch
    except (pa.ArrowInvalid, arrow_ranges.NotAStream) as exc:
        raise HFInputError(
            f"{path}: not an Arrow IPC stream or file ({_first_line(exc)}). Hugging Face "
            "datasets writes these with save_to_disk; remove it from the inputs or rewrite it."
        ) from None
    except StorageError:
        raise
    except OSError as exc:  # pyarrow's ArrowIOError: the file ends inside a record batch
        raise HFInputError(
            f"{path}: truncated or unreadable Arrow file ({_first_line(exc)}). Write it again "
            "(e.g. save_to_disk once more) or remove it from the inputs."
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def arrow_batch_count(path: str, storage_options: Mapping[str, Any] | None = None) -> int:
    """How many record batches the file holds (reads only the stream's metadata; remotely, each
    message's header, skipping the bodies: ``arrow_ranges``)."""
    if is_remote(path):
        try:
            layout = _remote_layout(path, storage_options)
        except arrow_ranges.NotAStream as exc:
            raise HFInputError(
                f"{path}: not an Arrow IPC stream or file ({exc}). Hugging Face datasets writes "
                "these with save_to_disk; remove it from the inputs or rewrite it."
            ) from None
        if layout is not None:
            return len(layout[1])
    return sum(1 for _ in _batches(path, storage_options))


def _remote_layout(path: str, storage_options: Mapping[str, Any] | None) -> Any:
    """A remote IPC stream's message layout (``arrow_ranges.record_batches``), or None for the
    IPC file format or a stream with dictionaries. Read in 64 KiB blocks: the walk reads only
    headers, and a larger read-ahead would fetch the bodies it skips."""
    with Location(path, storage_options=storage_options).open(block_size=1 << 16) as fh:
        if fh.read(6) == b"ARROW1":
            return None
        return arrow_ranges.record_batches(fh)


def read_arrow(
    path: str,
    start: int,
    end: int,
    text_field: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[str | None]:
    """The ``text_field`` value of every row in record batches ``start..end-1``."""
    for batch in _batches(path, storage_options, start, end):
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


def remote_hf_files(root: Location, below: Mapping[str, int]) -> list[str] | None:
    """The data files (URLs) of a ``save_to_disk`` folder on object storage, or None for another
    prefix; ``below`` is the prefix's listing (relative key -> size). The local rules hold:
    held-out splits refuse a DatasetDict, and every listed name must stay inside the folder.

        >>> remote_hf_files(Location("s3://b/wiki"), {"state.json": 90, "data-00000-of-00001.arrow": 7})
        ['s3://b/wiki/data-00000-of-00001.arrow']
    """
    if DATASET_DICT in below:
        meta = _remote_json(root.child(DATASET_DICT))
        splits = _dict_splits(
            meta, f"{root.url}/{DATASET_DICT}", root.url, lambda s: f"{root.url}/{s}"
        )
        files: list[str] = []
        for split in splits:
            rel = _remote_inside(root, split, DATASET_DICT, what="split")
            sub = {k[len(rel) + 1 :]: n for k, n in below.items() if k.startswith(rel + "/")}
            found = remote_hf_files(root.child(rel), sub) if STATE in sub else None
            if found is None:
                raise HFInputError(
                    f"{root.url}: split {_short([str(split)])} has no {STATE}; the DatasetDict "
                    "is incomplete."
                )
            files += found
        return files
    if STATE not in below:
        return None
    state = _remote_json(root.child(STATE))
    entries = state.get("_data_files") if isinstance(state, dict) else None
    if not isinstance(entries, list):
        return None  # another tool's state.json: an ordinary prefix, as locally
    urls = []
    for entry in entries:
        name = entry.get("filename") if isinstance(entry, dict) else None
        rel = _remote_inside(root, name, STATE, what="data file")
        if rel not in below:
            raise HFInputError(
                f"{root.url}/{STATE}: lists data file {_short([str(name)])}, which is missing."
            )
        urls.append(root.child(rel).url)
    return urls


def _remote_inside(root: Location, entry: Any, json_name: str, *, what: str) -> str:
    """``entry`` as a key relative to ``root``, refused when absolute or climbing out (``..``)."""
    if not isinstance(entry, str) or not entry or "\x00" in entry:
        raise HFInputError(
            f"{root.url}/{json_name}: lists {what} {_short([str(entry)])}, not a file name."
        )
    rel = posixpath.normpath(entry)
    if entry.startswith("/") or rel == "." or rel == ".." or rel.startswith("../"):
        raise HFInputError(
            f"{root.url}/{json_name}: lists {what} {_short([entry])}, which resolves outside "
            f"{root.url}; every path a save_to_disk folder lists must stay inside that folder, so "
            "gptdata reads only what you named."
        )
    return rel


def _remote_json(loc: Location) -> Any:
    try:
        return json.loads(loc.read_bytes(limit=1 << 24))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise HFInputError(f"{loc.url}: unreadable ({exc}).") from None
