"""llm.c / modded-nanogpt token shards: ``{split}_{k:06d}.bin``, a 1,024-byte header, then tokens.

As ``dev/data/data_common.py`` (``write_datafile``) writes them and ``llmc/dataloader.h`` reads
them: a header of 256 little-endian int32 -- ``[0]`` magic, ``[1]`` version, ``[2]`` token count,
the rest 0 -- then the tokens. GPT-2-sized vocabularies use magic 20240520, version 1, uint16;
larger ones the uint32 variant, magic 20240801, version 7. Readers require
``file size == 1,024 + count x itemsize``. End-of-text goes *before* each document (llm.c's
fineweb convention), and a document may continue into the next shard.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..store import Split
from ._common import FormatError, Progress, TokenReader, copy_range, split_on

HEADER_INTS = 256
HEADER_BYTES = 4 * HEADER_INTS
VARIANTS = {  # magic -> (version, token dtype)
    20240520: (1, np.dtype("<u2")),
    20240801: (7, np.dtype("<u4")),
}
MAX_SHARD_TOKENS = (1 << 31) - 1  # the count is an int32


def llmc_variant(vocab_size: int) -> tuple[int, int, np.dtype]:
    """(magic, version, dtype): 50257 -> (20240520, 1, uint16); 65537 -> (20240801, 7, uint32)."""
    magic = 20240520 if vocab_size <= 1 << 16 else 20240801
    return magic, *VARIANTS[magic]


class _ShardWriter:
    """Writes a token stream into ``{split}_{k:06d}.bin`` files of ``shard_tokens`` tokens each."""

    def __init__(self, folder: Path, split: str, total: int, shard_tokens: int, vocab: int) -> None:
        self.folder, self.split, self.total, self.shard_tokens = folder, split, total, shard_tokens
        self.magic, self.version, self.dtype = llmc_variant(vocab)
        self.written = 0  # tokens so far, all shards
        self.files: list[str] = []
        self._fh: BinaryIO | None = None
        self._room = 0

    def _next(self) -> None:
        if self._fh is not None:
            self._fh.close()
        count = min(self.shard_tokens, self.total - self.written)
        name = f"{self.split}_{len(self.files):06d}.bin"
        self.files.append(name)
        header = np.zeros(HEADER_INTS, dtype="<i4")
        header[:3] = (self.magic, self.version, count)
        self._fh = open(self.folder / name, "wb", buffering=0)  # noqa: SIM115 - closed in _next/close
        self._fh.write(header.tobytes())
        self._room = count

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        size = self.dtype.itemsize
        while len(view):
            if self._room == 0:
                self._next()
            n = min(self._room, len(view) // size)
            self._fh.write(view[: n * size])  # type: ignore[union-attr]
            view, self._room, self.written = view[n * size :], self._room - n, self.written + n

    def copy(self, src: BinaryIO, tokens: int) -> None:
        offset = 0
        while tokens:
            if self._room == 0:
                self._next()
            n = min(self._room, tokens)
            copy_range(src, self._fh, offset, n * self.dtype.itemsize)  # type: ignore[arg-type]
            offset += n * self.dtype.itemsize
            tokens, self._room, self.written = tokens - n, self._room - n, self.written + n

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def write_llmc(
    split: Split,
    folder: Path,
    *,
    name: str,
    vocab_size: int,
    shard_tokens: int,
    progress: Progress,
) -> dict[str, Any]:
    """``split`` -> llm.c shards; the stream is ``E d0 E d1 ... E dn`` = per store shard, E + bytes."""
    if not 1 <= shard_tokens <= MAX_SHARD_TOKENS:
        raise FormatError(
            f"shard_tokens={shard_tokens:,}: llm.c counts a shard's tokens in an int32, so use "
            f"1..{MAX_SHARD_TOKENS:,}."
        )
    total = sum(s.tokens + 1 for s in split.shards)
    writer = _ShardWriter(folder, name, total, shard_tokens, vocab_size)
    eot = np.array([split.eot_id], dtype=writer.dtype).tobytes()
    try:
        for shard in split.shards:
            writer.write(eot)
            with open(split.root / shard.file, "rb") as src:
                writer.copy(src, shard.tokens)
            progress.update(shard.tokens + 1)
    finally:
        writer.close()
    return {"documents": split.n_documents, "tokens": total, "files": writer.files}


def llmc_split_of(path: Path) -> str:
    """'fineweb_val_000000.bin' / 'val_000003.bin' / 'tiny_shakespeare_val.bin' -> 'val'."""
    return "val" if re.search(r"(^|_)val(_|\.|$)", path.name) else "train"


def llmc_files(path: Path) -> dict[str, list[Path]]:
    """A folder's (or one file's) ``.bin`` shards grouped by split, sorted by name."""
    if path.is_dir():
        files = sorted(p for p in path.glob("*.bin") if p.is_file())
        if not files:
            raise FormatError(f"{path}: no .bin shards in this folder.")
    elif path.is_file():
        files = [path]
    else:
        raise FormatError(f"{path}: not found. Give an llm.c shard folder or one .bin shard.")
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(llmc_split_of(f), []).append(f)
    return groups


def read_llmc_header(path: Path) -> tuple[np.dtype, int]:
    """Check one shard's header against its size; return (token dtype, token count)."""
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise FormatError(
            f"{path}: {size:,} bytes, shorter than llm.c's {HEADER_BYTES:,}-byte header: truncated."
        )
    with open(path, "rb") as fh:
        header = np.frombuffer(fh.read(HEADER_BYTES), dtype="<i4")
    magic, version, count = (int(x) for x in header[:3])
    if magic not in VARIANTS:
        raise FormatError(
            f"{path}: magic {magic}, expected 20240520 (uint16) or 20240801 (uint32): not an "
            "llm.c token shard."
        )
    want_version, dtype = VARIANTS[magic]
    if version != want_version:
        raise FormatError(f"{path}: version {version} with magic {magic}; expected {want_version}.")
    want = HEADER_BYTES + count * dtype.itemsize
    if count < 0 or size != want:
        raise FormatError(
            f"{path}: {size:,} bytes, but the header's {count:,} {dtype.name} tokens need "
            f"{want:,}: the shard is truncated or its header is wrong."
        )
    return dtype, count


def llmc_documents(files: list[Path], *, eot_id: int, check: Any) -> Iterator[np.ndarray]:
    """The documents of one split's shards, in order: the stream cut at end-of-text."""
    headers = [read_llmc_header(f) for f in files]  # all checked before anything is imported

    def blocks() -> Iterator[np.ndarray]:
        for f, (dtype, count) in zip(files, headers, strict=True):
            reader = TokenReader(f, dtype, offset=HEADER_BYTES, count=count, check=check(f))
            try:
                yield from reader.blocks()
            finally:
                reader.close()

    yield from split_on(blocks(), eot_id)
