"""Corpus inputs: which files, how they are cut into work units, and the documents inside.

* ``.txt`` (and any file named directly with another suffix): one file = one document.
* ``.jsonl`` / ``.jsonl.gz``: one line = one document, the string in ``text_field``.
* ``.parquet``: one row = one document, the string column ``text_field`` (needs pyarrow).
* ``.arrow`` and Hugging Face ``save_to_disk`` folders: one row = one document, the string
  column ``text_field``, read with pyarrow's IPC reader (see ``hf_input``).

Folders are searched recursively for those suffixes; globs are expanded; the final list is sorted,
so the plan of work units depends on the inputs alone. A ``.jsonl`` file is cut at line starts
into byte ranges of about ``unit_bytes``; a ``.parquet`` file into row groups; small files are
grouped. Deliberately left out: cutting one huge ``.txt`` document (BPE would see other pieces).

    >>> plan_units([InputFile("a.txt", "txt", 10), InputFile("b.txt", "txt", 10)], unit_bytes=64)
    [WorkUnit(index=0, pieces=(Piece('a.txt', 'txt', 0, 10), Piece('b.txt', 'txt', 0, 10)))]
"""

from __future__ import annotations

import glob
import gzip
import json
import os
import stat
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from . import hf_input
from ._layout import is_gptdata_folder

Kind = Literal["txt", "jsonl", "jsonl.gz", "parquet", "arrow"]
Errors = Literal["strict", "replace", "skip"]
FOLDER_SUFFIXES = (".txt", ".md", ".jsonl", ".jsonl.gz", ".parquet")


class InputError(ValueError):
    """Bad corpus input: names the file (and line or byte offset) and the fix."""


class InputFile(NamedTuple):
    path: str
    kind: Kind
    size: int
    mtime_ns: int = 0  # only to notice a changed input when resuming


class Piece(NamedTuple):
    """Part of one file: a byte range of a .jsonl, row groups of a .parquet, or a whole file."""

    path: str
    kind: Kind
    start: int
    end: int


@dataclass(frozen=True)
class WorkUnit:
    """One worker's share: pieces read in order, written to its own shard files."""

    index: int
    pieces: tuple[Piece, ...]
    texts: tuple[str, ...] | None = field(default=None, repr=False)  # Python-API documents


def kind_of(path: str) -> Kind:
    name = path.lower()
    if name.endswith(".jsonl.gz"):
        return "jsonl.gz"
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".arrow"):
        return "arrow"
    return "txt"


def _ours(folder: str, cache: dict[str, bool]) -> bool:
    """Whether ``folder`` is a gptdata store or side folder, or lies inside one (shards/)."""
    for d in (folder, os.path.dirname(folder)):
        if d not in cache:
            cache[d] = is_gptdata_folder(d or ".")
        if cache[d]:
            return True
    return False


def _walk(top: str, cache: dict[str, bool]) -> list[str]:
    """Corpus files under ``top``: hidden folders and gptdata stores (or side folders) skipped."""
    hits = []
    # os.walk (scandir) is ~3x faster than Path.rglob on 5,000-file folders
    for root, dirs, names in os.walk(top):
        dirs[:] = [
            d for d in dirs if not d.startswith(".") and not _ours(os.path.join(root, d), cache)
        ]
        hits += [
            os.path.join(root, name)
            for name in names
            if name.lower().endswith(FOLDER_SUFFIXES) and not name.startswith(".")
        ]
    return hits


