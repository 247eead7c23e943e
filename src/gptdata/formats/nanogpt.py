"""nanoGPT's data files: ``train.bin`` / ``val.bin``, flat uint16 token IDs, no header.

As ``data/openwebtext/prepare.py`` writes them: each document's IDs followed by end-of-text
(50256 for GPT-2), native little-endian uint16, read back with
``np.memmap("train.bin", dtype=np.uint16, mode="r")``. Vocabularies over 65,536 do not fit.
gptdata adds ``meta.json`` (tokenizer, vocab_size, eot_id, counts) so the IDs stay decodable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..store import Split
from ._common import FormatError, Progress, TokenReader, copy_range, split_on

DTYPE = np.dtype("<u2")


def check_vocab(vocab_size: int, what: str) -> None:
    if vocab_size > 1 << 16:
        raise FormatError(
            f"{what}: vocab_size {vocab_size:,} does not fit {DTYPE.name} (at most 65,536 IDs), "
            "the only token type nanoGPT reads. Use format='megatron' or 'llmc' (uint32 variant)."
        )


def write_nanogpt(split: Split, path: Path, *, progress: Progress) -> dict[str, Any]:
    """``split`` -> one flat uint16 file, every document followed by end-of-text.

    A store shard is ``d0 E d1 E ... dn``: the file is each shard's bytes plus one E.
    """
    eot = np.array([split.eot_id], dtype=DTYPE).tobytes()
    tokens = 0
    with open(path, "wb", buffering=0) as out:
        for shard in split.shards:
            with open(split.root / shard.file, "rb") as src:
                copy_range(src, out, 0, shard.tokens * DTYPE.itemsize)
            out.write(eot)
            tokens += shard.tokens + 1
            progress.update(shard.tokens + 1)
    return {"documents": split.n_documents, "tokens": tokens}


def nanogpt_files(path: Path) -> dict[str, list[Path]]:
    """A folder -> its train.bin / val.bin; a file -> the train split (val when named val*)."""
    if path.is_dir():
        found = {s: [path / f"{s}.bin"] for s in ("train", "val") if (path / f"{s}.bin").is_file()}
        if not found:
            raise FormatError(f"{path}: no train.bin or val.bin in this folder.")
        return found
    if not path.is_file():
        raise FormatError(f"{path}: not found. Give a nanoGPT train.bin or its folder.")
    return {"val" if path.name.startswith("val") else "train": [path]}


def nanogpt_documents(path: Path, *, eot_id: int, check: Any) -> Iterator[np.ndarray]:
    """The documents of one nanoGPT file: the stream cut at end-of-text, empty pieces dropped."""
    size = path.stat().st_size
    if size % DTYPE.itemsize:
        raise FormatError(
            f"{path}: {size:,} bytes is odd, so not a file of uint16 tokens: truncated or not "
            "a nanoGPT .bin."
        )
    reader = TokenReader(path, DTYPE, offset=0, count=size // DTYPE.itemsize, check=check(path))
    try:
        yield from split_on(reader.blocks(), eot_id)
    finally:
        reader.close()
