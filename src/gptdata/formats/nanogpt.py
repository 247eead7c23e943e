"""nanoGPT's data files: ``train.bin`` / ``val.bin``, flat uint16 token IDs, no header.

As ``data/openwebtext/prepare.py`` writes them: each document's IDs followed by end-of-text
(50256 for GPT-2), native little-endian uint16, read back with
``np.memmap("train.bin", dtype=np.uint16, mode="r")``. Vocabularies over 65,536 do not fit.
gptdata adds ``meta.json`` (tokenizer, vocab_size, eot_id, counts) so the IDs stay decodable,
and for a tokenizer other than GPT-2 nanoGPT's own ``meta.pkl`` (``write_meta_pkl``).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..store import Split
from ._common import FormatError, Progress, TokenReader
from ._storeblocks import StoreBlocks, write_all
from ._stream import pieces

DTYPE = np.dtype("<u2")


def check_vocab(vocab_size: int, what: str) -> None:
    if vocab_size > 1 << 16:
        raise FormatError(
            f"{what}: vocab_size {vocab_size:,} does not fit {DTYPE.name} (at most 65,536 IDs), "
            "the only token type nanoGPT reads. Use format='megatron' or 'llmc' (uint32 variant)."
        )


def write_nanogpt(
    split: Split, path: Path, *, vocab_size: int, progress: Progress
) -> dict[str, Any]:
    """``split`` -> one flat uint16 file, every document followed by end-of-text.

    A store shard is ``d0 E d1 E ... dn``: the file is each shard's bytes plus one E.
    """
    eot = np.array([split.eot_id], dtype=DTYPE).tobytes()
    source = StoreBlocks(split, vocab_size)
    tokens = 0
    with open(path, "wb", buffering=0) as out:
        for k, shard in enumerate(split.shards):
            for block in source.blocks(k):
                write_all(out, block)
            out.write(eot)
            tokens += shard.tokens + 1
            progress.update(shard.tokens + 1)
    source.check_unchanged()
    return {"documents": split.n_documents, "tokens": tokens}


def write_meta_pkl(folder: Path, *, vocab_size: int, tokenizer: Any) -> None:
    """nanoGPT's own ``meta.pkl``, which ``train.py`` reads for ``vocab_size`` and ``sample.py``
    for ``stoi``/``itos`` (as its ``shakespeare_char/prepare.py`` writes them). Only for
    tokenizers other than GPT-2: without it nanoGPT trains a 50,304-entry model and decodes
    samples as GPT-2. ``stoi``/``itos`` need the vocabulary, so a word-level tokenizer passed to
    export (``tokenizer=``) adds them; sample.py's ``decode`` then joins tokens with no space.
    """
    meta: dict[str, Any] = {"vocab_size": vocab_size}
    vocab = getattr(tokenizer, "vocab", None)
    if isinstance(vocab, list):
        meta["itos"] = dict(enumerate(vocab))
        meta["stoi"] = {s: i for i, s in enumerate(vocab)}
    with open(folder / "meta.pkl", "wb") as fh:
        pickle.dump(meta, fh)


def nanogpt_files(path: Path) -> dict[str, list[Path]]:
    """A folder -> its train.bin / val.bin; a file -> itself (importer routes it by name)."""
    if path.is_dir():
        found = {s: [path / f"{s}.bin"] for s in ("train", "val") if (path / f"{s}.bin").is_file()}
        if not found:
            raise FormatError(f"{path}: no train.bin or val.bin in this folder.")
        return found
    if not path.is_file():
        raise FormatError(f"{path}: not found. Give a nanoGPT train.bin or its folder.")
    return {"file": [path]}


def nanogpt_documents(path: Path, *, eot_id: int, check: Any) -> Iterator[tuple[np.ndarray, bool]]:
    """One nanoGPT file's documents, as ``_stream.pieces``: the stream cut at end-of-text."""
    size = path.stat().st_size
    if size % DTYPE.itemsize:
        raise FormatError(
            f"{path}: {size:,} bytes is odd, so not a file of uint16 tokens: truncated or not "
            "a nanoGPT .bin."
        )
    reader = TokenReader(path, DTYPE, offset=0, count=size // DTYPE.itemsize, check=check(path))
    try:
        yield from pieces(reader.blocks(), eot_id)
    finally:
        reader.close()
