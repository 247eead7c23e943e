"""Shared fixtures: the public-domain corpora beside the checkout (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def corpus(name: str) -> Path:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{name} not found beside the checkout (../shared/corpora)")
    return path


@pytest.fixture
def verdict_text() -> str:
    return corpus("the-verdict.txt").read_text(encoding="utf-8")


@pytest.fixture
def shakespeare_path() -> Path:
    return corpus("tinyshakespeare.txt")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # One GPT-2 cache per test session, never the user's home.
    monkeypatch.setenv("GPTDATA_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
