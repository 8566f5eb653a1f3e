"""The path production takes: a real scheduler starts the nightly run, and it executes.

Every other DAG test calls ``dag.test`` with an explicit ``dry_run``; none of them goes
through the scheduler, so a nightly run that silently planned and changed nothing went
unnoticed (issue 14). Here Airflow runs as deployed, in separate processes - ``airflow
scheduler``, ``airflow dag-processor`` and the Execution API (``airflow api-server --apps
execution``, which the LocalExecutor's task processes talk to) - on a PostgreSQL metadata
database of their own, against a PostgreSQL target seeded with due rows.

The prospection category runs, in this copy of the shipped policy, once a day at the minute
one hour before the test starts (Paris time). With ``catchup=False`` Airflow schedules the most
recent tick as soon as the DAG is unpaused, so exactly one scheduled run starts at once, with
a logical date known in advance (its Paris day is the run's ``as_of``), and the next one is a
day away. The seed is built for that day, so its boundary rows are due exactly on it.

The session's own (SQLite) metadata database and ``os.environ`` are left alone: every
setting reaches the subprocesses through their environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dag_helpers import (
    NOTICE,
    PER_PHASE,
    SUBJECT_SECRET,
    policy_with_schedule,
    policy_without_deletion_limit,
    record_prospect_asked,
)
from sqlalchemy import Engine, MetaData, Table, create_engine, insert, select, text
from table_checksums import checksum
from throwaway_postgres import _free_port, fresh_postgres_database

from include.demo.seed import PARIS, at_paris, seed_demo
from include.retention.database.store import audit_table
from include.retention.database.target import Target, connect
from include.retention.records.audit import events

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "retention_prospection"
CLI_TIMEOUT = 300  # seconds: an ``airflow`` command (``db migrate`` is the longest)
STARTUP_TIMEOUT = 180  # seconds: the dag-processor has parsed the DAGs
RUN_TIMEOUT = 240  # seconds: a run of seven tasks, each in a fresh task process, on a busy machine
# Seed order (include/demo/seed.py): 3 phases x PER_PHASE, 2 missing dates, 2 leap days, then these two.
ON_BOUNDARY, DAY_AFTER_BOUNDARY = 3 * PER_PHASE + 5, 3 * PER_PHASE + 6
ACTIVE_YEARS, ARCHIVE_YEARS = 3, 5  # prospection (the spec): 3 years active, then 5 in the archive


@dataclass
class Cluster:
    """The running Airflow and what the tests need to look at it."""

    env: dict[str, str]
    home: Path
    metadata: Engine
    target: Target
    tick: datetime  # the scheduled run's logical date
    logs: dict[str, Path]
    reports: Path
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

    def runs(self) -> list[dict[str, Any]]:
        with self.metadata.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(
                    text(
                        "SELECT run_id, run_type, state, logical_date, run_after FROM dag_run "
                        "WHERE dag_id = :dag ORDER BY id"
                    ),
                    {"dag": DAG_ID},
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
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; runs: {self.runs()}{self.diagnostics()}")

    def finished_run(self, run_type: str) -> dict[str, Any]:
        """Wait for the (single) run of ``run_type`` to end, and return it."""

        def ended() -> dict[str, Any] | None:
            runs = [r for r in self.runs() if r["run_type"] == run_type]
            assert len(runs) <= 1, f"more than one {run_type} run: {runs}"
            return runs[0] if runs and runs[0]["state"] in ("success", "failed") else None

        return self.wait_for(f"the {run_type} run of {DAG_ID} to end", ended, RUN_TIMEOUT)

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


def _last_tick_an_hour_ago() -> datetime:
    """A Paris wall-clock minute one hour ago: a daily cron at that minute has just fired."""
    return (datetime.now(UTC) - timedelta(hours=1)).astimezone(PARIS).replace(second=0, microsecond=0)


@pytest.fixture(scope="module")
def cluster(postgres_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Airflow as deployed (scheduler, dag-processor, Execution API; LocalExecutor; PostgreSQL
    metadata) with the prospection DAG's tick an hour ago, on a freshly seeded target."""
    work = tmp_path_factory.mktemp("scheduled-run")
    home, reports = work / "airflow", work / "reports"
    home.mkdir()
    tick = _last_tick_an_hour_ago()
    policy = policy_with_schedule(
        work, policy_without_deletion_limit(work), "prospection", f"{tick.minute} {tick.hour} * * *"
    )

    target_url = fresh_postgres_database(postgres_server)
    target = connect(target_url)
    with target.engine.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION pgcrypto")  # as include/sql/least_privilege_roles.sql does
    seed_demo(target.engine, "crm", tick.date(), per_phase=PER_PHASE)
    # Asked for re-consent 30 days before its period ends today: the promise kept, it may leave.
    record_prospect_asked(target, ON_BOUNDARY, tick.date())
    metadata_url = fresh_postgres_database(postgres_server)
    api_port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "RETENTION_POLICY": str(policy),
        "RETENTION_REPORTS_DIR": str(reports),
        "AIRFLOW_CONN_RETENTION_TARGET": target_url.replace("postgresql+psycopg://", "postgresql://"),
        "AIRFLOW_VAR_RETENTION_SUBJECT_SECRET": SUBJECT_SECRET,
    }
    logs = {name: work / f"{name}.log" for name in ("scheduler", "dag-processor", "api-server")}
    metadata = create_engine(metadata_url)
    cl = Cluster(env=env, home=home, metadata=metadata, target=target, tick=tick, logs=logs, reports=reports)
    try:
        cl.airflow("db", "migrate")
        commands = {
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
            "api-server": [
                "api-server",
                "--apps",
                "execution",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--workers",
                "1",
            ],
        }
        for name, args in commands.items():
            with logs[name].open("w") as out:
                cl.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "airflow", *args],
                        env=env,
                        cwd=ROOT,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

        def parsed() -> bool:
            with metadata.connect() as conn:
                row = conn.execute(
                    text("SELECT is_paused, next_dagrun FROM dag WHERE dag_id = :d"), {"d": DAG_ID}
                ).first()
            return row is not None and row.next_dagrun is not None

        cl.wait_for(f"the dag-processor to serialise {DAG_ID}", parsed, STARTUP_TIMEOUT)
        yield cl
    finally:
        _stop(cl.procs)
        metadata.dispose()
        target.dispose()


