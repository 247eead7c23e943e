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

import errno
import hashlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ._sidefolders import (
    check_out,
    check_overlap,
    claim_side,
    discard_side,
    partial_path,
    swap_in,
)
from ._splits import check_split_by, choose_split, split_of, tail_tokens
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
    write_json_atomic,
)
from .tokenizers import ENDOFTEXT, Tokenizer, get_tokenizer

DEFAULT_SHARD_TOKENS = 100_000_000  # 200 MB of uint16 per shard file at most
BATCH_CHARS = 1 << 20  # tokenize ~1 MB of text at a time: bounded memory, little call overhead


def unit_bytes_for(total_bytes: int) -> int:
    """Work-unit size from the corpus size alone: ~64 units, each 1-64 MB.

    Small corpora still spread over every core and report progress often; huge ones do not
    drown the file system in tiny shards. 100 MB -> 1.6 MB units; 1 TB -> 64 MB units.
    """
    return int(min(max(total_bytes // 64, 1 << 20), 64 << 20))


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


def _add_tail(writers: dict[str, _PartWriter], ids: np.ndarray, options: dict[str, Any]) -> None:
    """Split by tail: the document's head to train, its last ~val_fraction tokens to val."""
    k = min(tail_tokens(ids, options["val_fraction"], options["seed"]), len(ids))
    if k < len(ids):
        writers["train"].add(ids[: len(ids) - k])
    if k:
        writers["val"].add(ids[len(ids) - k :])


def _encode_batch(
    tokenizer: Tokenizer, batch: list[str], special_text: str, stats: ReadStats
) -> list[Any]:
    """Token IDs per document; a literal <|endoftext|> is ordinary text unless 'allow'ed.

    The bulk path stays as it was: only documents that contain the literal (a substring search,
    C speed) are encoded again one by one with ``special="text"``.
    """
    encode_arrays = getattr(tokenizer, "encode_arrays", None)
    hits = [i for i, text in enumerate(batch) if ENDOFTEXT in text]
    stats.special_text += len(hits)
    if special_text == "allow" or not hits:
        # GPT-2 hands back numpy arrays directly (fastokens: no Python int per token).
        return list(encode_arrays(batch) if encode_arrays else map(tokenizer.encode, batch))
    plain = list(batch)
    for i in hits:
        plain[i] = ""
    encoded = list(encode_arrays(plain) if encode_arrays else map(tokenizer.encode, plain))
    for i in hits:
        ids = np.asarray(tokenizer.encode(batch[i], special="text"))
        if tokenizer.eot_id is not None and (ids == tokenizer.eot_id).any():
            raise ValueError(
                f"tokenizer {tokenizer.name} turns the literal {ENDOFTEXT} inside a document "
                "into its special token and cannot encode it as text. Pass "
                "special_text='allow' to keep it as a separator, or remove it from the text."
            )
        encoded[i] = ids
    return encoded


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
    tokens = sum_sq = documents = 0
    by_tail = options["split_by"] == "tail" and options["val_fraction"] > 0
    order: list[bool] = []  # auto: each document's split, so a later tail split keeps the order

    def flush(batch: list[str]) -> None:
        nonlocal tokens, sum_sq, documents
        encoded = _encode_batch(tokenizer, batch, options["special_text"], stats)
        for text, ids in zip(batch, encoded, strict=True):
            arr = np.asarray(ids)
            if arr.size and (arr.max() >= vocab_size or (arr.dtype.kind == "i" and arr.min() < 0)):
                bad = int(arr.max() if arr.max() >= vocab_size else arr.min())
                raise ValueError(
                    f"tokenizer {tokenizer.name} produced ID {bad}, outside "
                    f"0..{vocab_size - 1}; refusing to write a wrapped-around store."
                )
            tokens += arr.size
            sum_sq += arr.size * arr.size
            documents += 1
            if by_tail:
                _add_tail(writers, arr.astype(dtype), options)
                continue
            split = split_of(text, options["val_fraction"], options["seed"])
            order.append(split == "val")
            writers[split].add(arr.astype(dtype))

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
    units = Path(side) / "units"
    if order:
        bits = np.packbits(np.array(order, dtype=bool)).tobytes()
        (units / f"{unit.index:05d}.order.tmp").write_bytes(bits)
        os.replace(units / f"{unit.index:05d}.order.tmp", units / f"{unit.index:05d}.order")
    result = {
        "index": unit.index,
        "tokens": tokens,
        "sum_sq": sum_sq,
        # input documents: a tail split puts one document in both splits
        "stats": {**asdict(stats), "documents": documents},
        "parts": {s: w.finish() for s, w in writers.items()},
    }
    write_json_atomic(units / f"{unit.index:05d}.json", result)
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


def _driver_gone(pid: int) -> bool:
    """Whether the driver ``pid`` has exited (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def _watch_driver(pid: int) -> None:
    while not _driver_gone(pid):
        time.sleep(0.5)
    os._exit(1)


def _worker_init(threads: int, driver: int) -> None:
    """A worker must never outlive its driver, nor print a traceback on Ctrl-C.

    Ctrl-C reaches the whole process group: workers ignore it and the driver stops them. A
    driver killed with SIGKILL cannot stop them: on Linux the kernel sends them SIGKILL
    (PR_SET_PDEATHSIG); everywhere a daemon thread polls the driver twice a second.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != driver and _driver_gone(driver):
        os._exit(1)  # the driver died before the prctl above took effect
    threading.Thread(target=_watch_driver, args=(driver,), daemon=True).start()
    _limit_threads(threads)


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
            max_workers=self.workers, initializer=_worker_init, initargs=(threads, os.getpid())
        )
        pending: set[Any] = set()
        it = iter(units)
        finished = False
        try:
            while True:
                while len(pending) < 2 * self.workers and (unit := next(it, None)) is not None:
                    if not pool._processes:  # noqa: SLF001 - the first submit starts the workers
                        # Signals wait until the workers have started: Ctrl-C in that window
                        # must not hit a half-started worker (a traceback), only the driver.
                        old = signal.pthread_sigmask(
                            signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM}
                        )
                        try:
                            pending.add(pool.submit(fn, unit))
                        finally:
                            signal.pthread_sigmask(signal.SIG_SETMASK, old)
                    else:
                        pending.add(pool.submit(fn, unit))
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
            finished = True
        finally:
            for future in pending:
                future.cancel()
            if not finished:  # an error or an interrupt: stop the units in flight now
                for proc in list(pool._processes.values()):  # noqa: SLF001
                    proc.terminate()
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


def _resume_ok(side: Path, result: Any, itemsize: int, split_by: str) -> bool:
    """A recorded unit counts as done only if all its shard files are there at full size."""
    if not isinstance(result, dict) or not isinstance(result.get("index"), int):
        return False
    order = side / "units" / f"{result['index']:05d}.order"
    if split_by == "auto" and not order.is_file() and result["tokens"]:
        return False
    for parts in result["parts"].values():
        for p in parts:
            data, index = side / p["file"], side / p["index"]
            if not data.is_file() or data.stat().st_size != p["tokens"] * itemsize:
                return False
            if not index.is_file() or index.stat().st_size != p["documents"] * 8:
                return False
    return True


def _load_done(side: Path, itemsize: int, split_by: str) -> dict[int, dict[str, Any]]:
    """The units a killed run finished; a marker that does not parse means 'not done'."""
    done: dict[int, dict[str, Any]] = {}
    for marker in sorted((side / "units").glob("*.json")):
        try:
            result = json.loads(marker.read_bytes())
            if _resume_ok(side, result, itemsize, split_by):
                done[result["index"]] = result
                continue
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            pass
        marker.unlink(missing_ok=True)  # redo the unit
    return done


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C: the run stops, the side folder stays, the command resumes."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _TermAsInterrupt:
    """While ``prepare`` runs in the main thread, SIGTERM raises ``Interrupted`` (like Ctrl-C)."""

    def __enter__(self) -> None:
        self.installed = threading.current_thread() is threading.main_thread()
        if self.installed:
            self.old = signal.signal(signal.SIGTERM, self._raise)

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    def __exit__(self, *exc: object) -> None:
        if self.installed:  # None: a handler set outside Python; the default is the closest
            signal.signal(signal.SIGTERM, self.old if self.old is not None else signal.SIG_DFL)


def _disk_full(exc: OSError, side: Path) -> OSError:
    return OSError(
        exc.errno,
        f"no space left on the disk of {side} ({os.strerror(exc.errno or errno.ENOSPC)}). "
        "Free some space and run the same command again: finished units are kept and resume.",
    )


def _input_folders(inputs: Any) -> list[str]:
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs or [])
    return [os.fspath(i) for i in items if os.path.isdir(i)]


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
) -> TokenStore:
    """Tokenize files (or ``texts=``, an iterable of documents) into a token store at ``out``.

    ["a.txt", "b.txt"], "store/" -> store/manifest.json, store/shards/00000.train.000.bin, ...

    ``split_by``: "auto", "documents" or "tail" (see README, "Validation split").
    ``special_text``: "ordinary" encodes a literal <|endoftext|> inside a document as text;
    "allow" makes it the separator ID, as the classic GPTDatasetV1 did.
    ``force=True`` replaces ``out`` only when it is a gptdata store; nothing else is deleted.
    """
    workers = workers or os.cpu_count() or 1
    _check_options(val_fraction, workers, shard_tokens, errors)
    check_split_by(split_by)
    if special_text not in ("ordinary", "allow"):
        raise ValueError(f"special_text={special_text!r} must be 'ordinary' or 'allow'.")
    out = Path(out)
    if (inputs is None) == (texts is None):
        raise ValueError("give either inputs (files, folders, globs) or texts=, not both/neither.")
    files = None if texts is not None else resolve_inputs(inputs)  # type: ignore[arg-type]
    if files is not None:
        check_overlap(out, [f.path for f in files], _input_folders(inputs))
    check_out(out, force=force)
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
        "split_by": split_by,
        "special_text": special_text,
        "seed": seed,
        "shard_tokens": shard_tokens,
        "text_field": text_field,
        "errors": errors,
    }

    if files is None:
        total_bytes = None
        inputs_meta: list[dict[str, Any]] = [{"path": "<python iterable>"}]
        # An iterable cannot be compared with the one a killed run saw: never resume from it.
        plan_ident: Any = {"texts": os.urandom(8).hex()}
        units: Iterable[WorkUnit] = chunk_texts(iter(texts))  # type: ignore[arg-type]
    else:
        total_bytes = sum(f.size for f in files)
        planned = plan_units(files, unit_bytes=unit_bytes_for(total_bytes))
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
            from ._ray import RayExecutor

            executor = RayExecutor(workers=workers, address=ray_address, quiet=quiet)
        elif engine == "local":
            executor = InlineExecutor() if workers == 1 else LocalExecutor(workers)
        else:
            raise ValueError(f"engine={engine!r}: choose 'local' or 'ray'.")

    side = partial_path(out)
    itemsize = dtype_for(tok.vocab_size).itemsize
    lock = claim_side(side, plan_id)
    try:
        with _TermAsInterrupt():
            done = _load_done(side, itemsize, split_by) if lock.resume else {}
            if lock.resume and not quiet:
                print(f"resuming {side}: {len(done):,} units already done", file=sys.stderr)
            if warm is not None:
                warm.join()  # before any fork: no thread may be mid-build when workers fork
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
            finally:
                progress.close()
            store = _commit(
                out,
                side,
                tok,
                options,
                inputs_meta,
                [results[i] for i in sorted(results)],
                force=force,
                plan_id=plan_id,
            )
    except (InputError, UnicodeError, ValueError, RecursionError) as exc:
        # Bad input: nothing half-written stays behind; fixing the input means a new plan anyway.
        discard_side(lock)
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
    if not quiet:
        _summary(out, store, results, time.perf_counter() - t0)
    return store


