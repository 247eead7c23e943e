"""Fixtures of the object-storage tests: see s3fixtures.py (moto's S3 server on 127.0.0.1)."""

from s3fixtures import s3, s3_endpoint  # noqa: F401  (pytest finds fixtures by name here)
