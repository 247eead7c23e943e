"""What ``prepare`` may create, lock, replace and delete around its output folder ``OUT``.

gptdata only ever deletes what it can prove it made:

* ``OUT`` itself only when it is a gptdata store (its ``manifest.json`` parses and names our
  format) and the caller asked for ``force=True``; a file, a symlink or a non-empty folder that
  is not a store is refused, with or without force.
* the side folders ``OUT.partial`` (the run in progress) and ``OUT.old`` (the store being
  replaced) only when they carry ``gptdata-side.json``, a marker written by us that names the
  plan; an unrelated folder of that name is refused, never removed.

A run holds ``fcntl.flock`` on ``OUT.partial/lock`` from the moment it claims the side folder
until its commit has renamed it: a second run into the same ``OUT`` fails at once, and the kernel
drops the lock when a process dies, so a killed run never blocks the next one.

    >>> lock = claim_side(Path("store.partial"), plan_id="ab12...")   # resume=False: fresh
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .layout import MANIFEST, SIDE_FORMAT, SIDE_MARKER, is_store, side_marker

LOCK = "lock"


def partial_path(out: Path) -> Path:
    return Path(str(out) + ".partial")


def old_path(out: Path) -> Path:
    return Path(str(out) + ".old")


def write_marker(folder: Path, role: str, plan: str) -> None:
    tmp = folder / (SIDE_MARKER + ".tmp")
    tmp.write_text(json.dumps({"format": SIDE_FORMAT, "role": role, "plan": plan}) + "\n")
    os.replace(tmp, folder / SIDE_MARKER)


def _empty_but_lock(folder: Path) -> bool:
    return all(e.name in (LOCK, SIDE_MARKER + ".tmp") for e in os.scandir(folder))


def _not_ours(path: Path, what: str) -> FileExistsError:
    return FileExistsError(
        f"{path} exists and was not made by gptdata (no {SIDE_MARKER} marker), so it is "
        f"left alone. Move or delete it yourself, or choose another out= ({what})."
    )


_SHARD_NAME = re.compile(r"\d+\.\w+\.\d+\.(bin|idx)")  # what _shards._PartWriter names a part


def foreign_entry(store: Path) -> str | None:
    """The first entry of ``store`` that a store of ours does not hold, or None.

    A store holds ``manifest.json`` and ``shards/`` with the parts its manifest lists (or
    that carry our part names); ``units/``, the side marker and the lock only while a marker
    says a commit of ours was cut short. Anything else (``my-notes.txt``, an export made with
    ``-o STORE/nanogpt``) is the user's, so ``force`` may not replace the folder.

        >>> foreign_entry(Path("store"))       # after: echo hi > store/my-notes.txt
        'my-notes.txt'
    """
    listed: set[str] = set()
    try:
        with open(store / MANIFEST, "rb") as fh:
            doc = json.loads(fh.read(1 << 24))
        for sp in doc.get("splits", {}).values():
            for shard in sp.get("shards", []):
                listed.update(str(shard.get(k)) for k in ("file", "index"))
    except (OSError, ValueError, RecursionError, AttributeError, TypeError):
        pass  # a damaged manifest lists nothing: only our part names are then accepted
    marked = side_marker(store) is not None
    for entry in sorted(os.scandir(store), key=lambda e: e.name):
        name = entry.name
        if name in (MANIFEST, MANIFEST + ".tmp") and entry.is_file(follow_symlinks=False):
            continue
        if marked and name in (SIDE_MARKER, LOCK, "units"):
            continue
        if name == "shards" and entry.is_dir(follow_symlinks=False):
            for part in sorted(os.scandir(entry.path), key=lambda e: e.name):
                rel = f"shards/{part.name}"
                ours = rel in listed or _SHARD_NAME.fullmatch(part.name) is not None
                if not (ours and part.is_file(follow_symlinks=False)):
                    return rel
            continue
        return name
    return None


def _foreign_error(out: Path, entry: str) -> FileExistsError:
    return FileExistsError(
        f"{out} is a gptdata store but also holds {out / entry}, which gptdata did not write; "
        "force=True replaces only a folder holding nothing but a store, so nothing was "
        "deleted. Move that out of the store, or choose another out=."
    )


def check_out(out: Path, *, force: bool) -> None:
    """Refuse, before any work, an ``out`` that gptdata may not fill or replace."""
    if os.path.islink(out):
        raise FileExistsError(
            f"{out} is a symlink; gptdata never replaces one, even with force=True. "
            "Pass the real folder as out=, or remove the link."
        )
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(
                f"{out} is a file, not a gptdata store; gptdata never replaces it, even with "
                "force=True. Choose another out=."
            )
        if is_store(out):
            if not force:
                raise FileExistsError(
                    f"{out} already exists. Pass force=True to replace it, or choose another out=."
                )
            entry = foreign_entry(out)
            if entry is not None:
                raise _foreign_error(out, entry)
        elif any(os.scandir(out)):
            raise FileExistsError(
                f"{out} is a folder that is not a gptdata store (no {MANIFEST} of ours); "
                "gptdata never deletes it, even with force=True. Choose another out=."
            )
    for side, what in ((partial_path(out), "run in progress"), (old_path(out), "replaced store")):
        if os.path.islink(side) or (side.exists() and not side.is_dir()):
            raise _not_ours(side, what)
        if side.is_dir() and side_marker(side) is None and not _empty_but_lock(side):
            _raise_if_locked(side)  # a run that is just setting it up holds the lock
            raise _not_ours(side, what)


def _raise_if_locked(side: Path, who: str = "prepare") -> None:
    """BusyError when another run holds ``side``'s lock (and so may be mid-way through it)."""
    try:
        fd = os.open(side / LOCK, os.O_RDONLY)
    except OSError:
        return
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _busy(side, who) from None
    finally:
        os.close(fd)


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_overlap(out: Path, files: list[str], folders: list[str]) -> None:
    """Refuse an ``out`` that is an input, contains one, or lies inside an input folder.

    Real paths are compared (symlinks resolved), for ``out`` and its side folders alike.
    """
    real_out = os.path.realpath(out)
    ours = [real_out, real_out + ".partial", real_out + ".old"]
    for d in folders:
        real = os.path.realpath(d)
        if any(_within(o, real) or _within(real, o) for o in ours):
            raise ValueError(
                f"out={out} is, contains or lies inside the input folder {d}. "
                "Choose an out= outside the inputs."
            )
    if not any(os.path.lexists(o) for o in ours):
        return  # nothing there yet, so it cannot be or contain an input
    parents: dict[str, str] = {}  # realpath per folder: one per folder, not per file
    for f in files:
        if os.path.islink(f):
            real = os.path.realpath(f)
        else:
            head, tail = os.path.split(f)
            if head not in parents:
                parents[head] = os.path.realpath(head or ".")
            real = os.path.join(parents[head], tail)
        if any(_within(real, o) for o in ours):
            raise ValueError(
                f"out={out} would replace or contain the input {f}. "
                "Choose an out= outside the inputs."
            )


