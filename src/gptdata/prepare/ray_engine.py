"""The Ray engine for ``prepare``: the same work units, run as Ray Core tasks across a cluster.

The driver keeps the plan (the units follow from the inputs alone, exactly as for the local
engine) and the commit (it writes the manifest last); each task runs ``tokenize_unit`` on one unit,
writes its shards atomically under the output's side folder (a shared file system path on a
cluster; with an ``s3://`` output each task stages its shards straight to the bucket instead, so
no shared file system is needed) and returns only metadata. Ray Data is deliberately not used: it would choose block
boundaries and file names, and the store's layout must depend on the inputs alone.

Imported only for ``engine="ray"``; ``import gptdata`` and the local engine never import ray.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .sources import WorkUnit

INSTALL_HINT = "the Ray engine needs ray. Fix: pip install 'gptdata[ray]'"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError(INSTALL_HINT) from None
    return ray


TEMP_PREFIX = "gptdata-ray-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale(temp_root: str | None = None) -> int:
    """Stop what a killed earlier run left behind; returns how many processes were stopped.

    A driver killed with SIGKILL cannot shut its local Ray down, and some of Ray's agents outlive
    it. Each local Ray we start records its driver's PID in its temp folder; a folder whose driver
    is gone is reaped: processes whose command line names it get SIGTERM, then it is removed.
    Linux only (/proc); elsewhere nothing happens.
    """
    root = temp_root or tempfile.gettempdir()
    if not os.path.isdir("/proc") or not os.path.isdir(root):
        return 0
    stopped = 0
    for name in os.listdir(root):
        folder = os.path.join(root, name)
        try:
            with open(os.path.join(folder, "driver.pid")) as fh:
                pid = int(fh.read())
        except (OSError, ValueError):
            continue  # not ours, or a run that is still starting
        if not name.startswith(TEMP_PREFIX) or _alive(pid):
            continue
        pids = [int(e) for e in os.listdir("/proc") if e.isdigit() and _uses(int(e), folder)]
        _stop(pids)
        stopped += len(pids)
        shutil.rmtree(folder, ignore_errors=True)
    return stopped


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # not a zombie
    except (OSError, IndexError):
        return False


def _stop(pids: list[int], grace_s: float = 3.0) -> None:
    """SIGTERM, then SIGKILL whatever still runs after ``grace_s`` (Ray's agents linger)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(_running(p) for p in pids):
            time.sleep(0.05)


def _uses(pid: int, folder: str) -> bool:
    """Whether a process names ``folder`` on its command line or holds a file open in it (Ray's
    agents retitle themselves, "ray::DashboardAgent", but keep their logs there open)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if folder.encode() in fh.read():
                return True
        for fd in os.listdir(f"/proc/{pid}/fd"):
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(folder + os.sep):
                return True
    except OSError:
        pass
    return False


WATCH_GRACE_S = 1.5  # SIGTERM, then SIGKILL: all gone within ~2 s of the driver's death


def watch(driver: int, folder: str, poll_s: float = 0.2) -> None:
    """Runs in a small detached process beside a local Ray: when the driver dies (even by
    SIGKILL, which it cannot catch), stop every process that uses ``folder`` and remove it."""
    while _running(driver) and os.path.isdir(folder):
        time.sleep(poll_s)
    if not os.path.isdir(folder):
        return  # the driver shut its Ray down itself
    me = os.getpid()
    pids = [
        int(e)
        for e in os.listdir("/proc")
        if e.isdigit() and int(e) != me and _uses(int(e), folder)
    ]
    _stop(pids, grace_s=WATCH_GRACE_S)
    shutil.rmtree(folder, ignore_errors=True)


def _start_watch(folder: str) -> Any:
    """The watcher of ``folder`` for this driver, in its own session (a signal to the driver's
    process group does not take it along); None where /proc is missing."""
    if not os.path.isdir("/proc"):
        return None
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-m", "gptdata.prepare.ray_engine", "watch", str(os.getpid()), folder],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _warm_up(fn: Callable[[WorkUnit], dict[str, Any]]) -> int:
    """Import gptdata and build the tokenizer in a worker before the clock for units starts."""
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    if hasattr(fn, "prewarm"):
        fn.prewarm()
    return os.getpid()


def _run_unit(
    fn: Callable[[WorkUnit], dict[str, Any]], unit: WorkUnit, upload_to: Any = None
) -> dict[str, Any]:
    # One CPU per task (num_cpus=1): the fast tokenizer must not start a thread per core on top.
    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    side = getattr(fn, "side", None)
    if upload_to is None or side is None:
        return fn(unit)
    from .remote_out import upload_unit

    for sub in ("shards", "units"):  # a node other than the driver's has no side folder yet
        os.makedirs(os.path.join(side, sub), exist_ok=True)
    result = fn(unit)
    upload_unit(upload_to, side, result)  # straight to the bucket: no shared file system
    return result


class RayExecutor:
    """Runs units as Ray tasks, at most 2 per CPU in flight, and yields results as they finish.

    ``address``: a running cluster to join ("auto", "ray://host:10001", "host:6379"); default
    "auto" when ``RAY_ADDRESS`` is set, else a local Ray with ``workers`` CPUs, started here,
    with its temporary folder in the system temp, and shut down (no stray processes) at the end.
    A task whose worker dies is retried up to ``max_retries`` times; a task that raises (bad
    input) is not: the error reaches the caller unchanged.
    """

    def __init__(
        self,
        *,
        workers: int,
        address: str | None = None,
        quiet: bool = False,
        max_retries: int = 3,
        temp_dir: str | None = None,
    ) -> None:
        self.workers, self.quiet, self.max_retries = workers, quiet, max_retries
        self.temp_dir = temp_dir  # where a local Ray's own temporary folder goes (short path!)
        self.startup_s: float | None = None  # Ray's fixed costs, reported apart from the work
        self.shutdown_s: float | None = None
        self.address = address or ("auto" if os.environ.get("RAY_ADDRESS") else None)
        self.ray = import_ray()
        self._watcher: Any = None
        # A storage Location (``OUT.partial`` of an ``s3://`` output): each task stages its
        # shards there itself. None: tasks write to the side folder, shared between nodes.
        self.upload_to: Any = None

    def _start(self) -> tuple[bool, str | None]:
        """Join or start Ray; returns (started here, temp folder to remove afterwards)."""
        ray = self.ray
        if ray.is_initialized():
            return False, None
        # Ray's usage statistics stay off unless the user turned them on.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        common = {
            "log_to_driver": False,
            "configure_logging": True,
            "logging_level": "ERROR",
            "include_dashboard": False,
        }
        if self.address:
            ray.init(address=self.address, **common)
            return True, None
        # Unix socket paths are limited to ~107 bytes: a short folder in the system temp.
        reap_stale()
        temp = self.temp_dir or tempfile.mkdtemp(prefix=TEMP_PREFIX)
        with open(os.path.join(temp, "driver.pid"), "w") as fh:
            fh.write(str(os.getpid()))
        self._watcher = _start_watch(temp)
        ray.init(num_cpus=self.workers, _temp_dir=temp, **common)
        return True, temp

    def run(
        self, fn: Callable[[WorkUnit], dict[str, Any]], units: Iterable[WorkUnit]
    ) -> Iterator[dict[str, Any]]:
        ray = self.ray
        t0 = time.perf_counter()
        started, temp = self._start()
        pending: dict[Any, WorkUnit] = {}
        try:
            fn_ref = ray.put(fn)
            cpus = max(int(ray.cluster_resources().get("CPU", self.workers)), 1)
            # Start-up = joining/starting Ray + booting one warm worker per CPU (Python, gptdata,
            # the tokenizer): Ray's fixed cost, which the progress and benchmarks report apart.
            warm = ray.remote(num_cpus=1, max_retries=self.max_retries)(_warm_up)
            ray.get([warm.remote(fn_ref) for _ in range(cpus)])
            self.startup_s = time.perf_counter() - t0
            if not self.quiet:
                nodes = len([n for n in ray.nodes() if n.get("Alive")])
                print(
                    f"ray: {nodes} node(s), {cpus} CPUs, ready in {self.startup_s:.1f} s",
                    file=sys.stderr,
                )
            task = ray.remote(num_cpus=1, max_retries=self.max_retries)(_run_unit)
            in_flight = 8 * cpus
            it = iter(units)
            while True:
                while len(pending) < in_flight and (unit := next(it, None)) is not None:
                    pending[task.remote(fn_ref, unit, self.upload_to)] = unit
                if not pending:
                    break
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        cause = getattr(exc, "cause", None)
                        raise (cause if isinstance(cause, BaseException) else exc) from None
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            t1 = time.perf_counter()
            if started:
                ray.shutdown()
            self.shutdown_s = time.perf_counter() - t1
            if not self.quiet and started:
                print(f"ray: shut down in {self.shutdown_s:.1f} s", file=sys.stderr)
            if temp and temp == self.temp_dir:  # the caller's folder: empty it, keep it
                for entry in os.scandir(temp):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:  # files and Ray's session_latest link
                        os.unlink(entry.path)
            elif temp:
                shutil.rmtree(temp, ignore_errors=True)
            if self._watcher is not None:  # a clean shutdown: nothing left to watch
                self._watcher.terminate()
                self._watcher.wait()
                self._watcher = None


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "watch":
    watch(int(sys.argv[2]), sys.argv[3])
