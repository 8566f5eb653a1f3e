"""One deployment, two CRM databases: each target's nightly run executes on its own database,
under its own policy, into its own audit log and its own folder of evidence.

Airflow runs as deployed (``airflow_cluster.py``: scheduler, dag-processor, Execution API,
LocalExecutor, PostgreSQL metadata) with ``RETENTION_TARGETS`` naming two targets, ``paris`` and
``lyon``, each with its connection (``AIRFLOW_CONN_RETENTION_TARGET_<NAME>``) to a PostgreSQL
database seeded alike, and its policy file: the shipped schedule for Paris; for Lyon a copy of
another version whose prospects stay two years in the archive instead of five, and whose
batches run one at a time. No DAG file is copied: the DAG folder builds every DAG once per
target. In both policies prospection runs once a day at the minute one hour before the test
starts (``test_scheduled_run.py`` explains the tick), so each target's scheduled run starts as
soon as its DAG is unpaused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
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
from sqlalchemy import MetaData, Table, select, text

from include.demo.seed import seed_demo
from include.retention.database.store import audit_table
from include.retention.database.target import Target, connect
from include.retention.policy.load import load_policy
from include.retention.records.audit import events
from include.retention.reports import certificate
from scripts.throwaway_postgres import fresh_postgres_database

CATEGORY = "prospection"
ARCHIVE_YEARS = {"paris": 5, "lyon": 2}  # the shipped policy's, and Lyon's own
LYON_VERSION = "lyon-2026-12-01.1"
PROJECT_DAGS = ("retention_audit_verify", "retention_dpo_report", "retention_rights_deadlines", "subject_request")
PROJECT_DAGS += ("legal_hold", "retention_reconsent", "reconsent_answer")


@dataclass
class Served:
    """One target: its name, its seeded database and its policy file."""

    name: str
    target: Target
    policy_path: Path

    @property
    def dag_id(self) -> str:
        return f"retention_{CATEGORY}_{self.name}"


@dataclass
class Deployment:
    running: Cluster
    served: dict[str, Served]
    tick: datetime
    reports: Path


def _lyon_policy(folder: Path) -> Path:
    """Lyon's own schedule: another version, prospects archived two years, one batch at a time."""
    data = yaml.safe_load(policy_without_deletion_limit(folder).read_text(encoding="utf-8"))
    data["version"] = LYON_VERSION
    data["batch_workers"] = 1
    data["categories"][CATEGORY]["archive_period"] = f"P{ARCHIVE_YEARS['lyon']}Y"
    path = folder / "lyon_policy.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _seeded(postgres_server: str, as_of: date) -> tuple[Target, str]:
    """A fresh CRM database seeded for ``as_of``, and its connection URI for Airflow."""
    url = fresh_postgres_database(postgres_server)
    target = connect(url)
    with target.engine.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION pgcrypto")  # as include/sql/least_privilege_roles.sql does
    seed_demo(target.engine, "crm", as_of, per_phase=PER_PHASE)
    # Asked for re-consent 30 days before its period ends today: the promise kept, it may leave.
    record_prospect_asked(target, ON_BOUNDARY, as_of)
    return target, url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="module")