def resolve_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[InputFile]:
    """Files, folders and globs -> the sorted list of input files, each real file once.

    ["corpus/"] -> [InputFile("corpus/a.txt", "txt", 120), InputFile("corpus/b.jsonl", ...)]

    Only regular files are read (a FIFO would block forever); a file reached twice (a folder and
    a file in it, a relative and an absolute path, a symlink, a hard link: one device and inode)
    is read once, under its first name in sorted order. A gptdata store, or its side folder, is never read as input.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not inputs:
        raise InputError("no inputs given. Pass files, folders or globs, e.g. 'corpus/*.txt'.")
    found: set[str] = set()
    named: set[str] = set()  # named directly: must be a regular file, or it is an error
    cache: dict[str, bool] = {}
    for item in inputs:
        text = os.fspath(item)
        if os.path.isdir(text) and (hf_files := hf_input.hf_data_files(text)) is not None:
            found.update(hf_files)  # a save_to_disk folder: the data files its state.json lists
        elif os.path.isdir(text):
            if _ours(text, cache):
                raise InputError(
                    f"folder '{text}' is a gptdata store (or its side folder), not a corpus. "
                    "Point at the text files instead."
                )
            hits = _walk(text, cache)
            if not hits:
                raise InputError(
                    f"folder '{text}' holds no {', '.join(FOLDER_SUFFIXES)} files. "
                    "Point at the files themselves or use a glob."
                )
            found.update(hits)
        elif os.path.lexists(text) and not glob.has_magic(text):
            if _ours(os.path.dirname(text), cache):
                raise InputError(
                    f"'{text}' lies inside a gptdata store (or its side folder), which is never "
                    "read as input. Point at the text files instead."
                )
            found.add(text)
            named.add(text)
        elif glob.has_magic(text):
            hits = [
                h
                for h in glob.glob(text, recursive=True)
                if os.path.isfile(h) and not _ours(os.path.dirname(h), cache)
            ]
            if not hits:
                raise InputError(f"no files match '{text}'. Check the pattern and quote it.")
            found.update(hits)
        else:
            raise InputError(f"input '{text}' does not exist. Check the path.")
    files = []
    seen: set[tuple[int, int]] = set()
    for p in sorted(found):
        try:
            st = os.stat(p)
        except OSError as exc:
            raise InputError(
                f"input '{p}' cannot be read ({exc.strerror}). Check the path."
            ) from None
        if not stat.S_ISREG(st.st_mode):
            if p in named:
                raise InputError(
                    f"input '{p}' is not a regular file (a pipe, device or socket); gptdata "
                    "reads only regular files. Copy its content into a file first."
                )
            continue  # a FIFO or device met in a folder or glob: skipped, never opened
        key = (st.st_dev, st.st_ino)  # the same file by any name or link: one inode
        if key in seen:
            continue
        seen.add(key)
        files.append(InputFile(p, kind_of(p), st.st_size, st.st_mtime_ns))
    return files


def _jsonl_cuts(path: str, size: int, unit_bytes: int) -> list[int]:
    """Byte offsets of line starts near every multiple of unit_bytes, plus 0 and size."""
    cuts = [0]
    with open(path, "rb") as fh:
        target = unit_bytes
        while target < size:
            fh.seek(target)
            fh.readline()  # move to the start of the next line
            pos = fh.tell()
            if pos >= size:
                break
            if pos > cuts[-1]:
                cuts.append(pos)
            target = pos + unit_bytes
    cuts.append(size)
    return cuts


def _parquet_file(path: str) -> Any:
    pq = _import_pyarrow_parquet()
    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(
            f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]}). "
            "Check that it was fully written, or remove it from the inputs."
        ) from None


def _parquet_groups(path: str) -> list[int]:
    meta = _parquet_file(path).metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def plan_units(files: Sequence[InputFile], *, unit_bytes: int = 16 << 20) -> list[WorkUnit]:
    """Cut the files into work units of about ``unit_bytes`` input bytes, deterministically."""
    pieces: list[tuple[Piece, int]] = []  # (piece, its byte weight)
    for f in files:
        if f.kind == "jsonl" and f.size > unit_bytes:
            cuts = _jsonl_cuts(f.path, f.size, unit_bytes)
            pieces += [
                (Piece(f.path, f.kind, a, b), b - a) for a, b in zip(cuts, cuts[1:], strict=False)
            ]
        elif f.kind == "parquet":
            groups = _parquet_groups(f.path)
            weight = f.size // max(len(groups), 1)
            pieces += [(Piece(f.path, f.kind, i, i + 1), weight) for i in range(len(groups))]
        elif f.kind == "arrow":
            batches = hf_input.arrow_batch_count(f.path)
            per = max(1, unit_bytes * batches // max(f.size, 1))  # record batches per piece
            pieces += [
                (Piece(f.path, f.kind, i, j), f.size * (j - i) // batches)
                for i in range(0, batches, per)
                for j in [min(i + per, batches)]
            ]
        else:
            pieces.append((Piece(f.path, f.kind, 0, f.size), f.size))
    units: list[WorkUnit] = []
    current: list[Piece] = []
    weight = 0
    for piece, w in pieces:
        if current and weight + w > unit_bytes:
            units.append(WorkUnit(len(units), tuple(current)))
            current, weight = [], 0
        current.append(piece)
        weight += w
    if current:
        units.append(WorkUnit(len(units), tuple(current)))
    return units


@dataclass
class ReadStats:
    """What reading skipped, per unit; summed by the driver."""

    empty: int = 0
    invalid_utf8: int = 0
    binary: int = 0
    special_text: int = 0  # documents with a literal <|endoftext|> (see prepare's special_text)
    bytes: int = 0


def _line_number(path: str, offset: int) -> int:
    """1-based line number of byte ``offset`` (only computed on the error path)."""
    with open(path, "rb") as fh:
        return fh.read(offset).count(b"\n") + 1


def _decode(
    data: bytes, path: str, where: Callable[[], str], base: int, errors: Errors, unit: str
) -> str | None:
    """UTF-8 text, None when ``errors='skip'`` drops it, or an InputError naming the byte offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if errors == "replace":
            return data.decode("utf-8", errors="replace")
        if errors == "skip":
            return None
        raise InputError(
            f"{path}{where()}: invalid UTF-8 at byte offset {base + exc.start:,}. Fix the file, "
            f"or pass errors='replace' (U+FFFD) or errors='skip' (drop the {unit})."
        ) from None


