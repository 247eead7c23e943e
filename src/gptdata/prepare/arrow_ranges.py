"""Arrow IPC streams on object storage, read by byte range: a work unit's record batches only.

An IPC *stream* (what ``datasets.save_to_disk`` writes) has no footer: locally it is memory-mapped
and skipping batches is free, but remotely batch ``i`` is found only by walking the messages
before it. This walk reads each message's header (a few hundred bytes: its flatbuffer metadata
says the body's length) and seeks past the body, so planning a 500 MB file costs one small ranged
read per batch, not 500 MB. A piece (batches ``start..end-1``) is then read as the stream's schema
message, the byte range of its batches and an end-of-stream marker: only its own bytes.

    >>> offsets = record_batches(fh)      # [(offset, length), ...] of each record batch
    >>> reader = pa.ipc.open_stream(piece_stream(fh, offsets, 2, 4))   # batches 2 and 3

Streams with dictionary batches (``datasets`` writes none) are left to the sequential reader.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, BinaryIO

CONTINUATION = b"\xff\xff\xff\xff"
EOS = CONTINUATION + b"\x00\x00\x00\x00"
SCHEMA, DICTIONARY_BATCH, RECORD_BATCH = 1, 2, 3  # the MessageHeader union's types


class NotAStream(ValueError):
    """The bytes are not Arrow IPC stream messages."""


def _le(buf: bytes, at: int, size: int, *, signed: bool = False) -> int:
    if at < 0 or at + size > len(buf):
        raise NotAStream(f"a message's metadata ends early (offset {at:,} of {len(buf):,})")
    return int.from_bytes(buf[at : at + size], "little", signed=signed)


def message_header(meta: bytes) -> tuple[int, int]:
    """(header type, body length) from a ``Message`` flatbuffer: fields version (0), header_type
    (1), header (2), bodyLength (3); an absent field takes its default, 0."""
    table = _le(meta, 0, 4)
    vtable = table - _le(meta, table, 4, signed=True)
    vtable_len = _le(meta, vtable, 2)

    def field(slot: int) -> int:
        at = 4 + 2 * slot
        return _le(meta, vtable + at, 2) if at < vtable_len else 0

    kind = _le(meta, table + field(1), 1) if field(1) else 0
    body = _le(meta, table + field(3), 8, signed=True) if field(3) else 0
    return kind, body


def _messages(fh: BinaryIO) -> Iterator[tuple[int, int, int]]:
    """(offset, header type, length with prefix and body) of each message, bodies skipped."""
    pos = 0
    while True:
        fh.seek(pos)
        head = fh.read(8)
        if len(head) < 4:
            return  # no end-of-stream marker: pyarrow accepts that too
        if head[:4] == CONTINUATION:
            prefix, size = 8, _le(head, 4, 4, signed=True) if len(head) == 8 else 0
        else:  # the format before Arrow 0.15: the length alone
            prefix, size = 4, _le(head, 0, 4, signed=True)
        if size == 0:
            return
        if size < 0:
            raise NotAStream(f"a message at byte {pos:,} has length {size:,}")
        fh.seek(pos + prefix)
        kind, body = message_header(fh.read(size))
        total = prefix + size + body
        yield pos, kind, total
        pos += total


def record_batches(fh: BinaryIO) -> tuple[tuple[int, int], list[tuple[int, int]]] | None:
    """The schema message's (offset, length) and each record batch's, or None when the stream
    holds dictionary batches (whose order matters: read those sequentially)."""
    schema: tuple[int, int] | None = None
    batches: list[tuple[int, int]] = []
    for offset, kind, length in _messages(fh):
        if kind == SCHEMA and schema is None:
            schema = (offset, length)
        elif kind == RECORD_BATCH:
            batches.append((offset, length))
        elif kind == DICTIONARY_BATCH:
            return None
    if schema is None:
        raise NotAStream("no schema message")
    return schema, batches


class _Joined(io.RawIOBase):
    """Byte ranges of one file, read one after another as a single stream (then ``tail``)."""

    def __init__(self, fh: BinaryIO, ranges: list[tuple[int, int]], tail: bytes) -> None:
        super().__init__()
        self._fh, self._ranges, self._tail = fh, list(ranges), tail
        self._pos = 0  # within the current range

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while self._ranges:
            start, length = self._ranges[0]
            if self._pos < length:
                self._fh.seek(start + self._pos)
                data = self._fh.read(min(len(view), length - self._pos))
                if not data:
                    raise NotAStream(f"the file ends inside the bytes at {start:,}")
                view[: len(data)] = data
                self._pos += len(data)
                return len(data)
            self._ranges.pop(0)
            self._pos = 0
        data, self._tail = self._tail[: len(view)], self._tail[len(view) :]
        view[: len(data)] = data
        return len(data)


def piece_stream(
    fh: BinaryIO, layout: tuple[tuple[int, int], list[tuple[int, int]]], start: int, end: int
) -> BinaryIO:
    """An IPC stream of record batches ``start..end-1`` alone: schema, their bytes, end marker."""
    schema, batches = layout
    chosen = batches[start:end]
    ranges = [schema]
    if chosen:  # contiguous in the file: one range
        ranges.append((chosen[0][0], chosen[-1][0] + chosen[-1][1] - chosen[0][0]))
    return io.BufferedReader(_Joined(fh, ranges, EOS), buffer_size=1 << 20)  # type: ignore[return-value]
