"""What a URL names: a token store (its ``manifest.json`` is there) or objects to read.

Every reader that takes a URL as a source (``load_tokens``, ``evaluate``, the verbs' SOURCE,
``InstructionDataset``, ``plan --instructions``) asks here, so the rule is written once:

    >>> open_url("s3://b/stores/web")           # holds a manifest
    TokenStore('s3://b/stores/web')
    >>> open_url("s3://b/sft/data.json")        # an object (or a prefix of them)
    Location('s3://b/sft/data.json')

One ``HEAD`` of ``URL/manifest.json``; a store's shards are read later, through the cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..storage import Location
from .layout import MANIFEST
from .tokenstore import TokenStore


def open_url(
    source: str | Location,
    *,
    storage_options: Mapping[str, Any] | None = None,
    cache_limit: int | str | None = None,
) -> TokenStore | Location:
    """The ``TokenStore`` at ``source`` (read through the cache, ``cache_limit`` bytes at most),
    else its ``Location``; ``storage_options`` join a ``Location``'s own."""
    if isinstance(source, Location):
        loc = Location(
            source.url, storage_options={**source.storage_options, **(storage_options or {})}
        )
    else:
        loc = Location(source, storage_options=dict(storage_options or {}))
    if loc.child(MANIFEST).is_file():
        return TokenStore.open(loc, cache_limit=cache_limit)
    return loc