def _read_txt(piece: Piece, stats: ReadStats, errors: Errors) -> Iterator[str]:
    with open(piece.path, "rb") as fh:
        data = fh.read()
    stats.bytes += len(data)
    if b"\x00" in data[:8192]:
        if errors == "skip":
            stats.binary += 1
            return
        raise InputError(
            f"{piece.path}: looks like a binary file (NUL byte in the first 8 KiB), not text. "
            "Remove it from the inputs, or pass errors='skip'."
        )
    text = _decode(data, piece.path, str, 0, errors, "document")
    if text is None:
        stats.invalid_utf8 += 1
        return
    yield text[1:] if text.startswith("\ufeff") else text  # a BOM is no part of the text


def _jsonl_text(
    line: bytes,
    piece: Piece,
    offset: int,
    where: Callable[[], str],
    text_field: str,
    errors: Errors,
    stats: ReadStats,
) -> str | None:
    try:
        # json.loads takes the bytes as they are: one pass instead of decode-then-parse.
        record = json.loads(line)
    except UnicodeDecodeError as exc:
        if errors == "strict":
            raise InputError(
                f"{piece.path}{where()}: invalid UTF-8 at byte offset {offset + exc.start:,}. "
                "Fix the file, or pass errors='replace' (U+FFFD) or errors='skip' (drop the line)."
            ) from None
        if errors == "skip":
            stats.invalid_utf8 += 1
            return None
        return _jsonl_text(
            line.decode("utf-8", "replace").encode(),
            piece,
            offset,
            where,
            text_field,
            errors,
            stats,
        )
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{piece.path}{where()}: malformed JSON ({exc.msg}, column {exc.colno}). "
            "Each line must be one JSON object."
        ) from None
    except RecursionError:
        raise InputError(
            f"{piece.path}{where()}: JSON nested too deeply to parse. "
            "Flatten the record, or remove the line."
        ) from None
    if not isinstance(record, dict) or text_field not in record:
        raise InputError(
            f"{piece.path}{where()}: no field '{text_field}' in this record. "
            "Name the text field with text_field=."
        )
    value = record[text_field]
    if not isinstance(value, str):
        raise InputError(
            f"{piece.path}{where()}: field '{text_field}' is {type(value).__name__}, not a string."
        )
    return value


