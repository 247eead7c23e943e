"""Reading the documents of one piece of a corpus file: text, JSON lines, Parquet, Arrow.

The decoding rules ``sources.read_documents`` applies, by kind: UTF-8 with ``errors`` = strict
(one line naming the file and byte offset), replace (U+FFFD) or skip (drop the document and count
it in ``ReadStats``); a NUL byte marks a binary file; a ``.txt`` BOM is dropped. Also the types a
piece is described with (``Piece``, ``Kind``) and the error every bad input raises (``InputError``);
``sources`` re-exports them all, and is where callers import them from.

    >>> list(read_txt(Piece("a.txt", "txt", 0, 6), ReadStats(), "strict"))
    ['Hello\\n']
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from . import hf_input

Kind = Literal["txt", "jsonl", "jsonl.gz", "parquet", "arrow"]
Errors = Literal["strict", "replace", "skip"]


class InputError(ValueError):
    """Bad corpus input: names the file (and line or byte offset) and the fix."""


class Piece(NamedTuple):
    """Part of one file: a byte range of a .jsonl, row groups of a .parquet, or a whole file."""

    path: str
    kind: Kind
    start: int
    end: int


@dataclass
class ReadStats:
    """What reading skipped, per unit; summed by the driver."""

    empty: int = 0
    invalid_utf8: int = 0
    binary: int = 0
    special_text: int = 0  # documents with a literal <|endoftext|> (see prepare's special_text)
    bytes: int = 0


def parquet_file(path: str) -> Any:
    pq = _import_pyarrow_parquet()
    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(
            f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]}). "
            "Check that it was fully written, or remove it from the inputs."
        ) from None


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


def read_txt(piece: Piece, stats: ReadStats, errors: Errors) -> Iterator[str]:
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


def read_jsonl(piece: Piece, stats: ReadStats, errors: Errors, text_field: str) -> Iterator[str]:
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


def read_parquet(piece: Piece, stats: ReadStats, text_field: str) -> Iterator[str]:
    pf = parquet_file(piece.path)
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


def read_arrow(piece: Piece, stats: ReadStats, text_field: str) -> Iterator[str]:
    for value in hf_input.read_arrow(piece.path, piece.start, piece.end, text_field):
        text = value or ""
        stats.bytes += len(text)
        yield text
