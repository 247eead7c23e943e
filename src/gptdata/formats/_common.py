"""What every format shares: the side-folder output, progress, and streaming a split's bytes.

Output safety (export): everything is written into ``OUT.exporting/`` beside ``OUT``, which
carries a marker file ``gptdata-export.json`` from its first moment; the marker is rewritten with
``"complete": true`` and the list of files at the end, and only then is the folder renamed to
``OUT``. A killed export therefore leaves no ``OUT`` that looks complete. ``force=True`` replaces
an existing ``OUT`` only when its marker says gptdata wrote it and it holds nothing else, checked
again at commit; ``flock`` on ``OUT.exporting/lock`` keeps a second export out of the same ``OUT``.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..store import Split, write_json_atomic
from ..store.sidefolders import LOCK, _lock, _raise_if_locked, clear_folder

MARKER = "gptdata-export.json"
MARKER_FORMAT = "gptdata-export"
CHUNK_TOKENS = 1 << 22  # 4 Mi tokens (8-16 MB) per read: flat memory, few calls
CHUNK_DOCS = 1 << 20  # document-index entries per read (8 MB of uint64)


class FormatError(ValueError):
    """A file in another system's format that is corrupt or does not fit; names the file."""


def _files_under(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink()
    )


def _folders_under(root: Path) -> list[str]:
    """Every real folder below ``root`` (symlinks are listed as files), relative, with a '/'."""
    return sorted(
        str(p.relative_to(root)) + "/" for p in root.rglob("*") if p.is_dir() and not p.is_symlink()
    )


def check_output_path(out: Path, *, flag: str = "out") -> None:
    """Refuse, before any work, an output that cannot be created: the nearest existing folder
    above ``out`` must be a writable folder (not a file, not read-only)."""
    parent = Path(os.path.realpath(out)).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(
            errno.EACCES,
            f"{flag}={out}: cannot create it, {parent} is not a writable folder. Choose "
            "another output folder.",
        )


