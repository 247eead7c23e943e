"""The Ray engine: same store as the local engine, retried tasks, optional import."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from conftest import kill_after_first_unit
from gptdata import prepare

ray = pytest.importorskip("ray")
from gptdata.prepare.ray_engine import RayExecutor  # noqa: E402

DOCS = [
    f"Document {i}. " + "The quick brown fox jumps over the lazy dog. " * (30 + i % 17)
    for i in range(120)
]


@pytest.fixture
def corpus(tmp_path) -> Path:
    folder = tmp_path / "corpus"
    for i, text in enumerate(DOCS):
        sub = folder / f"part{i % 3}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i:04d}.txt").write_text(text)
    (folder / "extra.jsonl").write_text(
        "".join(f'{{"text": "json line {i}"}}\n' for i in range(50))
    )
    return folder


@pytest.fixture
def ray_temp(tmp_path_factory) -> str:
    # Inside the test's temporary folder, but short: Ray's socket paths must stay < 107 bytes.
    return tempfile.mkdtemp(prefix="r", dir=tmp_path_factory.getbasetemp())


def store_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def ray_processes(temp: str) -> list[psutil.Process]:
    """Processes that name ``temp`` on their command line or hold a file open inside it."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(temp in part for part in (p.info["cmdline"] or [])) or any(
                f.path.startswith(temp) for f in p.open_files()
            ):
                found.append(p)
        except psutil.Error:
            pass
    return found


def test_ray_engine_matches_local(tmp_path, corpus, ray_temp) -> None:
    local = prepare([corpus], tmp_path / "local", workers=2, quiet=True, shard_tokens=5000)
    executor = RayExecutor(workers=2, quiet=True, temp_dir=ray_temp)
    remote = prepare(
        [corpus], tmp_path / "ray", workers=2, quiet=True, shard_tokens=5000, executor=executor
    )
    assert store_bytes(tmp_path / "local") == store_bytes(tmp_path / "ray")
    assert remote.manifest["counts"]["documents"] == 170  # a tail split: some in both splits
    assert local.split("train").n_tokens == remote.split("train").n_tokens
    assert not ray.is_initialized() and not ray_processes(ray_temp)  # no stray processes
    assert os.listdir(ray_temp) == []  # Ray's temp folder was cleaned up
    assert executor.startup_s is not None and executor.startup_s > 0


class KillFirstAttempt:
    """Wraps the unit task: the first attempt at unit 0 kills its Ray worker process."""

    def __init__(self, fn, marker: str) -> None:
        self.fn, self.marker = fn, marker

    def __call__(self, unit):
        if unit.index == 0 and not os.path.exists(self.marker):
            Path(self.marker).write_text("killed once")
            os._exit(1)  # the worker dies: Ray must retry the task elsewhere
        return self.fn(unit)


class KillingExecutor(RayExecutor):
    def __init__(self, marker: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.marker = marker

    def run(self, fn, units):
        return super().run(KillFirstAttempt(fn, self.marker), units)


def test_killed_task_is_retried(tmp_path, corpus, ray_temp) -> None:
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    try:
        marker = str(tmp_path / "killed")
        executor = KillingExecutor(marker, workers=2, quiet=True, temp_dir=ray_temp)
        prepare(
            [corpus], tmp_path / "ray", workers=2, quiet=True, shard_tokens=5000, executor=executor
        )
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert Path(marker).read_text() == "killed once"
    prepare([corpus], tmp_path / "local", workers=1, quiet=True, shard_tokens=5000)
    assert store_bytes(tmp_path / "local") == store_bytes(tmp_path / "ray")


def test_bad_input_from_a_task_reaches_the_caller(tmp_path, ray_temp) -> None:
    from gptdata import InputError

    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"nope": 1}\n')
    with pytest.raises(InputError, match=r"bad\.jsonl:2: no field 'text'"):
        prepare(
            [tmp_path / "bad.jsonl"],
            tmp_path / "s",
            quiet=True,
            executor=RayExecutor(workers=2, quiet=True, temp_dir=ray_temp),
        )
    assert not (tmp_path / "s.partial").exists() and not ray_processes(ray_temp)


def test_ray_stays_optional(tmp_path) -> None:
    (tmp_path / "a.txt").write_text("hello world")
    code = (
        "import sys, gptdata\n"
        f"gptdata.prepare([{str(tmp_path / 'a.txt')!r}], {str(tmp_path / 's')!r}, quiet=True)\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
        "sys.modules['ray'] = None  # as if the extra were not installed\n"
        "try:\n"
        f"    gptdata.prepare([{str(tmp_path / 'a.txt')!r}], {str(tmp_path / 't')!r}, engine='ray')\n"
        "except RuntimeError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "the Ray engine needs ray. Fix: pip install 'gptdata[ray]'"
    assert not (tmp_path / "t.partial").exists()


def test_leftovers_of_a_killed_driver_are_reaped(tmp_path) -> None:
    from gptdata.prepare.ray_engine import TEMP_PREFIX, reap_stale

    folder = tmp_path / f"{TEMP_PREFIX}old"
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (folder / "driver.pid").write_text(str(dead.pid))  # the driver is gone
    # Like Ray's agents: retitled (the folder is not on its command line), holding a log file open
    # in the folder, and deaf to SIGTERM.
    code = (
        "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "log = open(os.path.join(os.environ['FOLDER'], 'agent.log'), 'w'); "
        "print('up', flush=True); time.sleep(60)"
    )
    agent = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        env=dict(os.environ, FOLDER=str(folder)),
    )
    assert agent.stdout.readline() == b"up\n"
    live = tmp_path / f"{TEMP_PREFIX}live"
    live.mkdir()
    (live / "driver.pid").write_text(str(os.getpid()))  # a running driver: left alone
    try:
        assert reap_stale(str(tmp_path)) == 1
        assert agent.wait(timeout=10) == -9  # SIGTERM ignored, so SIGKILL after the grace time
        assert not folder.exists() and live.exists()
    finally:
        agent.kill()


def test_killed_driver_resumes_and_leaves_nothing_behind(tmp_path) -> None:
    import glob

    corpus = tmp_path / "corpus"  # ~3.6 MB: four 1 MB units, so the kill lands between them
    corpus.mkdir()
    for i in range(60):
        (corpus / f"{i:03d}.txt").write_text(f"Document {i}. " + "Lorem ipsum dolor sit. " * 2600)
    out = tmp_path / "s"
    cmd = [
        sys.executable,
        "-m",
        "gptdata",
        "prepare",
        str(corpus),
        "-o",
        str(out),
        "--engine",
        "ray",
        "--workers",
        "2",
        "--quiet",
        "--shard-tokens",
        "3000",
    ]
    pid = kill_after_first_unit(cmd, out, unit_delay="3")
    temps = [
        d
        for d in glob.glob(os.path.join(tempfile.gettempdir(), "gptdata-ray-*"))
        if Path(d, "driver.pid").is_file() and Path(d, "driver.pid").read_text() == str(pid)
    ]
    assert len(temps) == 1
    subprocess.run(cmd, check=True)  # the same command: resumes, and reaps the killed run's Ray
    prepare([corpus], tmp_path / "local", workers=1, quiet=True, shard_tokens=3000)
    assert store_bytes(out) == store_bytes(tmp_path / "local")
    assert not os.path.exists(temps[0]) and not ray_processes(temps[0])
