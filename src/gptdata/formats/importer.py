"""``gptdata import``: pre-tokenized data from another system in, a verified token store out.

    >>> import_store("megatron", "data/train_text_document", "store/")
    TokenStore(...)   # store/manifest.json, store/shards/00000.train.000.bin, ...

* ``megatron``: a ``.bin``/``.idx`` prefix (or a folder of ``*_document`` pairs).
  For every format a file named with a word ``val``/``valid``/``validation`` goes to the val
  split; in a folder ``test``/``dev``/``eval``/``heldout`` is refused, and named alone such a
  file goes to val: held-out data is never trained on (``heldout.py``);
  documents from its document index, a trailing end-of-text dropped.
* ``nanogpt``: ``train.bin``/``val.bin`` (or one of them), cut at end-of-text.
* ``llmc``: a folder of shards (or one), headers checked, cut at end-of-text.

Every ID is checked against the tokenizer that made them (recorded by a gptdata export, else
``tokenizer``, else GPT-2 assumed and said) as it is read;
the store is written with prepare's own shard writer and commit (side folder, rename at the end).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..prepare.commit import _commit
from ..prepare.driver import DEFAULT_SHARD_TOKENS
from ..storage import Location, is_remote
from ..store import TokenStore, dtype_for
from ..store.heldout import VAL_WORDS, held_out_word
from ..store.shards import _PartWriter
from ..store.sidefolders import check_out, check_overlap, claim_side, discard_side, partial_path
from ..tokenizers import Tokenizer
from ._common import (
    FormatError,
    Progress,
    TokenReader,
    check_ids,
    check_output_path,
    disk_error,
)
from ._recorded import choose_tokenizer
from ._stream import DocumentFeed
from .llmc import llmc_documents, llmc_files
from .megatron import MegatronIndex, megatron_documents, open_megatron, prefix_of
from .nanogpt import nanogpt_documents, nanogpt_files

IMPORT_FORMATS = ("megatron", "nanogpt", "llmc")
Checker = Callable[[Path], Callable[[np.ndarray, int], None]]


def _checker(tok: Tokenizer) -> Checker:
    def for_file(path: Path) -> Callable[[np.ndarray, int], None]:
        def check(block: np.ndarray, base: int) -> None:
            check_ids(
                block,
                tok.vocab_size,
                where=str(path),
                base=base,
                fix=f"The IDs were not made by tokenizer {tok.name} (vocab_size "
                f"{tok.vocab_size:,}): pass the one that made them with tokenizer=.",
            )

        return check

    return for_file


def _split_word(name: str) -> str | None:
    """'valid_text_document' -> 'val'; 'test_text_document' -> 'test'; others -> None (train)."""
    word = held_out_word(name)
    return "val" if word in VAL_WORDS else word


def _refuse_held_out(folder: Path, names: list[str], example: str) -> None:
    """A folder's test/dev files have no split in a store: refuse rather than train on them."""
    for name in names:
        word = _split_word(name)
        if word not in (None, "val"):
            raise FormatError(
                f"{folder}: {name} looks like a {word!r} split, and a store holds only train "
                f"and val; gptdata never puts it into train. Move it out of {folder}, or "
                f"import what you want one at a time (e.g. {example})."
            )


def _route(files: list[Path], what: str, *, alone: bool = False) -> dict[str, list[Path]]:
    """Files -> {'train': [...], 'val': [...]} by the words of their names (``heldout.py``).

    In a folder a test/dev/eval file is refused (it is not val data, and never train data);
    a file named ``alone`` is the user's choice, and a held-out name puts it in val.
    """
    if files and not alone:
        example = next((f for f in files if _split_word(f.name) is None), files[0])
        _refuse_held_out(files[0].parent, [f.name for f in files], f"the {what} {example}")
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault("train" if _split_word(f.name) is None else "val", []).append(f)
    return groups


def _megatron_prefixes(path: Path) -> dict[str, list[Path]]:
    if path.is_dir():
        found = sorted({prefix_of(p) for p in path.glob("*.idx")})
        if not found:
            raise FormatError(f"{path}: no Megatron .idx/.bin pairs in this folder.")
        return _route(found, "prefix")
    return _route([prefix_of(path)], "prefix", alone=True)


