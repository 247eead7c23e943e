"""The one-line errors of object storage: ``StorageError`` and its kinds, and ``translate``.

Every remote call (``urls.Location`` through fsspec, ``signed.SignedFile`` through signed URLs)
turns what the filesystem or the server raised into one line naming the URL and the fix, never a
botocore traceback:

    >>> translate(FileNotFoundError("NoSuchKey"), "s3://b/corpus/a.txt")
    RemoteNotFound('s3://b/corpus/a.txt does not exist: check the path (it is case-sensitive).')
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

# scheme -> (fsspec protocol, package that provides it)
SCHEMES: dict[str, tuple[str, str]] = {
    "s3": ("s3", "s3fs"),
    "s3a": ("s3", "s3fs"),
    "gs": ("gcs", "gcsfs"),
    "gcs": ("gcs", "gcsfs"),
    "az": ("abfs", "adlfs"),
    "abfs": ("abfs", "adlfs"),
    "abfss": ("abfs", "adlfs"),
}
_URL = re.compile(r"([a-z0-9]+)://(.*)", re.IGNORECASE)
# The fix for missing or refused credentials, per fsspec protocol.
_UNKNOWN_OPTION = re.compile(r"unexpected keyword argument '([^']+)'")
_CREDENTIALS_FIX = {
    "s3": "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, run `aws configure`, "
    "or pass --storage-option anon=true for a public bucket",
    "gcs": "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS",
    "abfs": "set AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY, or run `az login`",
}


class StorageError(OSError):
    """A remote call failed; the message is one line: what, the URL, and the fix."""


class RemoteNotFound(StorageError, FileNotFoundError):
    """No such bucket or no such object."""


class RemoteAccessDenied(StorageError, PermissionError):
    """Missing, refused or insufficient credentials."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _codes(exc: BaseException) -> tuple[set[str], str]:
    """Class names and service error codes along the chain, and the chain's text, lowercased."""
    names: set[str] = set()
    text = []
    for e in _chain(exc):
        names.add(type(e).__name__)
        response = getattr(e, "response", None)  # botocore's ClientError, without importing it
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                names.add(str(code))
        text.append(str(e))
    return names, " ".join(text).lower()


def translate(exc: BaseException, url: str, action: str = "read") -> StorageError:
    """The one-line ``StorageError`` for an exception raised while ``action``-ing ``url``.

    >>> translate(FileNotFoundError("NoSuchBucket"), "s3://nope/x")
    RemoteNotFound("bucket 'nope' of s3://nope/x does not exist ...")
    """
    if isinstance(exc, StorageError):
        return exc
    m = _URL.fullmatch(url)
    scheme = m.group(1).lower() if m else ""
    protocol = SCHEMES.get(scheme, (scheme, ""))[0]
    bucket = m.group(2).split("/", 1)[0] if m else ""
    names, text = _codes(exc)
    fix = _CREDENTIALS_FIX.get(protocol, "configure credentials for this storage")
    if names & {"NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError"} or (
        "unable to locate credentials" in text
    ):
        return RemoteAccessDenied(f"no credentials to {action} {url}: {fix}.")
    if names & {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}:
        return RemoteAccessDenied(f"the credentials were refused for {url}: {fix}.")
    if "NoSuchBucket" in names or "bucket does not exist" in text:
        return RemoteNotFound(
            f"bucket '{bucket}' of {url} does not exist: check its name, or pass "
            "--storage-option endpoint_url=... when it lives on another endpoint."
        )
    if names & {"AccessDenied", "Forbidden", "PermissionError", "AllAccessDisabled"}:
        return RemoteAccessDenied(
            f"access denied to {action} {url}: ask for permission on bucket '{bucket}', or {fix}."
        )
    if names & {"NoSuchKey", "FileNotFoundError", "NotFound", "404"}:
        return RemoteNotFound(f"{url} does not exist: check the path (it is case-sensitive).")
    if names & {"EndpointConnectionError", "ClientConnectorError", "ConnectionRefusedError"}:
        return StorageError(
            f"cannot reach the storage endpoint for {url}: check the network, or "
            "--storage-option endpoint_url=..."
        )
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    if isinstance(exc, TypeError) and (bad := _UNKNOWN_OPTION.search(first)):
        return StorageError(
            f"storage option '{bad.group(1)}' is not one that {protocol or scheme}'s filesystem "
            f"takes ({url}): check its name in --storage-option / storage_options= (for S3: "
            "endpoint_url, anon, key, secret, client_kwargs.region_name, ...)."
        )
    if "EndpointResolutionError" in names or first.startswith("Invalid endpoint"):
        return StorageError(
            f"the storage endpoint for {url} is not a valid URL ({first}): give its scheme, "
            "host and port, e.g. --storage-option endpoint_url=http://127.0.0.1:9000."
        )
    return StorageError(f"could not {action} {url}: {type(exc).__name__}: {first}")


@contextlib.contextmanager
def remote_errors(url: str, action: str = "read") -> Iterator[None]:
    """Raise any failure inside as ``translate(exc, url, action)``, with no traceback chain."""
    try:
        yield
    except StorageError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise translate(exc, url, action) from None
    except Exception as exc:  # botocore/aiohttp errors derive from Exception only
        raise translate(exc, url, action) from None
