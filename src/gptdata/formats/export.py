"""``gptdata export``: a token store out to a trainer's own format, streamed shard by shard.

    >>> export_store("store/", "out/", format="megatron")
    {'format': 'megatron', 'splits': {'train': {'documents': ..., 'tokens': ...}, ...}}

Formats (see each module for the exact layout): ``megatron`` (Megatron-LM / NeMo / GPT-NeoX),
``nanogpt``, ``llmc`` (llm.c / modded-nanogpt), ``hf`` (Hugging Face ``datasets``). Memory stays
flat: bytes move shard by shard (``os.sendfile`` where the dtype matches), indexes in chunks.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..store import TokenStore, write_json_atomic
from ._common import ExportFolder, FormatError, Progress
from .hf import write_dataset_dict, write_hf
from .llmc import llmc_variant, write_llmc
from .megatron import megatron_dtype, write_megatron
from .nanogpt import check_vocab, write_nanogpt

FORMATS = ("megatron", "nanogpt", "llmc", "hf")
DEFAULT_SHARD_TOKENS = 100_000_000  # llm.c's own shard size (10**8 tokens)


def check_format(format: str, *, flag: str = "format") -> None:
    if format not in FORMATS:
        raise ValueError(f"unknown {flag} {format!r}: choose one of {', '.join(FORMATS)}.")


def export_store(
    store: str | os.PathLike[str] | TokenStore,
    out: str | os.PathLike[str],
    *,
    format: str,
    split: str = "all",
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    force: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Write ``store``'s splits into ``out`` in ``format``; returns what was written.

    split="all" writes every split that has documents; "train" or "val" just that one.
    """
    check_format(format)
    st = store if isinstance(store, TokenStore) else TokenStore.open(store)
    names = st.splits if split == "all" else [split]
    for name in names:
        if name not in st.splits:
            raise ValueError(f"split={name!r}: this store has {', '.join(st.splits)} (or 'all').")
    names = [n for n in names if st.split(n).n_documents]
    if not names:
        raise ValueError(f"{st.root}: split {split!r} has no documents; nothing to export.")
    if st.eot_id is None:
        raise FormatError(
            f"{st.root}: tokenizer {st.tokenizer_name} has no end-of-text ID, which every "
            "format uses to separate documents."
        )
    if format == "nanogpt":
        check_vocab(st.vocab_size, str(st.root))
    elif format == "megatron":
        megatron_dtype(st.vocab_size)
    elif format == "hf":
        from .hf import _import_datasets

        _import_datasets()  # fail before any output exists
        if quiet:
            import datasets

            datasets.disable_progress_bars()
    folder = ExportFolder(Path(out), force=force)
    result: dict[str, Any] = {}
    try:
        for name in names:
            sp = st.split(name)
            progress = Progress(
                f"export {format} {name}", sp.n_tokens, st.dtype.itemsize, quiet=quiet
            )
            if format == "megatron":
                result[name] = write_megatron(
                    sp,
                    folder.path / f"{name}_text_document",
                    vocab_size=st.vocab_size,
                    progress=progress,
                )
            elif format == "nanogpt":
                result[name] = write_nanogpt(sp, folder.path / f"{name}.bin", progress=progress)
            elif format == "llmc":
                result[name] = write_llmc(
                    sp,
                    folder.path,
                    name=name,
                    vocab_size=st.vocab_size,
                    shard_tokens=shard_tokens,
                    progress=progress,
                )
            else:
                result[name] = write_hf(sp, folder.path / name, progress=progress)
            progress.close()
        if format == "hf":
            write_dataset_dict(folder.path, names)
        tokenizer = {"name": st.tokenizer_name, "vocab_size": st.vocab_size, "eot_id": st.eot_id}
        if format == "nanogpt":
            write_json_atomic(
                folder.path / "meta.json",
                {**tokenizer, "dtype": "uint16", "splits": result},
            )
        info = {
            "export_format": format,
            "store": str(st.root),
            "tokenizer": {**tokenizer, "fingerprint": st.fingerprint},
            "splits": result,
        }
        if format == "llmc":
            magic, version, _ = llmc_variant(st.vocab_size)
            info["llmc"] = {"magic": magic, "version": version}
        folder.commit(info)
    except BaseException:
        folder.abort()
        raise
    if not quiet:
        summary = ", ".join(
            f"{n}: {r['documents']:,} documents, {r['tokens']:,} tokens" for n, r in result.items()
        )
        print(f"exported {st.root} as {format} to {out} ({summary})", file=sys.stderr)
    return {"format": format, "splits": result}
