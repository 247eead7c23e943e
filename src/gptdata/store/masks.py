"""Response masks: per token of a shard, whether it is prompt (0) or response (1).

Instruction stores (``prepare(..., instructions=True)``) write ``NAME.mask`` beside each shard's
``NAME.bin``: ``np.packbits`` of one bit per token, most significant bit first, the last byte
padded with zeros. The manifest's shard entry names it as ``"mask": {"file", "sha256",
"bits"}``, ``bits`` equal to the shard's tokens; a store without masks reads as before.
An example's end-of-text (the separator after it) is response: the book trains it.

    example prompt [5, 6], response [7]; next [8], [9] -> tokens [5, 6, 7, eot, 8, 9]
    bits 0 0 1 1 0 1 -> mask file b"\\x34" (0b00110100)
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np

_HEX64 = re.compile(r"[0-9a-f]{64}")


def mask_bytes(bits: int) -> int:
    """Bytes of a packed mask of ``bits`` bits: 8 bits a byte, rounded up. 9 -> 2"""
    return (bits + 7) // 8


def example_mask(length: int, prompt_length: int) -> np.ndarray:
    """One example's bits: ``[0] * prompt_length + [1] * rest`` (prompt cut to the example).

    length 5, prompt_length 3 -> [0, 0, 0, 1, 1]
    """
    bits = np.ones(length, dtype=bool)
    bits[: min(max(prompt_length, 0), length)] = False
    return bits


class MaskWriter:
    """Collects one shard's bits and writes them packed as ``NAME.mask.tmp``."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.bits = 0

    def add(self, bits: np.ndarray, *, separator: bool) -> None:
        if separator:  # the end-of-text before this example closes the one before: response
            self.parts.append(np.ones(1, dtype=bool))
            self.bits += 1
        self.parts.append(np.asarray(bits, dtype=bool))
        self.bits += len(bits)

    def write(self, path: Path, rel: str) -> dict[str, Any]:
        data = np.packbits(np.concatenate(self.parts) if self.parts else np.empty(0, bool))
        raw = data.tobytes()
        path.with_name(path.name + ".tmp").write_bytes(raw)
        return {"file": rel, "sha256": hashlib.sha256(raw).hexdigest(), "bits": self.bits}


def check_mask_entry(mask: Any, tokens: int, at: str) -> str:
    """A shard entry's ``mask`` field, checked without files; returns its path (or raises).

    Raises ``ValueError`` naming the field (the manifest checker rewraps it).
    """
    if not isinstance(mask, dict):
        raise ValueError(f"'{at}mask' must be an object of file, sha256 and bits.")
    for key in ("file", "sha256", "bits"):
        if key not in mask:
            raise ValueError(f"'{at}mask.{key}' is missing.")
    if not isinstance(mask["sha256"], str) or not _HEX64.fullmatch(mask["sha256"]):
        raise ValueError(f"'{at}mask.sha256' must be 64 lowercase hex digits.")
    if type(mask["bits"]) is not int or mask["bits"] != tokens:
        raise ValueError(
            f"'{at}mask.bits' is {mask['bits']!r}, but the shard holds {tokens:,} tokens: one "
            "bit per token."
        )
    return str(mask["file"])


def read_mask(
    root: Path, shards: list[Any], starts: np.ndarray, start: int, stop: int
) -> np.ndarray:
    """Bits of split tokens ``[start, stop)`` across shards; implied separators are True."""
    out = np.ones(max(stop - start, 0), dtype=bool)
    for k, s in enumerate(shards):
        s0 = int(starts[k])
        lo, hi = max(start - s0, 0), min(stop - s0, s.tokens)
        if hi <= lo:
            continue
        # Only the bytes that hold bits lo..hi: a mask is read in pieces, never whole.
        first, last = lo // 8, mask_bytes(hi)
        with open(root / s.mask["file"], "rb") as fh:
            fh.seek(first)
            raw = np.frombuffer(fh.read(last - first), dtype=np.uint8)
        bits = np.unpackbits(raw).astype(bool)[lo - first * 8 : hi - first * 8]
        if len(bits) != hi - lo:
            raise ValueError(f"{root / s.mask['file']}: shorter than its {s.tokens:,} bits.")
        out[s0 + lo - start : s0 + hi - start] = bits
    return out
