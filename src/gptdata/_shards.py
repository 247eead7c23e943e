"""Shard part files as ``prepare`` writes them, and the tail split applied to written parts.

A part is ``NAME.bin`` (token IDs) plus ``NAME.idx`` (uint64 document end offsets), written as
``*.tmp`` and renamed; documents are joined by the end-of-text ID inside a part.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._splits import tail_tokens
from .store import dtype_for
from .tokenizers import Tokenizer


class _PartWriter:
    """Writes one split of one unit into shard parts of at most ``shard_tokens`` tokens."""

    def __init__(
        self, folder: Path, stem: str, dtype: np.dtype, eot_id: int | None, shard_tokens: int
    ) -> None:
        self.folder, self.stem, self.dtype, self.shard_tokens = folder, stem, dtype, shard_tokens
        self.sep = np.array([eot_id if eot_id is not None else 0], dtype=dtype).tobytes()
        self.parts: list[dict[str, Any]] = []
        self._fh: Any = None

    def _open(self) -> None:
        name = f"{self.stem}.{len(self.parts):03d}"
        self._name = name
        self._fh = open(self.folder / f"{name}.bin.tmp", "wb")  # noqa: SIM115 - closed in _close
        self._hash = hashlib.sha256()
        self._tokens = 0
        self._ends: list[int] = []

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._hash.update(data)

    def add(self, ids: np.ndarray) -> None:
        n = len(ids)
        if self._fh is not None and self._tokens + 1 + n > self.shard_tokens:
            self._close()
        if self._fh is None:
            self._open()
        if self._tokens:
            self._write(self.sep)
            self._tokens += 1
        self._write(ids.tobytes())
        self._tokens += n
        self._ends.append(self._tokens)

    def _close(self) -> None:
        self._fh.close()
        index = np.array(self._ends, dtype="<u8").tobytes()
        (self.folder / f"{self._name}.idx.tmp").write_bytes(index)
        for ext in ("bin", "idx"):
            os.replace(self.folder / f"{self._name}.{ext}.tmp", self.folder / f"{self._name}.{ext}")
        self.parts.append(
            {
                "file": f"shards/{self._name}.bin",
                "index": f"shards/{self._name}.idx",
                "tokens": self._tokens,
                "documents": len(self._ends),
                "sha256": self._hash.hexdigest(),
                "index_sha256": hashlib.sha256(index).hexdigest(),
            }
        )
        self._fh = None

    def finish(self) -> list[dict[str, Any]]:
        if self._fh is not None:
            self._close()
        return self.parts


def _add_tail(writers: dict[str, _PartWriter], ids: np.ndarray, options: dict[str, Any]) -> None:
    """Split by tail: the document's head to train, its last ~val_fraction tokens to val."""
    k = min(tail_tokens(ids, options["val_fraction"], options["seed"]), len(ids))
    if k < len(ids):
        writers["train"].add(ids[: len(ids) - k])
    if k:
        writers["val"].add(ids[len(ids) - k :])


def _docs(side: Path, parts: list[dict[str, Any]], dtype: np.dtype) -> Iterator[np.ndarray]:
    """The documents of a unit's parts of one split, in order."""
    for part in parts:
        tokens = np.fromfile(side / part["file"], dtype=dtype)
        start = 0
        for end in np.fromfile(side / part["index"], dtype="<u8").tolist():
            yield tokens[start:end]
            start = end + 1  # skip the separator


def _retail(
    side: Path, results: list[dict[str, Any]], tok: Tokenizer, options: dict[str, Any]
) -> None:
    """Rewrite a document split as a tail split, in document order, unit by unit.

    The parts come out byte-identical to what ``split_by="tail"`` writes directly. A unit's marker
    goes first, so a kill here means that unit is tokenized again, never mixed.
    """
    dtype = dtype_for(tok.vocab_size)
    scratch = side / "retail"
    scratch.mkdir(exist_ok=True)
    for r in results:
        stem = f"{r['index']:05d}"
        (side / "units" / f"{stem}.json").unlink(missing_ok=True)
        bits = np.fromfile(side / "units" / f"{stem}.order", dtype=np.uint8)
        order = np.unpackbits(bits)[: sum(p["documents"] for ps in r["parts"].values() for p in ps)]
        streams = {s: _docs(side, r["parts"][s], dtype) for s in ("train", "val")}
        writers = {
            s: _PartWriter(scratch, f"{stem}.{s}", dtype, tok.eot_id, options["shard_tokens"])
            for s in ("train", "val")
        }
        for to_val in order.tolist():
            _add_tail(writers, next(streams["val" if to_val else "train"]), options)
        r["parts"] = {s: w.finish() for s, w in writers.items()}
        for entry in os.scandir(side / "shards"):
            if entry.name.startswith(stem + "."):
                os.unlink(entry.path)
        for entry in os.scandir(scratch):
            os.replace(entry.path, side / "shards" / entry.name)
    scratch.rmdir()
