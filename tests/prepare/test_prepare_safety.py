"""prepare never deletes what it did not create, never shares an output, never leaves workers.

Real folders in tmp_path, real subprocesses, real signals.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from gptdata import TokenStore, prepare


def write_corpus(folder: Path, n: int = 3, words: int = 50) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"doc{i}.txt").write_text(f"document {i} " + "alpha beta gamma " * words)
    return folder


def tree(root: Path) -> dict[str, str]:
    """Every file under root with its sha256: 'untouched' means this did not change."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def store_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def cli(*args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gptdata", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        **kw,
    )


# --- what --force may replace -------------------------------------------------------------


def test_force_never_deletes_the_corpus_it_reads(tmp_path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    before = tree(corpus)
    result = cli("prepare", str(corpus), "-o", str(corpus), "--force")
    assert result.returncode == 1
    assert (
        result.stderr.count("\n") == 1 and "is, contains or lies inside the input" in result.stderr
    )
    assert "--out" in result.stderr and "out=" not in result.stderr  # the CLI names flags
    assert tree(corpus) == before


@pytest.mark.parametrize("where", ["inside", "contains", "same-file"])
def test_out_overlapping_an_input_is_refused_before_any_work(tmp_path, where) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    before = tree(tmp_path)
    if where == "inside":
        inputs, out = [corpus], corpus / "store"
    elif where == "contains":
        inputs, out = [corpus / "doc0.txt"], tmp_path
    else:
        inputs, out = [corpus / "doc0.txt"], corpus / "doc0.txt"
    with pytest.raises((ValueError, FileExistsError), match=r"out=|force=True"):
        prepare(inputs, out, force=True, workers=1, quiet=True)
    assert tree(tmp_path) == before
    assert not Path(str(out) + ".partial").exists()


def test_out_through_a_symlink_to_the_input_folder_is_refused(tmp_path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    (tmp_path / "link").symlink_to(corpus)
    with pytest.raises(ValueError, match="input folder"):
        prepare([corpus], tmp_path / "link" / "store", workers=1, quiet=True)
    assert sorted(p.name for p in corpus.iterdir()) == ["doc0.txt", "doc1.txt", "doc2.txt"]


def test_force_refuses_a_folder_that_is_not_a_store_and_a_file(tmp_path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / "manifest.json").write_text('{"format": "something else"}')
    with pytest.raises(
        FileExistsError, match=r"mine is a folder that is not a gptdata store.*force=True"
    ):
        prepare([corpus], mine, force=True, workers=1, quiet=True)
    assert (mine / "thesis.tex").read_text() == "years of work"
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    result = cli("prepare", str(corpus), "-o", str(afile), "--force")
    assert result.returncode == 1 and "is a file, not a gptdata store" in result.stderr
    assert afile.read_text() == "keep me"


def test_empty_folder_is_filled_and_a_store_is_replaced_with_force(tmp_path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    (tmp_path / "empty").mkdir()
    store = prepare([corpus], tmp_path / "empty", workers=1, quiet=True)
    assert store.split("train").n_documents >= 1
    again = prepare([corpus / "doc0.txt"], tmp_path / "empty", force=True, workers=1, quiet=True)
    assert sum(again.split(s).n_documents for s in again.splits) >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "empty"]  # no side folders


# --- side folders -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".partial", ".old"])
def test_unrelated_side_folder_is_never_removed(tmp_path, suffix) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    prepare([corpus], tmp_path / "s", workers=1, quiet=True)
    side = tmp_path / f"s{suffix}"
    side.mkdir()
    (side / "precious.txt").write_text("not gptdata's")
    with pytest.raises(FileExistsError, match=rf"s\{suffix} exists and was not made by gptdata"):
        prepare([corpus], tmp_path / "s", force=True, workers=1, quiet=True)
    assert (side / "precious.txt").read_text() == "not gptdata's"
    assert TokenStore.open(tmp_path / "s").split("train").n_documents >= 1


def test_own_stale_side_folders_are_cleaned(tmp_path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    prepare([corpus], tmp_path / "s", workers=1, quiet=True)
    old = tmp_path / "s.old"
    old.mkdir()
    (old / "gptdata-side.json").write_text(
        json.dumps({"format": "gptdata-side-folder", "role": "old", "plan": "x"})
    )
    partial = tmp_path / "s.partial"
    (partial / "units").mkdir(parents=True)
    (partial / "gptdata-side.json").write_text(
        json.dumps({"format": "gptdata-side-folder", "role": "partial", "plan": "other"})
    )
    (partial / "units" / "00000.json").write_text("{}")
    prepare([corpus], tmp_path / "s", force=True, workers=1, quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "s"]


# --- one run per output -------------------------------------------------------------------


def test_second_prepare_while_one_runs_fails_at_once(tmp_path) -> None:
    corpus = write_corpus(tmp_path / "corpus", n=4)
    out = tmp_path / "s"
    env = dict(os.environ, GPTDATA_TEST_UNIT_DELAY="3")
    cmd = [
        sys.executable,
        "-m",
        "gptdata",
        "prepare",
        str(corpus),
        "-o",
        str(out),
        "--workers",
        "1",
    ]
    first = subprocess.Popen([*cmd, "--quiet"], env=env, stderr=subprocess.PIPE, text=True)
    lock = out.with_name("s.partial") / "lock"
    deadline = time.time() + 60
    while time.time() < deadline and not lock.exists():
        time.sleep(0.05)
    t0 = time.time()
    second = cli(*cmd[3:], "--force")
    assert time.time() - t0 < 20  # at once: no unit of work was done
    assert second.returncode == 1
    assert "another gptdata prepare is writing this output" in second.stderr
    assert first.wait(timeout=120) == 0, first.stderr.read()
    TokenStore.open(out).verify()


def test_lock_is_released_when_the_holder_dies(tmp_path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    side = tmp_path / "s.partial"
    side.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
            str(side / "lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RuntimeError, match="another gptdata prepare is writing"):
        prepare([corpus], tmp_path / "s", workers=1, quiet=True)
    holder.kill()
    holder.wait()
    prepare([corpus], tmp_path / "s", workers=1, quiet=True).verify()


def test_racing_prepares_never_commit_a_mismatched_store(tmp_path) -> None:
    a = write_corpus(tmp_path / "a", n=6, words=400)
    b = write_corpus(tmp_path / "b", n=2, words=900)
    out = tmp_path / "s"
    for _ in range(3):
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "gptdata", "prepare", str(c), "-o", str(out), "--force"]
                + ["--workers", "1", "--quiet"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for c in (a, b)
        ]
        codes = [p.wait(timeout=120) for p in procs]
        errs = [p.stderr.read() for p in procs]
        assert 0 in codes, errs
        for code, err in zip(codes, errs, strict=True):
            assert code == 0 or "another gptdata prepare" in err, err
        TokenStore.open(out).verify()  # the manifest matches its shards, byte for byte
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "s"]


# --- signals ------------------------------------------------------------------------------


def _many_units(folder: Path) -> Path:
    # ~4.5 MB -> 1 MB units: several units, so the kill lands mid-run
    texts = [f"Document {i}: " + "lorem ipsum dolor sit amet " * 400 for i in range(400)]
    folder.mkdir()
    for i, t in enumerate(texts):
        (folder / f"{i:04d}.txt").write_text(t)
    return folder


def _wait_for_unit(out: Path, proc: subprocess.Popen) -> None:
    units = out.with_name(out.name + ".partial") / "units"
    deadline = time.time() + 90
    while time.time() < deadline and not (units.is_dir() and any(units.glob("*.json"))):
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)


def _gone(pids: list[int], within: float) -> bool:
    deadline = time.time() + within
    while time.time() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_sigterm_stops_workers_and_resumes_identically(tmp_path) -> None:
    folder = _many_units(tmp_path / "c")
    reference = tmp_path / "ref"
    prepare([folder], reference, workers=2, quiet=True)
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "gptdata", "prepare", str(folder), "-o", str(out)]
    cmd += ["--workers", "2", "--quiet"]
    env = dict(os.environ, GPTDATA_TEST_UNIT_DELAY="1.5")
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    _wait_for_unit(out, proc)
    workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    assert workers
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    err = proc.stderr.read()
    assert err == "terminated (SIGTERM). Run the same command again to resume.\n"
    assert _gone(workers, within=5)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert store_bytes(out) == store_bytes(reference)


def test_sigkill_of_the_driver_leaves_no_worker(tmp_path) -> None:
    folder = _many_units(tmp_path / "c")
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "gptdata", "prepare", str(folder), "-o", str(out)]
    cmd += ["--workers", "2", "--quiet"]
    env = dict(os.environ, GPTDATA_TEST_UNIT_DELAY="5")
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    lock = out.with_name("s.partial") / "lock"
    deadline = time.time() + 60
    workers: list[int] = []
    while time.time() < deadline and len(workers) < 2:
        workers = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        time.sleep(0.1)
    assert len(workers) == 2 and lock.exists()
    time.sleep(0.5)  # the workers are in their units now
    proc.kill()
    proc.wait()
    assert _gone(workers, within=5)
    # and the lock went with them (the kernel drops it): the next run is not blocked
    deadline = time.time() + 5
    while True:
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            assert time.time() < deadline, "the lock outlived the killed driver by 5 s"
            time.sleep(0.05)
        finally:
            os.close(fd)


