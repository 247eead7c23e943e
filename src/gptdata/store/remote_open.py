"""What opening a token store on object storage reads and checks, before any shard is read.

``TokenStore.open("s3://b/web")`` reads the manifest and one listing here, checks each file's size
against the listing (no download), and names the store's cache folder:

    >>> manifest, files = read_remote_manifest(Location("s3://b/web"))
    >>> cache_root(remote_store_id(manifest))
    PosixPath('/root/.cache/gptdata/shards/7d2c0883d5ea8d5c56cb8b97f70df031')

Left out: reading shards (``store.remote``'s ``RemoteSplit``, through the cache).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..storage import Location
from ..storage.cache import default_cache_dir
from .manifest import MANIFEST, store_id_for
from .masks import mask_bytes
from .split import Shard, StoreError


def read_remote_manifest(loc: Location) -> tuple[dict[str, Any], dict[str, int]]:
    """The manifest at ``loc`` (parsed, unchecked) and the listing of every file below it."""
    files = loc.files()
    if MANIFEST not in files:
        hint = (
            " A prepare run may still be going, or was killed: run it again to resume."
            if loc.with_suffix(".partial").exists()
            else ""
        )
        raise StoreError(
            f"{loc.url}: not a token store (no {MANIFEST}).{hint} "
            f"Create one with: gptdata prepare INPUT -o {loc.url}"
        )
    raw = loc.child(MANIFEST).read_bytes()
    try:
        return json.loads(raw.decode("utf-8")), files
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise StoreError(
            f"{loc.url}/{MANIFEST}: corrupt manifest ({type(exc).__name__}: {str(exc)[:80]}). "
            "Re-run gptdata prepare."
        ) from None


def remote_store_id(manifest: dict[str, Any]) -> str:
    # Stores written before store ids get the id they would have had: the cache needs a name.
    return manifest.get("store_id") or store_id_for(manifest)


def check_remote_files(
    url: str, splits: Mapping[str, list[Shard]], files: Mapping[str, int], itemsize: int
) -> None:
    """Every file the manifest lists is in the listing with the size it implies (no download)."""
    for name, shards in splits.items():
        for k, s in enumerate(shards):
            want = [(s.file, s.tokens * itemsize), (s.index, s.documents * 8)]
            if s.mask is not None:
                want.append((s.mask["file"], mask_bytes(s.tokens)))
            for rel, size in want:
                if rel not in files:
                    raise StoreError(
                        f"{url}/{rel}: missing (splits.{name}.shards[{k}]). The store is "
                        "incomplete; re-run gptdata prepare."
                    )
                if files[rel] != size:
                    raise StoreError(
                        f"{url}/{rel}: {files[rel]:,} bytes, but the manifest implies {size:,}. "
                        "The file is truncated or replaced; re-run gptdata prepare."
                    )


def cache_root(store_id: str, cache_dir: Path | None = None) -> Path:
    """Where a remote store's files land: ``CACHE/shards/<store_id>``, the store's own layout."""
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / "shards" / store_id