def _printable(path: str) -> str:
    """A path as text that always encodes: undecodable bytes of a file name as \\xNN escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _summary(out: Path, store: TokenStore, results: dict[int, dict[str, Any]], secs: float) -> None:
    """The closing lines on stderr: counts, speed, realized val share, special-text documents."""
    n_tok = sum(r["tokens"] for r in results.values())
    opts = store.manifest["options"]
    stats = store.manifest.get("stats", {})
    n_docs = stats.get("documents", sum(store.split(s).n_documents for s in store.splits))
    print(
        f"prepared {out}: {n_docs:,} documents, {n_tok:,} tokens in {secs:,.1f} s "
        f"({n_tok / max(secs, 1e-9):,.0f} tokens/s)",
        file=sys.stderr,
    )
    f = opts["val_fraction"]
    total = sum(len(store.split(s)) for s in store.splits)
    if f > 0 and total:
        share = len(store.split("val")) / total
        print(
            f"split by {opts['split_by']}: train {1 - share:.1%}, val {share:.1%} of tokens "
            f"(asked val_fraction={f})",
            file=sys.stderr,
        )
        if abs(share - f) > f / 2:
            print(
                f"warning: the val share {share:.1%} is off by more than half of "
                f"val_fraction={f}; split_by='tail' gives a share close to it for any corpus.",
                file=sys.stderr,
            )
    if stats.get("special_text"):
        how = "the separator ID" if opts["special_text"] == "allow" else "ordinary text"
        print(
            f"{stats['special_text']:,} documents contain a literal {ENDOFTEXT}, encoded as {how}"
            f" (special_text={opts['special_text']!r}).",
            file=sys.stderr,
        )


class _UnitTask:
    """Picklable ``fn(unit)`` for executors: the tokenizer and options travel with it."""

    def __init__(self, tokenizer: Tokenizer, options: dict[str, Any], side: str) -> None:
        self.tokenizer, self.options, self.side = tokenizer, options, side

    def __call__(self, unit: WorkUnit) -> dict[str, Any]:
        return tokenize_unit(unit, self.tokenizer, self.options, self.side)

    def prewarm(self) -> None:
        if hasattr(self.tokenizer, "prewarm"):
            self.tokenizer.prewarm()


def _docs(side: Path, parts: list[dict[str, Any]], dtype: np.dtype) -> Iterator[np.ndarray]:
    """The documents of a unit's parts of one split, in order."""
    for part in parts:
        tokens = np.fromfile(side / part["file"], dtype=dtype)
        start = 0
        for end in np.fromfile(side / part["index"], dtype="<u8").tolist():
            yield tokens[start:end]
            start = end + 1  # skip the separator


