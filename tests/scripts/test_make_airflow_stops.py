"""``make airflow``: Ctrl-C stops ``airflow standalone`` and every process it started.

The real thing, as the Makefile runs it (``scripts/airflow_env.py airflow standalone``), in a
home of its own with no DAG and on free ports: once its API answers, the terminal's Ctrl-C
(SIGINT to the foreground process group) must leave no process of the tree - components,
their workers, anything orphaned - within a bound. A functional check, not a benchmark: the
bound is the stop's grace (SIGTERM, then SIGKILL) with room to spare on a busy machine."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from scripts.process_group import STOP_GRACE
from scripts.throwaway_postgres import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 300  # seconds: db migrate, then every component, on a busy 2-core machine


def test_ctrl_c_stops_airflow_standalone_and_all_its_processes(tmp_path):
    home, dags = tmp_path / "airflow", tmp_path / "dags"
    dags.mkdir()
    port, output = free_port(), tmp_path / "make-airflow.log"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
    }
    make_airflow = subprocess.Popen(
        [sys.executable, "scripts/airflow_env.py", str(Path(sys.executable).parent / "airflow"), "standalone"],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # a terminal's job: Ctrl-C reaches its whole foreground group
        stdout=output.open("w"),
        stderr=subprocess.STDOUT,
    )
    started: list[psutil.Process] = []
    try:
        _wait_until_the_api_answers(port, make_airflow, output)
        started = psutil.Process(make_airflow.pid).children(recursive=True)
        assert len(started) >= 4, f"standalone and its components: {started}"
        os.killpg(make_airflow.pid, signal.SIGINT)
        assert make_airflow.wait(timeout=STOP_GRACE + 60) == 128 + signal.SIGINT
        left = [p for p in started if _running(p)]
        assert not left, f"still running after Ctrl-C: {left}"
        assert "Stopped." in output.read_text()
    finally:
        for process in started:
            with contextlib.suppress(psutil.Error):
                process.kill()
        if make_airflow.poll() is None:
            make_airflow.kill()
            make_airflow.wait()


def _wait_until_the_api_answers(port: int, make_airflow: subprocess.Popen, output: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert make_airflow.poll() is None, f"make airflow exited: {output.read_text()[-3000:]}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5).status_code == 200:
                return
        time.sleep(2)
    raise AssertionError(f"the API did not answer within {START_TIMEOUT} s")


def _running(process: psutil.Process) -> bool:
    """Still there: running, or a zombie nobody reaped."""
    try:
        return process.is_running()
    except psutil.NoSuchProcess:
        return False
