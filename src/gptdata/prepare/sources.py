"""Corpus inputs: which files, how they are cut into work units, and the documents inside.

* ``.txt`` (and any file named directly with another suffix): one file = one document.
* ``.jsonl`` / ``.jsonl.gz``: one line = one document, the string in ``text_field``.
* ``.parquet``: one row = one document, the string column ``text_field`` (needs pyarrow).
* ``.arrow`` and Hugging Face ``save_to_disk`` folders: one row = one document, the string
  column ``text_field``, read with pyarrow's IPC reader (see ``hf_input``).

Folders are searched recursively for those suffixes (a ``save_to_disk`` folder met on the way
gives the data files its ``state.json`` lists); globs are expanded; the final list is sorted,
so the plan of work units depends on the inputs alone. A ``.jsonl`` file is cut at line starts
into byte ranges of about ``unit_bytes``; a ``.parquet`` file into row groups; small files are
grouped. Remote inputs (``s3://bucket/corpus/``, ``s3://bucket/*.jsonl.gz``) follow the same rules
(``remote_inputs``) and are cut the same way, with ranged reads, so a store made from a bucket
equals one made from local copies; ``storage_options`` travel with each ``WorkUnit`` to its worker.
Deliberately left out: cutting one huge ``.txt`` document (BPE would see other pieces).
How each kind is decoded (invalid UTF-8, binary files, a BOM) is ``_readers``; this module
resolves the inputs, plans the units and yields their documents (``read_documents``).

    >>> plan_units([InputFile("a.txt", "txt", 10), InputFile("b.txt", "txt", 10)], unit_bytes=64)
    [WorkUnit(index=0, pieces=(Piece('a.txt', 'txt', 0, 10), Piece('b.txt', 'txt', 0, 10)))]
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..storage import is_remote, lost_url
from ..storage import signed as signed_urls
from ..store.layout import is_gptdata_folder
from . import hf_input
from .readers import Errors as Errors  # re-exported: the reading side lives in _readers
from .readers import InputError as InputError
from .readers import Kind as Kind
from .readers import (
    Options,
    open_input,
    parquet_file,
    read_arrow,
    read_jsonl,
    read_parquet,
    read_txt,
)
from .readers import Piece as Piece
from .readers import ReadStats as ReadStats

FOLDER_SUFFIXES = (".txt", ".md", ".jsonl", ".jsonl.gz", ".parquet", ".arrow")


class InputFile(NamedTuple):
    path: str
    kind: Kind
    size: int
    mtime_ns: int = 0  # only to notice a changed input when resuming
    signed: str | None = None  # a remote object's signed URL (``resolve_inputs(separate=True)``)

    def __repr__(self) -> str:  # a signed URL is a read credential (24 hours): never printed
        signed = ", signed='...'" if self.signed else ""
        return (
            f"InputFile(path={self.path!r}, kind={self.kind!r}, size={self.size}, "
            f"mtime_ns={self.mtime_ns}{signed})"
        )


@dataclass(frozen=True)
class WorkUnit:
    """One worker's share: pieces read in order, written to its own shard files."""

    index: int
    pieces: tuple[Piece, ...]
    texts: tuple[str, ...] | None = field(default=None, repr=False)  # Python-API documents
    # fsspec options of remote pieces: kept out of the plan and the manifest (they may hold keys)
    storage_options: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    # url -> (signed URL, size) of its remote pieces: read without the filesystem's client
    signed: Mapping[str, tuple[str, int]] | None = field(default=None, repr=False, compare=False)


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
        for d in [d for d in dirs if hf_input.is_hf_folder(os.path.join(root, d))]:
            # a save_to_disk folder: the data files its state.json lists, never its cache-*.arrow
            hits += hf_input.hf_data_files(os.path.join(root, d)) or []
            dirs.remove(d)
        hits += [
            os.path.join(root, name)
            for name in names
            if name.lower().endswith(FOLDER_SUFFIXES) and not name.startswith(".")
        ]
    return hits


def resolve_inputs(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    storage_options: Options = None,
    separate: bool = False,
) -> list[InputFile]:
    """Files, folders and globs -> the sorted list of input files, each real file once.

    ["corpus/"] -> [InputFile("corpus/a.txt", "txt", 120), InputFile("corpus/b.jsonl", ...)]

    Only regular files are read (a FIFO would block forever); a file reached twice (a folder and
    a file in it, a relative and an absolute path, a symlink, a hard link: one device and inode)
    is read once, under its first name in sorted order. A gptdata store, or its side folder, is never read as input.
    A ``str`` URL (``s3://bucket/corpus/``) is listed with ``storage_options`` (``remote_inputs``);
    ``separate=True`` lists them in a process of its own and signs each object (``list_apart``),
    so that this process never imports the filesystem's client.
    """
    from .remote_inputs import list_apart, remote_inputs

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not inputs:
        raise InputError("no inputs given. Pass files, folders or globs, e.g. 'corpus/*.txt'.")
    found: set[str] = set()
    named: set[str] = set()  # named directly: must be a regular file, or it is an error
    cache: dict[str, bool] = {}
    remote: dict[str, tuple[int, str | None]] = {}  # url -> (size, signed URL)
    urls = [os.fspath(i) for i in inputs if is_remote(os.fspath(i))]
    listed = list_apart(urls, storage_options, FOLDER_SUFFIXES) if separate else {}
    for item in inputs:
        text = os.fspath(item)
        if is_remote(text):
            hits = (
                listed[text]
                if text in listed
                else [
                    (url, size, None)
                    for url, size in remote_inputs(text, storage_options, FOLDER_SUFFIXES)
                ]
            )
            for url, size, signed in hits:
                remote[url] = (size, signed)
                found.add(url)
        elif os.path.isdir(text) and hf_input.is_hf_folder(text):
            hf_files = hf_input.hf_data_files(text) or []
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
            raise InputError(f"input '{text}' does not exist. Check the path.{lost_url(text)}")
    files = []
    seen: set[tuple[int, int]] = set()
    for p in sorted(found):
        if p in remote:  # an object: its URL names it once; there are no links to follow
            size, signed = remote[p]
            files.append(InputFile(p, kind_of(p), size, signed=signed))
            continue
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


