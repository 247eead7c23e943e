"""export and import to and from object storage (``s3://``, ``gs://``, ``az://``): issue 22.

Both go through a local scratch folder, so the formats' writers and readers stay the local ones
(byte for byte the same output):

- ``export_remote``: the export is written locally by ``export_store``, then uploaded with its
  listing ``gptdata-export.json`` LAST. S3 has no rename, so the listing is the commit: a prefix
  whose listing is absent or not ``complete`` is not an export, and a half-uploaded one is never
  taken for a whole one. ``force`` replaces only a prior gptdata export (every object under the
  prefix listed by its marker); the old marker is deleted first, so a reader during the
  replacement sees no export rather than a mix. A killed upload leaves no listing; the same
  command run again takes the prefix over (``OUT.exporting/`` records what the upload wrote).
- ``fetch_import_source``: the trainer files named by a URL are downloaded into a scratch folder
  first (whole: an import reads every byte anyway), then ``import_store`` reads them there.

    >>> export_store("store/", "s3://b/exports/web", format="nanogpt")   # calls export_remote
    >>> with fetch_import_source("nanogpt", "s3://b/exports/web") as local:
    ...     import_store("nanogpt", local, "imported/")
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..storage import Location, RemoteLock, RemoteNotFound
from ._common import MARKER, MARKER_FORMAT

# OUT.exporting/: gptdata-lock.json (one export per prefix at a time) and, while uploading, a
# gptdata-export.json with "complete": false naming every object the upload may leave (old and
# new), so that a rerun after a kill recognises the half-uploaded prefix as its own.
SIDE = ".exporting"
UPLOAD_THREADS = 8  # concurrent PUTs, as prepare's commit: a request's latency hides behind others


def _marker(out: Location) -> dict[str, Any] | None:
    try:
        doc = json.loads(out.child(MARKER).read_bytes())
    except (RemoteNotFound, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == MARKER_FORMAT else None


def check_remote_export(out: Location, *, force: bool) -> dict[str, int]:
    """Refuse an ``out`` that export may not fill or replace; return what is there.

    Empty: fine. A complete gptdata export holding nothing else: only with ``force``. Anything
    else (other objects, an export cut short): refused, nothing deleted.
    """
    there = out.files()  # no bucket, no credentials: a one-line StorageError from here
    if not there:
        return there
    pending = _marker(out.with_suffix(SIDE))
    if pending is not None and set(there) <= {str(f) for f in pending.get("files", [])} | {MARKER}:
        return there  # an upload of ours that was cut short: only what it named is there
    doc = _marker(out) if MARKER in there else None
    if doc is None or not doc.get("complete"):
        raise FileExistsError(
            f"{out.url}/ holds {len(there):,} object(s) but no complete {MARKER}: it is not a "
            "gptdata export, and gptdata never deletes it, even with --force. Choose another -o."
        )
    listed = {str(f) for f in doc.get("files", [])} | {MARKER}
    other = sorted(k for k in there if k not in listed)
    if other:
        raise FileExistsError(
            f"{out.url} is a gptdata export but also holds {out.url}/{other[0]}, which gptdata "
            "did not write; --force replaces only a prefix holding nothing but an export, so "
            "nothing was deleted. Move that object away, or choose another -o."
        )
    if not force:
        raise FileExistsError(
            f"{out.url} already holds a gptdata export. Pass --force (force=True) to replace "
            "it, or choose another -o."
        )
    return there


def export_remote(
    out: Location,
    write: Callable[[Path], dict[str, Any]],
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Export into object storage: ``write(folder)`` (``export_store`` into a local folder, its
    caller) fills a scratch folder, which is then uploaded, ``gptdata-export.json`` last.

    The writer comes in as a function so that this module needs nothing of ``export``'s; the
    summary line is ``export_store``'s, one for both kinds of output.
    """
    loc = out
    # The output is checked before any work, and again under the lock (another run may have
    # written there meanwhile).
    check_remote_export(loc, force=force)
    lock = RemoteLock(loc.with_suffix(SIDE).child("gptdata-lock.json"), run_id=os.urandom(8).hex())
    lock.acquire()
    scratch = Path(tempfile.mkdtemp(prefix="gptdata-export-"))
    try:
        old = check_remote_export(loc, force=force)
        local = scratch / loc.name
        result = write(local)
        marker = local / MARKER
        doc = json.loads(marker.read_text(encoding="utf-8"))
        files = [str(f) for f in doc["files"]]
        lock.check()
        pending = {"format": MARKER_FORMAT, "complete": False, "files": sorted({*old, *files})}
        side = loc.with_suffix(SIDE).child(MARKER)
        side.write_bytes(json.dumps(pending).encode())
        if old:  # a reader from now on sees no export, never a mix of two
            loc.child(MARKER).delete()
        with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="gptdata-upload") as pool:
            # list(): the first failed upload is raised here, one line naming its URL
            list(pool.map(lambda rel: loc.child(rel).put_file(local / rel), files))
        lock.check()
        loc.child(MARKER).put_file(marker)  # the commit: LAST
        loc.delete_keys(k for k in old if k not in set(files) | {MARKER})
        side.delete()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        lock.release()
    return result


@contextlib.contextmanager
def fetch_import_source(
    format: str, url: str | Location, *, storage_options: Mapping[str, Any] | None = None
) -> Iterator[Path]:
    """The trainer files ``url`` names, downloaded into a scratch folder (removed on exit);
    yields the local path to hand to ``import_store`` in place of the URL.

    A prefix: every object below it (a gptdata export's listing comes along, so its recorded
    tokenizer is used). One object: that file (nanogpt, llmc). Megatron's ``PREFIX``: its
    ``PREFIX.bin`` and ``PREFIX.idx``.
    """
    loc = url if isinstance(url, Location) else Location(url, storage_options=storage_options)
    scratch = Path(tempfile.mkdtemp(prefix="gptdata-import-"))
    try:
        below = loc.files()
        if below:
            local = scratch / loc.name
            for rel in below:
                dst = local / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                loc.child(rel).get_file(dst)
        elif format == "megatron" and not loc.name.endswith((".bin", ".idx")):
            local = scratch / loc.name
            for suffix in (".bin", ".idx"):
                src = loc.with_suffix(suffix)
                if not src.is_file():
                    raise RemoteNotFound(
                        f"{src.url} does not exist: a Megatron prefix names PREFIX.bin and "
                        "PREFIX.idx. Check the URL (or give the folder holding them)."
                    )
                src.get_file(scratch / (loc.name + suffix))
        else:
            if not loc.is_file():
                raise RemoteNotFound(
                    f"{loc.url} does not exist (no object, no prefix). Check the URL."
                )
            local = scratch / loc.name
            loc.get_file(local)
        yield local
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
