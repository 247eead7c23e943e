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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..store import TokenStore, write_json_atomic
from ..tokenizers import Tokenizer, get_tokenizer
from ._common import ExportFolder, FormatError, Progress, check_output_path, disk_error
from ._recorded import save_tokenizer
from .hf import write_dataset_dict, write_hf
from .llmc import llmc_variant, shard_sizes, write_llmc
from .megatron import megatron_dtype, write_megatron
from .nanogpt import check_vocab, write_meta_pkl, write_nanogpt

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
    min_shard_tokens: int | None = None,
    shards: int | None = None,
    tokenizer: str | os.PathLike[str] | Tokenizer | None = None,
    force: bool = False,
    quiet: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``store``'s splits into ``out`` in ``format``; returns what was written.

    split="all" writes every split that has documents; "train" or "val" just that one.
    llmc: ``shard_tokens`` per shard, a tail below ``min_shard_tokens`` (default a tenth) joins
    the shard before it; ``shards=N`` cuts each split into N equal shards instead.
    ``tokenizer``: the one that made the store (checked by fingerprint); its file is copied into
    the export so ``import`` reads it back, and nanoGPT's ``meta.pkl`` gets ``stoi``/``itos``.
    A store on object storage (``TokenStore.open("s3://...")``, or its URL) is downloaded into
    the local cache first, whole: the export reads every byte anyway. An ``out`` on object
    storage (``s3://bucket/exports/web``) is written in a local scratch folder, then uploaded
    with ``gptdata-export.json`` last (``formats.remote``); ``storage_options`` serve both URLs.
    """
    check_format(format)
    from ..storage import is_remote

    if is_remote(out):
        from ..storage import Location
        from .remote import export_remote

        def write(local: Path) -> dict[str, Any]:
            return export_store(
                store,
                local,
                format=format,
                split=split,
                shard_tokens=shard_tokens,
                min_shard_tokens=min_shard_tokens,
                shards=shards,
                tokenizer=tokenizer,
                quiet=True,  # the summary names the URL, below
                storage_options=storage_options,
            )

        loc = Location(str(out), storage_options=storage_options)
        done = export_remote(loc, write, force=force)
        if not quiet:
            print(summary_line(store, format, loc.url, done["splits"]), file=sys.stderr)
        return done
    out = Path(out)
    st = (
        store
        if isinstance(store, TokenStore)
        else TokenStore.open(store, storage_options=dict(storage_options or {}) or None)
    )
    check_output_path(out)
    tok = None
    if tokenizer is not None:
        tok = get_tokenizer(tokenizer)
        if tok.fingerprint != st.fingerprint:
            raise ValueError(
                f"{st.root} was made with tokenizer {st.tokenizer_name} (vocab_size "
                f"{st.vocab_size:,}), but tokenizer={tok.name} (vocab_size {tok.vocab_size:,}) "
                "was given. Pass the one that made the store, or leave it out."
            )
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
    if format == "llmc":  # every split's shard sizes checked before any output exists
        for name in names:
            try:
                shard_sizes(
                    len(st.split(name)) + 1,  # llm.c puts end-of-text before every document
                    shard_tokens=shard_tokens,
                    min_shard_tokens=min_shard_tokens,
                    shards=shards,
                )
            except FormatError as exc:
                raise FormatError(f"split {name!r}: {exc}") from None
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
    # A store on object storage: its splits' files into the cache first, held until the end.
    held: list[Any] = []
    if st.location is not None:
        for name in names:
            held += st.split(name).fetch_all(masks=True, data=True)  # type: ignore[attr-defined]
    folder = ExportFolder(out, force=force)
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
                result[name] = write_nanogpt(
                    sp, folder.path / f"{name}.bin", vocab_size=st.vocab_size, progress=progress
                )
            elif format == "llmc":
                result[name] = write_llmc(
                    sp,
                    folder.path,
                    name=name,
                    vocab_size=st.vocab_size,
                    shard_tokens=shard_tokens,
                    min_shard_tokens=min_shard_tokens,
                    shards=shards,
                    progress=progress,
                )
            else:
                result[name] = write_hf(
                    sp, folder.path / name, vocab_size=st.vocab_size, progress=progress
                )
            progress.close()
        if format == "hf":
            write_dataset_dict(folder.path, names)
        tokenizer_info: dict[str, Any] = {
            "name": st.tokenizer_name,
            "vocab_size": st.vocab_size,
            "eot_id": st.eot_id,
        }
        copy = save_tokenizer(tok, folder.path) if tok is not None else None
        if copy:
            tokenizer_info["file"] = copy
        if format == "nanogpt":
            write_json_atomic(
                folder.path / "meta.json",
                {**tokenizer_info, "dtype": "uint16", "splits": result},
            )
            if st.tokenizer_name != "gpt2":  # GPT-2 exports stay as nanoGPT's own prepare.py
                write_meta_pkl(folder.path, vocab_size=st.vocab_size, tokenizer=tok)
        info = {
            "export_format": format,
            "store": st.url,
            "tokenizer": {**tokenizer_info, "fingerprint": st.fingerprint},
            "splits": result,
        }
        if format == "llmc":
            magic, version, _ = llmc_variant(st.vocab_size)
            info["llmc"] = {"magic": magic, "version": version}
        folder.commit(info)
    except OSError as exc:
        folder.abort()
        raise disk_error(exc, folder.path) from None
    except BaseException:
        folder.abort()
        raise
    finally:
        for h in held:
            h.release()
    if not quiet:
        print(summary_line(st, format, str(out), result), file=sys.stderr)
    return {"format": format, "splits": result}


def summary_line(store: Any, format: str, out: str, splits: Mapping[str, Any]) -> str:
    """The closing line of an export, to a folder or a URL alike; the store as the user named it:
    "exported s3://b/web as llmc to out/ (train: 9 documents, 1,234 tokens)"."""
    source = store.url if isinstance(store, TokenStore) else str(getattr(store, "url", store))
    counts = ", ".join(
        f"{n}: {r['documents']:,} documents, {r['tokens']:,} tokens" for n, r in splits.items()
    )
    return f"exported {source} as {format} to {out} ({counts})"
