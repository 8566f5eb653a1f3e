"""The path production takes: a real scheduler starts the nightly run, and it executes.

Every other DAG test calls ``dag.test`` with an explicit ``mode``; none of them goes
through the scheduler, so a nightly run that silently planned and changed nothing went
unnoticed (issue 14). Here Airflow runs as deployed, in separate processes - ``airflow
scheduler``, ``airflow dag-processor`` and the Execution API (``airflow api-server --apps
execution``, which the LocalExecutor's task processes talk to; ``airflow_cluster.py``) - on a
PostgreSQL metadata database of their own, against a PostgreSQL target seeded with due rows.

The prospection category runs, in this copy of the shipped policy, once a day at the minute
one hour before the test starts (Paris time). With ``catchup=False`` Airflow schedules the most
recent tick as soon as the DAG is unpaused, so exactly one scheduled run starts at once, with
a logical date known in advance (its Paris day is the run's ``as_of``), and the next one is a
day away. The seed is built for that day, so its boundary rows are due exactly on it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow_cluster import Cluster, last_tick_an_hour_ago, running_airflow
from dag_helpers import (
    ON_BOUNDARY,
    PER_PHASE,
    SUBJECT_SECRET,
    policy_with_schedule,
    policy_without_deletion_limit,
    prospect_phases,
    record_prospect_asked,
)
from sqlalchemy import MetaData, Table, insert, select, text
from table_checksums import checksum

from include.demo.seed import PARIS, at_paris, seed_demo
from include.retention.database.store import audit_table
from include.retention.database.target import Target, connect
from include.retention.records.audit import events
from scripts.throwaway_postgres import fresh_postgres_database

DAG_ID = "retention_prospection"
DAY_AFTER_BOUNDARY = ON_BOUNDARY + 1  # the seed's next prospect, heard from a day after ON_BOUNDARY
ARCHIVE_YEARS = 5  # prospection, in the shipped policy: 5 years in the archive after the active ones


@dataclass
class Nightly:
    """The running Airflow (``airflow_cluster.Cluster``), the seeded target, the prospection
    DAG's tick and where its tasks write their certificates."""

    running: Cluster
    target: Target
    tick: datetime  # the scheduled run's logical date
    reports: Path

    def airflow(self, *args: str) -> str:
        return self.running.airflow(*args)

    def finished_run(self, run_type: str) -> dict[str, Any]:
        return self.running.finished_run(DAG_ID, run_type)

    def diagnostics(self) -> str:
        return self.running.diagnostics()


@pytest.fixture(scope="module")
def cluster(postgres_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nightly]:
    """Airflow as deployed (``airflow_cluster.running_airflow``) with the prospection DAG's tick
    an hour ago, on a freshly seeded target."""
    work = tmp_path_factory.mktemp("scheduled-run")
    reports = work / "reports"
    tick = last_tick_an_hour_ago()
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
    settings = {
        "RETENTION_POLICY": str(policy),
        "RETENTION_REPORTS_DIR": str(reports),
        "AIRFLOW_CONN_RETENTION_TARGET": target_url.replace("postgresql+psycopg://", "postgresql://"),
        "AIRFLOW_VAR_RETENTION_SUBJECT_SECRET": SUBJECT_SECRET,
    }
    try:
        with running_airflow(postgres_server, work, settings) as running:
            running.wait_until_parsed(DAG_ID)
            yield Nightly(running=running, target=target, tick=tick, reports=reports)
    finally:
        target.dispose()


@pytest.fixture(scope="module")
def scheduled_run(cluster: Nightly) -> dict[str, Any]:
    """Unpause the DAG, as a user does after deploying, and wait for the run the scheduler starts.

    The expected rows are worked out first, from the seed, before anything can move."""
    expected = _expected(cluster.target, cluster.tick.date())
    assert expected["archive"] and expected["destroyed"], "the seed must have prospects due in both phases"
    cluster.airflow("dags", "unpause", DAG_ID)
    run = cluster.finished_run("scheduled")
    return {**run, "expected": expected}


@pytest.fixture
def reports_env(cluster: Nightly, monkeypatch: pytest.MonkeyPatch) -> None:
    """``certificate.paths`` in this process looks where the cluster's tasks wrote."""
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(cluster.reports))


def _rows(target: Target, schema: str, table: str, *columns: str) -> list[tuple]:
    t = Table(table, MetaData(), schema=schema, autoload_with=target.engine)
    with target.read() as conn:
        return [tuple(r) for r in conn.execute(select(*(t.c[c] for c in columns)).order_by(t.c[columns[0]]))]


def _expected(target: Target, as_of: date) -> dict[str, Any]:
    """Where each prospect (``dag_helpers.prospect_phases``, under the shipped policy's archive
    period) and its interactions must be after a run for ``as_of``: an interaction goes with its
    prospect."""
    phases = prospect_phases(target, as_of, ARCHIVE_YEARS)
    owners = dict(_rows(target, "crm", "prospect_interactions", "interaction_id", "prospect_id"))
    children = {phase: {i for i, p in owners.items() if p in ids} for phase, ids in phases.items()}
    return {**phases, "children": children}


def _certificate(cluster: Nightly, run_id: str) -> dict[str, Any]:
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


def _task_states(cluster: Nightly, run_id: str) -> dict[str, str]:
    with cluster.running.metadata.connect() as conn:
        rows = conn.execute(
            text("SELECT task_id, state FROM task_instance WHERE dag_id = :dag AND run_id = :run"),
            {"dag": DAG_ID, "run": run_id},
        )
        return {task_id: state for task_id, state in rows}


def test_a_run_started_from_the_trigger_form_with_its_defaults_previews_and_the_grid_says_so(
    cluster, scheduled_run, reports_env, dagbag
):
    """Airflow 3.3's trigger form posts every param's value as the conf (its params store
    serialises the whole form): ``mode: preview`` unless the person picks Execute. Sent as the
    form sends it, after the nightly run: the prospects that are due again stay where they are,
    and the run's skipped approval marks it as a preview in the DAG's grid."""
    form = dagbag.dags[DAG_ID].params.dump()
    assert form["mode"] == "preview"
    target = cluster.target
    before = checksum(target)

    cluster.airflow("dags", "trigger", DAG_ID, "--run-id", "manual__from_the_form", "--conf", json.dumps(form))
    run = cluster.running.finished_run(DAG_ID, "manual", "manual__from_the_form")

    assert run["state"] == "success", f"{run}{cluster.diagnostics()}"
    assert checksum(target) == before
    with target.read() as conn:
        logged = events(conn, audit_table("archive", "retention_audit"), run_id=run["run_id"])
    assert logged and all(e["dry_run"] for e in logged)
    assert _destructive_events(target, run["run_id"]) == {}
    states = _task_states(cluster, run["run_id"])
    assert states["approve_deletions"] == "skipped" and states["archive"] == states["summary"] == "success"
    assert _task_states(cluster, scheduled_run["run_id"])["approve_deletions"] == "success"
