"""Stage 2, the token store: the on-disk format that every later stage reads.

In: token IDs per document and split (from ``prepare`` or ``import``). Out: a folder of shards with
a checksummed, self-describing ``manifest.json``, opened as a :class:`TokenStore` whose splits
(:class:`Split`) are memory-mapped arrays. Also here: side folders, locks and the split rules.
"""

from .layout import MANIFEST
from .locate import open_url
from .split import Shard, Split, StoreError
from .tokenstore import TokenStore, dtype_for, write_json_atomic

__all__ = [
    "MANIFEST",
    "Shard",
    "Split",
    "StoreError",
    "TokenStore",
    "dtype_for",
    "open_url",
    "write_json_atomic",
]