def disk_error(exc: OSError, writing: Path) -> OSError:
    """A full disk as one line naming the path being written; any other OSError as it is."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OSError(
            exc.errno,
            f"no space left on the device while writing {exc.filename or writing}; nothing was "
            "kept. Free space (or choose another output folder) and run the command again.",
        )
    return exc


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == MARKER_FORMAT else None


class ExportFolder:
    """``OUT.exporting/`` while writing, under a lock; ``commit()`` renames it to ``OUT``.

    The side folder is claimed like prepare's ``OUT.partial`` (see ``_sidefolders``): it is
    ours only with our marker, and ``flock`` on ``OUT.exporting/lock`` makes a second export
    into the same ``OUT`` fail at once. At commit ``OUT`` is checked again: a folder that
    appeared meanwhile is replaced only under the same rule as at the start (an export of ours
    and ``force=True``), never deleted otherwise.

    >>> folder = ExportFolder(Path("out"), force=False)   # creates out.exporting/ and locks it
    >>> (folder.path / "train.bin").write_bytes(b"...")
    >>> folder.commit({"export_format": "nanogpt"})        # out/ now exists, complete
    """

    def __init__(self, out: Path, *, force: bool) -> None:
        self.out, self.force = out, force
        if out.exists() or out.is_symlink():
            self._check_replaceable(out, force=force, when="already exists")
        self.path = out.with_name(out.name + ".exporting")
        if os.path.islink(self.path) or (self.path.exists() and not self.path.is_dir()):
            raise self._not_ours()
        if self.path.is_dir() and not self._ours_or_empty():
            _raise_if_locked(self.path, "export")  # a run just setting it up holds the lock
            raise self._not_ours()
        self.path.mkdir(parents=True, exist_ok=True)
        self._fd = _lock(self.path, "export")
        try:
            if not self._ours_or_empty():  # again: it may have changed before we held the lock
                raise self._not_ours()
            write_json_atomic(self.path / MARKER, {"format": MARKER_FORMAT, "complete": False})
            clear_folder(self.path, keep=(LOCK, MARKER))  # a killed export of ours: start over
        except BaseException:
            self._release()
            raise

    def _ours_or_empty(self) -> bool:
        if _read_marker(self.path) is not None:
            return True
        return all(e.name in (LOCK, MARKER + ".tmp") for e in os.scandir(self.path))

    def _not_ours(self) -> FileExistsError:
        return FileExistsError(
            f"{self.path} exists and was not started by gptdata export (no {MARKER}); "
            "refusing to delete it. Move it away or choose another output folder."
        )

    @staticmethod
    def _check_replaceable(out: Path, *, force: bool, when: str) -> None:
        """Raise unless ``out`` is a complete export of ours, holding nothing else, and force."""
        marker = _read_marker(out) if out.is_dir() and not out.is_symlink() else None
        if marker is None or not marker.get("complete"):
            raise FileExistsError(
                f"{out} {when} and was not written by gptdata export (no complete {MARKER}); "
                "refusing to replace it even with force=True. Remove it yourself or "
                "choose another output folder."
            )
        ours = set(marker.get("files", [])) | {MARKER}
        # A folder is ours only when it holds a file we wrote: an empty folder a user made (or
        # one they filled) inside an old export is named and kept, like their files.
        our_dirs = {str(p) + "/" for f in ours for p in Path(f).parents if str(p) != "."}
        files = [f for f in _files_under(out) if f not in ours]
        folders = [d for d in _folders_under(out) if d not in our_dirs]
        if files or folders:
            counts = [f"{len(files)} file(s)"] * bool(files) + [f"{len(folders)} folder(s)"] * bool(
                folders
            )
            raise FileExistsError(
                f"{out} holds {' and '.join(counts)} gptdata export did not write (e.g. "
                f"{(files or folders)[0]!r}); refusing to replace it even with force=True. Move "
                "them away or choose another output folder."
            )
        if not force:
            raise FileExistsError(
                f"{out} {when}. Pass force=True to replace an earlier export, or choose "
                "another output folder."
            )

    def commit(self, info: dict[str, Any]) -> None:
        files = [f for f in _files_under(self.path) if f not in (MARKER, LOCK)]
        doc = {"format": MARKER_FORMAT, "complete": True, **info, "files": files}
        write_json_atomic(self.path / MARKER, doc)
        if os.path.lexists(self.out):  # checked at the start, but it may have appeared since
            self._check_replaceable(self.out, force=self.force, when="appeared during the export")
            # A fresh name of our own: nothing the user made can be in the way and deleted.
            trash = Path(tempfile.mkdtemp(prefix=self.out.name + ".old-", dir=self.out.parent))
            os.replace(self.out, trash)  # onto the empty folder mkdtemp made
            os.replace(self.path, self.out)
            shutil.rmtree(trash)
        else:
            os.replace(self.path, self.out)  # fails, deleting nothing, if OUT appeared non-empty
        (self.out / LOCK).unlink(missing_ok=True)
        self._release()

    def _release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the flock
            self._fd = -1

    def abort(self) -> None:
        """Remove our side folder (nothing half-written stays) and drop the lock."""
        if getattr(self, "_fd", -1) >= 0:
            shutil.rmtree(self.path, ignore_errors=True)
        self._release()


class Progress:
    """One status line on stderr: label, percent, tokens, MB/s."""

    def __init__(self, label: str, total_tokens: int, itemsize: int, *, quiet: bool) -> None:
        self.label, self.total, self.itemsize, self.quiet = label, total_tokens, itemsize, quiet
        self.t0 = self.last = time.perf_counter()
        self.tokens = 0
        self.tty = sys.stderr.isatty()

    def update(self, tokens: int) -> None:
        self.tokens += tokens
        now = time.perf_counter()
        if self.quiet or now - self.last < (0.5 if self.tty else 5.0):
            return
        self.last = now
        dt = max(now - self.t0, 1e-9)
        frac = self.tokens / self.total if self.total else 1.0
        line = (
            f"{self.label}  {frac:6.1%}  {self.tokens:,} tokens  "
            f"{self.tokens * self.itemsize / dt / 1e6:,.0f} MB/s"
        )
        print(line.ljust(79), end="\r" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty and not self.quiet:
            print(" " * 79, end="\r", file=sys.stderr, flush=True)


def shard_ends(split: Split, k: int) -> Iterator[np.ndarray]:
    """Shard k's document end offsets (int64, in the shard), CHUNK_DOCS at a time."""
    shard = split.shards[k]
    path = split.root / shard.index
    with open(path, "rb") as fh:
        for first in range(0, shard.documents, CHUNK_DOCS):
            n = min(CHUNK_DOCS, shard.documents - first)
            yield np.frombuffer(fh.read(8 * n), dtype="<u8").astype(np.int64)


