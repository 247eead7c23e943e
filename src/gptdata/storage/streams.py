"""A remote object as a seekable binary file whose failures are one-line ``StorageError``\\ s.

``Location.open`` hands this to the readers that take a file object (gzip, pyarrow's Parquet and
Arrow IPC readers): every ``read`` is a ranged request through fsspec's read-ahead buffer, so an
object is never held whole, and a botocore error met mid-read becomes the same one line as one met
on open, naming the URL and the fix.

    >>> with Location("s3://b/corpus/a.jsonl.gz").open() as fh:
    ...     first = gzip.GzipFile(fileobj=fh).readline()
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

# urls.remote_errors, passed in by Location.open: this module imports nothing (no circle with urls)
Guard = Callable[[str], contextlib.AbstractContextManager[None]]


class RemoteReader(io.RawIOBase):
    """``raw`` (an fsspec file) with its errors translated by ``guard``; seekable, read-only."""

    def __init__(self, raw: Any, url: str, guard: Guard) -> None:
        super().__init__()
        self._raw, self.url, self._guard = raw, url, guard

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    @property
    def size(self) -> int:
        return int(self._raw.size)

    def read(self, size: int | None = -1) -> bytes:
        with self._guard(self.url):
            return bytes(self._raw.read(-1 if size is None else size))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        # fsspec reads ahead to the newline; RawIOBase's default would ask one byte at a time.
        with self._guard(self.url):
            line = bytes(self._raw.readline())
        return line if size is None or size < 0 else line[:size]

    def seek(self, offset: int, whence: int = 0) -> int:
        with self._guard(self.url):
            return int(self._raw.seek(offset, whence))

    def tell(self) -> int:
        return int(self._raw.tell())

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()
