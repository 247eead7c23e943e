"""Megatron-Core indexed datasets (also read by NeMo and GPT-NeoX): ``PREFIX.bin`` + ``PREFIX.idx``.

Layout, as ``megatron/core/datasets/indexed_dataset.py`` writes and reads it (little-endian):

    PREFIX.bin   the token IDs of every sequence, back to back, no header
    PREFIX.idx   offset  size  field
                 0       9     magic b"MMIDIDX\\x00\\x00"
                 9       8     u64 version = 1
                 17      1     u8 dtype code: 1 u8, 2 i8, 3 i16, 4 i32, 5 i64, 6 f64, 7 f32, 8 u16
                 18      8     u64 S, the number of sequences
                 26      8     u64 D, the length of the document index (documents + 1)
                 34      4*S   int32 sequence lengths (tokens)
                 34+4S   8*S   int64 byte offset of each sequence in PREFIX.bin
                 34+12S  8*D   int64 document index: document j is sequences [doc[j], doc[j+1])

gptdata writes one sequence per document with end-of-text appended to each (what
``tools/preprocess_data.py --append-eod`` writes), so the document index is ``0, 1, ..., S``.
Token dtype: uint16 (code 8) when vocab_size < 65,500, else int32 (code 4), the threshold of
Megatron's ``DType.optimal_dtype`` (it has no uint32). Deliberately left out: multimodal indexes (a sequence-mode byte per sequence).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..store import Split
from ._common import FormatError, Progress, TokenReader, shard_ends
from ._storeblocks import StoreBlocks, write_all

MAGIC = b"MMIDIDX\x00\x00"
HEADER = struct.Struct("<9sQBQQ")  # magic, version, dtype code, S, D: 34 bytes
CODES = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float64,
    7: np.float32,
    8: np.uint16,
}
INT32_MAX = (1 << 31) - 1


# Megatron's own tools pick uint16 below this vocabulary size and int32 from it on
# (``DType.optimal_dtype`` in megatron/core/datasets/indexed_dataset.py), so the same store
# exported here and tokenized by ``tools/preprocess_data.py`` gives the same bytes.
UINT16_BELOW = 65_500


def megatron_dtype(vocab_size: int) -> tuple[np.dtype, int]:
    """(dtype, code) for a vocabulary: 50257 -> (uint16, 8); 65500 -> (int32, 4), as Megatron."""
    if vocab_size < UINT16_BELOW:
        return np.dtype("<u2"), 8
    if vocab_size <= 1 << 31:
        return np.dtype("<i4"), 4
    raise FormatError(
        f"vocab_size {vocab_size:,} does not fit Megatron's largest integer token type (int32)."
    )


def prefix_of(path: str | Path) -> Path:
    """'data/train_text_document.idx' or '.bin' or the bare prefix -> the prefix.

    A prefix is a string to which Megatron appends '.bin'/'.idx', so a dot inside it stays:
    'data/c4.en_text_document' and 'data/c4.en_text_document.idx' -> 'data/c4.en_text_document'.
    A name ending in '.bin'/'.idx' is kept whole when it is itself the prefix of a pair.
    """
    p = Path(path)
    if p.name.endswith((".bin", ".idx")) and not with_ext(p, ".idx").is_file():
        return p.with_name(p.name[:-4])
    return p


def with_ext(prefix: Path, ext: str) -> Path:
    """``prefix`` + ``ext``, as Megatron builds its file names (never a suffix swap)."""
    return prefix.with_name(prefix.name + ext)


def write_megatron(
    split: Split, prefix: Path, *, vocab_size: int, progress: Progress
) -> dict[str, Any]:
    """Write ``split`` as ``prefix.bin`` / ``prefix.idx``; one document = its tokens + end-of-text.

    A store shard is ``d0 E d1 E ... dn``, so its Megatron bytes are the shard file plus one E:
    for uint16 the .bin is a straight copy of the shard files. Returns the counts.
    """
    dtype, code = megatron_dtype(vocab_size)
    eot = np.array([split.eot_id], dtype=dtype).tobytes()
    n_docs = split.n_documents
    bin_path, idx_path = with_ext(prefix, ".bin"), with_ext(prefix, ".idx")
    source = StoreBlocks(split, vocab_size)
    tokens = 0
    with open(bin_path, "wb", buffering=0) as out:
        for k, shard in enumerate(split.shards):
            for block in source.blocks(k):
                # uint32 store -> int32, uint16 store -> int32 (vocab 65,500..65,536): the IDs
                # were checked against vocab_size, so they fit
                write_all(out, block if block.dtype == dtype else block.astype(dtype))
            out.write(eot)
            tokens += shard.tokens + 1
            progress.update(shard.tokens + 1)
    with open(idx_path, "wb") as fh:
        fh.write(HEADER.pack(MAGIC, 1, code, n_docs, n_docs + 1))
        for section in ("lengths", "pointers"):
            pos = 0
            for k in range(len(split.shards)):
                prev = -1
                for ends in shard_ends(split, k):
                    lengths = np.diff(ends, prepend=prev)  # tokens + its end-of-text
                    prev = int(ends[-1])
                    if section == "lengths":
                        if int(lengths.max()) > INT32_MAX:
                            raise FormatError(
                                f"{split.root / split.shards[k].index}: a document of "
                                f"{int(lengths.max()):,} tokens overflows Megatron's int32 length."
                            )
                        fh.write(lengths.astype("<i4").tobytes())
                    else:
                        starts = pos + np.cumsum(lengths) - lengths
                        fh.write((starts * dtype.itemsize).astype("<i8").tobytes())
                        pos += int(lengths.sum())
        for first in range(0, n_docs + 1, 1 << 20):
            fh.write(np.arange(first, min(first + (1 << 20), n_docs + 1), dtype="<i8").tobytes())
    source.check_unchanged()  # the indexes were read by path: still the same store?
    return {"documents": n_docs, "tokens": tokens, "dtype": dtype.name, "dtype_code": code}


@dataclass(frozen=True)
class MegatronIndex:
    """A checked ``.idx`` header; the arrays are read lazily from the file."""

    prefix: Path
    dtype: np.dtype
    code: int
    sequences: int
    doc_entries: int  # D = documents + 1

    @property
    def idx(self) -> Path:
        return with_ext(self.prefix, ".idx")

    @property
    def bin(self) -> Path:
        return with_ext(self.prefix, ".bin")

    def _array(self, dtype: str, offset: int, count: int) -> np.ndarray:
        if count == 0:
            return np.empty(0, dtype=dtype)
        return np.memmap(self.idx, dtype=dtype, mode="r", offset=offset, shape=(count,))

    def lengths(self) -> np.ndarray:
        return self._array("<i4", HEADER.size, self.sequences)

    def pointers(self) -> np.ndarray:
        return self._array("<i8", HEADER.size + 4 * self.sequences, self.sequences)

    def doc_index(self) -> np.ndarray:
        return self._array("<i8", HEADER.size + 12 * self.sequences, self.doc_entries)


def open_megatron(path: str | Path) -> MegatronIndex:
    """Read and check a ``.idx``/``.bin`` pair: header, sizes, document index, pointers."""
    prefix = prefix_of(path)
    idx, binf = with_ext(prefix, ".idx"), with_ext(prefix, ".bin")
    for f in (idx, binf):
        if not f.is_file():
            raise FormatError(
                f"{f}: not found. Give the prefix of a Megatron .bin/.idx pair (the path "
                "without .bin/.idx, e.g. data/train_text_document) or a folder of pairs."
            )
    size = idx.stat().st_size
    if size < HEADER.size:
        raise FormatError(
            f"{idx}: {size} bytes, shorter than the {HEADER.size}-byte header: truncated."
        )
    with open(idx, "rb") as fh:
        magic, version, code, n_seq, n_doc = HEADER.unpack(fh.read(HEADER.size))
    if magic != MAGIC:
        raise FormatError(
            f"{idx}: magic {magic!r}, expected {MAGIC!r}: not a Megatron indexed-dataset index."
        )
    if version != 1:
        raise FormatError(f"{idx}: index version {version}, this reader knows version 1.")
    if code not in CODES or CODES[code] in (np.float32, np.float64):
        raise FormatError(
            f"{idx}: dtype code {code} is not an integer token type "
            f"(known: {', '.join(f'{c} {CODES[c].__name__}' for c in CODES)})."
        )
    want = HEADER.size + 12 * n_seq + 8 * n_doc
    if size != want:
        extra = " (it carries sequence modes: multimodal indexes are not supported)"
        raise FormatError(
            f"{idx}: {size:,} bytes, but the header's {n_seq:,} sequences and {n_doc:,} "
            f"document-index entries need {want:,}"
            + (extra if size == want + n_seq else ": the file is truncated or corrupt.")
        )
    index = MegatronIndex(prefix, np.dtype(CODES[code]).newbyteorder("<"), code, n_seq, n_doc)
    _check_arrays(index)
    return index


def _check_arrays(index: MegatronIndex) -> None:
    docs, lengths, pointers = index.doc_index(), index.lengths(), index.pointers()
    if index.doc_entries < 1 or docs[0] != 0 or docs[-1] != index.sequences:
        raise FormatError(
            f"{index.idx}: the document index must run from 0 to {index.sequences:,} (the "
            f"sequence count); it has {index.doc_entries:,} entries"
            + (f" from {int(docs[0])} to {int(docs[-1])}." if index.doc_entries else ".")
        )
    pos = 0
    itemsize = index.dtype.itemsize
    step = 1 << 20
    for first in range(0, index.sequences, step):
        lens = np.asarray(lengths[first : first + step], dtype=np.int64)
        if lens.min() < 0:
            raise FormatError(f"{index.idx}: a negative sequence length near sequence {first:,}.")
        starts = (pos + np.cumsum(lens) - lens) * itemsize
        bad = np.flatnonzero(np.asarray(pointers[first : first + step]) != starts)
        if bad.size:
            i = int(bad[0])
            raise FormatError(
                f"{index.idx}: sequence {first + i:,} starts at byte {int(pointers[first + i]):,}, "
                f"expected {int(starts[i]):,}: sequences are not stored back to back."
            )
        pos += int(lens.sum())
    for first in range(0, index.doc_entries - 1, step):
        d = np.asarray(docs[first : first + step + 1])
        if (np.diff(d) < 0).any():
            raise FormatError(f"{index.idx}: the document index decreases near entry {first:,}.")
    size = index.bin.stat().st_size
    if size != pos * itemsize:
        raise FormatError(
            f"{index.bin}: {size:,} bytes, but the index describes {pos:,} tokens x {itemsize} "
            f"bytes = {pos * itemsize:,}: the .bin is truncated or belongs to another index."
        )


def megatron_documents(index: MegatronIndex, reader: TokenReader) -> Iterator[np.ndarray]:
    """Each document's tokens as stored (its sequences joined; end-of-text not removed)."""
    docs, pointers = index.doc_index(), index.pointers()
    itemsize = index.dtype.itemsize
    total = index.bin.stat().st_size // itemsize
    step = 1 << 20
    for first in range(0, index.doc_entries - 1, step):
        seqs = np.asarray(docs[first : first + step + 1])
        starts = np.where(
            seqs < index.sequences,
            np.asarray(pointers[np.minimum(seqs, max(index.sequences - 1, 0))]) // itemsize
            if index.sequences
            else 0,
            total,
        )
        for n in np.diff(starts).tolist():
            yield reader.take(n)
