"""Object storage, below the store: remote URLs in, local shard files and committed stores out.

``s3://``, ``gs://`` and ``az://`` locations go through fsspec (s3fs, gcsfs, adlfs); nothing here
is S3-specific, and every failure is one line naming the URL and the fix.

- ``urls``: ``is_remote``, ``Location`` (list, glob, ranged and streaming reads, writes),
  ``parse_storage_options`` for ``--storage-option key=value``, ``StorageError``.
- ``streams``: ``RemoteReader``, what ``Location.open`` returns: a seekable file whose errors are
  one line too (gzip and pyarrow read remote inputs through it).
- ``signed``: reads through signed URLs (``fs.sign``) with ``http.client``, for processes that
  read objects another one listed: no S3 client (~41 MiB) built there; fsspec when that fails.
- ``errors``: ``StorageError`` and its kinds, ``translate``: every failure as one line.
- ``cache``: ``ShardCache``, a store's shards on local disk (``$GPTDATA_CACHE_DIR/shards``),
  verified once by sha256, least recently used evicted past ``limit``, prefetched ahead.
- ``eviction``: the cache's least-recently-used eviction (files in use stay, lock files go with
  their files); ``locks``: its lock files, which a forked process never keeps for its parent.
- ``sizes``: ``parse_size`` and ``cache_limit_bytes``: "10GB" as ``--cache-limit`` and
  ``cache_limit=`` take it.
- ``commit``: ``RemoteStoreWriter``, writing a store with no rename: shards staged under
  ``OUT.partial/``, the manifest written last, a lock object with a lease.

    >>> from gptdata.storage import Location, ShardCache, is_remote
    >>> is_remote("s3://bucket/stores/web")
    True

This stage imports nothing else from gptdata; ``store/``, ``prepare/`` and the loader build on it.
"""

from .cache import CachedShard, RemoteFile, ShardCache, default_cache_dir
from .commit import RemoteBusyError, RemoteLock, RemoteStoreWriter, check_remote_out, stage_file
from .urls import (
    Location,
    RemoteAccessDenied,
    RemoteNotFound,
    StorageError,
    expand,
    is_remote,
    lost_url,
    parse_storage_options,
)

__all__ = [
    "CachedShard",
    "Location",
    "RemoteAccessDenied",
    "RemoteBusyError",
    "RemoteFile",
    "RemoteLock",
    "RemoteNotFound",
    "RemoteStoreWriter",
    "ShardCache",
    "StorageError",
    "check_remote_out",
    "default_cache_dir",
    "expand",
    "is_remote",
    "lost_url",
    "parse_storage_options",
    "stage_file",
]
