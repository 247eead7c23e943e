"""``prepare(..., out="s3://bucket/stores/web")``: the units run locally, the commit is remote.

Object storage has no rename, so the local commit (``swap_in``) cannot be used. Instead:

* the units run into a local scratch side folder, ``$GPTDATA_CACHE_DIR/prepare/<hash of the
  URL>/store.partial`` (stable, so a killed run resumes its finished units as locally);
* ``RemoteStoreWriter`` checks ``OUT`` and takes the lock object before any work;
* the commit writes ``manifest.json`` with ``write_json_atomic`` (the bytes a local run writes),
  stages every file it lists under ``OUT.partial/`` (a shard whose staged sha256 already matches
  is reused: a killed upload resumes), and writes the manifest LAST (``storage.commit``).

With the Ray engine each task stages its own shards (``upload_unit``), so no shared file system
is needed; the driver downloads only what its commit must read and a task left on another node.

    >>> writer = begin(Location("s3://b/stores/web"), plan_id, force=False)
    >>> commit(writer, side, manifest)          # after the units ran into ``side``

``prepare`` returns the committed store as any reader opens it (``finish``: its URL, read through
the shard cache); the local scratch copy is removed then, so nothing of the run stays on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..storage import Location, RemoteNotFound, RemoteStoreWriter, stage_file
from ..storage.cache import default_cache_dir
from ..store.tokenstore import MANIFEST, TokenStore, write_json_atomic

UPLOAD_THREADS = 8  # concurrent PUTs: enough to hide a request's latency behind the others


def scratch_out(out: Location) -> Path:
    """The local stand-in for ``out`` whose ``.partial`` holds the units: stable per URL.

    >>> scratch_out(Location("s3://b/stores/web"))
    PosixPath('~/.cache/gptdata/prepare/3f2a9c0d1e7b4a55/store')
    """
    digest = hashlib.sha256(out.url.encode()).hexdigest()[:16]
    return default_cache_dir() / "prepare" / digest / "store"


def begin(out: Location, plan_id: str, *, force: bool) -> RemoteStoreWriter:
    """Refuse an ``out`` we may not fill (one line naming the URL and the fix), take the lock."""
    writer = RemoteStoreWriter(out, plan_id=plan_id, force=force).begin()
    # Under the lock: a mirror an earlier run left beside the scratch side folder is stale.
    shutil.rmtree(scratch_out(out), ignore_errors=True)
    scratch_out(out).parent.mkdir(parents=True, exist_ok=True)
    return writer


def _listed(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Every file the manifest lists (shards, indexes, masks) -> its sha256, in manifest order."""
    files: dict[str, str] = {}
    for split in manifest["splits"].values():
        for s in split["shards"]:
            files[s["file"]] = s["sha256"]
            files[s["index"]] = s["index_sha256"]
            if s.get("mask"):
                files[s["mask"]["file"]] = s["mask"]["sha256"]
    return files


def commit(writer: RemoteStoreWriter, side: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest as a local run does, stage what it lists, commit it remotely."""
    write_json_atomic(side / MANIFEST, manifest)
    body = (side / MANIFEST).read_bytes()  # exactly the local bytes: the stores are identical
    files = _listed(json.loads(body))
    with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="gptdata-stage") as pool:
        # list(): re-raise the first failed upload here (one line, naming its URL)
        list(pool.map(lambda rel: writer.stage_file(side / rel, rel, sha256=files[rel]), files))
    writer.commit(body, files)


def _unit_files(result: Mapping[str, Any]) -> Iterator[str]:
    """What one unit wrote that the commit may read: its parts and its ``units/`` records."""
    for parts in result["parts"].values():
        for p in parts:
            yield p["file"]
            yield p["index"]
            if p.get("mask"):
                yield p["mask"]["file"]
    for ext in ("order", "tail"):
        yield f"units/{result['index']:05d}.{ext}"


def upload_unit(partial: Location, side: str | os.PathLike[str], result: Mapping[str, Any]) -> None:
    """Stage one finished unit's files from the task's own disk (Ray: no shared file system)."""
    for rel in _unit_files(result):
        local = Path(side) / rel
        if local.is_file():
            stage_file(partial, local, rel)


def fetch_missing(partial: Location, side: Path, results: list[dict[str, Any]]) -> int:
    """Download the unit files a task staged from another node; returns how many came."""
    fetched = 0
    for result in results:
        for rel in _unit_files(result):
            local = side / rel
            if local.is_file():
                continue
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                partial.child(rel).get_file(local)
                fetched += 1
            except RemoteNotFound:
                continue  # .order/.tail exist only for some split policies
    return fetched


def finish(out: Location) -> TokenStore:
    """After the commit (and the local lock's release): drop the scratch folder, open the store
    at its URL, as a reader would (manifest and listing only; shards come on first read).

    >>> finish(Location("s3://b/stores/web")).url
    's3://b/stores/web'
    """
    shutil.rmtree(scratch_out(out).parent, ignore_errors=True)
    with contextlib.suppress(OSError):  # prepare/ itself, once no other run uses it
        scratch_out(out).parent.parent.rmdir()
    return TokenStore.open(out)
