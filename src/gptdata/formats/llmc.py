"""llm.c / modded-nanogpt token shards: ``{split}_{k:06d}.bin``, a 1,024-byte header, then tokens.

As ``dev/data/data_common.py`` (``write_datafile``) writes them and ``llmc/dataloader.h`` reads
them: a header of 256 little-endian int32 -- ``[0]`` magic, ``[1]`` version, ``[2]`` token count,
the rest 0 -- then the tokens. GPT-2-sized vocabularies use magic 20240520, version 1, uint16;
larger ones the uint32 variant, magic 20240801, version 7. Readers require
``file size == 1,024 + count x itemsize``. End-of-text goes *before* each document (llm.c's
fineweb convention), and a document may continue into the next shard.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..store import Split
from ._common import FormatError, Progress, TokenReader
from ._storeblocks import StoreBlocks, write_all
from ._stream import pieces

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


def shard_sizes(
    total: int, *, shard_tokens: int, min_shard_tokens: int | None = None, shards: int | None = None
) -> list[int]:
    """Tokens per shard for a split of ``total`` tokens.

    ``shards=N``: N shards as equal as whole tokens allow (10, shards=3 -> [4, 3, 3]).
    Else ``shard_tokens`` each, and a tail below ``min_shard_tokens`` (default a tenth of
    ``shard_tokens``) joins the shard before it: 21, shard_tokens=10 -> [10, 11]. llm.c's loader
    needs every shard to hold ``num_processes * B * T + 1`` tokens, so a tiny tail would stop it.
    """
    if shards is not None:
        if not 1 <= shards <= max(total, 1):
            raise FormatError(f"shards={shards:,}: use 1..{total:,} (the split's tokens).")
        base, extra = divmod(total, shards)
        sizes = [base + (1 if i < extra else 0) for i in range(shards)]
    else:
        if not 1 <= shard_tokens <= MAX_SHARD_TOKENS:
            raise FormatError(
                f"shard_tokens={shard_tokens:,}: llm.c counts a shard's tokens in an int32, so "
                f"use 1..{MAX_SHARD_TOKENS:,}."
            )
        low = shard_tokens // 10 if min_shard_tokens is None else min_shard_tokens
        if low < 0:
            raise FormatError(f"min_shard_tokens={low:,} must be >= 0.")
        sizes = [shard_tokens] * (total // shard_tokens)
        tail = total - sum(sizes)
        if tail and sizes and tail < low:
            sizes[-1] += tail
        elif tail:
            sizes.append(tail)
    if max(sizes, default=0) > MAX_SHARD_TOKENS:
        raise FormatError(
            f"a shard of {max(sizes):,} tokens overflows llm.c's int32 count "
            f"({MAX_SHARD_TOKENS:,}); use more shards or a smaller min_shard_tokens."
        )
    return sizes


class _ShardWriter:
    """Writes a token stream into ``{split}_{k:06d}.bin`` files of the given sizes in tokens."""

    def __init__(self, folder: Path, split: str, sizes: list[int], vocab: int) -> None:
        self.folder, self.split, self.sizes = folder, split, sizes
        self.magic, self.version, self.dtype = llmc_variant(vocab)
        self.written = 0  # tokens so far, all shards
        self.files: list[str] = []
        self._fh: BinaryIO | None = None
        self._room = 0

    def _next(self) -> None:
        if self._fh is not None:
            self._fh.close()
        count = self.sizes[len(self.files)]
        name = f"{self.split}_{len(self.files):06d}.bin"
        self.files.append(name)
        header = np.zeros(HEADER_INTS, dtype="<i4")
        header[:3] = (self.magic, self.version, count)
        self._fh = open(self.folder / name, "wb", buffering=0)  # noqa: SIM115 - closed in _next/close
        self._fh.write(header.tobytes())
        self._room = count

    def write(self, block: np.ndarray) -> None:
        while len(block):
            if self._room == 0:
                self._next()
            n = min(self._room, len(block))
            write_all(self._fh, block[:n])  # type: ignore[arg-type]
            block, self._room, self.written = block[n:], self._room - n, self.written + n

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
    min_shard_tokens: int | None = None,
    shards: int | None = None,
    progress: Progress,
) -> dict[str, Any]:
    """``split`` -> llm.c shards; the stream is ``E d0 E d1 ... E dn`` = per store shard, E + bytes."""
    total = sum(s.tokens + 1 for s in split.shards)
    sizes = shard_sizes(
        total, shard_tokens=shard_tokens, min_shard_tokens=min_shard_tokens, shards=shards
    )
    writer = _ShardWriter(folder, name, sizes, vocab_size)
    eot = np.array([split.eot_id], dtype=writer.dtype)
    source = StoreBlocks(split, vocab_size)
    try:
        for k, shard in enumerate(split.shards):
            writer.write(eot)
            for block in source.blocks(k):
                writer.write(block if block.dtype == writer.dtype else block.astype(writer.dtype))
            progress.update(shard.tokens + 1)
    finally:
        writer.close()
    source.check_unchanged()
    return {"documents": split.n_documents, "tokens": total, "files": writer.files}


def llmc_files(path: Path) -> list[Path]:
    """A folder's (or one file's) ``.bin`` shards, sorted by name."""
    if path.is_dir():
        files = sorted(p for p in path.glob("*.bin") if p.is_file())
        if not files:
            raise FormatError(f"{path}: no .bin shards in this folder.")
    elif path.is_file():
        files = [path]
    else:
        raise FormatError(f"{path}: not found. Give an llm.c shard folder or one .bin shard.")
    return files  # split by name in importer._route (heldout.py's rule)


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


def llmc_documents(
    files: list[Path], *, eot_id: int, check: Any
) -> Iterator[tuple[np.ndarray, bool]]:
    """One split's documents, as ``_stream.pieces``: its shards' stream cut at end-of-text."""
    headers = [read_llmc_header(f) for f in files]  # all checked before anything is imported

    def blocks() -> Iterator[np.ndarray]:
        for f, (dtype, count) in zip(files, headers, strict=True):
            reader = TokenReader(f, dtype, offset=HEADER_BYTES, count=count, check=check(f))
            try:
                yield from reader.blocks()
            finally:
                reader.close()

    yield from pieces(blocks(), eot_id)
