"""``gptdata prepare``: corpus in, token store out, as plan -> execute -> commit.

* plan: the sorted inputs are cut into work units (``sources.plan_units``); the cut depends on the
  inputs alone, never on ``workers``, so the store is byte-identical for any worker count.
* execute: each unit is tokenized into its own shard files in the side folder ``OUT.partial/``,
  written as ``*.tmp`` and renamed, then a small JSON marker records the unit as done. Executors
  are pluggable (``local`` processes here; ``ray`` in ``gptdata._ray``) and run the same function.
* commit: only the driver writes ``manifest.json``, last, and renames the side folder to ``OUT``.
  A killed run leaves no complete-looking store; the same command resumes from the done units.

Memory stays flat: a unit streams documents in batches of about 1 MB and writes as it goes.

    >>> store = prepare(["corpus/"], "store/", val_fraction=0.1)
    >>> store.split("train")
    Split('train', tokens=..., documents=..., shards=...)
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .sources import (
    Errors,
    InputError,
    ReadStats,
    WorkUnit,
    chunk_texts,
    plan_units,
    read_documents,
    resolve_inputs,
)
from .store import (
    FORMAT,
    MANIFEST,
    VERSION,
    TokenStore,
    dtype_for,
    store_id_for,
    write_json_atomic,
)
from .tokenizers import Tokenizer, get_tokenizer

DEFAULT_SHARD_TOKENS = 100_000_000  # 200 MB of uint16 per shard file at most
BATCH_CHARS = 1 << 20  # tokenize ~1 MB of text at a time: bounded memory, little call overhead


def unit_bytes_for(total_bytes: int) -> int:
    """Work-unit size from the corpus size alone: ~64 units, each 1-64 MB.

    Small corpora still spread over every core and report progress often; huge ones do not
    drown the file system in tiny shards. 100 MB -> 1.6 MB units; 1 TB -> 64 MB units.
    """
    return int(min(max(total_bytes // 64, 1 << 20), 64 << 20))


def split_of(text: str, val_fraction: float, seed: int) -> str:
    """'train' or 'val' from a seeded hash of the content, so adding data never moves a document."""
    if val_fraction <= 0:
        return "train"
    # SHA-256 runs at ~1.8 GB/s here (CPU instructions), twice BLAKE2b: it is on the hot path.
    h = hashlib.sha256(f"gptdata-split:{seed}:".encode())
    h.update(text.encode("utf-8", "surrogatepass"))
    return "val" if int.from_bytes(h.digest()[:8], "little") < val_fraction * 2.0**64 else "train"


class _PartWriter:
    """Writes one split of one unit into shard parts of at most ``shard_tokens`` tokens."""

    def __init__(
        self, folder: Path, stem: str, dtype: np.dtype, eot_id: int | None, shard_tokens: int
    ) -> None:
        self.folder, self.stem, self.dtype, self.shard_tokens = folder, stem, dtype, shard_tokens
        self.sep = np.array([eot_id if eot_id is not None else 0], dtype=dtype).tobytes()
        self.parts: list[dict[str, Any]] = []
        self._fh: Any = None

    def _open(self) -> None:
        name = f"{self.stem}.{len(self.parts):03d}"
        self._name = name
        self._fh = open(self.folder / f"{name}.bin.tmp", "wb")  # noqa: SIM115 - closed in _close
        self._hash = hashlib.sha256()
        self._tokens = 0
        self._ends: list[int] = []

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._hash.update(data)

    def add(self, ids: np.ndarray) -> None:
        n = len(ids)
        if self._fh is not None and self._tokens + 1 + n > self.shard_tokens:
            self._close()
        if self._fh is None:
            self._open()
        if self._tokens:
            self._write(self.sep)
            self._tokens += 1
        self._write(ids.tobytes())
        self._tokens += n
        self._ends.append(self._tokens)

    def _close(self) -> None:
        self._fh.close()
        index = np.array(self._ends, dtype="<u8").tobytes()
        (self.folder / f"{self._name}.idx.tmp").write_bytes(index)
        for ext in ("bin", "idx"):
            os.replace(self.folder / f"{self._name}.{ext}.tmp", self.folder / f"{self._name}.{ext}")
        self.parts.append(
            {
                "file": f"shards/{self._name}.bin",
                "index": f"shards/{self._name}.idx",
                "tokens": self._tokens,
                "documents": len(self._ends),
                "sha256": self._hash.hexdigest(),
                "index_sha256": hashlib.sha256(index).hexdigest(),
            }
        )
        self._fh = None

    def finish(self) -> list[dict[str, Any]]:
        if self._fh is not None:
            self._close()
        return self.parts


def tokenize_unit(
    unit: WorkUnit, tokenizer: Tokenizer, options: dict[str, Any], side: str
) -> dict[str, Any]:
    """Tokenize one work unit into its shard files and return (and record) its metadata.

    Runs in a worker process (or Ray task); everything it needs travels in the arguments.
    """
    if delay := os.environ.get("GPTDATA_TEST_UNIT_DELAY"):
        time.sleep(float(delay))  # lets the kill-and-resume test land its kill mid-run
    folder = Path(side) / "shards"
    dtype = dtype_for(tokenizer.vocab_size)
    vocab_size = tokenizer.vocab_size
    writers = {
        s: _PartWriter(
            folder, f"{unit.index:05d}.{s}", dtype, tokenizer.eot_id, options["shard_tokens"]
        )
        for s in ("train", "val")
    }
    stats = ReadStats()
    tokens = 0

    # GPT-2 hands back numpy arrays directly (fastokens: no Python int per token).
    encode_arrays = getattr(tokenizer, "encode_arrays", None)

    def flush(batch: list[str]) -> None:
        nonlocal tokens
        encoded = encode_arrays(batch) if encode_arrays else map(tokenizer.encode, batch)
        for text, ids in zip(batch, encoded, strict=True):
            arr = np.asarray(ids)
            if arr.size and (arr.max() >= vocab_size or (arr.dtype.kind == "i" and arr.min() < 0)):
                bad = int(arr.max() if arr.max() >= vocab_size else arr.min())
                raise ValueError(
                    f"tokenizer {tokenizer.name} produced ID {bad}, outside "
                    f"0..{vocab_size - 1}; refusing to write a wrapped-around store."
                )
            tokens += arr.size
            writers[split_of(text, options["val_fraction"], options["seed"])].add(arr.astype(dtype))

    batch: list[str] = []
    size = 0
    for text in read_documents(
        unit, text_field=options["text_field"], errors=options["errors"], stats=stats
    ):
        batch.append(text)
        size += len(text)
        if size >= BATCH_CHARS:
            flush(batch)
            batch, size = [], 0
    flush(batch)
    result = {
        "index": unit.index,
        "tokens": tokens,
        "stats": asdict(stats),
        "parts": {s: w.finish() for s, w in writers.items()},
    }
    write_json_atomic(Path(side) / "units" / f"{unit.index:05d}.json", result)
    return result


class Executor(Protocol):
    """Runs ``fn(unit)`` for each unit and yields results as they complete (any order)."""

    def run(
        self, fn: Callable[[WorkUnit], dict[str, Any]], units: Iterable[WorkUnit]
    ) -> Iterator[dict[str, Any]]: ...


class InlineExecutor:
    """One process, in order: what --workers 1 uses, and the easiest to debug."""

    def run(
        self, fn: Callable[[WorkUnit], dict[str, Any]], units: Iterable[WorkUnit]
    ) -> Iterator[dict[str, Any]]:
        for unit in units:
            yield fn(unit)


def _limit_threads(threads: int) -> None:
    """Worker start-up: give each worker its share of the cores, so that workers x the fast
    tokenizer's own threads never oversubscribe the machine (Rayon reads this at first use)."""
    os.environ["RAYON_NUM_THREADS"] = str(threads)


