"""storage/signed.py: reads through signed URLs give the filesystem's bytes, fail in one line
naming the s3:// URL, and fall back to fsspec when the URL is refused or cannot be made."""

from __future__ import annotations

import gzip
import io
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gptdata.storage import Location, RemoteAccessDenied, RemoteNotFound, StorageError
from gptdata.storage import signed as signed_urls
from gptdata.storage.signed import SignedFile
from s3fixtures import needs_s3

URL = "s3://b/corpus/k.jsonl"  # what errors must name; the server below never sees it
DATA = b"".join(b'{"text": "line %d %s"}\n' % (i, b"w" * (i % 37)) for i in range(3000))


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.data`` with Range support; ``server.mode`` makes it misbehave."""

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        mode = self.server.mode  # type: ignore[attr-defined]
        self.server.requests += 1  # type: ignore[attr-defined]
        if mode == "403":
            return self._send(403, b"<Error><Code>AccessDenied</Code><Message>expired</Message>")
        if mode == "404":
            return self._send(404, b"<Error><Code>NoSuchKey</Code></Error>")
        if mode == "500-once" and self.server.requests == 1:  # type: ignore[attr-defined]
            return self._send(503, b"<Error><Code>SlowDown</Code></Error>")
        data, spec = self.server.data, self.headers.get("Range", "")  # type: ignore[attr-defined]
        if mode == "ignore-range" or not spec.startswith("bytes="):
            return self._send(200, data)
        lo, hi = (int(x) for x in spec[6:].split("-"))
        if lo >= len(data):
            return self._send(416, b"")
        self._send(206, data[lo : hi + 1])

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.mode, httpd.requests, httpd.data = "ok", 0, DATA  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_port}/b/k?X-Amz-Signature=secret"  # type: ignore[attr-defined]
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _file(server: ThreadingHTTPServer, block: int = 4096, fallback=None) -> SignedFile:
    return SignedFile(URL, (server.url, len(DATA)), block_size=block, fallback=fallback)  # type: ignore[attr-defined]


@pytest.mark.parametrize("block", [64, 4096, 1 << 20])
def test_reads_seeks_and_lines_are_a_local_file_s(server, block) -> None:
    rng = random.Random(block)
    fh, ref = _file(server, block), io.BytesIO(DATA)
    for _ in range(300):
        op = rng.choice(["read", "readline", "seek", "seek_end", "readinto"])
        if op == "read":
            n = rng.choice([0, 1, 5, 100, 5000, -1 if rng.random() < 0.05 else 20000])
            assert fh.read(n) == ref.read(n)
        elif op == "readline":
            assert fh.readline() == ref.readline()
        elif op == "readinto":
            a, b = bytearray(333), bytearray(333)
            assert fh.readinto(a) == ref.readinto(b) and a == b
        elif op == "seek":
            pos = rng.randrange(len(DATA) + 10)
            assert fh.seek(pos) == ref.seek(pos)
        else:
            assert fh.seek(-rng.randrange(1, 100), 2) == ref.seek(fh.tell() - len(DATA), 2)
        assert fh.tell() == ref.tell()
    assert list(_file(server, block)) == DATA.splitlines(keepends=True)


def test_gzip_and_buffered_readers_stream_through_it(server) -> None:
    assert io.BufferedReader(_file(server, 1000)).read() == DATA
    server.data = gzip.compress(DATA)
    fh = SignedFile(URL, (server.url, len(server.data)), block_size=512)
    assert gzip.GzipFile(fileobj=fh).read() == DATA


def test_a_server_that_ignores_range_still_gives_the_range(server) -> None:
    server.mode = "ignore-range"
    fh = _file(server, 100)
    fh.seek(1000)
    assert fh.read(50) == DATA[1000:1050]


def test_a_5xx_is_retried(server) -> None:
    server.mode = "500-once"
    assert _file(server).read(10) == DATA[:10]
    assert server.requests == 2


def test_a_refused_url_is_one_line_naming_the_s3_url(server) -> None:
    server.mode = "403"
    with pytest.raises(
        RemoteAccessDenied,
        match=r"^access denied to read s3://b/corpus/k\.jsonl through its signed URL "
        r"\(AccessDenied\): it expired or its credentials were revoked\. Run the same command "
        r"again \(it signs new URLs\), or set AWS_ACCESS_KEY_ID",
    ) as info:
        _file(server).read(10)
    text = str(info.value)
    assert "\n" not in text and "secret" not in text and "127.0.0.1" not in text


def test_missing_and_unreachable_are_one_line(server) -> None:
    server.mode = "404"
    with pytest.raises(RemoteNotFound, match=r"^s3://b/corpus/k\.jsonl does not exist"):
        _file(server).read(10)
    port = server.server_port
    server.shutdown()
    server.server_close()
    fh = SignedFile(URL, (f"http://127.0.0.1:{port}/b/k?sig", 10), block_size=10)
    with pytest.raises(
        StorageError, match=r"^cannot reach the storage endpoint for s3://b/corpus/k"
    ):
        fh.read(10)


def test_a_refused_url_falls_back_to_the_filesystem_where_it_stopped(server) -> None:
    fh = _file(server, 100, fallback=lambda: io.BytesIO(DATA))
    assert fh.read(250) == DATA[:250]
    server.mode = "403"  # the URL expires mid-read
    assert fh.readline() == io.BytesIO(DATA[250:]).readline()
    pos = fh.tell()
    assert fh.read() == DATA[pos:]
    assert fh.tell() == len(DATA)


def test_a_filesystem_that_cannot_sign_gives_no_url() -> None:
    class NoSign:
        def sign(self, path: str, expiration: int = 100) -> str:
            raise NotImplementedError

    loc = Location("gs://b/corpus/a.txt")
    loc._fs = NoSign()
    assert signed_urls.sign(loc, size=3) is None
    with signed_urls.using({}, None):  # and nothing is registered for it: fsspec reads it
        assert loc._signed() is None


def test_behind_a_proxy_the_filesystem_reads(monkeypatch) -> None:
    class Signs:
        def sign(self, path: str, expiration: int = 100) -> str:
            return f"https://host/{path}?sig"

    loc = Location("az://b/corpus/a.txt")
    loc._fs = Signs()
    for name in ("https_proxy", "http_proxy", "all_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert signed_urls.sign(loc, size=3) == ("https://host/b/corpus/a.txt?sig", 3)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")  # http.client would ignore it
    assert signed_urls.sign(loc, size=3) is None


# Against moto's S3 server: s3fs signs, the standard library reads.


def _object(s3, data: bytes = DATA) -> Location:
    loc = Location(f"{s3['url']}/corpus/k.jsonl", storage_options=s3["options"])
    loc.write_bytes(data)
    return loc


@needs_s3
def test_signed_reads_never_touch_the_filesystem(s3, monkeypatch) -> None:
    loc = _object(s3)
    table = {loc.url: signed_urls.sign(loc, size=len(DATA))}
    fresh = Location(loc.url, storage_options=s3["options"])

    def no_fs(self):  # type: ignore[no-untyped-def]
        raise AssertionError("read through fsspec")

    monkeypatch.setattr(Location, "fs", property(no_fs))
    with signed_urls.using(table, s3["options"]):
        assert fresh.read_range(100, 5000) == DATA[100:5000]
        assert b"".join(fresh.iter_chunks(chunk_size=999, start=7)) == DATA[7:]
        with fresh.open(block_size=4096) as fh:
            assert list(iter(fh.readline, b"")) == DATA.splitlines(keepends=True)
    other = Location(loc.url, storage_options={**s3["options"], "anon": True})
    with signed_urls.using(table, s3["options"]), pytest.raises(StorageError, match="fsspec"):
        other.read_range(0, 1)  # other options: not the signed URL's object
    with pytest.raises(StorageError, match="read through fsspec"):
        fresh.read_range(0, 1)  # out of `using`: the entry is gone


@needs_s3
def test_an_expired_url_is_read_again_through_the_filesystem(s3, server) -> None:
    loc = _object(s3)
    server.mode = "403"
    with signed_urls.using({loc.url: (server.url, len(DATA))}, s3["options"]):
        assert loc.read_range(10, 20) == DATA[10:20]
        assert server.requests == 1


@needs_s3
def test_an_expired_url_without_credentials_is_one_line(s3, server, monkeypatch) -> None:
    import s3fs

    loc = _object(s3)
    server.mode = "403"
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    s3fs.S3FileSystem.clear_instance_cache()
    fresh = Location(loc.url, storage_options=s3["options"])
    with signed_urls.using({loc.url: (server.url, len(DATA))}, s3["options"]):
        with pytest.raises(RemoteAccessDenied, match=rf"^no credentials to read {loc.url}: ") as e:
            fresh.read_range(0, 10)
    assert "\n" not in str(e.value) and "secret" not in str(e.value)
