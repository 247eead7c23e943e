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

from ..store import Split, StoreError
from ._common import FormatError, Progress, TokenReader, check_ids, disk_error, shard_ends
from ._storeblocks import StoreBlocks

ROWS_PER_BATCH = 1000


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ImportError(
            "format='hf' needs the Hugging Face datasets package. Fix: pip install 'gptdata[hf]'"
        ) from None
    return datasets


def _rows(
    root: str, shards: list[dict[str, Any]], dtype: str, vocab_size: int, store_id: str | None
) -> Iterator[dict[str, Any]]:
    """One row per document, read shard by shard (a module-level function: datasets hashes it)."""
    from ..store import Shard

    split = Split(Path(root), "", [Shard(**s) for s in shards], np.dtype(dtype), None, "", store_id)
    source = StoreBlocks(split, vocab_size)  # one store, checked as the loader checks it
    for k, shard in enumerate(split.shards):
        reader = TokenReader(
            split.root / shard.file,
            split.dtype,
            offset=0,
            count=shard.tokens,
            check=_vocab_check(split.root / shard.file, vocab_size),
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
        source.check_unchanged()  # read by path: fail if another store took its place


def _vocab_check(path: Path, vocab_size: int) -> Any:
    def check(block: np.ndarray, base: int) -> None:
        check_ids(
            block,
            vocab_size,
            where=str(path),
            base=base,
            fix="The store is corrupt: run gptdata verify on it, then prepare it again.",
        )

    return check


def _root_cause(exc: BaseException) -> BaseException:
    """The first error of a chain (datasets wraps a generator's error in its own)."""
    seen = {id(exc)}
    while (nxt := exc.__cause__ or exc.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        exc = nxt
    return exc


def write_hf(split: Split, folder: Path, *, vocab_size: int, progress: Progress) -> dict[str, Any]:
    """``split`` -> ``folder`` written by ``Dataset.save_to_disk``, column ``input_ids``."""
    datasets = _import_datasets()
    seq = getattr(datasets, "List", None) or datasets.Sequence
    features = datasets.Features({"input_ids": seq(datasets.Value("int32"))})
    cache = folder.with_name(folder.name + ".cache")
    try:
        ds = datasets.Dataset.from_generator(
            _rows,
            features=features,
            cache_dir=str(cache),
            gen_kwargs={
                "root": str(split.root),
                "shards": [s.as_json() for s in split.shards],
                "dtype": split.dtype.str,
                "vocab_size": vocab_size,
                "store_id": split.store_id,
            },
            writer_batch_size=ROWS_PER_BATCH,
        )
        ds.save_to_disk(str(folder))
        del ds
    except Exception as exc:
        # datasets wraps what went wrong (a full disk, a shard gone, a corrupt ID) in a
        # 40-line DatasetGenerationError: report the cause, in one line, naming the path.
        cause = _root_cause(exc)
        if isinstance(cause, (FormatError, StoreError)):
            raise cause from None
        if isinstance(cause, OSError):
            raise disk_error(cause, folder) from None
        text = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise FormatError(f"{folder}: writing the hf export failed: {text}") from None
    finally:
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