@pytest.fixture(scope="module")
def scheduled_run(cluster: Cluster) -> dict[str, Any]:
    """Unpause the DAG, as a user does after deploying, and wait for the run the scheduler starts.

    The expected rows are worked out first, from the seed, before anything can move."""
    expected = _expected(cluster.target, cluster.tick.date())
    assert expected["archive"] and expected["destroyed"], "the seed must have prospects due in both phases"
    cluster.airflow("dags", "unpause", DAG_ID)
    run = cluster.finished_run("scheduled")
    return {**run, "expected": expected}


@pytest.fixture
def reports_env(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """``certificate.paths`` in this process looks where the cluster's tasks wrote."""
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(cluster.reports))


def _rows(target: Target, schema: str, table: str, *columns: str) -> list[tuple]:
    t = Table(table, MetaData(), schema=schema, autoload_with=target.engine)
    with target.read() as conn:
        return [tuple(r) for r in conn.execute(select(*(t.c[c] for c in columns)).order_by(t.c[columns[0]]))]


def _plus_years(day: date, years: int) -> date:
    """Calendar years, as the spec says: 29 February lands on 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _expected(target: Target, as_of: date) -> dict[str, Any]:
    """Where each prospect (and its interactions) must be after a run for ``as_of``, from the
    spec alone: the last inbound contact's Paris calendar day, plus the active period, then the
    archive period from where the active one ends; past a period when that day <= ``as_of``.
    A prospect past its active period but with an address, not asked (all but ON_BOUNDARY), and
    less than the notice window past its end waits for the re-consent ask: it stays active."""
    phases: dict[str, set[int]] = {"active": set(), "archive": set(), "destroyed": set()}
    rows = _rows(target, "crm", "prospects", "prospect_id", "last_inbound_contact_at", "email")
    for prospect_id, contact, email in rows:
        if contact is None:
            phases["active"].add(prospect_id)
            continue
        end_active = _plus_years(contact.astimezone(PARIS).date(), ACTIVE_YEARS)
        waits = end_active + NOTICE > as_of and (email or "").strip(" ") and prospect_id != ON_BOUNDARY
        if end_active > as_of or waits:
            phases["active"].add(prospect_id)
        elif _plus_years(end_active, ARCHIVE_YEARS) > as_of:
            phases["archive"].add(prospect_id)
        else:
            phases["destroyed"].add(prospect_id)
    owners = dict(_rows(target, "crm", "prospect_interactions", "interaction_id", "prospect_id"))
    children = {phase: {i for i, p in owners.items() if p in ids} for phase, ids in phases.items()}
    return {**phases, "children": children}


def _certificate(cluster: Cluster, run_id: str) -> dict[str, Any]:
    from include.retention.reports import certificate

    json_path, _ = certificate.paths(DAG_ID, run_id)
    assert json_path.exists(), f"no certificate at {json_path}{cluster.diagnostics()}"
    return json.loads(json_path.read_text())


def _destructive_events(target: Target, run_id: str) -> dict[tuple[str, str], int]:
    with target.read() as conn:
        logged = events(conn, audit_table("archive", "retention_audit"), run_id=run_id)
    return {
        (e["action"], e["table_name"]): e["row_count"]
        for e in logged
        if e["action"] in ("archive", "delete", "anonymize")
    }


def test_the_scheduled_run_executes_and_moves_exactly_the_due_prospects(cluster, scheduled_run, reports_env):
    run, expected = scheduled_run, scheduled_run["expected"]
    target = cluster.target
    # The seed's edge prospects (include/demo/seed.py), last heard from at 00:30 in Paris - the
    # day before in UTC: exactly 3 years before the run's Paris day is due, a day later is not.
    assert ON_BOUNDARY in expected["archive"] and DAY_AFTER_BOUNDARY in expected["active"]
    assert (run["run_type"], run["state"]) == ("scheduled", "success"), f"{run}{cluster.diagnostics()}"
    assert run["logical_date"] == cluster.tick, "the run is the tick of the policy's cron, an hour ago"
    with target.read() as conn:
        logged = events(conn, audit_table("archive", "retention_audit"), run_id=run["run_id"])
    assert logged, f"the scheduled run wrote no audit event{cluster.diagnostics()}"
    assert not any(e["dry_run"] for e in logged), "the scheduled run, with default params, was a dry run"
    assert {e["as_of"] for e in logged} == {cluster.tick.date()}, "a scheduled run is as of its logical date"

    assert {p for (p,) in _rows(target, "crm", "prospects", "prospect_id")} == expected["active"]
    assert {p for (p,) in _rows(target, "archive", "prospects", "prospect_id")} == expected["archive"]
    assert {i for (i,) in _rows(target, "crm", "prospect_interactions", "interaction_id")} == expected["children"][
        "active"
    ]
    assert {i for (i,) in _rows(target, "archive", "prospect_interactions", "interaction_id")} == expected["children"][
        "archive"
    ]

    moved, destroyed = expected["archive"] | expected["destroyed"], expected["destroyed"]
    moved_children = expected["children"]["archive"] | expected["children"]["destroyed"]
    assert _destructive_events(target, run["run_id"]) == {
        ("archive", "prospects"): len(moved),
        ("archive", "prospect_interactions"): len(moved_children),
        ("delete", "prospects"): len(destroyed),
        ("delete", "prospect_interactions"): len(expected["children"]["destroyed"]),
    }

    issued = _certificate(cluster, run["run_id"])
    assert (issued["dry_run"], issued["completed"], issued["as_of"]) == (False, True, cluster.tick.date().isoformat())
    prospects = next(t for t in issued["tables"] if t["table"] == "prospects")
    assert (prospects["archived"], prospects["deleted"]) == (len(moved), len(destroyed))


def test_a_manual_trigger_with_default_params_is_a_dry_run_that_changes_nothing(cluster, scheduled_run, reports_env):
    """After the nightly run, due rows arrive again (two prospects last heard from 4 and 9 years
    ago); a run triggered by hand with no conf plans them and changes nothing."""
    target = cluster.target
    today = datetime.now(PARIS).date()
    prospects = Table("prospects", MetaData(), schema="crm", autoload_with=target.engine)
    with target.engine.begin() as conn:
        conn.execute(
            insert(prospects),
            [
                {
                    "prospect_id": pid,
                    "first_name": "Prospect",
                    "last_name": str(pid),
                    "created_at": at_paris(today - timedelta(days=years * 366 + 30)),
                    "last_inbound_contact_at": at_paris(today - timedelta(days=years * 366)),
                }
                for pid, years in ((9001, 4), (9002, 9))
            ],
        )
    before = checksum(target)

    cluster.airflow("dags", "trigger", DAG_ID)
    run = cluster.finished_run("manual")
    as_of = run["run_after"].astimezone(PARIS).date()
    due = _expected(target, as_of)

    assert run["state"] == "success", f"{run}{cluster.diagnostics()}"
    assert checksum(target) == before
    assert {9001, 9002} <= due["archive"] | due["destroyed"]
    with target.read() as conn:
        logged = events(conn, audit_table("archive", "retention_audit"), run_id=run["run_id"])
    assert logged and all(e["dry_run"] for e in logged)
    planned = next(e for e in logged if e["action"] == "plan" and e["table_name"] == "prospects")
    assert planned["details"]["due_for_archive"] == len(due["archive"] | due["destroyed"])  # it saw them...
    assert _destructive_events(target, run["run_id"]) == {}  # ...and moved none
    issued = _certificate(cluster, run["run_id"])
    prospects_issued = next(t for t in issued["tables"] if t["table"] == "prospects")
    assert issued["dry_run"] is True and (prospects_issued["archived"], prospects_issued["deleted"]) == (0, 0)
