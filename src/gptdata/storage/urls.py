"""Remote locations (``s3://``, ``gs://``, ``az://``) through fsspec, with one-line errors.

A ``Location`` is a URL plus its ``storage_options``; it lists, globs, streams byte ranges and
writes objects through whichever fsspec filesystem the scheme names (s3fs, gcsfs, adlfs), so
nothing here is S3-specific. Every call translates the filesystem's exceptions into a
``StorageError`` of one line naming the URL and the fix, never a botocore traceback.

    >>> is_remote("s3://bucket/corpus/"), is_remote("corpus/")
    (True, False)
    >>> parse_storage_options(["endpoint_url=http://127.0.0.1:9000", "anon=true"])
    {'endpoint_url': 'http://127.0.0.1:9000', 'anon': True}
    >>> Location("s3://bucket/stores/web").child("manifest.json").url
    's3://bucket/stores/web/manifest.json'

Deliberately left out: local paths (the rest of gptdata reads them with ``open``), and any
client setting fsspec does not take as a storage option (credentials come from each cloud's own
chain: environment, config files, instance roles).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, BinaryIO

from . import signed
from .errors import (
    _URL,
    SCHEMES,
    RemoteAccessDenied,
    RemoteNotFound,
    StorageError,
    remote_errors,
    translate,
)
from .streams import RemoteReader

__all__ = [  # the errors live in errors.py; they are importable from here as before
    "CHUNK",
    "SCHEMES",
    "Location",
    "RemoteAccessDenied",
    "RemoteNotFound",
    "StorageError",
    "expand",
    "is_remote",
    "lost_url",
    "parse_storage_options",
    "remote_errors",
    "translate",
]

_GLOB = re.compile(r"[*?\[]")
CHUNK = 8 << 20  # bytes per ranged read: large enough that a request's latency is noise
SMALL_OBJECT = 1 << 24  # read_bytes refuses more: a manifest is far below 16 MiB
# Values that stay strings whatever they look like (a secret made of digits is still a secret).
_STRING_OPTIONS = {"key", "secret", "token", "endpoint_url", "profile", "region_name"}


def is_remote(path: object) -> bool:
    """Whether ``path`` is a URL of object storage gptdata reads through fsspec.

    Only strings count: ``Path("s3://b/k")`` has already collapsed to ``s3:/b/k``.

        >>> is_remote("gs://bucket/x"), is_remote("./s3:/x")
        (True, False)
    """
    m = _URL.fullmatch(path) if isinstance(path, str) else None
    return m is not None and m.group(1).lower() in SCHEMES


def parse_storage_options(items: Iterable[str]) -> dict[str, Any]:
    """``--storage-option key=value`` strings as fsspec's ``storage_options`` dict.

    Values ``true``/``false``/``null``, numbers and JSON objects are parsed as JSON (except
    credentials and URLs, which stay strings); a dotted key nests:

        >>> parse_storage_options(["client_kwargs.region_name=eu-west-1", "max_concurrency=8"])
        {'client_kwargs': {'region_name': 'eu-west-1'}, 'max_concurrency': 8}
    """
    options: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(
                f"--storage-option {item!r} is not key=value. "
                "Write it as --storage-option endpoint_url=http://127.0.0.1:9000"
            )
        *path, leaf = key.split(".")
        value: Any = raw
        if leaf not in _STRING_OPTIONS:
            with contextlib.suppress(ValueError):
                value = json.loads(raw)
            if isinstance(value, str):  # a JSON string literal keeps its quotes off: "x" -> x
                value = value if raw.startswith('"') else raw
        target = options
        for part in path:
            nxt = target.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ValueError(f"--storage-option {item!r}: {part!r} was already set to a value")
            target = nxt
        target[leaf] = value
    return options


def _filesystem(protocol: str, package: str, options: Mapping[str, Any]) -> Any:
    try:
        import fsspec
    except ImportError:
        raise StorageError(
            "object storage needs fsspec, which is not installed. Fix: pip install 'gptdata[s3]'"
        ) from None
    try:
        return fsspec.filesystem(protocol, **dict(options))
    except ImportError:
        raise StorageError(
            f"{protocol}:// needs the {package} package, which is not installed. "
            f"Fix: pip install {package}" + ("  (or 'gptdata[s3]')" if package == "s3fs" else "")
        ) from None
    except TypeError as exc:
        raise ValueError(f"a storage option is not accepted by {package}: {exc}") from None


class Location:
    """One remote object or prefix: ``url`` (no trailing ``/``) and its ``storage_options``.

    The filesystem is made on first use and dropped on pickling, so a Location travels to worker
    processes and Ray tasks as its URL and options.

        >>> loc = Location("s3://bucket/stores/web/", storage_options={"anon": True})
        >>> loc.url, loc.bucket, loc.key
        ('s3://bucket/stores/web', 'bucket', 'stores/web')
    """

    def __init__(self, url: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
        m = _URL.fullmatch(url) if isinstance(url, str) else None
        if m is None or m.group(1).lower() not in SCHEMES:
            raise ValueError(
                f"{url!r} is not a URL of object storage; gptdata reads "
                f"{', '.join(s + '://' for s in ('s3', 'gs', 'az'))} through fsspec."
            )
        self.scheme = m.group(1).lower()
        self.protocol, self.package = SCHEMES[self.scheme]
        self.path = m.group(2).rstrip("/")  # bucket/key, as fsspec names it
        if not self.path:
            raise ValueError(f"{url!r} names no bucket. Write it as {self.scheme}://bucket/prefix")
        self.url = f"{self.scheme}://{self.path}"
        self.storage_options: dict[str, Any] = dict(storage_options or {})
        self._fs: Any = None

    def __repr__(self) -> str:
        return f"Location({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and (self.url, self.storage_options) == (
            other.url,
            other.storage_options,
        )

    def __hash__(self) -> int:
        return hash(self.url)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fs": None}

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs = _filesystem(self.protocol, self.package, self.storage_options)
        return self._fs

    @property
    def bucket(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def key(self) -> str:
        return self.path.partition("/")[2]

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def child(self, *parts: str) -> Location:
        """``self/part/...``; parts are ``/``-separated relative keys."""
        rel = "/".join(p.strip("/") for p in parts if p.strip("/"))
        return Location(f"{self.url}/{rel}", storage_options=self.storage_options)

    def with_suffix(self, suffix: str) -> Location:
        """The sibling named ``name + suffix``: ``s3://b/web`` -> ``s3://b/web.partial``."""
        return Location(self.url + suffix, storage_options=self.storage_options)

    def _fresh(self) -> None:
        # Listings are cached per filesystem instance; another writer may have changed them.
        self.fs.invalidate_cache(self.path)

    def exists(self) -> bool:
        """Whether an object or a non-empty prefix is at this URL."""
        with remote_errors(self.url, "look up"):
            self._fresh()
            return bool(self.fs.exists(self.path))

    def is_file(self) -> bool:
        with remote_errors(self.url, "look up"):
            self._fresh()
            return bool(self.fs.isfile(self.path))

    def size(self) -> int:
        with remote_errors(self.url):
            self._fresh()
            return int(self.fs.size(self.path))

    def files(self) -> dict[str, int]:
        """Every object below this prefix: relative key -> size, sorted; {} when none.

        >>> Location("s3://b/store").files()
        {'manifest.json': 1402, 'shards/00000.train.000.bin': 9262, ...}
        """
        with remote_errors(self.url, "list"):
            self._fresh()
            found = self.fs.find(self.path + "/", detail=True)
        start = len(self.path) + 1
        return {
            p[start:]: int(d.get("size") or 0)
            for p, d in sorted(found.items())
            if p.startswith(self.path + "/")
            and not p.endswith("/")  # not the empty "folder" objects some tools make
            and d.get("type", "file") == "file"
        }

    def _signed(self) -> Any:
        """The signed URL a lister registered for this object (``signed.using``), or None."""
        return signed.lookup(self.url, self.storage_options)

    def open(self, *, block_size: int = CHUNK) -> BinaryIO:
        """A streaming reader: each ``read`` fetches only the bytes it asks for (a range), plus
        ``block_size`` read ahead; its errors are one line too (``streams.RemoteReader``).
        With a signed URL registered, plain HTTPS GETs (``signed.SignedFile``) instead."""
        url = self._signed()
        if url is not None:
            return signed.SignedFile(  # type: ignore[return-value]
                self.url, url, block_size=block_size, fallback=lambda: self._open(block_size)
            )
        return self._open(block_size)

    def _open(self, block_size: int) -> BinaryIO:
        with remote_errors(self.url):
            raw = self.fs.open(self.path, "rb", block_size=block_size, cache_type="readahead")
        return RemoteReader(raw, self.url, remote_errors)  # type: ignore[return-value]

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``start``..``end`` (end exclusive) in one ranged request."""
        if self._signed() is not None:
            with self.open(block_size=1) as fh:
                fh.seek(start)
                return fh.read(end - start)
        with remote_errors(self.url):
            return bytes(self.fs.cat_file(self.path, start=start, end=end))

    def iter_chunks(self, *, chunk_size: int = CHUNK, start: int = 0) -> Iterator[bytes]:
        """The object from ``start`` in ranged chunks: memory stays one chunk, whatever its size."""
        if self._signed() is not None:
            with self.open(block_size=1) as fh:
                fh.seek(start)
                while chunk := fh.read(chunk_size):
                    yield chunk
            return
        with remote_errors(self.url):
            fh = self.fs.open(self.path, "rb", block_size=chunk_size, cache_type="none")
        with fh:
            if start:
                fh.seek(start)
            while True:
                with remote_errors(self.url):
                    chunk = fh.read(chunk_size)
                if not chunk:
                    return
                yield chunk

    def read_bytes(self, *, limit: int = SMALL_OBJECT) -> bytes:
        """A small object (a manifest, a marker) whole; refused above ``limit`` bytes."""
        with remote_errors(self.url):
            data = self.fs.cat_file(self.path, start=0, end=limit + 1)
        if len(data) > limit:
            raise StorageError(f"{self.url} is over {limit:,} bytes; it is not a gptdata manifest.")
        return bytes(data)

    def write_bytes(self, data: bytes) -> None:
        """Write a whole object (one PUT: readers see the old object or the new, never half)."""
        with remote_errors(self.url, "write"):
            self.fs.pipe_file(self.path, data)

    def put_file(self, local: str | os.PathLike[str]) -> None:
        """Upload a local file (multipart for large files, as the filesystem does it)."""
        with remote_errors(self.url, "write"):
            self.fs.put_file(os.fspath(local), self.path)

    def get_file(self, local: str | os.PathLike[str]) -> None:
        with remote_errors(self.url):
            self.fs.get_file(self.path, os.fspath(local))

    def copy_to(self, dst: Location) -> None:
        """Copy this object to ``dst`` on the same storage (server-side where it can)."""
        with remote_errors(dst.url, "write"):
            self.fs.copy(self.path, dst.path)

    def delete(self) -> None:
        """Delete this object; one that is already gone is fine."""
        with remote_errors(self.url, "delete"):
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(self.path)

    def delete_keys(self, rels: Iterable[str]) -> None:
        """Delete ``self/rel`` for each ``rel``, in bulk (S3 deletes 1,000 per request)."""
        paths = [self.child(rel).path for rel in rels]
        if paths:
            with remote_errors(self.url, "delete"):
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm(paths)


def expand(
    pattern: str, *, storage_options: Mapping[str, Any] | None = None
) -> list[tuple[Location, int]]:
    """The objects a remote input names, sorted, with their sizes: a glob, a prefix or a key.

    >>> expand("s3://b/more/*.jsonl.gz")
    [(Location('s3://b/more/a.jsonl.gz'), 1024), (Location('s3://b/more/b.jsonl.gz'), 77)]
    """
    root = Location(pattern, storage_options=storage_options)
    opts = root.storage_options
    if _GLOB.search(root.path):
        with remote_errors(root.url, "list"):
            root.fs.invalidate_cache()
            found = root.fs.glob(root.path, detail=True)
        hits = [(p, d) for p, d in sorted(found.items()) if d.get("type", "file") == "file"]
        if not hits:
            raise RemoteNotFound(f"no object matches {root.url}: check the pattern.")
        return [
            (Location(f"{root.scheme}://{p}", storage_options=opts), d["size"]) for p, d in hits
        ]
    below = root.files()
    if below:
        return [(root.child(rel), size) for rel, size in below.items()]
    return [(root, root.size())]  # one object, or RemoteNotFound naming it


def lost_url(text: str) -> str:
    """The fix for a URL that ``Path()`` collapsed ('s3://b/k' -> 's3:/b/k'), or ''.

    >>> lost_url("s3:/bucket/corpus")
    " Did you mean the URL s3://bucket/corpus? A URL needs two slashes after its scheme ..."
    """
    scheme, sep, rest = text.partition(":/")
    if not sep or rest.startswith("/") or not is_remote(f"{scheme}://{rest}"):
        return ""
    return (
        f" Did you mean the URL {scheme}://{rest}? A URL needs two slashes after its scheme "
        "(Path() drops one: pass URLs as a str or a gptdata.storage.Location)."
    )