def copy_range(src: BinaryIO, dst: BinaryIO, offset: int, nbytes: int) -> None:
    """Copy ``nbytes`` of ``src`` from ``offset`` to ``dst``'s position, in the kernel if it can.

    os.sendfile moves the bytes without a trip through Python, as shutil.copyfile does; ``dst``
    must be unbuffered (``open(..., "wb", buffering=0)``) so positions stay in step.
    """
    done = 0
    if hasattr(os, "sendfile"):
        try:
            while done < nbytes:
                sent = os.sendfile(dst.fileno(), src.fileno(), offset + done, nbytes - done)
                if sent == 0:
                    break
                done += sent
        except OSError:
            pass  # a file system without sendfile: the plain loop below finishes the job
    src.seek(offset + done)
    while done < nbytes:
        block = src.read(min(8 << 20, nbytes - done))
        if not block:
            raise FormatError(f"{src.name}: ended {nbytes - done:,} bytes early while copying.")
        dst.write(block)
        done += len(block)


def check_ids(chunk: np.ndarray, limit: int, *, where: str, fix: str, base: int = 0) -> None:
    """Raise FormatError when a token ID in ``chunk`` (token ``base`` on) is < 0 or >= ``limit``."""
    if not chunk.size:
        return
    top = int(chunk.max())
    low = int(chunk.min()) if chunk.dtype.kind == "i" else 0
    if top >= limit or low < 0:
        bad = top if top >= limit else low
        pos = base + int(np.flatnonzero(chunk == bad)[0])
        raise FormatError(
            f"{where}: token ID {bad} at position {pos:,} is outside 0..{limit - 1}. {fix}"
        )


class TokenReader:
    """Reads ``count`` tokens of ``dtype`` from ``path`` after ``offset`` header bytes, in blocks.

    Every block read is passed to ``check(block, base)`` first (ID range checks), so no ID
    reaches a store unchecked; memory holds one block (plus one document being cut out).
    """

    def __init__(self, path: Path, dtype: np.dtype, *, offset: int, count: int, check: Any) -> None:
        self.path, self.dtype, self.count, self.check = path, np.dtype(dtype), count, check
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._fh.seek(offset)
        self._pos = 0  # tokens handed out or buffered
        self._buf = np.empty(0, dtype=self.dtype)

    def blocks(self) -> Iterator[np.ndarray]:
        while self._pos < self.count:
            n = min(CHUNK_TOKENS, self.count - self._pos)
            data = self._fh.read(n * self.dtype.itemsize)
            if len(data) != n * self.dtype.itemsize:
                raise FormatError(
                    f"{self.path}: ended early, at token {self._pos:,} of {self.count:,}."
                )
            block = np.frombuffer(data, dtype=self.dtype)
            self.check(block, self._pos)
            self._pos += n
            yield block

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` tokens."""
        parts = []
        have = len(self._buf)
        if have >= n:
            out, self._buf = self._buf[:n], self._buf[n:]
            return out
        parts.append(self._buf)
        blocks = self.blocks()
        while have < n:
            block = next(blocks, None)
            if block is None:
                raise FormatError(f"{self.path}: ended early: wanted {n - have:,} more tokens.")
            parts.append(block)
            have += len(block)
        whole = np.concatenate(parts)
        out, self._buf = whole[:n], whole[n:]
        return out

    def close(self) -> None:
        self._fh.close()


def split_on(blocks: Iterator[np.ndarray], eot_id: int) -> Iterator[np.ndarray]:
    """Cut a token stream at every ``eot_id`` and yield the non-empty pieces between them.

    [5, 6, E, 7, E, E, 8] -> [5, 6], [7], [8]   (the same for E-after and E-before streams)
    """
    carry: list[np.ndarray] = []
    for block in blocks:
        cuts = np.flatnonzero(block == eot_id)
        start = 0
        for cut in cuts.tolist():
            piece = block[start:cut]
            if carry:
                piece = np.concatenate([*carry, piece])
                carry = []
            if len(piece):
                yield piece
            start = cut + 1
        if start < len(block):
            carry.append(block[start:])
    if carry:
        yield np.concatenate(carry)
