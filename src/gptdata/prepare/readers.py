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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, NamedTuple

from ..storage import Location, StorageError, is_remote
from . import hf_input

Kind = Literal["txt", "jsonl", "jsonl.gz", "parquet", "arrow"]
Errors = Literal["strict", "replace", "skip"]
Options = Mapping[str, Any] | None  # fsspec storage_options of remote (s3://...) inputs
# Bytes per ranged read of a remote input. At ~30 ms a request (S3) 4 MiB is ~130 MB/s a worker,
# above the ~40 MB/s of text a core tokenizes (fastokens); each block is held about three times
# over while it arrives (response, read-ahead buffer, the slice handed out), so larger blocks
# only raise every worker's peak memory (8 MiB cost ~4 MiB more per worker than 1 MiB, measured).
CHUNK = 4 << 20


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


def open_input(path: str, storage_options: Options = None, *, block_size: int = CHUNK) -> BinaryIO:
    """A binary reader of a local file or a remote object (``s3://...``: ranged reads of about
    ``block_size``, never the whole object).

        >>> open_input("s3://b/corpus/a.txt", {"anon": True}).read(5)
        b'Hello'
    """
    if is_remote(path):
        return Location(path, storage_options=storage_options).open(block_size=block_size)
    return open(path, "rb")


def read_whole(path: str, size: int, storage_options: Options = None) -> bytearray | bytes:
    """One file's bytes (a ``.txt`` is one document): a remote one arrives in ranged chunks,
    copied into one buffer, so the peak is the document plus a chunk, as a local read."""
    if not is_remote(path):
        with open(path, "rb") as fh:
            return fh.read()
    loc = Location(path, storage_options=storage_options)
    data = bytearray(size)
    pos = 0
    for chunk in loc.iter_chunks(chunk_size=CHUNK):
        data[pos : pos + len(chunk)] = chunk
        pos += len(chunk)
    del data[pos:]  # an object that shrank since it was listed
    return data


def parquet_file(path: str, storage_options: Options = None) -> Any:
    pq = _import_pyarrow_parquet()
    try:
        return pq.ParquetFile(open_input(path, storage_options) if is_remote(path) else path)
    except StorageError:
        raise
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(
            f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]}). "
            "Check that it was fully written, or remove it from the inputs."
        ) from None


def _line_number(path: str, offset: int, storage_options: Options = None) -> int:
    """1-based line number of byte ``offset`` (only computed on the error path)."""
    lines, left = 1, offset
    with open_input(path, storage_options) as fh:
        while left > 0:
            chunk = fh.read(min(left, CHUNK))
            if not chunk:
                break
            lines, left = lines + chunk.count(b"\n"), left - len(chunk)
    return lines


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


def read_txt(
    piece: Piece, stats: ReadStats, errors: Errors, storage_options: Options = None
) -> Iterator[str]:
    data = read_whole(piece.path, piece.end, storage_options)
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


def _jsonl_lines(piece: Piece, storage_options: Options = None) -> Iterator[tuple[int, bytes]]:
    """(byte offset in the decompressed stream, line without its newline) for each line."""
    if piece.kind == "jsonl.gz":
        offset = 0
        try:
            with open_input(piece.path, storage_options) as raw, gzip.GzipFile(fileobj=raw) as gz:
                for line in gz:
                    yield offset, line.rstrip(b"\n")
                    offset += len(line)
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise InputError(
                f"{piece.path}: truncated or not gzip after {offset:,} decompressed bytes "
                f"({exc}). Check it with 'gzip -t', then re-download or re-compress it."
            ) from None
        return
    if is_remote(piece.path):
        yield from _remote_lines(piece, storage_options)
        return
    with open(piece.path, "rb") as fh:
        fh.seek(piece.start)
        data = fh.read(piece.end - piece.start)  # one read per piece: 2x faster than readline
    offset = piece.start
    for line in data.split(b"\n"):
        yield offset, line
        offset += len(line) + 1


def _remote_lines(piece: Piece, storage_options: Options) -> Iterator[tuple[int, bytes]]:
    """The lines of a remote piece, as ``data.split(b"\\n")`` of its range would give them,
    from ranged reads of ``CHUNK`` bytes: memory stays a chunk (plus one line), not the piece."""
    loc = Location(piece.path, storage_options=storage_options)
    offset, rest = piece.start, b""
    for pos in range(piece.start, piece.end, CHUNK):
        lines = (rest + loc.read_range(pos, min(pos + CHUNK, piece.end))).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield offset, line
            offset += len(line) + 1
    yield offset, rest


def read_jsonl(
    piece: Piece,
    stats: ReadStats,
    errors: Errors,
    text_field: str,
    storage_options: Options = None,
) -> Iterator[str]:
    first_line: list[int] = []  # line number of the piece's start, computed on the error path

    for index, (offset, line) in enumerate(_jsonl_lines(piece, storage_options)):

        def where(index: int = index) -> str:
            if not first_line:
                first_line.append(
                    1
                    if piece.kind == "jsonl.gz"
                    else _line_number(piece.path, piece.start, storage_options)
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


def read_parquet(
    piece: Piece, stats: ReadStats, text_field: str, storage_options: Options = None
) -> Iterator[str]:
    pf = parquet_file(piece.path, storage_options)
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


def read_arrow(
    piece: Piece, stats: ReadStats, text_field: str, storage_options: Options = None
) -> Iterator[str]:
    for value in hf_input.read_arrow(
        piece.path, piece.start, piece.end, text_field, storage_options=storage_options
    ):
        text = value or ""
        stats.bytes += len(text)
        yield text
