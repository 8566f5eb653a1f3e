"""Airflow as deployed, for the tests that follow the production path: ``airflow scheduler``,
``airflow dag-processor`` and the Execution API (``airflow api-server --apps execution``, which
the LocalExecutor's task processes talk to), in processes of their own, on a PostgreSQL metadata
database of their own.

The session's own (SQLite) metadata database and ``os.environ`` are left alone: every setting
reaches the subprocesses through their environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text

from include.demo.seed import PARIS
from scripts.cluster import import_pools
from scripts.throwaway_postgres import free_port, fresh_postgres_database

ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 300  # seconds: an ``airflow`` command (``db migrate`` is the longest)
STARTUP_TIMEOUT = 180  # seconds: the dag-processor has parsed the DAGs
RUN_TIMEOUT = 240  # seconds: a run of seven tasks, each in a fresh task process, on a busy machine


@dataclass
class Cluster:
    """The running Airflow and what the tests need to look at it."""

    env: dict[str, str]
    home: Path
    metadata: Engine
    logs: dict[str, Path]
    procs: list[subprocess.Popen] = field(default_factory=list)

    def airflow(self, *args: str) -> str:
        """Run an ``airflow`` CLI command against this cluster; fail with its output."""
        try:
            done = subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=CLI_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(
                f"airflow {' '.join(args)} took more than {CLI_TIMEOUT}s:\n{exc.stdout}\n{exc.stderr}"
                f"{self.diagnostics()}"
            )
        if done.returncode:
            pytest.fail(
                f"airflow {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
                f"{self.diagnostics()}"
            )
        return done.stdout

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        with self.metadata.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(
                    text(
                        "SELECT run_id, run_type, state, logical_date, run_after FROM dag_run "
                        "WHERE dag_id = :dag ORDER BY id"
                    ),
                    {"dag": dag_id},
                )
            ]

    def wait_for(self, what: str, found: Callable[[], Any], timeout: float) -> Any:
        """Poll ``found`` until it returns something truthy; fail with the logs after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    pytest.fail(
                        f"{proc.args[3]} exited with {proc.returncode} while waiting for {what}{self.diagnostics()}"
                    )
            value = found()
            if value:
                return value
            time.sleep(2)
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}{self.diagnostics()}")

    def finished_run(self, dag_id: str, run_type: str, run_id: str | None = None) -> dict[str, Any]:
        """Wait for the run of ``run_type`` of ``dag_id`` to end, and return it: the single one
        of that type, or the one named ``run_id``."""

        def ended() -> dict[str, Any] | None:
            runs = [r for r in self.runs(dag_id) if r["run_type"] == run_type and run_id in (None, r["run_id"])]
            assert len(runs) <= 1, f"more than one {run_type} run of {dag_id}: {runs}"
            return runs[0] if runs and runs[0]["state"] in ("success", "failed") else None

        return self.wait_for(f"the {run_type} run {run_id or ''} of {dag_id} to end", ended, RUN_TIMEOUT)

    def wait_until_parsed(self, dag_id: str) -> None:
        """Wait for the dag-processor to serialise ``dag_id`` (a scheduled DAG: with its next run)."""

        def parsed() -> bool:
            with self.metadata.connect() as conn:
                row = conn.execute(
                    text("SELECT timetable_summary, next_dagrun FROM dag WHERE dag_id = :d"), {"d": dag_id}
                ).first()
            return row is not None and (row.next_dagrun is not None or row.timetable_summary in (None, "None"))

        self.wait_for(f"the dag-processor to serialise {dag_id}", parsed, STARTUP_TIMEOUT)

    def diagnostics(self) -> str:
        """The tail of each process log and of the latest task logs, for a failure message."""
        parts = [f"\n--- {name} ({path}) ---\n{_tail(path)}" for name, path in self.logs.items()]
        task_logs = sorted((self.home / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)[-3:]
        parts += [f"\n--- task log {p.relative_to(self.home)} ---\n{_tail(p)}" for p in task_logs]
        return "".join(parts)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(unreadable: {exc})"


def _stop(procs: list[subprocess.Popen]) -> None:
    """Stop every component and the processes each started (its process group, task processes
    included): TERM to all, a bounded wait for the groups to empty, then KILL to what is left."""

    def alive(proc: subprocess.Popen) -> bool:
        proc.poll()  # reap the leader, so that only live members keep its group
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + 20
        while any(alive(p) for p in procs) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not any(alive(p) for p in procs):
            return


def last_tick_an_hour_ago() -> datetime:
    """A Paris wall-clock minute one hour ago: a daily cron at that minute has just fired."""
    return (datetime.now(UTC) - timedelta(hours=1)).astimezone(PARIS).replace(second=0, microsecond=0)


@contextlib.contextmanager
def running_airflow(
    postgres_server: str, work: Path, settings: dict[str, str], *, triggerer: bool = False
) -> Iterator[Cluster]:
    """Airflow (scheduler, dag-processor, Execution API; LocalExecutor; a fresh PostgreSQL
    metadata database) with ``settings`` in its environment, its DAGs paused at creation;
    every process stopped when the block ends. ``triggerer``: and a triggerer (deadline
    alerts' callbacks run there)."""
    home = work / "airflow"
    home.mkdir()
    metadata_url = fresh_postgres_database(postgres_server)
    api_port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        **settings,
    }
    components = ("scheduler", "dag-processor", "api-server", *(("triggerer",) if triggerer else ()))
    logs = {name: work / f"{name}.log" for name in components}
    metadata = create_engine(metadata_url)
    cluster = Cluster(env=env, home=home, metadata=metadata, logs=logs)
    try:
        cluster.airflow("db", "migrate")
        import_pools(cluster.airflow, env, work)  # as a deployment must: a task in a missing pool never runs
        commands = {
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
            "api-server": ["api-server", "--apps", "execution", "--host", "127.0.0.1", "--port", str(api_port)]
            + ["--workers", "1"],
            "triggerer": ["triggerer"],
        }
        for name in components:
            args = commands[name]
            with logs[name].open("w") as out:
                cluster.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "airflow", *args],
                        env=env,
                        cwd=ROOT,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        yield cluster
    finally:
        _stop(cluster.procs)
        metadata.dispose()
