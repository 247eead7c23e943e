"""``gptdata prepare``: corpus in, token store out, as plan -> execute -> commit.

* plan: the sorted inputs are cut into work units (``sources.plan_units``); the cut depends on the
  inputs alone, never on ``workers``, so the store is byte-identical for any worker count.
* execute: each unit is tokenized into its own shard files in the side folder ``OUT.partial/``,
  written as ``*.tmp`` and renamed, then a small JSON marker records the unit as done. Executors
  are pluggable (``local`` processes here; ``ray`` in ``gptdata._ray``) and run the same function.
* commit: only the driver writes ``manifest.json``, last, and renames the side folder to ``OUT``.
  A killed run leaves no complete-looking store; the same command resumes from the done units.
  An ``s3://`` out runs the units into a local scratch side folder and commits remotely,
  manifest last (``remote_out``).
  It also resolves ``split_by="auto"`` (``_splits``) and, for a tail split, rewrites the parts.

What may be replaced or deleted, the side-folder markers and the lock: ``_sidefolders``. How the
units run, SIGTERM and worker death: ``_executors``. What a worker does: ``_units``.

Memory stays flat: a unit streams documents in batches of about 1 MB and writes as it goes.

    >>> store = prepare(["corpus/"], "store/", val_fraction=0.1)
    >>> store.split("train")
    Split('train', tokens=..., documents=..., shards=...)
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..storage import Location, is_remote
from ..store.sidefolders import (
    check_out,
    check_overlap,
    claim_side,
    discard_side,
    partial_path,
)
from ..store.splits import check_split_by, choose_split, split_of  # noqa: F401 - re-exported
from ..store.tokenstore import (
    FORMAT,
    VERSION,
    TokenStore,
    dtype_for,
)
from ..tokenizers import Tokenizer, get_tokenizer
from . import remote_out
from .commit import _commit, committed_manifest, finish_commit
from .executors import Executor, InlineExecutor, LocalExecutor, _TermAsInterrupt
from .instruction_units import (
    instruction_units,
    resolve_instruction_inputs,
    split_setup,
)
from .progress import _Progress, _summary, python_arg
from .resume import _load_done
from .sources import (
    Errors,
    InputError,
    InputFile,
    WorkUnit,
    chunk_texts,
    plan_units,
    resolve_inputs,
)
from .units import BATCH_CHARS, _UnitTask, tokenize_unit  # noqa: F401 - re-exported

DEFAULT_SHARD_TOKENS = 100_000_000  # 200 MB of uint16 per shard file at most


def unit_bytes_for(total_bytes: int) -> int:
    """Work-unit size from the corpus size alone: ~64 units, each 1-64 MB.

    Small corpora still spread over every core and report progress often; huge ones do not
    drown the file system in tiny shards. 100 MB -> 1.6 MB units; 1 TB -> 64 MB units.
    """
    return int(min(max(total_bytes // 64, 1 << 20), 64 << 20))


def _check_options(
    val_fraction: float, workers: int, shard_tokens: int, errors: str, test_fraction: float = 0.0
) -> None:
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction} must be in [0, 1), e.g. 0.1 for 10 % val.")
    if not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"val_fraction={val_fraction} + test_fraction={test_fraction} leaves no training "
            "data: each must be in [0, 1) and their sum below 1, e.g. 0.05 and 0.1 (the book's "
            "85/10/5 train/test/val split)."
        )
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1.")
    if shard_tokens < 1:
        raise ValueError(f"shard_tokens={shard_tokens} must be >= 1.")
    if errors not in ("strict", "replace", "skip"):
        raise ValueError(f"errors={errors!r} must be one of strict, replace, skip.")


def _disk_full(exc: OSError, side: Path) -> OSError:
    return OSError(
        exc.errno,
        f"no space left on the disk of {side} ({os.strerror(exc.errno or errno.ENOSPC)}). "
        "Free some space and run the same command again: finished units are kept and resume.",
    )


def _named(inputs: Any) -> list[str]:
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs or [])
    return [os.fspath(i) for i in items]


def _input_folders(inputs: Any) -> list[str]:
    return [i for i in _named(inputs) if not is_remote(i) and os.path.isdir(i)]


def prepare(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
    out: str | os.PathLike[str],
    *,
    texts: Iterable[str] | None = None,
    tokenizer: str | os.PathLike[str] | Tokenizer = "gpt2",
    workers: int | None = None,
    val_fraction: float = 0.1,
    split_by: str = "auto",
    special_text: str = "ordinary",
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    text_field: str = "text",
    errors: Errors = "strict",
    seed: int = 0,
    force: bool = False,
    quiet: bool = False,
    backend: str = "auto",
    engine: str = "local",
    ray_address: str | None = None,
    executor: Executor | None = None,
    name_option: Callable[[str, object], str] = python_arg,
    test_fraction: float = 0.0,
    instructions: bool = False,
    template: str | os.PathLike[str] = "alpaca",
    fields: str | dict[str, str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> TokenStore:
    """Tokenize files (or ``texts=``, an iterable of documents) into a token store at ``out``.

    ["a.txt", "b.txt"], "store/" -> store/manifest.json, store/shards/00000.train.000.bin, ...

    ``split_by``: "auto", "documents" or "tail" (see README, "Validation split").
    ``special_text``: "ordinary" encodes a literal <|endoftext|> inside a document as text;
    "allow" makes it the separator ID, as the classic GPTDatasetV1 did.
    ``force=True`` replaces ``out`` only when it is a gptdata store; nothing else is deleted.
    Inputs may be URLs (``"s3://bucket/corpus/"``, ``"s3://bucket/more/*.jsonl.gz"``), read with
    ranged requests; ``storage_options`` are fsspec's (``{"endpoint_url": ...}``), credentials
    come from the cloud's own chain. They stay out of the manifest and the plan.
    ``name_option(name, value)`` writes an option in the closing summary: ``val_fraction=0.1``
    by default; the command line passes one that writes ``--val-fraction 0.1``.
    ``test_fraction``: a third, held-out split ``test`` by the same content hash (a document
    split: ``auto`` means ``documents`` then). The book's 85/10/5 train/test/val split:
    ``test_fraction=0.1, val_fraction=0.05``.
    ``instructions=True``: inputs are instruction data (``template``, ``fields``; see
    ``prepare.instruction_units``); each example is a document with a response mask.
    """
    workers = workers or os.cpu_count() or 1
    _check_options(val_fraction, workers, shard_tokens, errors, test_fraction)
    check_split_by(split_by)
    instruction_spec, split_by = split_setup(
        instructions, template, fields, split_by, errors, test_fraction, texts is not None
    )
    if special_text not in ("ordinary", "allow"):
        raise ValueError(f"special_text={special_text!r} must be 'ordinary' or 'allow'.")
    # On object storage the units run into a local scratch folder; remote_out commits them.
    remote = Location(out, storage_options=storage_options) if is_remote(out) else None
    out = remote_out.scratch_out(remote) if remote is not None else Path(out)
    if (inputs is None) == (texts is None):
        raise ValueError("give either inputs (files, folders, globs) or texts=, not both/neither.")
    if instructions:
        files: list[InputFile] | None = resolve_instruction_inputs(
            inputs, storage_options=storage_options
        )
    else:
        files = (
            # Remote inputs are listed (and signed) in a process of their own: the driver and its
            # workers read through signed URLs and never hold an S3 client (~41 MiB each).
            resolve_inputs(inputs, storage_options=storage_options, separate=True)  # type: ignore[arg-type]
            if texts is None
            else None
        )
    if files is not None and remote is None:
        local = [f.path for f in files if not is_remote(f.path)]  # an object is never in out
        check_overlap(out, local, _input_folders(inputs))
    if remote is None:
        check_out(out, force=force)
    tok = get_tokenizer(tokenizer, backend=backend)
    warm: threading.Thread | None = None
    if engine == "local" and executor is None and hasattr(tok, "prewarm"):
        # Build the encoder (0.25 s, GIL released) while the inputs are listed and planned;
        # forked workers then inherit it. Not a daemon: a Ctrl-C while it builds must let it
        # finish before the interpreter exits, or its native code aborts the process
        # ("FATAL: exception not rethrown", seen in CI).
        warm = threading.Thread(target=tok.prewarm, daemon=False)
        warm.start()
    options = {
        "tokenizer": tok.name,
        "val_fraction": val_fraction,
        "split_by": split_by,
        "special_text": special_text,
        "seed": seed,
        "shard_tokens": shard_tokens,
        "text_field": text_field,
        "errors": errors,
    }
    if test_fraction > 0:  # only then: stores without a test split keep their manifests
        options["test_fraction"] = test_fraction
    if instruction_spec is not None:
        options["instructions"] = instruction_spec

    if files is None:
        total_bytes = None
        inputs_meta: list[dict[str, Any]] = [{"path": "<python iterable>"}]
        # An iterable cannot be compared with the one a killed run saw: never resume from it.
        plan_ident: Any = {"texts": os.urandom(8).hex()}
        units: Iterable[WorkUnit] = chunk_texts(iter(texts))  # type: ignore[arg-type]
    else:
        total_bytes = sum(f.size for f in files)
        if instructions:
            planned = instruction_units(files, storage_options=storage_options)
        else:
            planned = plan_units(
                files, unit_bytes=unit_bytes_for(total_bytes), storage_options=storage_options
            )
        units = planned
        # A file name that is not valid UTF-8 is kept readable (and JSON-safe) in the manifest.
        inputs_meta = [{"path": _printable(f.path), "bytes": f.size} for f in files]
        plan_ident = {
            "units": [[[_printable(p.path), *p[1:]] for p in u.pieces] for u in planned],
            "mtimes": [f.mtime_ns for f in files],
        }
    plan_doc = {
        "format": FORMAT,
        "version": VERSION,
        "fingerprint": tok.fingerprint,
        "options": options,
        "plan": plan_ident,
    }
    plan_id = hashlib.sha256(json.dumps(plan_doc, sort_keys=True).encode()).hexdigest()

    if executor is None:
        if engine == "ray":
            from .ray_engine import RayExecutor

            executor = RayExecutor(workers=workers, address=ray_address, quiet=quiet)
            if remote is not None:  # each task stages its shards: no shared file system needed
                executor.upload_to = remote.with_suffix(".partial")
        elif engine == "local":
            executor = InlineExecutor() if workers == 1 else LocalExecutor(workers)
        else:
            raise ValueError(f"engine={engine!r}: choose 'local' or 'ray'.")

    side = partial_path(out)
    itemsize = dtype_for(tok.vocab_size).itemsize
    # Remote: refuse a bad OUT (no bucket, no credentials, not a store) before any work.
    writer = remote_out.begin(remote, plan_id, force=force) if remote is not None else None
    try:
        lock = claim_side(side, plan_id)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    try:
        with _TermAsInterrupt():
            manifest = committed_manifest(side) if lock.resume else None
            if manifest is not None:  # killed after its commit's rewrite (a bucket: mid-upload)
                if not quiet:
                    print(f"resuming {side}: every unit and the commit are done", file=sys.stderr)
                t0 = time.perf_counter()
                store = finish_commit(
                    out, side, manifest, force=force, plan_id=plan_id, writer=writer
                )
            else:
                done = _load_done(side, itemsize, split_by) if lock.resume else {}
                if lock.resume and not quiet:
                    print(f"resuming {side}: {len(done):,} units already done", file=sys.stderr)
                if warm is not None:
                    warm.join()  # before any fork: no thread may be mid-build when workers fork
                progress = _Progress(total_bytes, quiet)
                for r in done.values():
                    progress.update(r["stats"]["bytes"], r["tokens"])
                results = dict(done)
                fn = _UnitTask(tok, options, str(side), instructions=instructions)
                todo = (u for u in units if u.index not in done)
                t0 = time.perf_counter()
                try:
                    for result in executor.run(fn, todo):
                        results[result["index"]] = result
                        progress.update(result["stats"]["bytes"], result["tokens"])
                finally:
                    progress.close()
                if writer is not None:  # Ray on a cluster: what tasks staged from other nodes
                    remote_out.fetch_missing(writer.partial, side, list(results.values()))
                store = _commit(
                    out,
                    side,
                    tok,
                    options,
                    inputs_meta,
                    [results[i] for i in sorted(results)],
                    force=force,
                    plan_id=plan_id,
                    writer=writer,
                )
    except (InputError, UnicodeError, ValueError, RecursionError) as exc:
        # Bad input: nothing half-written stays behind; fixing the input means a new plan anyway.
        discard_side(lock)
        if writer is not None:
            writer.discard()
        if isinstance(exc, RecursionError):
            raise InputError(f"input nested too deeply to read ({exc}).") from None
        raise
    except OSError as exc:
        lock.release()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(exc, side) from None
        raise
    finally:
        lock.release()
        if writer is not None:  # after a failure the staged shards stay: a rerun reuses them
            writer.abort()
    if remote is not None:  # the store is the bucket's now: the local copy goes
        store = remote_out.finish(remote)
    if not quiet:
        _summary(remote.url if remote else out, store, time.perf_counter() - t0, name_option)
    return store


def _printable(path: str) -> str:
    """A path as text that always encodes: undecodable bytes of a file name as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
