"""Ctrl-C on a command run through scripts/process_group.py (``make airflow``'s
``airflow standalone``) stops it and every process it started, within a bound: those that
ignore SIGINT, those in process groups or sessions of their own (Airflow's task processes),
orphans, and those that ignore SIGTERM too - and leaves no zombie."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]
GRACE = 2.0  # seconds between SIGTERM and SIGKILL in these tests

# A command like airflow standalone: it ignores SIGINT, and starts a child in its own session
# that ignores SIGTERM (only SIGKILL ends it) and a child in its group whose own child is
# orphaned when its parent exits on SIGTERM.
STUBBORN = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    deaf = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    loner = subprocess.Popen([sys.executable, "-c", deaf], start_new_session=True)
    parent = subprocess.Popen([sys.executable, "-c",
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']);"
        " time.sleep(600)"])
    time.sleep(1)
    with open(sys.argv[1], "w") as f:
        json.dump([loner.pid, parent.pid], f)
    time.sleep(600)
    """
)


def start(command: list[str], tmp_path: Path) -> subprocess.Popen:
    """``command`` through process_group.run, in a session of its own as a terminal's job is
    (the test sends the terminal's Ctrl-C to that whole foreground group)."""
    runner = f"import sys; from scripts import process_group; sys.exit(process_group.run({command!r}, grace={GRACE}))"
    return subprocess.Popen(
        [sys.executable, "-c", runner],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
        stderr=subprocess.PIPE,
        text=True,
    )


def tree(root: int) -> list[psutil.Process]:
    return [psutil.Process(root), *psutil.Process(root).children(recursive=True)]


def gone(process: psutil.Process) -> bool:
    """Ended and reaped: no such process (a zombie still holds its pid)."""
    try:
        return not process.is_running()
    except psutil.NoSuchProcess:
        return True


def test_ctrl_c_stops_the_command_and_every_process_it_started_without_zombies(tmp_path):
    pids_file = tmp_path / "pids.json"
    runner = start([sys.executable, "-c", STUBBORN, str(pids_file)], tmp_path)
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while not pids_file.exists() or not pids_file.read_text():
            assert time.monotonic() < deadline and runner.poll() is None, "the command did not start"
            time.sleep(0.1)
        started = tree(runner.pid)[1:]
        loner, _ = json.loads(pids_file.read_text())
        assert len(started) == 4  # the command, its two children, the grandchild
        assert loner in {p.pid for p in started}
        os.killpg(runner.pid, signal.SIGINT)  # Ctrl-C: to the terminal's foreground group
        assert runner.wait(timeout=GRACE + 20) == 128 + signal.SIGINT
        left = [p for p in started if not gone(p)]
        assert not left, f"still there after Ctrl-C: {left}"
        assert "SIGINT: stopping" in runner.stderr.read()
    finally:
        for process in [*started, psutil.Process(runner.pid)] if runner.poll() is None else started:
            with contextlib.suppress(psutil.Error):
                process.kill()


def test_a_command_that_ends_by_itself_gives_its_status_and_leaves_nothing_behind(tmp_path):
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        f"open({str(pid_file)!r}, 'w').write(str(child.pid)); sys.exit(3)"
    )
    runner = start([sys.executable, "-c", script], tmp_path)
    assert runner.wait(timeout=GRACE + 30) == 3
    assert not psutil.pid_exists(int(pid_file.read_text())), "the command's child outlived it (or is a zombie)"