class LocalExecutor:
    """A pool of worker processes on this machine, at most 2 x workers units in flight."""

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def run(
        self, fn: Callable[[WorkUnit], dict[str, Any]], units: Iterable[WorkUnit]
    ) -> Iterator[dict[str, Any]]:
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        threads = max(1, (os.cpu_count() or 1) // self.workers)
        if multiprocessing.get_start_method() == "fork" and hasattr(fn, "prewarm"):
            fn.prewarm()  # forked workers inherit the built tokenizer (saves ~0.3 s each)
        pool = ProcessPoolExecutor(
            max_workers=self.workers, initializer=_limit_threads, initargs=(threads,)
        )
        pending: set[Any] = set()
        it = iter(units)
        try:
            while True:
                while len(pending) < 2 * self.workers and (unit := next(it, None)) is not None:
                    pending.add(pool.submit(fn, unit))
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


class _Progress:
    """One status line on stderr: percent, tokens, MB/s, tokens/s, ETA."""

    def __init__(self, total_bytes: int | None, quiet: bool) -> None:
        self.total, self.quiet = total_bytes, quiet
        self.t0 = self.last = time.perf_counter()
        self.bytes = self.tokens = 0
        self.tty = sys.stderr.isatty()

    def update(self, nbytes: int, ntokens: int) -> None:
        self.bytes += nbytes
        self.tokens += ntokens
        now = time.perf_counter()
        if self.quiet or now - self.last < (0.5 if self.tty else 5.0):
            return
        self.last = now
        self._print(now, end="\r" if self.tty else "\n")

    def _print(self, now: float, end: str) -> None:
        dt = max(now - self.t0, 1e-9)
        mbps, tps = self.bytes / dt / 1e6, self.tokens / dt
        line = f"prepare  {self.tokens:,} tokens  {mbps:,.1f} MB/s  {tps:,.0f} tokens/s"
        if self.total:
            frac = min(self.bytes / self.total, 1.0)
            eta = (dt / frac - dt) if frac > 0 else 0.0
            line = (
                f"prepare  {frac:6.1%}  " + line[9:] + f"  ETA {int(eta) // 60}:{int(eta) % 60:02d}"
            )
        print(line.ljust(79), end=end, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty and not self.quiet:
            print(" " * 79, end="\r", file=sys.stderr, flush=True)


def _check_options(val_fraction: float, workers: int, shard_tokens: int, errors: str) -> None:
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction} must be in [0, 1), e.g. 0.1 for 10 % val.")
    if workers < 1:
        raise ValueError(f"workers={workers} must be >= 1.")
    if shard_tokens < 1:
        raise ValueError(f"shard_tokens={shard_tokens} must be >= 1.")
    if errors not in ("strict", "replace", "skip"):
        raise ValueError(f"errors={errors!r} must be one of strict, replace, skip.")


def _resume_ok(side: Path, result: dict[str, Any], itemsize: int) -> bool:
    """A recorded unit counts as done only if all its shard files are there at full size."""
    for parts in result["parts"].values():
        for p in parts:
            data, index = side / p["file"], side / p["index"]
            if not data.is_file() or data.stat().st_size != p["tokens"] * itemsize:
                return False
            if not index.is_file() or index.stat().st_size != p["documents"] * 8:
                return False
    return True


def prepare(
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
    out: str | os.PathLike[str],
    *,
    texts: Iterable[str] | None = None,
    tokenizer: str | os.PathLike[str] | Tokenizer = "gpt2",
    workers: int | None = None,
    val_fraction: float = 0.1,
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
) -> TokenStore:
    """Tokenize files (or ``texts=``, an iterable of documents) into a token store at ``out``.

    ["a.txt", "b.txt"], "store/" -> store/manifest.json, store/shards/00000.train.000.bin, ...
    """
    workers = workers or os.cpu_count() or 1
    _check_options(val_fraction, workers, shard_tokens, errors)
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} already exists. Pass --force to replace it, or choose -o.")
    if (inputs is None) == (texts is None):
        raise ValueError("give either inputs (files, folders, globs) or texts=, not both/neither.")
    tok = get_tokenizer(tokenizer, backend=backend)
    warm: threading.Thread | None = None
    if engine == "local" and executor is None and hasattr(tok, "prewarm"):
        # Build the encoder (0.25 s, GIL released) while the inputs are listed and planned;
        # forked workers then inherit it.
        warm = threading.Thread(target=tok.prewarm, daemon=True)
        warm.start()
    options = {
        "tokenizer": tok.name,
        "val_fraction": val_fraction,
        "seed": seed,
        "shard_tokens": shard_tokens,
        "text_field": text_field,
        "errors": errors,
    }

    if texts is not None:
        total_bytes = None
        inputs_meta: list[dict[str, Any]] = [{"path": "<python iterable>"}]
        # An iterable cannot be compared with the one a killed run saw: never resume from it.
        plan_ident: Any = {"texts": os.urandom(8).hex()}
        units: Iterable[WorkUnit] = chunk_texts(iter(texts))
    else:
        files = resolve_inputs(inputs)  # type: ignore[arg-type]
        total_bytes = sum(f.size for f in files)
        planned = plan_units(files, unit_bytes=unit_bytes_for(total_bytes))
        units = planned
        inputs_meta = [{"path": f.path, "bytes": f.size} for f in files]
        plan_ident = {
            "units": [[list(p) for p in u.pieces] for u in planned],
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
            from ._ray import RayExecutor

            executor = RayExecutor(workers=workers, address=ray_address, quiet=quiet)
        elif engine == "local":
            executor = InlineExecutor() if workers == 1 else LocalExecutor(workers)
        else:
            raise ValueError(f"engine={engine!r}: choose 'local' or 'ray'.")

    side = Path(str(out) + ".partial")
    done: dict[int, dict[str, Any]] = {}
    plan_file = side / "plan.json"
    if side.exists():
        try:
            same = json.loads(plan_file.read_text())["id"] == plan_id
        except (OSError, ValueError, KeyError):
            same = False
        if not same:
            shutil.rmtree(side)
        else:
            for marker in sorted((side / "units").glob("*.json")):
                result = json.loads(marker.read_text())
                if _resume_ok(side, result, dtype_for(tok.vocab_size).itemsize):
                    done[result["index"]] = result
            if not quiet:
                print(f"resuming {side}: {len(done):,} units already done", file=sys.stderr)
    (side / "shards").mkdir(parents=True, exist_ok=True)
    (side / "units").mkdir(exist_ok=True)
    write_json_atomic(plan_file, {"id": plan_id})

    if warm is not None:
        warm.join()  # before any fork: no thread may be mid-build when workers are forked
    progress = _Progress(total_bytes, quiet)
    for r in done.values():
        progress.update(r["stats"]["bytes"], r["tokens"])
    results = dict(done)
    fn = _UnitTask(tok, options, str(side))
    todo = (u for u in units if u.index not in done)
    t0 = time.perf_counter()
    try:
        for result in executor.run(fn, todo):
            results[result["index"]] = result
            progress.update(result["stats"]["bytes"], result["tokens"])
    except (InputError, UnicodeError, ValueError):
        # Bad input: nothing half-written stays behind; fixing the input means a new plan anyway.
        shutil.rmtree(side, ignore_errors=True)
        raise
    finally:
        progress.close()
    store = _commit(
        out, side, tok, options, inputs_meta, [results[i] for i in sorted(results)], force=force
    )
    if not quiet:
        secs = time.perf_counter() - t0
        n_tok, n_docs = store.n_tokens, store.n_documents  # one definition: see README.md
        print(
            f"prepared {out}: {n_docs:,} documents, {n_tok:,} tokens in {secs:,.1f} s "
            f"({n_tok / max(secs, 1e-9):,.0f} tokens/s)",
            file=sys.stderr,
        )
    return store


class _UnitTask:
    """Picklable ``fn(unit)`` for executors: the tokenizer and options travel with it."""

    def __init__(self, tokenizer: Tokenizer, options: dict[str, Any], side: str) -> None:
        self.tokenizer, self.options, self.side = tokenizer, options, side

    def __call__(self, unit: WorkUnit) -> dict[str, Any]:
        return tokenize_unit(unit, self.tokenizer, self.options, self.side)

    def prewarm(self) -> None:
        if hasattr(self.tokenizer, "prewarm"):
            self.tokenizer.prewarm()


def _tail_split(
    side: Path, part: dict[str, Any], dtype: np.dtype, val_fraction: float, stem: str
) -> dict[str, list[dict[str, Any]]]:
    """One document only: train keeps the head, val the last ``val_fraction`` of its tokens."""
    tokens = np.fromfile(side / part["file"], dtype=dtype)
    n_val = int(len(tokens) * val_fraction)
    if n_val == 0 or n_val == len(tokens):
        return {"train": [part], "val": []}
    out: dict[str, list[dict[str, Any]]] = {}
    for split, chunk in (("train", tokens[:-n_val]), ("val", tokens[-n_val:])):
        name = f"{stem}.{split}.tail"
        data = chunk.tobytes()
        index = np.array([len(chunk)], dtype="<u8").tobytes()
        (side / "shards" / f"{name}.bin").write_bytes(data)
        (side / "shards" / f"{name}.idx").write_bytes(index)
        out[split] = [
            {
                "file": f"shards/{name}.bin",
                "index": f"shards/{name}.idx",
                "tokens": len(chunk),
                "documents": 1,
                "sha256": hashlib.sha256(data).hexdigest(),
                "index_sha256": hashlib.sha256(index).hexdigest(),
            }
        ]
    return out


def _commit(
    out: Path,
    side: Path,
    tok: Tokenizer,
    options: dict[str, Any],
    inputs_meta: list[dict[str, Any]],
    results: list[dict[str, Any]],
    *,
    force: bool,
) -> TokenStore:
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "val": []}
    for r in results:
        for s in splits:
            splits[s] += r["parts"][s]
    stats: dict[str, int] = {}
    for r in results:
        for k, v in r["stats"].items():
            if k != "bytes":
                stats[k] = stats.get(k, 0) + v
    n_docs = sum(p["documents"] for parts in splits.values() for p in parts)
    stats.setdefault("documents", n_docs)  # input documents: a tail split cuts one in two
    if n_docs == 0:
        shutil.rmtree(side, ignore_errors=True)
        skipped = ", ".join(f"{v:,} {k}" for k, v in stats.items() if v) or "nothing"
        raise InputError(
            f"empty corpus: no non-empty documents in the inputs (skipped: {skipped}). "
            "Check the paths and --text-field."
        )
    if tok.eot_id is None and any(
        len(p) > 1 or (p and p[0]["documents"] > 1) for p in splits.values()
    ):
        shutil.rmtree(side, ignore_errors=True)
        raise ValueError(
            f"tokenizer {tok.name} has no <|endoftext|> token to put between "
            "documents. Add it to the tokenizer's vocabulary."
        )
    obsolete: list[dict[str, Any]] = []
    if n_docs == 1 and options["val_fraction"] > 0:
        part = (splits["train"] or splits["val"])[0]
        stem = Path(part["file"]).name.split(".")[0]
        splits = _tail_split(side, part, dtype_for(tok.vocab_size), options["val_fraction"], stem)
        if all(part not in parts for parts in splits.values()):
            obsolete.append(part)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "tokenizer": {
            "name": tok.name,
            "fingerprint": tok.fingerprint,
            "vocab_size": tok.vocab_size,
            "eot_id": tok.eot_id,
        },
        "dtype": dtype_for(tok.vocab_size).name,
        "splits": {
            name: {
                "tokens": sum(p["tokens"] for p in parts) + max(len(parts) - 1, 0),
                "documents": sum(p["documents"] for p in parts),
                "shards": parts,
            }
            for name, parts in splits.items()
        },
        "options": options,
        "inputs": inputs_meta,
        "stats": stats,
    }
    manifest["store_id"] = store_id_for(manifest)  # readers notice a replaced store
    write_json_atomic(side / MANIFEST, manifest)
    for p in obsolete:
        for key in ("file", "index"):
            (side / p[key]).unlink(missing_ok=True)
    shutil.rmtree(side / "units")
    (side / "plan.json").unlink()
    if out.exists():  # only reached with force=True
        trash = Path(str(out) + ".old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(out, trash)
        os.replace(side, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(side, out)
    return TokenStore.open(out)