def _retail(
    side: Path, results: list[dict[str, Any]], tok: Tokenizer, options: dict[str, Any]
) -> None:
    """Rewrite a document split as a tail split, in document order, unit by unit.

    The parts come out byte-identical to what ``split_by="tail"`` writes directly. A unit's marker
    goes first, so a kill here means that unit is tokenized again, never mixed.
    """
    dtype = dtype_for(tok.vocab_size)
    scratch = side / "retail"
    scratch.mkdir(exist_ok=True)
    for r in results:
        stem = f"{r['index']:05d}"
        (side / "units" / f"{stem}.json").unlink(missing_ok=True)
        bits = np.fromfile(side / "units" / f"{stem}.order", dtype=np.uint8)
        order = np.unpackbits(bits)[: sum(p["documents"] for ps in r["parts"].values() for p in ps)]
        streams = {s: _docs(side, r["parts"][s], dtype) for s in ("train", "val")}
        writers = {
            s: _PartWriter(scratch, f"{stem}.{s}", dtype, tok.eot_id, options["shard_tokens"])
            for s in ("train", "val")
        }
        for to_val in order.tolist():
            _add_tail(writers, next(streams["val" if to_val else "train"]), options)
        r["parts"] = {s: w.finish() for s, w in writers.items()}
        for entry in os.scandir(side / "shards"):
            if entry.name.startswith(stem + "."):
                os.unlink(entry.path)
        for entry in os.scandir(scratch):
            os.replace(entry.path, side / "shards" / entry.name)
    scratch.rmdir()