def _megatron_docs(
    indexes: list[MegatronIndex], tok: Tokenizer, check: Checker, stats: dict[str, int]
) -> Iterator[np.ndarray]:
    for index in indexes:
        reader = TokenReader(
            index.bin,
            index.dtype,
            offset=0,
            count=index.bin.stat().st_size // index.dtype.itemsize,
            check=check(index.bin),
        )
        try:
            for doc in megatron_documents(index, reader):
                if len(doc) and doc[-1] == tok.eot_id:  # preprocess_data.py --append-eod
                    doc = doc[:-1]
                if not len(doc):
                    stats["empty"] += 1
                    continue
                yield doc
        finally:
            reader.close()


def _sources(format: str, path: Path) -> dict[str, list[Any]]:
    """Per split, the files (Megatron: checked indexes) to read, routed by their names.

    Held-out names are refused here, before the tokenizer is chosen or anything is read.
    """
    if format == "megatron":
        # Every pair is opened and checked before anything is written.
        return {s: [open_megatron(p) for p in ps] for s, ps in _megatron_prefixes(path).items()}
    if format == "nanogpt":
        groups = nanogpt_files(path)
        return _route([f for fs in groups.values() for f in fs], "file", alone=not path.is_dir())
    return _route(llmc_files(path), "shard", alone=not path.is_dir())


def _inputs(
    format: str, sources: dict[str, list[Any]], tok: Tokenizer, stats: dict[str, int]
) -> tuple[dict[str, Iterator[tuple[np.ndarray, bool]]], list[Path]]:
    """Per split, (piece, ends_a_document) pairs (see ``_stream``), and the files read."""
    check = _checker(tok)
    eot = tok.eot_id
    if format != "megatron" and eot is None:
        raise FormatError(
            f"tokenizer {tok.name} has no end-of-text ID, which {format} files are cut at."
        )
    if format == "megatron":
        files = [f for ixs in sources.values() for ix in ixs for f in (ix.bin, ix.idx)]
        return {
            s: ((d, True) for d in _megatron_docs(ixs, tok, check, stats))
            for s, ixs in sources.items()
        }, files
    if format == "nanogpt":  # each file its own stream
        docs = {
            s: (d for f in fs for d in nanogpt_documents(f, eot_id=eot, check=check))  # type: ignore[arg-type]
            for s, fs in sources.items()
        }
    else:  # llm.c: a split's shards are one stream (a document may span two shards)
        docs = {
            s: llmc_documents(fs, eot_id=eot, check=check)  # type: ignore[arg-type]
            for s, fs in sources.items()
        }
    return docs, [f for fs in sources.values() for f in fs]


