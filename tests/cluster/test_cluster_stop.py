"""``Cluster.stop`` leaves nothing running: not even a task process that made a session of its
own, outlived its parent and ignores SIGTERM. Once its parent is gone it is no one's
descendant (its parent is pid 1), so only the processes remembered from before reach it.

A fake worker, no Airflow: fast, part of ``make test``."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from scripts.cluster import Cluster, _alive, _identity

# A task process: a session of its own, SIGTERM ignored, its pid written once that holds.
TASK = (
    "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "open('task.pid', 'w').write(str(os.getpid())); time.sleep(600)"
)


def _fake_worker(task_then_exit: bool) -> list[str]:
    """A worker that starts the task process; it dies on SIGTERM, or (``task_then_exit``)
    exits by itself a second later, as a worker that crashed and left its task behind."""
    after = "time.sleep(1)" if task_then_exit else "time.sleep(600)"
    return [
        sys.executable,
        "-c",
        f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {TASK!r}], start_new_session=True); "
        + after,
    ]


def _task_pid(folder: Path) -> int:
    pid_file = folder / "task.pid"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, "the fake task never started"
        time.sleep(0.05)
    return int(pid_file.read_text())


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster(
        work=tmp_path,
        env=dict(os.environ),
        api_url="",
        passwords={},
        metadata_url="",
        target_url="",
        stop_grace=1.0,
    )


def _stop_and_check(cluster: Cluster, task: int) -> None:
    identity = _identity(task)
    assert identity is not None
    try:
        started = time.monotonic()
        cluster.stop()
        stopped_in = time.monotonic() - started
        assert not _alive(identity, cluster.procs), f"the task process {task} still runs (parent {_parent(task)})"
        assert stopped_in < 10 * cluster.stop_grace
    finally:
        if _alive(identity, cluster.procs):
            os.kill(task, signal.SIGKILL)


def test_stop_kills_a_task_in_its_own_session_that_ignores_sigterm_after_its_worker_died_of_it(cluster):
    cluster.start("worker1", _fake_worker(task_then_exit=False))
    task = _task_pid(cluster.work / "worker1")
    assert _parent(task) == cluster.procs["worker1"].pid

    _stop_and_check(cluster, task)

    assert cluster.procs["worker1"].poll() is not None


def test_stop_kills_a_task_orphaned_before_the_stop_that_the_watch_saw(cluster):
    cluster.watch(interval=0.05)
    cluster.start("worker1", _fake_worker(task_then_exit=True))
    task = _task_pid(cluster.work / "worker1")
    cluster.procs["worker1"].wait(timeout=30)
    assert _parent(task) != cluster.procs["worker1"].pid, "the worker is gone: the task is an orphan"
    deadline = time.monotonic() + 10
    while _identity(task) not in cluster.seen:  # the watch saw it while its worker still ran
        assert time.monotonic() < deadline, "the watch never saw the task"
        time.sleep(0.05)

    _stop_and_check(cluster, task)