def _commit(
    out: Path,
    side: Path,
    tok: Tokenizer,
    options: dict[str, Any],
    inputs_meta: list[dict[str, Any]],
    results: list[dict[str, Any]],
    *,
    force: bool,
    plan_id: str,
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
    if n_docs == 0:
        skipped = ", ".join(f"{v:,} {k}" for k, v in stats.items() if v) or "nothing"
        raise InputError(
            f"empty corpus: no non-empty documents in the inputs (skipped: {skipped}). "
            "Check the paths and text_field=."
        )
    if tok.eot_id is None and any(
        len(p) > 1 or (p and p[0]["documents"] > 1) for p in splits.values()
    ):
        raise ValueError(
            f"tokenizer {tok.name} has no <|endoftext|> token to put between "
            "documents. Add it to the tokenizer's vocabulary."
        )
    options = dict(options)
    if options["split_by"] == "auto":
        tokens = sum(r["tokens"] for r in results)
        val_tokens = sum(p["tokens"] - p["documents"] + 1 for p in splits["val"])
        sum_sq = sum(r.get("sum_sq", 0) for r in results)
        options["split_by"] = choose_split(
            "auto", options["val_fraction"], tokens, sum_sq, val_tokens
        )
        if options["split_by"] == "tail":
            _retail(side, results, tok, options)
            splits = {s: [p for r in results for p in r["parts"][s]] for s in ("train", "val")}
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
    write_json_atomic(side / MANIFEST, manifest)
    swap_in(side, out, force=force, plan_id=plan_id)
    return TokenStore.open(out)