def import_store(
    format: str,
    path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    tokenizer: str | os.PathLike[str] | Tokenizer | None = None,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    force: bool = False,
    quiet: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    _shown: tuple[str, str] | None = None,
    _out_url: str | None = None,
) -> TokenStore:
    """Read ``path`` in ``format`` into a new token store at ``out``; every ID is checked.

    "nanogpt", "data/shakespeare/" (train.bin + val.bin) -> store with train and val splits

    ``tokenizer``: the one that made the IDs. A gptdata export records it (and it is used); a
    different one is refused. With nothing recorded and none given, GPT-2 is assumed and the
    summary says so.

    ``path`` may be a URL of object storage (``s3://bucket/exports/web``, with
    ``storage_options``): its files are downloaded into a local scratch folder first, whole
    (``formats.remote.fetch_import_source``), and the manifest records the URLs. ``out`` may be
    a URL too: the store is made in a local scratch folder and committed there as ``prepare``
    commits one (shards staged, the manifest last; ``--force`` only over a gptdata store).
    """
    if format not in IMPORT_FORMATS:
        raise ValueError(f"unknown format {format!r}: choose one of {', '.join(IMPORT_FORMATS)}.")
    if is_remote(out):
        return _import_to_url(
            format, path, Location(os.fspath(out), storage_options=storage_options),
            tokenizer=tokenizer, shard_tokens=shard_tokens, force=force, quiet=quiet,
        )  # fmt: skip
    if is_remote(path):
        from .remote import fetch_import_source

        url = str(path).rstrip("/")
        with fetch_import_source(format, url, storage_options=storage_options) as local:
            try:
                return import_store(
                    format,
                    local,
                    out,
                    tokenizer=tokenizer,
                    shard_tokens=shard_tokens,
                    force=force,
                    quiet=quiet,
                    _shown=(str(local), url),
                    _out_url=_out_url,
                )
            except ValueError as exc:  # FormatError, InputError: name the URL, not the copy
                if str(local) not in str(exc):
                    raise
                raise type(exc)(str(exc).replace(str(local), url)) from None

    def shown(f: Path | str) -> str:  # a scratch copy's path as the URL it came from
        text = str(f)
        if _shown and text.startswith(_shown[0]):
            return _shown[1] + text[len(_shown[0]) :]
        return text

    if shard_tokens < 1:
        raise ValueError(f"shard_tokens={shard_tokens} must be >= 1.")
    src, out = Path(path), Path(out)
    # The output first, before any input is read: the same rules as prepare (never replace
    # what is not a store, one run per output), and a folder that can be written.
    check_out(out, force=force)
    check_output_path(out)
    sources = _sources(format, src)
    tok, assumed = choose_tokenizer(src, tokenizer)
    if assumed and _shown:  # name the URL the user gave, not the scratch copy
        assumed = assumed.replace(_shown[0], _shown[1])
    stats = {"empty": 0, "invalid_utf8": 0, "binary": 0}
    docs, files = _inputs(format, sources, tok, stats)
    check_overlap(out, [str(f) for f in files], [])  # only the named files are read
    total = sum(f.stat().st_size for f in files)  # every input exists: checked by _inputs
    plan_id = f"import:{format}:{os.urandom(8).hex()}"  # an import never resumes
    lock = claim_side(partial_path(out), plan_id)
    side = lock.side
    dtype = dtype_for(tok.vocab_size)
    parts: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    progress = Progress(f"import {format}", total // 2, 2, quiet=quiet)
    try:
        for name, stream in docs.items():
            writer = _PartWriter(side / "shards", f"00000.{name}", dtype, tok.eot_id, shard_tokens)
            feed = DocumentFeed(writer)
            for piece, last in stream:
                feed.add(piece.astype(dtype, copy=False), last=last)
                progress.update(len(piece) + last)
            parts[name] = writer.finish()
        options = {
            "tokenizer": tok.name,
            "val_fraction": 0.0,  # splits come from the source files, not from the hash
            "split_by": "source",
            "seed": 0,
            "shard_tokens": shard_tokens,
            "imported_from": format,
        }
        inputs_meta = [{"path": shown(f), "bytes": f.stat().st_size} for f in files]
        # Each source document is one store document (none is cut between splits).
        stats["documents"] = sum(p["documents"] for ps in parts.values() for p in ps)
        result = {"index": 0, "tokens": 0, "stats": stats, "parts": parts}
        store = _commit(
            out, side, tok, options, inputs_meta, [result], force=force, plan_id=plan_id
        )
    except OSError as exc:
        discard_side(lock)  # an import never resumes: nothing half-written stays behind
        raise disk_error(exc, side) from None
    except BaseException:
        discard_side(lock)
        raise
    finally:
        progress.close()
        lock.release()
    if not quiet:
        n = {s: store.split(s) for s in store.splits}
        summary = ", ".join(f"{s}: {v.n_documents:,} documents" for s, v in n.items())
        print(
            f"imported {shown(src)} ({format}) into {_out_url or out}: {summary}", file=sys.stderr
        )
        if assumed:
            print(f"tokenizer: {assumed}", file=sys.stderr)
    return store


def _import_to_url(
    format: str, path: str | os.PathLike[str], out: Location, **kw: Any
) -> TokenStore:
    """``import_store(..., out="s3://...")``: into the local scratch store ``remote_out`` keeps
    for ``out``, then committed by prepare's rule; an import never resumes, so a failure
    discards what was staged. Returns the bucket's store, opened by its URL.

    >>> _import_to_url("llmc", "ex/", Location("s3://b/stores/imp")).url
    's3://b/stores/imp'
    """
    from ..prepare import remote_out

    writer = remote_out.begin(out, f"import:{format}:{os.urandom(8).hex()}", force=kw["force"])
    scratch = remote_out.scratch_out(out)
    try:
        local = import_store(
            format, path, scratch, **{**kw, "force": False},
            storage_options=out.storage_options, _out_url=out.url,
        )  # fmt: skip
        remote_out.commit(writer, scratch, local.manifest)
    except BaseException:
        writer.discard()
        shutil.rmtree(scratch.parent, ignore_errors=True)
        raise
    return remote_out.finish(out)