@pytest.mark.parametrize("when", ["tokenizer build", "worker start"])
def test_ctrl_c_during_start_up_prints_no_traceback(tmp_path, when) -> None:
    folder = write_corpus(tmp_path / "c", n=8, words=2000)
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "gptdata", "prepare", str(folder), "-o", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--workers", "2"],
        env=dict(os.environ, GPTDATA_TEST_UNIT_DELAY="2"),
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    if when == "worker start":  # the moment the first worker process appears
        deadline = time.time() + 60
        while time.time() < deadline and not psutil.Process(proc.pid).children():
            time.sleep(0.002)
    else:
        time.sleep(0.6)  # after the imports (~0.2 s), while the tokenizer is built
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole group
    code = proc.wait(timeout=60)
    err = proc.stderr.read()
    assert "Traceback" not in err, err
    assert code in (1, 130), err


def test_sigkill_of_a_ray_driver_leaves_no_ray_process(tmp_path) -> None:
    pytest.importorskip("ray")
    import glob
    import tempfile

    from test_ray import ray_processes

    from conftest import kill_after_first_unit

    folder = _many_units(tmp_path / "c")
    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "gptdata", "prepare", str(folder), "-o", str(out)]
    cmd += ["--engine", "ray", "--workers", "2", "--quiet"]
    pid = kill_after_first_unit(cmd, out, unit_delay="3")
    temps = [
        d
        for d in glob.glob(os.path.join(tempfile.gettempdir(), "gptdata-ray-*"))
        if Path(d, "driver.pid").is_file() and Path(d, "driver.pid").read_text() == str(pid)
    ]
    assert len(temps) == 1
    deadline = time.time() + 5
    while ray_processes(temps[0]) and time.time() < deadline:
        time.sleep(0.2)
    assert not ray_processes(temps[0]), "Ray outlived its SIGKILLed driver by 5 s"
    # The watcher removes the folder once Ray's processes are gone: allow it a moment under
    # load (a busy 2-core machine once took longer than the processes' exit to finish it).
    deadline = time.time() + 5
    while os.path.exists(temps[0]) and time.time() < deadline:
        time.sleep(0.2)
    assert not os.path.exists(temps[0])


def test_a_run_killed_mid_swap_is_finished_by_the_next(tmp_path, monkeypatch) -> None:
    import gptdata.store.sidefolders as side

    corpus = write_corpus(tmp_path / "corpus")
    prepare([corpus / "doc0.txt"], tmp_path / "s", workers=1, quiet=True)
    real_replace = os.replace
    calls = []

    def killed_after_first_rename(a, b):
        real_replace(a, b)
        if str(b).endswith("s.old"):
            calls.append(b)
            raise KeyboardInterrupt  # killed between parking the old store and the new rename

    monkeypatch.setattr(side.os, "replace", killed_after_first_rename)
    with pytest.raises(KeyboardInterrupt):
        prepare([corpus], tmp_path / "s", force=True, workers=1, quiet=True)
    monkeypatch.setattr(side.os, "replace", real_replace)
    assert calls and not (tmp_path / "s").exists() and (tmp_path / "s.old").is_dir()
    store = prepare([corpus], tmp_path / "s", force=True, workers=1, quiet=True)
    assert store.manifest["counts"]["documents"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "s"]
