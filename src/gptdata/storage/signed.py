"""Reading objects through signed HTTPS URLs, with the standard library alone.

A process that only reads objects another process listed does not need the filesystem's client:
importing s3fs (aiohttp, botocore) and building one S3 client costs ~41 MiB of RSS per process
(measured: +25 MiB on import, +16 MiB of service models on the first request). The lister signs
each object once (``sign``: fsspec's ``fs.sign``, which s3fs, gcsfs and adlfs implement); a reader
registers the signed URLs (``using``) and ``Location.open``, ``read_range`` and ``iter_chunks``
then send plain ranged GETs over ``http.client`` (+1.7 MiB) instead.

    >>> table = {"s3://b/a.jsonl": sign(Location("s3://b/a.jsonl"), size=120)}
    >>> with using(table, {}):
    ...     Location("s3://b/a.jsonl").read_range(0, 5)   # one GET, no botocore imported
    b'{"tex'

A filesystem that cannot sign (``NotImplementedError``, or credentials that cannot sign) gives
no URL and is read through fsspec as before. A read that fails through its signed URL (HTTP 403:
expired, or its credentials revoked; a proxy or certificate only the client is set up for) goes
on through fsspec for that object, whose error, if any, is the usual one line naming the
``s3://`` URL and the fix. Nothing here is specific to one cloud.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from .errors import _CREDENTIALS_FIX, SCHEMES, RemoteAccessDenied, RemoteNotFound, StorageError

# Signed URLs live this long. Each is a read credential for its object (kept in memory only,
# never printed or written), so it is made short rather than S3's 7-day maximum: a run longer
# than a day, or temporary credentials that die earlier, get a 403 and fall back to the
# filesystem (see the module), which costs only the client's memory from then on.
SIGN_SECONDS = 24 * 3600
TIMEOUT = 60.0  # seconds per request without a byte before the read fails
_RETRIES = 3  # dropped keep-alive connections and 5xx answers are retried, with a pause

Signed = tuple[str, int]  # (signed URL, object size in bytes)
_table: dict[str, tuple[str, int, Mapping[str, Any]]] = {}  # url -> (signed, size, options)
_conns = threading.local()  # per thread: {netloc: connection}, and the pid that opened them
_unreachable: set[str] = set()  # hosts a signed read could not reach: later reads go to fsspec
# http.client ignores proxies; the filesystem's client honours them (and NO_PROXY): leave it to it.
_PROXIES = ("https_proxy", "http_proxy", "all_proxy")


def sign(loc: Any, *, size: int, expires: int = SIGN_SECONDS) -> Signed | None:
    """``(signed URL, size)`` for a ``Location``, or None where its filesystem cannot sign
    (or a proxy is set). ~0.3 ms an object with s3fs (measured): 10,000 objects take 3 s.

        >>> sign(Location("s3://b/corpus/a.txt"), size=2)
        ('https://b.s3.amazonaws.com/corpus/a.txt?X-Amz-Algorithm=...', 2)
    """
    if any(os.environ.get(name) or os.environ.get(name.upper()) for name in _PROXIES):
        return None
    try:
        url = loc.fs.sign(loc.path, expiration=expires)
    except Exception:  # NotImplementedError, or e.g. gcsfs with user credentials: read via fsspec
        return None
    return (url, size) if isinstance(url, str) and url.startswith(("https://", "http://")) else None


@contextlib.contextmanager
def using(
    table: Mapping[str, Signed] | None, storage_options: Mapping[str, Any] | None
) -> Iterator[None]:
    """While inside, reads of these URLs (with these storage options) go through their signed
    URLs. On exit the entries this call added go again (readers nested or interleaved keep
    theirs; a URL read after its entry went is read through fsspec: slower, never wrong)."""
    opts = dict(storage_options or {})
    added = {url: (s, n, opts) for url, (s, n) in (table or {}).items()}
    _table.update(added)
    try:
        yield
    finally:
        for url, entry in added.items():
            if _table.get(url) is entry:
                del _table[url]


def lookup(url: str, storage_options: Mapping[str, Any]) -> Signed | None:
    """The signed URL and size registered for ``url`` with these options, or None."""
    hit = _table.get(url)
    return (hit[0], hit[1]) if hit is not None and hit[2] == storage_options else None


def _connection(scheme: str, netloc: str, fresh: bool = False) -> Any:
    import http.client  # here: a process that never reads a signed URL never imports it

    if getattr(_conns, "pid", None) != os.getpid():  # a forked child never shares a socket
        _conns.pid, _conns.open = os.getpid(), {}
    conn = _conns.open.get((scheme, netloc))
    if conn is None or fresh:
        if conn is not None:
            conn.close()
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        conn = _conns.open[(scheme, netloc)] = cls(netloc, timeout=TIMEOUT)
    return conn


class SignedReadFailed(Exception):
    """A read through a signed URL failed; ``error`` is the one-line ``StorageError`` for it.

    ``SignedFile`` then reads through the filesystem instead (a URL that expired, a proxy or
    certificate that only the filesystem's client is set up for), whose error, if it fails
    too, is the canonical one; without a fallback it raises ``error``.
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _code(body: bytes) -> str:
    """The service's error code in an XML error body (S3, GCS, Azure all send one), or ''."""
    m = re.search(rb"<Code>([^<]{1,64})</Code>", body)
    return m.group(1).decode("ascii", "replace") if m else ""


def get_range(url: str, signed: str, start: int, end: int) -> bytes:
    """Bytes ``start..end`` (end exclusive) of the object at ``signed``; errors name ``url``.

    Raises ``SignedReadFailed`` (after 3 tries for dropped connections and 5xx answers).
    """
    if end <= start:
        return b""
    parts = urlsplit(signed)
    target = parts.path + ("?" + parts.query if parts.query else "")
    headers = {"Range": f"bytes={start}-{end - 1}"}
    if parts.netloc in _unreachable:  # known: do not wait for the network again
        raise SignedReadFailed(_unreached(url, "unreachable before"))
    for attempt in range(_RETRIES):
        conn = _connection(parts.scheme, parts.netloc, fresh=attempt > 0)
        try:
            conn.request("GET", target, headers=headers)
            resp = conn.getresponse()
            # A server that ignores Range sends the whole object: read only up to `end`, then
            # drop the connection (S3, GCS and Azure honour Range; memory stays the range).
            body = resp.read() if resp.status != 200 else resp.read(end)
            if resp.status == 200:
                conn.close()
        except (OSError, ValueError) as exc:  # refused, reset, a keep-alive the server dropped
            if attempt + 1 < _RETRIES and not isinstance(exc, ConnectionRefusedError):
                time.sleep(0.2 * attempt)
                continue
            _unreachable.add(parts.netloc)
            raise SignedReadFailed(_unreached(url, type(exc).__name__)) from None
        if resp.status == 206:
            return body
        if resp.status == 200:
            return body[start:end]
        if resp.status == 416:  # past the end: an object that shrank since it was listed
            return b""
        if resp.status >= 500 and attempt + 1 < _RETRIES:
            time.sleep(0.2 * (attempt + 1))
            continue
        code = _code(body) or f"HTTP {resp.status}"
        if resp.status == 403:
            fix = _CREDENTIALS_FIX.get(SCHEMES.get(url.partition(":")[0], ("", ""))[0], "")
            error: Exception = RemoteAccessDenied(
                f"access denied to read {url} through its signed URL ({code}): it expired or "
                "its credentials were revoked. Run the same command again (it signs new URLs)"
                + (f", or {fix}." if fix else ".")
            )
        elif resp.status == 404:
            error = RemoteNotFound(f"{url} does not exist: check the path (it is case-sensitive).")
        else:
            error = StorageError(
                f"could not read {url}: {code} ({resp.status} {resp.reason}). "
                "Run the same command again; finished work is kept."
            )
        raise SignedReadFailed(error)
    raise AssertionError("unreachable")


class SignedFile(io.RawIOBase):
    """A seekable, read-only file over a signed URL: each read is a ranged GET of at least
    ``block_size`` bytes (read ahead, as fsspec's ``readahead`` cache), one block held at a time.

    When a read fails (``SignedReadFailed``) it asks ``fallback()`` (``Location``'s fsspec
    reader) for the rest of the file.
    """

    def __init__(
        self,
        url: str,
        signed: Signed,
        *,
        block_size: int,
        fallback: Callable[[], BinaryIO] | None = None,
    ) -> None:
        super().__init__()
        self.url, (self._signed, self._size) = url, signed
        self._block, self._fallback = max(1, block_size), fallback
        self._pos, self._buf, self._buf_at = 0, b"", 0
        self._other: BinaryIO | None = None  # the fsspec reader, after a 403

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    @property
    def size(self) -> int:
        return self._size

    def _get(self, start: int, end: int) -> bytes:
        try:
            return get_range(self.url, self._signed, start, end)
        except SignedReadFailed as exc:
            if self._fallback is None:
                raise exc.error from None
            self._other = self._fallback()  # the filesystem's reader, for the rest
            self._other.seek(start)
            return self._other.read(end - start)

    def _fill(self, pos: int) -> bool:
        """Make the block at ``pos`` the buffer; False at the end of the object."""
        if pos >= self._size:
            return False
        self._buf_at, self._buf = pos, b""  # drop the old block before the next arrives
        self._buf = self._get(pos, min(self._size, pos + self._block))
        return bool(self._buf)

    def _buffered(self, end: int) -> bytes:
        """What the buffer holds of ``pos..end``, advancing ``pos`` past it."""
        lo = self._pos - self._buf_at
        if not 0 <= lo < len(self._buf):
            return b""
        data = self._buf[lo : lo + end - self._pos]
        self._pos += len(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        if self._other is not None:
            return self._read_other(size)
        end = self._size if size is None or size < 0 else min(self._size, self._pos + size)
        head = self._buffered(end)
        if self._pos >= end:
            return head
        if end - self._pos >= self._block:  # a large read: straight through, no buffer copy
            tail = self._get(self._pos, end)
            self._pos += len(tail)
        elif self._fill(self._pos) and self._other is None:
            tail = self._buffered(end)
        else:  # the end, or a 403 just switched to the fallback reader
            return head + (self._read_other(end - self._pos) if self._other else b"")
        return head + tail if head else tail

    def _read_other(self, size: int | None) -> bytes:
        assert self._other is not None
        self._other.seek(self._pos)
        data = self._other.read(-1 if size is None else size)
        self._pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        # Scan the buffer block by block: RawIOBase's default asks one byte at a time.
        parts = []
        while self._other is None:
            lo = self._pos - self._buf_at
            if not 0 <= lo < len(self._buf) and not self._fill(self._pos):
                break
            if self._other is not None:
                break
            lo = self._pos - self._buf_at
            cut = self._buf.find(b"\n", lo)
            stop = len(self._buf) if cut < 0 else cut + 1
            parts.append(self._buf[lo:stop])
            self._pos = self._buf_at + stop
            if cut >= 0:
                break
        if self._other is not None:
            self._other.seek(self._pos)
            rest = self._other.readline()
            self._pos += len(rest)
            parts.append(rest)
        line = b"".join(parts)
        return line if size is None or size < 0 else line[:size]

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if self._other is not None:
            self._other.close()
        self._buf = b""
        super().close()


def _unreached(url: str, why: str) -> Exception:
    return StorageError(
        f"cannot reach the storage endpoint for {url} ({why}): check the network, or "
        "--storage-option endpoint_url=..."
    )