class BusyError(RuntimeError):
    """Another prepare holds the lock of the same output."""


@dataclass
class SideLock:
    """The claimed side folder: ``resume`` tells whether it holds this plan's finished units."""

    side: Path
    fd: int
    resume: bool

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing drops the flock
            self.fd = -1


def _lock(side: Path, who: str = "prepare") -> int:
    """Hold ``side/lock`` (flock, non-blocking) or raise BusyError; ``who`` names the command."""
    import fcntl

    try:
        fd = os.open(side / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:  # another run renamed the side folder away between our steps
        raise BusyError(
            f"another gptdata {who} just committed {side}; run the command again."
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The file must still be the one at that path (not one a committing run moved away).
        if os.stat(side / LOCK).st_ino != os.fstat(fd).st_ino:
            raise BlockingIOError
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        raise _busy(side, who) from None
    return fd


def _busy(side: Path, who: str = "prepare") -> BusyError:
    return BusyError(
        f"another gptdata {who} is writing this output (it holds {side / LOCK}). "
        "Wait for it to finish or stop it; two runs never share an output."
    )


def clear_folder(folder: Path, *, keep: tuple[str, ...]) -> None:
    """Empty a side folder of ours (a killed run's leftovers), keeping its lock and marker."""
    for entry in os.scandir(folder):
        if entry.name in keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def claim_side(side: Path, plan_id: str) -> SideLock:
    """Create or take over ``side`` under its lock; keep its units only for the same plan."""
    if side.is_dir() and side_marker(side) is None and not _empty_but_lock(side):
        _raise_if_locked(side)
        raise _not_ours(side, "run in progress")
    side.mkdir(exist_ok=True)
    fd = _lock(side)
    try:
        marker = side_marker(side)  # again: it may have changed before we held the lock
        if marker is None and not _empty_but_lock(side):
            raise _not_ours(side, "run in progress")
        resume = marker is not None and marker.get("plan") == plan_id
        write_marker(side, "partial", plan_id)  # first: from here on the folder is marked ours
        if not resume:
            clear_folder(side, keep=(LOCK, SIDE_MARKER))
        (side / "shards").mkdir(exist_ok=True)
        (side / "units").mkdir(exist_ok=True)
    except BaseException:
        os.close(fd)
        raise
    return SideLock(side, fd, resume)


def discard_side(lock: SideLock) -> None:
    """Remove our side folder (bad input: fixing it means a new plan anyway) and unlock."""
    shutil.rmtree(lock.side, ignore_errors=True)
    lock.release()


def swap_in(side: Path, out: Path, *, force: bool, plan_id: str) -> None:
    """Rename the finished side folder to ``out``; replace a store there only with ``force``.

    Each step is a rename, so a kill leaves either the old store or the new one at ``out`` (and
    a marked ``OUT.old`` that the next run removes).
    """
    old = old_path(out)
    if os.path.lexists(out):
        if is_store(out) and force and not os.path.islink(out):
            entry = foreign_entry(out)
            if entry is not None:  # the user put something in it while this run worked
                raise _foreign_error(out, entry)
            if os.path.lexists(old):
                if side_marker(old) is None:
                    raise _not_ours(old, "replaced store")
                shutil.rmtree(old)
            write_marker(out, "old", plan_id)
            os.replace(out, old)
            os.replace(side, out)
            shutil.rmtree(old, ignore_errors=True)
        elif out.is_dir() and not os.path.islink(out) and not any(os.scandir(out)):
            os.replace(side, out)  # an empty folder: renaming over it is atomic
        else:
            raise FileExistsError(
                f"{out} appeared while this run worked and is not a store gptdata may replace"
                f"{'' if force else ' (force=True not given)'}; the finished work stays in "
                f"{side}. Move {out} away and run the same command again to commit it."
            )
    else:
        os.replace(side, out)
    if os.path.isdir(old) and side_marker(old) is not None:  # left by a run killed mid-swap
        shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(out / "units", ignore_errors=True)
    for name in (SIDE_MARKER, LOCK):
        (out / name).unlink(missing_ok=True)
