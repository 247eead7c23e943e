"""Writing a store to object storage, where there is no rename: stage, copy, manifest last.

The rule (docs/FORMAT.md, "On object storage"): a remote store is its ``manifest.json``; objects
below ``OUT/`` without one are not a store. So a run

1. checks ``OUT`` (empty, or a gptdata store and ``force``; anything else is refused, never
   deleted), then takes the lock object ``OUT.partial/gptdata-lock.json`` (the run's id and a
   lease; a second writer is refused until the lease ends; a heartbeat renews it);
2. stages every shard under ``OUT.partial/`` with a sidecar ``OUT.partial/sums/<file>.sha256``
   written after it, so a killed run's shards are reused when their sha256 matches;
3. commits: marks ``OUT`` as being replaced, deletes the old manifest (readers now see no store,
   never half of one), copies the shards into place, writes ``manifest.json`` LAST (one PUT),
   then deletes what the new manifest does not list and the whole ``OUT.partial/``.

    >>> w = RemoteStoreWriter(Location("s3://b/stores/web"), plan_id=plan).begin()
    >>> w.stage_file(Path("side/shards/00000.train.000.bin"), "shards/00000.train.000.bin")
    False                                   # uploaded (True: a matching one was reused)
    >>> w.commit(manifest_bytes, {"shards/00000.train.000.bin": sha, ...})

Left out: building the manifest (``prepare``'s commit does that, byte for byte as locally).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .urls import Location, RemoteNotFound, StorageError, remote_errors, translate

# The same names as store/layout.py (this stage sits below it; tests pin them equal).
FORMAT = "gptdata-token-store"
MANIFEST = "manifest.json"
SIDE_MARKER = "gptdata-side.json"
SIDE_FORMAT = "gptdata-side-folder"
LOCK_FORMAT = "gptdata-lock"
LOCK = "gptdata-lock.json"
SUMS = "sums"
# Keys of an fsspec info() that name an object's version: S3, then GCS/Azure spellings.
VERSION_KEYS = ("ETag", "etag", "generation", "md5Hash")
LEASE_S = 600.0  # a writer silent this long (no heartbeat) is taken for dead
_SHARD_NAME = re.compile(r"shards/\d+\.\w+\.\d+\.(bin|idx|mask)")


class RemoteBusyError(StorageError):
    """Another run holds the lock object of the same output, and its lease has not ended."""


def file_sha256(path: str | os.PathLike[str]) -> tuple[str, int]:
    """sha256 (hex) and size of a local file, read 8 MiB at a time."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _json(loc: Location) -> dict[str, Any] | None:
    """A small JSON object at ``loc``, or None when it is absent or does not parse."""
    try:
        doc = json.loads(loc.read_bytes(limit=1 << 24))
    except (RemoteNotFound, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def manifest_listing(doc: Mapping[str, Any]) -> set[str]:
    """Every ``file`` and ``index`` a manifest lists (tolerant: a damaged one lists less)."""
    listed: set[str] = set()
    with contextlib.suppress(AttributeError, TypeError):
        for sp in doc.get("splits", {}).values():
            for shard in sp.get("shards", []):
                listed.update(str(shard.get(k)) for k in ("file", "index"))
                if isinstance(shard.get("mask"), dict):  # instruction stores' response bits
                    listed.add(str(shard["mask"].get("file")))
    return listed


def check_remote_out(out: Location, *, force: bool) -> dict[str, int]:
    """Refuse an ``out`` gptdata may not fill or replace; return what is there (key -> size).

    Empty: fine. A store of ours: only with ``force``, and only when it holds nothing else. A
    replacement of ours that was cut short (marker ``role: old``): fine. Anything else: refused.
    """
    there = out.files()
    if not there:
        return there
    doc = _json(out.child(MANIFEST)) if MANIFEST in there else None
    marker = _json(out.child(SIDE_MARKER)) if SIDE_MARKER in there else None
    ours = doc is not None and doc.get("format") == FORMAT
    cut_short = marker is not None and marker.get("format") == SIDE_FORMAT
    if not ours and not cut_short:
        raise FileExistsError(
            f"{out.url}/ holds {len(there):,} object(s) but no gptdata manifest; gptdata never "
            "deletes them, even with force=True. Choose another out=."
        )
    if ours and not force:
        raise FileExistsError(
            f"{out.url} already holds a gptdata store. Pass force=True (--force) to replace it, "
            "or choose another out=."
        )
    listed = manifest_listing(doc or {})
    for key in there:
        if key in (MANIFEST, SIDE_MARKER) or key in listed or _SHARD_NAME.fullmatch(key):
            continue
        raise FileExistsError(
            f"{out.url} is a gptdata store but also holds {out.url}/{key}, which gptdata did not "
            "write; force=True replaces only a prefix holding nothing but a store, so nothing "
            "was deleted. Move that object away, or choose another out=."
        )
    return there


class RemoteLock:
    """The lock object: ``{"format", "run", "host", "pid", "expires"}``, renewed by a heartbeat.

    Stale (and taken over) once ``expires`` has passed, or at once when it names a process on
    this host that no longer runs (a killed ``prepare`` rerun on the same machine).

        >>> lock = RemoteLock(Location("s3://b/web.partial/gptdata-lock.json"), run_id="r1")
        >>> lock.acquire(); lock.release()
    """

    def __init__(self, loc: Location, *, run_id: str, lease_s: float = LEASE_S) -> None:
        if lease_s <= 0:
            raise ValueError(f"lease_s={lease_s} must be positive (seconds)")
        self.loc, self.run_id, self.lease_s = loc, run_id, lease_s
        self.lost = ""  # why the lock is no longer ours, once it is not
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _body(self) -> bytes:
        doc = {
            "format": LOCK_FORMAT,
            "run": self.run_id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "expires": time.time() + self.lease_s,
        }
        return json.dumps(doc).encode()

    def _stale(self, doc: dict[str, Any]) -> bool:
        if float(doc.get("expires", 0)) < time.time():
            return True
        if doc.get("host") == socket.gethostname() and isinstance(doc.get("pid"), int):
            try:
                os.kill(doc["pid"], 0)
            except ProcessLookupError:
                return True  # its writer died on this machine: no need to wait for the lease
            except PermissionError:
                pass
        return False

    def _busy(self, doc: dict[str, Any] | None) -> RemoteBusyError:
        if doc is None or doc.get("format") != LOCK_FORMAT:
            return RemoteBusyError(
                f"{self.loc.url} exists but is not a gptdata lock; if no run writes this "
                "output, delete that object and run the command again."
            )
        left = max(0.0, float(doc.get("expires", 0)) - time.time())
        return RemoteBusyError(
            f"another gptdata run ({doc.get('run')} on {doc.get('host')}, pid {doc.get('pid')}) "
            f"is writing this output: it holds {self.loc.url} for {left:,.0f} s more. Wait for "
            "it to finish or stop it; two runs never share an output."
        )

    def acquire(self, *, heartbeat: bool = True) -> RemoteLock:
        """Take the lock or raise ``RemoteBusyError``; start renewing it every lease/3 seconds."""
        created = self._create_exclusive()
        if not created:
            doc = _json(self.loc)
            if doc is None or doc.get("format") != LOCK_FORMAT:
                raise self._busy(doc)
            if doc.get("run") != self.run_id and not self._stale(doc):
                raise self._busy(doc)
            self.loc.write_bytes(self._body())  # take over a stale lease (or renew our own)
            time.sleep(0.05)  # two takers at once: the later PUT wins, the earlier sees it here
            now = _json(self.loc)
            if now is None or now.get("run") != self.run_id:
                raise self._busy(now)
        if heartbeat:
            self._thread = threading.Thread(target=self._beat, name="gptdata-lease", daemon=True)
            self._thread.start()
        return self

    def _create_exclusive(self) -> bool:
        """Create the lock object only if absent; False when one exists."""
        body = self._body()
        try:
            with self.loc.fs.open(self.loc.path, "xb") as fh:  # If-None-Match: * on S3
                fh.write(body)
            return True
        except FileExistsError:
            return False
        except (ValueError, NotImplementedError, TypeError):
            pass  # this filesystem has no exclusive create: check, write, read back
        except Exception as exc:  # no credentials, no bucket: one line, as everywhere
            raise translate(exc, self.loc.url, "write") from None
        if self.loc.exists():
            return False
        self.loc.write_bytes(body)
        time.sleep(0.05)
        doc = _json(self.loc)
        return doc is not None and doc.get("run") == self.run_id

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self.renew()
            except StorageError as exc:
                self.lost = f"renewing the lease failed: {exc}"

    def renew(self) -> None:
        """Extend the lease, if the lock is still ours (else record why in ``lost``)."""
        doc = _json(self.loc)
        if doc is None or doc.get("run") != self.run_id:
            self.lost = f"{self.loc.url} now names run {doc and doc.get('run')}"
            return
        self.loc.write_bytes(self._body())

    def check(self) -> None:
        """Raise unless the lock is still this run's (call before each irreversible step)."""
        doc = _json(self.loc)
        if self.lost or doc is None or doc.get("run") != self.run_id:
            raise RemoteBusyError(
                f"this run ({self.run_id}) lost the lock {self.loc.url}"
                f"{': ' + self.lost if self.lost else ''}; another run took over. Nothing was "
                "committed; run the command again once it has finished."
            )

    def release(self) -> None:
        """Stop the heartbeat and delete the lock object if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        doc = _json(self.loc)
        if doc is not None and doc.get("run") == self.run_id:
            self.loc.delete()


def stage_file(
    partial: Location, local: str | os.PathLike[str], rel: str, *, sha256: str | None = None
) -> bool:
    """Upload ``local`` to ``partial/rel`` unless a staged copy with the same sha256 is there.

    Returns True when it was reused. The sidecar ``sums/<rel>.sha256`` is written after the
    upload and records the object's version tag (its ETag on S3), so a sidecar always
    describes one complete object, and an object rewritten since (another run, a hand copy)
    no longer matches it. Safe to call from Ray tasks or worker processes (no lock: each unit
    writes its own names).
    """
    size = os.path.getsize(local)
    if sha256 is None:
        sha256, size = file_sha256(local)
    if staged_sum(partial, rel) == (sha256, size):
        return True
    obj = partial.child(rel)
    obj.put_file(local)
    size_now, tag = object_version(obj)
    if size_now != size:  # another writer replaced it at once: stage again next run
        tag = ""
    partial.child(SUMS, rel + ".sha256").write_bytes(f"{sha256} {size} {tag}".rstrip().encode())
    return False


def object_version(loc: Location) -> tuple[int, str]:
    """(size, version tag) of one object: S3's ``ETag``, else whatever the filesystem's info
    names a version (``etag``, ``generation``, ``md5Hash``); "" when it has none.

    >>> object_version(Location("s3://b/web.partial/shards/00000.train.000.bin"))
    (9262, '"5d41402abc4b2a76b9719d911017c592"')
    """
    with remote_errors(loc.url, "look up"):
        loc.fs.invalidate_cache(loc.path)
        info = loc.fs.info(loc.path)
    tag = next((str(info[k]) for k in VERSION_KEYS if info.get(k)), "")
    return int(info.get("size") or 0), tag


def staged_sum(partial: Location, rel: str) -> tuple[str, int] | None:
    """The (sha256, size) a sidecar records for ``partial/rel``, or None when there is none or
    the object is no longer the one it describes (another size or version tag, or gone)."""
    try:
        text = partial.child(SUMS, rel + ".sha256").read_bytes(limit=512).decode()
        sha, size, *tag = text.split()
        now = object_version(partial.child(rel))
    except (RemoteNotFound, ValueError, UnicodeDecodeError):
        return None
    if now[0] != int(size) or (tag and tag[0] != now[1]):
        return None
    return sha, int(size)


class RemoteStoreWriter:
    """One run writing a store to ``out``: ``begin``, ``stage_file`` per shard, ``commit``.

    ``plan_id`` is recorded in ``OUT.partial``'s marker (as locally); ``run_id`` names this run in
    the lock (random when not given). ``lease_s`` is how long a silent writer keeps the lock.
    """

    def __init__(
        self, out: Location, *, plan_id: str, force: bool = False, lease_s: float = LEASE_S,
        run_id: str | None = None, heartbeat: bool = True,
    ) -> None:  # fmt: skip
        self.out = out
        self.partial = out.with_suffix(".partial")
        self.plan_id, self.force, self.heartbeat = plan_id, force, heartbeat
        self.run_id = run_id or uuid.uuid4().hex
        self.lock = RemoteLock(self.partial.child(LOCK), run_id=self.run_id, lease_s=lease_s)
        self.reused = 0
        self.uploaded = 0

    def begin(self) -> RemoteStoreWriter:
        """Check ``out`` and ``OUT.partial``, take the lock, mark the partial prefix ours."""
        check_remote_out(self.out, force=self.force)
        there = self.partial.files()
        marker = _json(self.partial.child(SIDE_MARKER)) if SIDE_MARKER in there else None
        if set(there) - {LOCK} and (marker is None or marker.get("format") != SIDE_FORMAT):
            raise FileExistsError(
                f"{self.partial.url}/ holds {len(there):,} object(s) and was not made by gptdata "
                f"(no {SIDE_MARKER} marker), so it is left alone. Delete it yourself, or choose "
                "another out=."
            )
        self.lock.acquire(heartbeat=self.heartbeat)
        marker_doc = {"format": SIDE_FORMAT, "role": "partial", "plan": self.plan_id}
        try:
            self.partial.child(SIDE_MARKER).write_bytes(json.dumps(marker_doc).encode() + b"\n")
        except BaseException:
            self.lock.release()
            raise
        return self

    def stage_file(
        self, local: str | os.PathLike[str], rel: str, *, sha256: str | None = None
    ) -> bool:
        """``stage_file`` into this run's partial prefix; counts reused and uploaded files."""
        reused = stage_file(self.partial, local, rel, sha256=sha256)
        if reused:
            self.reused += 1
        else:
            self.uploaded += 1
        return reused

    def commit(self, manifest: bytes, files: Mapping[str, str]) -> None:
        """Put the staged ``files`` (rel -> sha256) in place and write ``manifest`` last."""
        with ThreadPoolExecutor(8, thread_name_prefix="gptdata-sums") as pool:
            sums = pool.map(lambda r: staged_sum(self.partial, r), files)
            staged = dict(zip(files, sums, strict=True))
        for rel, sha in files.items():
            got = staged[rel]
            if got is None or got[0] != sha:
                raise StorageError(
                    f"{self.partial.url}/{rel} was not staged with sha256 {sha[:16]}... "
                    f"(staged: {got[0][:16] + '...' if got else 'nothing'}); stage it first."
                )
        self.lock.check()
        there = check_remote_out(self.out, force=self.force)  # again: it may have changed
        # Mark OUT first: a commit cut short from here leaves objects a rerun knows are ours.
        mark = {"format": SIDE_FORMAT, "role": "old", "plan": self.plan_id, "run": self.run_id}
        self.out.child(SIDE_MARKER).write_bytes(json.dumps(mark).encode() + b"\n")
        if MANIFEST in there:
            self.out.child(MANIFEST).delete()  # from here readers see no store, never half
        self._copy_into_place(list(files))
        self.lock.check()
        self.out.child(MANIFEST).write_bytes(manifest)  # LAST: now it is a store
        # The old store's shards the new one does not list, then the marker.
        self.out.delete_keys(
            k for k in there if k not in files and k not in (MANIFEST, SIDE_MARKER)
        )
        self.out.child(SIDE_MARKER).delete()
        self.discard(keep_lock=True)
        self.lock.release()

    def _copy_into_place(self, rels: list[str], *, threads: int = 8, batch: int = 256) -> None:
        """Server-side copies, ``threads`` at a time; the lock is checked before each batch."""
        with ThreadPoolExecutor(threads, thread_name_prefix="gptdata-copy") as pool:
            for start in range(0, len(rels), batch):
                self.lock.check()  # one GET per batch, not per shard
                jobs = rels[start : start + batch]
                list(pool.map(lambda r: self.partial.child(r).copy_to(self.out.child(r)), jobs))

    def discard(self, *, keep_lock: bool = False) -> None:
        """Delete everything under ``OUT.partial/`` (the lock last, unless ``keep_lock``)."""
        self.partial.delete_keys(k for k in self.partial.files() if k != LOCK)
        if not keep_lock:
            self.lock.release()

    def abort(self) -> None:
        """Stop without committing: keep the staged shards for a rerun, release the lock."""
        self.lock.release()


def upload_tree(
    writer: RemoteStoreWriter, folder: str | os.PathLike[str], files: Mapping[str, str]
) -> None:
    """Stage ``folder/rel`` for every ``rel`` in ``files`` (rel -> sha256)."""
    for rel, sha in files.items():
        writer.stage_file(Path(folder) / rel, rel, sha256=sha)
