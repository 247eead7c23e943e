"""Hugging Face ``datasets`` folders: one ``save_to_disk`` folder per split, one row per document.

``OUT/`` is a ``DatasetDict`` (``dataset_dict.json`` plus ``OUT/train/``, ``OUT/val/``), each split
folder a ``Dataset`` with ``state.json``, ``dataset_info.json`` and ``data-XXXXX-of-XXXXX.arrow``
(Arrow IPC stream). The column ``input_ids`` holds a document's token IDs as int32, without
end-of-text (rows are documents; add separators when packing). Written with ``datasets`` itself,
so ``datasets.load_from_disk(OUT)`` is the reader; it is an optional extra: ``gptdata[hf]``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..store import Split
from ._common import Progress, TokenReader, shard_ends

ROWS_PER_BATCH = 1000


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ImportError(
            "format='hf' needs the Hugging Face datasets package. Fix: pip install 'gptdata[hf]'"
        ) from None
    return datasets


def _rows(root: str, shards: list[dict[str, Any]], dtype: str) -> Iterator[dict[str, Any]]:
    """One row per document, read shard by shard (a module-level function: datasets hashes it)."""
    from ..store import Shard

    split = Split(Path(root), "", [Shard(**s) for s in shards], np.dtype(dtype), None, "")
    for k, shard in enumerate(split.shards):
        reader = TokenReader(
            split.root / shard.file, split.dtype, offset=0, count=shard.tokens, check=_no_check
        )
        prev = -1
        try:
            for ends in shard_ends(split, k):
                for end in ends.tolist():
                    if prev >= 0:
                        reader.take(1)  # the end-of-text between two documents
                    yield {"input_ids": reader.take(end - prev - 1).astype(np.int32)}
                    prev = end
        finally:
            reader.close()


def _no_check(block: np.ndarray, base: int) -> None:
    """IDs were checked when the store was written; int32 holds any vocab_size <= 2**31."""


def write_hf(split: Split, folder: Path, *, progress: Progress) -> dict[str, Any]:
    """``split`` -> ``folder`` written by ``Dataset.save_to_disk``, column ``input_ids``."""
    datasets = _import_datasets()
    seq = getattr(datasets, "List", None) or datasets.Sequence
    features = datasets.Features({"input_ids": seq(datasets.Value("int32"))})
    cache = folder.with_name(folder.name + ".cache")
    ds = datasets.Dataset.from_generator(
        _rows,
        features=features,
        cache_dir=str(cache),
        gen_kwargs={
            "root": str(split.root),
            "shards": [s.as_json() for s in split.shards],
            "dtype": split.dtype.str,
        },
        writer_batch_size=ROWS_PER_BATCH,
    )
    ds.save_to_disk(str(folder))
    del ds
    shutil.rmtree(cache, ignore_errors=True)
    progress.update(split.n_tokens)
    separators = split.n_documents - len(split.shards)  # inside shards; rows drop them
    return {
        "documents": split.n_documents,
        "tokens": sum(s.tokens for s in split.shards) - separators,
    }


def write_dataset_dict(folder: Path, splits: list[str]) -> None:
    """The top-level file that makes ``load_from_disk(folder)`` return a DatasetDict."""
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": splits}), encoding="utf-8")
