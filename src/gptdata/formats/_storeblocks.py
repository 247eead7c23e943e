"""A store's shards read for export: exactly one store, and only a sound one.

``StoreBlocks`` hands out a split's tokens block by block for the writers of every format;
``write_all`` writes a block's bytes without a copy and names the file when the write fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from .._manifest import read_store_id
from ..store import Split, StoreError
from ._common import CHUNK_TOKENS, check_ids


class StoreBlocks:
    """A split's shards read for export: one store, checked as the loader checks it, every ID too.

    The shards are mapped and then the manifest's ``store_id`` and every shard's size are
    compared, by the loader's own check (``Split._reopen``): a store replaced during an export
    fails with the loader's message instead of giving a mix of old and new tokens (open maps
    keep the bytes of the commit they were taken from). Every block's max (and min) is checked
    against ``vocab_size`` as it streams -- the bytes are read anyway, and numpy's max over a
    4 Mi-token block costs a fraction of writing it -- so a corrupt store is refused, as
    ``verify`` and ``import`` refuse it.
    """

    def __init__(self, split: Split, vocab_size: int) -> None:
        self.split, self.vocab_size = split, vocab_size
        self.maps = split._reopen()  # noqa: SLF001 - the loader's one check, not a copy of it

    def blocks(self, k: int) -> Iterator[np.ndarray]:
        """Shard ``k``'s tokens, CHUNK_TOKENS at a time, each block's IDs checked."""
        data = self.maps[k]
        where = str(self.split.root / self.split.shards[k].file)
        for start in range(0, len(data), CHUNK_TOKENS):
            block = np.asarray(data[start : start + CHUNK_TOKENS])
            check_ids(
                block,
                self.vocab_size,
                where=where,
                base=start,
                fix="The store is corrupt: run gptdata verify on it, then prepare it again.",
            )
            yield block

    def check_unchanged(self) -> None:
        """Raise the loader's error when the store was replaced since the maps were taken."""
        problem = ""
        try:
            now = read_store_id(self.split.root)
        except (OSError, ValueError):
            now = "missing"
        if now != self.split.store_id:
            problem = f"store_id {self.split.store_id} when opened, {now} now"
        if problem:
            raise StoreError(
                f"{self.split.root}: the store was replaced while being read ({problem}). Open "
                "it again with TokenStore.open and restart the reader; never replace a store "
                "in use."
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