def _jsonl_lines(piece: Piece) -> Iterator[tuple[int, bytes]]:
    """(byte offset in the decompressed stream, line without its newline) for each line."""
    if piece.kind == "jsonl.gz":
        offset = 0
        try:
            with gzip.open(piece.path, "rb") as gz:
                for line in gz:
                    yield offset, line.rstrip(b"\n")
                    offset += len(line)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InputError(
                f"{piece.path}: truncated or not gzip after {offset:,} decompressed bytes "
                f"({exc}). Check it with 'gzip -t', then re-download or re-compress it."
            ) from None
        return
    with open(piece.path, "rb") as fh:
        fh.seek(piece.start)
        data = fh.read(piece.end - piece.start)  # one read per piece: 2x faster than readline
    offset = piece.start
    for line in data.split(b"\n"):
        yield offset, line
        offset += len(line) + 1


def _read_jsonl(piece: Piece, stats: ReadStats, errors: Errors, text_field: str) -> Iterator[str]:
    first_line: list[int] = []  # line number of the piece's start, computed on the error path

    for index, (offset, line) in enumerate(_jsonl_lines(piece)):

        def where(index: int = index) -> str:
            if not first_line:
                first_line.append(
                    1 if piece.kind == "jsonl.gz" else _line_number(piece.path, piece.start)
                )
            return f":{first_line[0] + index}"

        stats.bytes += len(line) + 1
        if b"\x00" in line:
            raise InputError(
                f"{piece.path}{where()}: NUL byte; this looks like a binary file, not JSON lines. "
                "Remove it from the inputs."
            )
        if line.strip():
            text = _jsonl_text(line, piece, offset, where, text_field, errors, stats)
            if text is not None:
                yield text


def _import_pyarrow_parquet():  # type: ignore[no-untyped-def]
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError(
            "reading .parquet needs pyarrow. Fix: pip install 'gptdata[parquet]'"
        ) from None
    return pq


def _read_parquet(piece: Piece, stats: ReadStats, text_field: str) -> Iterator[str]:
    pf = _parquet_file(piece.path)
    if text_field not in pf.schema_arrow.names:
        raise InputError(
            f"{piece.path}: no column '{text_field}' (columns: {', '.join(pf.schema_arrow.names)}). "
            "Name the text column with text_field=."
        )
    for group in range(piece.start, piece.end):
        column = pf.read_row_group(group, columns=[text_field]).column(0)
        for row, value in enumerate(column.to_pylist()):
            if value is not None and not isinstance(value, str):
                raise InputError(
                    f"{piece.path}: row group {group}, row {row}: '{text_field}' is "
                    f"{type(value).__name__}, not a string."
                )
            text = value or ""
            stats.bytes += len(text)
            yield text


def _read_arrow(piece: Piece, stats: ReadStats, text_field: str) -> Iterator[str]:
    for value in hf_input.read_arrow(piece.path, piece.start, piece.end, text_field):
        text = value or ""
        stats.bytes += len(text)
        yield text


def read_documents(
    unit: WorkUnit,
    *,
    text_field: str = "text",
    errors: Errors = "strict",
    stats: ReadStats | None = None,
) -> Iterator[str]:
    """The non-empty documents of one unit, in order; skipped ones are counted in ``stats``."""
    stats = stats if stats is not None else ReadStats()
    if unit.texts is not None:
        streams: list[Iterator[str]] = [iter(unit.texts)]
    else:
        streams = []
        for piece in unit.pieces:
            if piece.kind == "txt":
                streams.append(_read_txt(piece, stats, errors))
            elif piece.kind == "parquet":
                streams.append(_read_parquet(piece, stats, text_field))
            elif piece.kind == "arrow":
                streams.append(_read_arrow(piece, stats, text_field))
            else:
                streams.append(_read_jsonl(piece, stats, errors, text_field))
    for stream in streams:
        for text in stream:
            if text:
                yield text
            else:
                stats.empty += 1


def chunk_texts(texts: Iterator[str], *, unit_bytes: int = 16 << 20) -> Iterator[WorkUnit]:
    """Python-API documents -> work units of about ``unit_bytes`` characters."""
    batch: list[str] = []
    size = 0
    index = 0
    for text in texts:
        if not isinstance(text, str):
            raise InputError(f"document {index} is {type(text).__name__}, not str.")
        batch.append(text)
        size += len(text)
        if size >= unit_bytes:
            yield WorkUnit(index, (), tuple(batch))
            index, batch, size = index + 1, [], 0
    if batch:
        yield WorkUnit(index, (), tuple(batch))
