"""Shared fixtures: the public-domain corpora that ship with the tests (tests/data/)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from s3fixtures import s3, s3_endpoint  # noqa: F401  (moto's S3 server: tests/storage)

# The Verdict (Edith Wharton, 1908) and Tiny Shakespeare: public domain, so they ship here and a
# fresh clone runs every test.
DATA = Path(__file__).resolve().parent / "data"


def corpus(name: str) -> Path:
    path = DATA / name
    assert path.is_file(), f"tests/data/{name} is missing from the checkout"
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


def kill_after_first_unit(cmd: list[str], out: Path, *, unit_delay: str) -> int:
    """Run a `gptdata prepare ... -o out` command, SIGKILL it once its first unit is recorded.

    Each unit sleeps ``unit_delay`` seconds first, so the kill lands mid-run. Returns the PID.
    """
    env = dict(os.environ, GPTDATA_TEST_UNIT_DELAY=unit_delay)
    proc = subprocess.Popen(cmd, env=env)
    units = out.with_name(out.name + ".partial") / "units"
    deadline = time.time() + 90
    while time.time() < deadline and not (units.is_dir() and any(units.glob("*.json"))):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert any(units.glob("*.json")), "the run was killed before any unit finished"
    assert not (out / "manifest.json").exists(), "the run finished before the kill"
    return proc.pid
