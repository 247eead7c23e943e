"""A store's shards read for export: exactly one store, and only a sound one.

``StoreBlocks`` hands out a split's tokens block by block for the writers of every format;
``write_all`` writes a block's bytes without a copy and names the file when the write fails.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from typing import BinaryIO, NoReturn

import numpy as np

from ..store import Split, StoreError
from ..store.manifest import read_store_id
from ._common import CHUNK_TOKENS, check_ids


class StoreBlocks:
    """A split's shards read for export: one store, checked as the loader checks it, every ID too.

    At the start the loader's own check runs (``Split._reopen``: map every shard, then compare
    the manifest's ``store_id`` and each shard's size). Each shard is then opened and *after*
    that the ``store_id`` and the open file's size are checked again: an open file keeps the
    bytes of the commit it was opened in, so a store replaced during an export fails with the
    loader's message instead of giving a mix of old and new tokens.

    Each block is its own map of the open file, dropped after use: one map of a whole shard
    counts every page in the process's RSS (240 MB for a 200 MB store, against 51 MB this way),
    and plain reads into a buffer cost a copy (0.3-0.9x a file copy, against 0.7-1.3x). Every
    block's max (and min) is checked against ``vocab_size`` as it streams -- the bytes are read
    anyway, and numpy's max over a 4 Mi-token block costs a fraction of writing it -- so a
    corrupt store is refused, as ``verify`` and ``import`` refuse it.
    """

    def __init__(self, split: Split, vocab_size: int) -> None:
        self.split, self.vocab_size = split, vocab_size
        split._reopen()  # noqa: SLF001 - the loader's one check, not a copy of it; maps dropped

    def blocks(self, k: int) -> Iterator[np.ndarray]:
        """Shard ``k``'s tokens, CHUNK_TOKENS at a time, each block's IDs checked.

        A block is a read-only map of the file: write it out, do not keep it.
        """
        shard, dtype = self.split.shards[k], self.split.dtype
        path = self.split.root / shard.file
        try:
            fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below
        except OSError as exc:
            self._replaced(f"cannot open {shard.file} ({type(exc).__name__})")
        with fh:
            self.check_unchanged()  # after opening: the open file is this commit's
            size = os.fstat(fh.fileno()).st_size
            if size != shard.tokens * dtype.itemsize:
                self._replaced(
                    f"{shard.file} holds {size // dtype.itemsize:,} tokens, the manifest read "
                    f"{shard.tokens:,}"
                )
            step = CHUNK_TOKENS * dtype.itemsize  # a multiple of the page size, as mmap needs
            for start in range(0, shard.tokens, CHUNK_TOKENS):
                n = min(CHUNK_TOKENS, shard.tokens - start)
                # One map per block, from the file opened above: no copy into user memory, and
                # the block's pages leave the RSS when the caller drops the block.
                view = mmap.mmap(
                    fh.fileno(),
                    n * dtype.itemsize,
                    offset=start // CHUNK_TOKENS * step,
                    access=mmap.ACCESS_READ,
                )
                block = np.frombuffer(view, dtype=dtype)
                del view  # the array holds the map; it is unmapped when the array goes
                check_ids(
                    block,
                    self.vocab_size,
                    where=str(path),
                    base=start,
                    fix="The store is corrupt: run gptdata verify on it, then prepare it again.",
                )
                yield block
                del block

    def check_unchanged(self) -> None:
        """Raise the loader's error when the store was replaced since it was opened."""
        try:
            now = read_store_id(self.split.root)
        except (OSError, ValueError):
            now = "missing"
        if now != self.split.store_id:
            self._replaced(f"store_id {self.split.store_id} when opened, {now} now")

    def _replaced(self, problem: str) -> NoReturn:
        raise StoreError(
            f"{self.split.root}: the store was replaced while being read ({problem}). Open it "
            "again with TokenStore.open and restart the reader; never replace a store in use."
        )


def write_all(out: BinaryIO, block: np.ndarray) -> None:
    """Write a block's bytes (a view, no copy) to an unbuffered file, all of them."""
    view = memoryview(np.ascontiguousarray(block)).cast("B")
    try:
        while len(view):
            n = out.write(view)
            view = view[n:]
    except OSError as exc:
        if exc.filename is None:  # name the file being written (a full disk says which)
            raise OSError(exc.errno, exc.strerror, getattr(out, "name", None)) from None
        raise