def deployment(postgres_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """One Airflow serving both targets; each prospection DAG unpaused, its scheduled run waited for."""
    work = tmp_path_factory.mktemp("two-targets")
    reports = work / "reports"
    tick = last_tick_an_hour_ago()
    cron = f"{tick.minute} {tick.hour} * * *"
    served: dict[str, Served] = {}
    settings = {
        "RETENTION_REPORTS_DIR": str(reports),
        "AIRFLOW_VAR_RETENTION_SUBJECT_SECRET": SUBJECT_SECRET,
        # A task that could not start on a busy machine (the Execution API timing out) is retried
        # within the wait for its run, not ten minutes later.
        "RETENTION_RETRY_DELAY_SECONDS": "5",
    }
    try:
        for name in ("paris", "lyon"):
            folder = work / name
            folder.mkdir()
            base = _lyon_policy(folder) if name == "lyon" else policy_without_deletion_limit(folder)
            target, uri = _seeded(postgres_server, tick.date())
            served[name] = Served(name, target, policy_with_schedule(folder, base, CATEGORY, cron))
            settings[f"AIRFLOW_CONN_RETENTION_TARGET_{name.upper()}"] = uri
        settings["RETENTION_TARGETS"] = ",".join(f"{s.name}={s.policy_path}" for s in served.values())
        with running_airflow(postgres_server, work, settings) as running:
            for site in served.values():
                running.wait_until_parsed(site.dag_id)
            yield Deployment(running=running, served=served, tick=tick, reports=reports)
    finally:
        for site in served.values():
            site.target.dispose()


@pytest.fixture(scope="module")
def nightly(deployment: Deployment) -> dict[str, dict[str, Any]]:
    """Both targets' prospection DAGs unpaused; each one's scheduled run, once both have ended,
    with where its rows must be by its own policy (worked out before anything moves)."""
    expected = {
        name: prospect_phases(site.target, deployment.tick.date(), ARCHIVE_YEARS[name])
        for name, site in deployment.served.items()
    }
    for site in deployment.served.values():
        deployment.running.airflow("dags", "unpause", site.dag_id)
    return {
        name: {**deployment.running.finished_run(site.dag_id, "scheduled"), "expected": expected[name]}
        for name, site in deployment.served.items()
    }


def _rows(target: Target, schema: str, table: str) -> set[int]:
    t = Table(table, MetaData(), schema=schema, autoload_with=target.engine)
    key = t.c["prospect_id" if table == "prospects" else "interaction_id"]
    with target.read() as conn:
        return set(conn.execute(select(key)).scalars())


def _logged(site: Served) -> list[dict[str, Any]]:
    with site.target.read() as conn:
        return events(conn, audit_table("archive", "retention_audit"))


def test_every_dag_exists_once_per_target_with_its_suffix_and_no_unsuffixed_one(deployment):
    expected = set()
    for name, site in deployment.served.items():
        bases = [f"retention_{key}" for key in load_policy(site.policy_path).categories] + list(PROJECT_DAGS)
        expected |= {f"{base}_{name}" for base in bases}
    for dag_id in sorted(expected):  # the deployment waited for the prospection DAGs only: every file parsed
        deployment.running.wait_until_parsed(dag_id)
    with deployment.running.metadata.connect() as conn:
        dag_ids = set(conn.execute(text("SELECT dag_id FROM dag")).scalars())
    assert dag_ids == expected


def test_both_targets_scheduled_runs_execute_each_as_its_own_policy_says(deployment, nightly):
    destroyed = {name: run["expected"]["destroyed"] for name, run in nightly.items()}
    assert destroyed["paris"] < destroyed["lyon"], "the seed must tell Lyon's two archive years from Paris's five"
    for name, run in nightly.items():
        site = deployment.served[name]
        assert (run["run_type"], run["state"]) == ("scheduled", "success"), f"{name}: {run}{_why(deployment)}"
        assert run["logical_date"] == deployment.tick
        expected = run["expected"]
        assert _rows(site.target, "crm", "prospects") == expected["active"], name
        assert _rows(site.target, "archive", "prospects") == expected["archive"], name
        moved = [e for e in _logged(site) if e["action"] in ("archive", "delete") and e["table_name"] == "prospects"]
        assert {(e["action"], e["row_count"]) for e in moved} == {
            ("archive", len(expected["archive"] | expected["destroyed"])),
            ("delete", len(expected["destroyed"])),
        }, name


def test_each_targets_audit_log_holds_only_its_own_run_and_verifies(deployment, nightly):
    versions = {"paris": load_policy(deployment.served["paris"].policy_path).version, "lyon": LYON_VERSION}
    assert versions["paris"] != versions["lyon"]
    for name, site in deployment.served.items():
        logged = _logged(site)
        assert logged, f"{name}: no audit event{_why(deployment)}"
        assert {e["dag_id"] for e in logged} == {site.dag_id}, name
        assert {e["run_id"] for e in logged} == {nightly[name]["run_id"]}, name
        assert {e["policy_version"] for e in logged} == {versions[name]}, name
        assert not any(e["dry_run"] for e in logged), f"{name}: the scheduled run was a dry run"
        with site.target.read() as conn:
            status = certificate.chain_status(
                conn, audit_table("archive", "retention_audit"), deployment.reports / name
            )
        assert status.intact and status.certificates == 1, f"{name}: {status.sentence()}"


def test_each_targets_certificate_is_in_its_own_folder_and_its_tasks_in_its_own_pool(deployment, nightly):
    assert sorted(p.name for p in deployment.reports.iterdir()) == ["lyon", "paris"]
    for name, site in deployment.served.items():
        issued = list((deployment.reports / name / site.dag_id).glob("*.certificate.json"))
        assert len(issued) == 1, f"{name}: {issued}"
        content = json.loads(issued[0].read_text())
        assert (content["run_id"], content["dry_run"], content["completed"]) == (nightly[name]["run_id"], False, True)
        prospects = next(t for t in content["tables"] if t["table"] == "prospects")
        assert prospects["deleted"] == len(nightly[name]["expected"]["destroyed"]), name
        with deployment.running.metadata.connect() as conn:
            pools = {
                r.task_id: (r.pool, r.pool_slots)
                for r in conn.execute(
                    text("SELECT task_id, pool, pool_slots FROM task_instance WHERE dag_id = :d"), {"d": site.dag_id}
                )
            }
        batch_workers = load_policy(site.policy_path).batch_workers
        for destructive in ("archive", "purge"):
            assert pools.pop(destructive) == (f"retention_target_{name}", batch_workers), name
        assert {pool for pool, _ in pools.values()} == {"default_pool"}, name


def _why(deployment: Deployment) -> str:
    return deployment.running.diagnostics()