def _jsonl_cuts(
    path: str, size: int, unit_bytes: int, storage_options: Options = None
) -> list[int]:
    """Byte offsets of line starts near every multiple of unit_bytes, plus 0 and size.

    A remote file is read 64 KiB at a time around each cut, not whole (a line longer than that
    takes one more ranged read per 64 KiB).
    """
    cuts = [0]
    with open_input(path, storage_options, block_size=1 << 16) as fh:
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


def _parquet_groups(path: str, storage_options: Options = None) -> list[int]:
    meta = parquet_file(path, storage_options).metadata  # the footer only
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


def plan_units(
    files: Sequence[InputFile], *, unit_bytes: int = 16 << 20, storage_options: Options = None
) -> list[WorkUnit]:
    """Cut the files into work units of about ``unit_bytes`` input bytes, deterministically.

    Remote files are cut exactly as local copies of them would be (the same cuts, row groups and
    record batches, found with ranged reads); each unit carries ``storage_options``, and the
    signed URLs of its remote pieces where the files have them (``InputFile.signed``).
    """
    opts = dict(storage_options) if storage_options else None
    table = {f.path: (f.signed, f.size) for f in files if f.signed}
    with signed_urls.using(table, opts):  # the cuts below read through them too
        pieces = _pieces(files, unit_bytes, opts)
    units: list[WorkUnit] = []
    current: list[Piece] = []
    weight = 0

    def unit(pieces: list[Piece]) -> WorkUnit:
        mine = {p.path: table[p.path] for p in pieces if p.path in table}
        return WorkUnit(len(units), tuple(pieces), storage_options=opts, signed=mine or None)

    for piece, w in pieces:
        if current and weight + w > unit_bytes:
            units.append(unit(current))
            current, weight = [], 0
        current.append(piece)
        weight += w
    if current:
        units.append(unit(current))
    return units


def _pieces(files: Sequence[InputFile], unit_bytes: int, opts: Options) -> list[tuple[Piece, int]]:
    """Each file's pieces with their byte weights: JSONL cuts, row groups, record batch runs."""
    pieces: list[tuple[Piece, int]] = []  # (piece, its byte weight)
    for f in files:
        if f.kind == "jsonl" and f.size > unit_bytes:
            cuts = _jsonl_cuts(f.path, f.size, unit_bytes, opts)
            pieces += [
                (Piece(f.path, f.kind, a, b), b - a) for a, b in zip(cuts, cuts[1:], strict=False)
            ]
        elif f.kind == "parquet":
            groups = _parquet_groups(f.path, opts)
            weight = f.size // max(len(groups), 1)
            pieces += [(Piece(f.path, f.kind, i, i + 1), weight) for i in range(len(groups))]
        elif f.kind == "arrow":
            batches = hf_input.arrow_batch_count(f.path, opts)
            per = max(1, unit_bytes * batches // max(f.size, 1))  # record batches per piece
            pieces += [
                (Piece(f.path, f.kind, i, j), f.size * (j - i) // batches)
                for i in range(0, batches, per)
                for j in [min(i + per, batches)]
            ]
        else:
            pieces.append((Piece(f.path, f.kind, 0, f.size), f.size))
    return pieces


def read_documents(
    unit: WorkUnit,
    *,
    text_field: str = "text",
    errors: Errors = "strict",
    stats: ReadStats | None = None,
) -> Iterator[str]:
    """The non-empty documents of one unit, in order; skipped ones are counted in ``stats``."""
    stats = stats if stats is not None else ReadStats()
    with signed_urls.using(unit.signed, unit.storage_options):
        yield from _documents(unit, text_field, errors, stats)


def _documents(unit: WorkUnit, text_field: str, errors: Errors, stats: ReadStats) -> Iterator[str]:
    if unit.texts is not None:
        streams: list[Iterator[str]] = [iter(unit.texts)]
    else:
        streams = []
        opts = unit.storage_options
        for piece in unit.pieces:
            if piece.kind == "txt":
                streams.append(read_txt(piece, stats, errors, opts))
            elif piece.kind == "parquet":
                streams.append(read_parquet(piece, stats, text_field, opts))
            elif piece.kind == "arrow":
                streams.append(read_arrow(piece, stats, text_field, opts))
            else:
                streams.append(read_jsonl(piece, stats, errors, text_field, opts))
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
