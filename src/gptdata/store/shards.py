"""Shard part files as ``prepare`` writes them, and the tail split applied to written parts.

A part is ``NAME.bin`` (token IDs) plus ``NAME.idx`` (uint64 document end offsets), written as
``*.tmp`` and renamed; documents are joined by the end-of-text ID inside a part.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..tokenizers import Tokenizer
from .masks import MaskWriter
from .splits import tail_count, tail_key
from .tokenstore import dtype_for


class _PartWriter:
    """Writes one split of one unit into shard parts of at most ``shard_tokens`` tokens."""

    def __init__(
        self,
        folder: Path,
        stem: str,
        dtype: np.dtype,
        eot_id: int | None,
        shard_tokens: int,
        *,
        masks: bool = False,
    ) -> None:
        self.folder, self.stem, self.dtype, self.shard_tokens = folder, stem, dtype, shard_tokens
        self.masks = masks  # instruction stores: a NAME.mask of response bits beside each shard
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
        self._mask = MaskWriter() if self.masks else None

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._hash.update(data)

    def add(self, ids: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Append one document; ``mask`` (instruction stores) holds its response bits."""
        n = len(ids)
        if self._fh is not None and self._tokens + 1 + n > self.shard_tokens:
            self._close()
        if self._fh is None:
            self._open()
        if self._mask is not None:
            self._mask.add(
                mask if mask is not None else np.ones(n, bool), separator=self._tokens > 0
            )
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
        exts = ["bin", "idx"]
        part = {
            "file": f"shards/{self._name}.bin",
            "index": f"shards/{self._name}.idx",
            "tokens": self._tokens,
            "documents": len(self._ends),
            "sha256": self._hash.hexdigest(),
            "index_sha256": hashlib.sha256(index).hexdigest(),
        }
        if self._mask is not None:
            name = f"{self._name}.mask"
            part["mask"] = self._mask.write(self.folder / name, f"shards/{name}")
            exts.append("mask")
        for ext in exts:
            os.replace(self.folder / f"{self._name}.{ext}.tmp", self.folder / f"{self._name}.{ext}")
        self.parts.append(part)
        self._fh = None

    def finish(self) -> list[dict[str, Any]]:
        if self._fh is not None:
            self._close()
        return self.parts


TAIL_DTYPE = np.dtype([("key", "<u8"), ("length", "<u8")])  # units/NNNNN.tail, per document


def _add_tail(
    writers: dict[str, _PartWriter],
    ids: np.ndarray,
    options: dict[str, Any],
    seen: dict[int, int],
    copy: int | None = None,
) -> int:
    """Split by tail: the document's head to train, its last ~val_fraction tokens to val.

    ``seen`` counts the identical documents met so far (by ``tail_key``): the copy number that
    draws the rounding, unless ``copy`` gives it. Returns the key (0 when no rounding is drawn).
    """
    f = options["val_fraction"]
    key = 0
    if (len(ids) * f) % 1:
        key = tail_key(ids, options["seed"])
        if copy is None:
            copy = seen.get(key, 0)
        seen[key] = seen.get(key, 0) + 1
    k = min(tail_count(len(ids), f, key, copy or 0), len(ids))
    if k < len(ids):
        writers["train"].add(ids[: len(ids) - k])
    if k:
        writers["val"].add(ids[len(ids) - k :])
    return key


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
    seen: dict[int, int] = {}  # copies of each document so far, over all units in order
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
            _add_tail(writers, next(streams["val" if to_val else "train"]), options, seen)
        r["parts"] = {s: w.finish() for s, w in writers.items()}
        _replace_unit_shards(side, scratch, stem)
    scratch.rmdir()


def _replace_unit_shards(side: Path, scratch: Path, stem: str) -> None:
    """Swap a unit's rewritten shards (in ``scratch``) for its old ones in ``side/shards``."""
    for entry in os.scandir(side / "shards"):
        if entry.name.startswith(stem + "."):
            os.unlink(entry.path)
    for entry in os.scandir(scratch):
        os.replace(entry.path, side / "shards" / entry.name)


def _fix_copies(
    side: Path, results: list[dict[str, Any]], tok: Tokenizer, options: dict[str, Any]
) -> None:
    """A tail split's workers number identical documents within their unit; the rule numbers
    them over the whole input. Rewrite the (rare) units where that changes a rounding.

    Each unit left ``units/NNNNN.tail`` (key and length per document, 16 bytes). Ranks in a
    stable sort of the keys give every document its copy number, globally and per unit.
    """
    f = options["val_fraction"]
    tails = [
        np.fromfile(side / "units" / f"{r['index']:05d}.tail", dtype=TAIL_DTYPE) for r in results
    ]
    if not tails or f <= 0:
        return
    keys = np.concatenate([t["key"] for t in tails])
    unit = np.repeat(np.arange(len(tails)), [len(t) for t in tails])
    glob, local = _ranks(keys, (keys,)), _ranks(keys, (keys, unit))
    moved = np.flatnonzero((glob != local) & (keys != 0))
    if not moved.size:
        return
    firsts = np.cumsum([0] + [len(t) for t in tails])
    dtype = dtype_for(tok.vocab_size)
    scratch = side / "recopy"
    shutil.rmtree(scratch, ignore_errors=True)  # parts of a rewrite a kill cut short
    scratch.mkdir()
    for u in np.unique(unit[moved]).tolist():
        lo, hi = int(firsts[u]), int(firsts[u + 1])
        lengths, ukeys = tails[u]["length"].tolist(), tails[u]["key"].tolist()
        old = [
            tail_count(n, f, k, c)
            for n, k, c in zip(lengths, ukeys, local[lo:hi].tolist(), strict=True)
        ]
        new = [
            tail_count(n, f, k, c)
            for n, k, c in zip(lengths, ukeys, glob[lo:hi].tolist(), strict=True)
        ]
        if old == new:
            continue
        r = results[u]
        stem = f"{r['index']:05d}"
        (side / "units" / f"{stem}.json").unlink(missing_ok=True)  # a kill: redo this unit
        streams = {s: _docs(side, r["parts"][s], dtype) for s in ("train", "val")}
        writers = {
            s: _PartWriter(scratch, f"{stem}.{s}", dtype, tok.eot_id, options["shard_tokens"])
            for s in ("train", "val")
        }
        empty = np.empty(0, dtype=dtype)
        for n, k_old, k_new in zip(lengths, old, new, strict=True):
            k_old = min(k_old, n)
            head = next(streams["train"]) if k_old < n else empty
            tail = next(streams["val"]) if k_old else empty
            ids = np.concatenate([head, tail])
            k = min(k_new, n)
            if k < n:
                writers["train"].add(ids[: n - k])
            if k:
                writers["val"].add(ids[n - k :])
        r["parts"] = {s: w.finish() for s, w in writers.items()}
        _replace_unit_shards(side, scratch, stem)
    scratch.rmdir()


def _ranks(keys: np.ndarray, by: tuple[np.ndarray, ...]) -> np.ndarray:
    """Each entry's number among the entries equal to it in ``by``, counted in input order."""
    order = np.lexsort(by[::-1])  # stable: equal entries keep input order
    n = len(keys)
    same = np.ones(n, dtype=bool)
    for b in by:
        sb = b[order]
        same[1:] &= sb[1:] == sb[:-1]
    same[0] = False
    start = np.maximum.accumulate(np.where(same, 0, np.arange(n)))
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n) - start
    return ranks
