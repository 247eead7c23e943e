"""A real S3 API for the object-storage tests (fixtures that tests/conftest.py re-exports): moto's server on 127.0.0.1, a fresh bucket each.

Nothing is mocked: the code under test talks HTTP to ``ThreadedMotoServer`` through s3fs, as it
would to AWS. The server listens on a random free port of 127.0.0.1 only (no other network), and
the credentials are dummy values set per test, with the instance-metadata lookup switched off.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

MISSING = [m for m in ("fsspec", "s3fs", "moto", "boto3") if importlib.util.find_spec(m) is None]
needs_s3 = pytest.mark.skipif(
    bool(MISSING),
    reason=f"object-storage tests need {', '.join(MISSING)}: pip install -e '.[dev]'",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    if MISSING:
        pytest.skip(f"object-storage tests need {', '.join(MISSING)}")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def set_dummy_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def s3(
    s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> Iterator[dict[str, Any]]:
    """A fresh bucket: {"bucket", "options" (storage_options), "url" (s3://bucket)}."""
    import s3fs

    set_dummy_credentials(monkeypatch, tmp_path)
    s3fs.S3FileSystem.clear_instance_cache()  # credentials are read when an instance is made
    options = {"endpoint_url": s3_endpoint}
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**options).mkdir(bucket)
    yield {"bucket": bucket, "options": options, "url": f"s3://{bucket}"}
    s3fs.S3FileSystem.clear_instance_cache()


def upload(local: Any, s3: dict[str, Any], prefix: str = "stores/web") -> str:
    """Put a local file, or every file below a local folder, under ``s3://bucket/prefix``; the URL.

    upload(Path("store"), s3, "stores/web") -> "s3://test-1a2b.../stores/web"
    """
    from gptdata.storage import Location

    root = Location(f"{s3['url']}/{prefix}", storage_options=s3["options"])
    if local.is_file():
        root.put_file(local)
        return root.url
    for f in sorted(local.rglob("*")):
        if f.is_file():
            root.child(f.relative_to(local).as_posix()).put_file(f)
    return root.url
