"""The production topology, as processes on this machine (``scripts/cluster.py``): PostgreSQL
for metadata and the target, Redis, the api-server, scheduler, dag-processor, triggerer and two
Celery workers. An operator drives it over the REST API only, as in production:

- the seven ``retention_<category>`` DAGs are triggered with ``mode: execute``; the runs past
  the deletion limit are approved over REST; each run moves exactly what its plan counted, the
  audit chain holds, and the tasks ran on both workers;
- then a worker dies (SIGKILL of its whole process tree) in the middle of an archive of many
  batches: the scheduler sees the task's heartbeat stop, the task is retried on the other
  worker, and every row is exactly once in the active base or the archive, unchanged.

One cluster for the module (its start is most of the time); the wall time and each
component's peak memory are printed at the end (docs/how-to/deploy.md quotes them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, MetaData, Table, create_engine, func, insert, select, text

from include.demo.seed import PARIS
from include.retention.database.store import audit_table, locks_table
from include.retention.policy.load import load_policy
from include.retention.records.audit import events, verify_chain
from scripts.cluster import WORKERS, Cluster, PeakMemory, running_cluster

pytestmark = pytest.mark.cluster

RUN_TIMEOUT = 600  # seconds: the seven runs side by side on four task slots (~3 min on a quiet 2-core machine)
HEARTBEAT_TIMEOUT = 20  # seconds without a task heartbeat before the scheduler fails the try
REST_TIMEOUT = 120  # seconds: one api-server process also serves the tasks' Execution API, on a busy machine
SETTINGS = {
    # Only the runs the test triggers: unpausing a DAG must not add its latest scheduled tick.
    "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
    "RETENTION_RETRY_DELAY_SECONDS": "3",
}
KILLED_PROSPECTS = range(5_000_000, 5_003_000)  # due prospects added for the kill: many batches
KILL_BATCH_SIZE = 10
TERMINAL = {"success", "failed"}


class Operator:
    """What an operator does with the REST API: a token, then DAGs, runs and approvals."""

    def __init__(self, cluster: Cluster) -> None:
        self.http = httpx.Client(base_url=cluster.api_url, timeout=REST_TIMEOUT)
        login = {"username": "admin", "password": cluster.passwords["admin"]}
        response = self.http.post("/auth/token", json=login)
        assert response.status_code == 201, response.text
        self.http.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def _ok(self, response: httpx.Response) -> Any:
        assert response.status_code in (200, 201), f"{response.request.method} {response.request.url}: {response.text}"
        return response.json()

    def trigger(self, dag_id: str, **conf: Any) -> str:
        """Unpause the DAG and trigger a run with ``conf``; its run id."""
        self._ok(self.http.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}))
        run = self._ok(self.http.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}))
        return run["dag_run_id"]

    def state(self, dag_id: str, run_id: str) -> str:
        return self._ok(self.http.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))["state"]

    def approve_waiting(self) -> list[tuple[str, str]]:
        """Approve every approval that waits (Required Actions); the (dag, run) of each."""
        waiting = self._ok(self.http.get("/api/v2/dags/~/dagRuns/~/hitlDetails", params={"response_received": False}))
        answered = []
        for detail in waiting["hitl_details"]:
            ti = detail["task_instance"]
            path = (
                f"/api/v2/dags/{ti['dag_id']}/dagRuns/{ti['dag_run_id']}/taskInstances/"
                f"{ti['task_id']}/{ti['map_index']}/hitlDetails"
            )
            self._ok(self.http.patch(path, json={"chosen_options": ["Approve"]}))
            answered.append((ti["dag_id"], ti["dag_run_id"]))
        return answered


@dataclass
class Deployment:
    cluster: Cluster
    operator: Operator
    target: Engine
    metadata: Engine
    memory: PeakMemory
    started: float
    approved: list[tuple[str, str]] = field(default_factory=list)

    def wait_for_runs(self, runs: dict[str, str], timeout: float = RUN_TIMEOUT) -> dict[str, str]:
        """Wait for ``runs`` (dag id -> run id) to end, approving what waits; their final states."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.cluster.check_alive()
            self.approved += self.operator.approve_waiting()
            states = {dag: self.operator.state(dag, run) for dag, run in runs.items()}
            if set(states.values()) <= TERMINAL:
                return states
            time.sleep(2)
        pytest.fail(f"runs not finished after {timeout:.0f}s: {states}{self.cluster.diagnostics()}")

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every try of every task of the run: the current one and the history."""
        query = (
            "SELECT task_id, try_number, state, hostname FROM task_instance WHERE dag_id = :d AND run_id = :r "
            "UNION ALL SELECT task_id, try_number, state, hostname FROM task_instance_history "
            "WHERE dag_id = :d AND run_id = :r ORDER BY task_id, try_number"
        )
        with self.metadata.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(query), {"d": dag_id, "r": run_id})]

    def audit(self, run_id: str) -> list[dict[str, Any]]:
        with self.target.connect() as conn:
            return events(conn, audit_table("archive", "retention_audit"), run_id=run_id)

    def chain_intact(self) -> bool:
        with self.target.connect() as conn:
            return verify_chain(conn, audit_table("archive", "retention_audit")).intact


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, cluster_report: list[str]) -> Iterator[Deployment]:
    started = time.monotonic()
    work = tmp_path_factory.mktemp("cluster")
    with running_cluster(work, SETTINGS) as cluster:
        memory = PeakMemory(cluster.roots(), interval=0.5)
        memory.start()
        target, metadata = create_engine(cluster.target_url), create_engine(cluster.metadata_url)
        ready = time.monotonic() - started
        try:
            yield Deployment(cluster, Operator(cluster), target, metadata, memory, started)
        finally:
            memory.stop()
            target.dispose()
            metadata.dispose()
            _report(cluster_report, memory, ready, time.monotonic() - started)


def _report(lines: list[str], memory: PeakMemory, ready: float, total: float) -> None:
    lines += [f"ready in {ready:.0f} s, whole module {total:.0f} s (stop excluded); peak memory:", memory.table()]


def _moved(logged: list[dict[str, Any]], table: str, *actions: str) -> int:
    return sum(e["row_count"] for e in logged if e["table_name"] == table and e["action"] in actions)


def test_the_seven_categories_run_over_rest_on_both_workers_and_move_what_they_planned(deployment, cluster_report):
    started = time.monotonic()
    policy = load_policy()
    runs = {f"retention_{key}": "" for key in policy.categories}
    assert len(runs) == 7
    for dag_id in runs:
        runs[dag_id] = deployment.operator.trigger(dag_id, mode="execute")

    states = deployment.wait_for_runs(runs)
    cluster_report.append(
        f"seven category runs: {time.monotonic() - started:.0f} s ({len(deployment.approved)} approved over REST)"
    )

    assert set(states.values()) == {"success"}, f"{states}{deployment.cluster.diagnostics()}"
    assert deployment.approved, "the shipped deletion limit stops at least one run of the seed for approval"
    moved = 0
    for dag_id, run_id in runs.items():
        logged = deployment.audit(run_id)
        assert logged and not any(e["dry_run"] for e in logged), f"{dag_id} wrote no executing event"
        for planned in (e for e in logged if e["action"] == "plan"):
            table, due = planned["table_name"], planned["details"]
            assert _moved(logged, table, "archive") == due["due_for_archive"], (dag_id, table, due)
            assert _moved(logged, table, "delete", "anonymize") == due["due_for_end_of_life"], (dag_id, table, due)
            moved += due["due_for_archive"] + due["due_for_end_of_life"]
    assert moved > 0, "the seed has rows due in the seven categories"
    assert deployment.chain_intact()
    hosts = {ti["hostname"] for dag_id, run_id in runs.items() for ti in deployment.task_instances(dag_id, run_id)}
    assert set(WORKERS) <= hosts, f"tasks ran on {hosts}"


def _add_due_prospects(target: Engine) -> dict[int, tuple]:
    """Prospects last heard from four years ago, without an address (nobody to ask for
    re-consent): due for the archive today. Their content, by key, as the archive keeps it."""
    prospects = Table("prospects", MetaData(), schema="crm", autoload_with=target)
    contact = datetime.now(PARIS) - timedelta(days=4 * 366)
    with target.begin() as conn:
        conn.execute(
            insert(prospects),
            [
                {
                    "prospect_id": pid,
                    "first_name": "Prospect",
                    "last_name": str(pid),
                    "company": f"Company {pid % 97}",
                    "created_at": contact - timedelta(days=30),
                    "last_inbound_contact_at": contact,
                }
                for pid in KILLED_PROSPECTS
            ],
        )
    return _contents(target, "crm")


ARCHIVED = ("prospect_id", "first_name", "last_name", "email", "company", "commercial_consent")


def _contents(target: Engine, schema: str) -> dict[int, tuple]:
    """The archived columns of the added prospects found in ``schema`` (duplicates fail)."""
    prospects = Table("prospects", MetaData(), schema=schema, autoload_with=target)
    query = select(*(prospects.c[c] for c in ARCHIVED), prospects.c.last_inbound_contact_at).where(
        prospects.c.prospect_id.between(KILLED_PROSPECTS.start, KILLED_PROSPECTS.stop - 1)
    )
    with target.connect() as conn:
        rows = [tuple(r) for r in conn.execute(query)]
    keys = [r[0] for r in rows]
    assert len(keys) == len(set(keys)), f"duplicated keys in {schema}.prospects"
    return {r[0]: (*r[1:-1], r[-1].astimezone(UTC)) for r in rows}


def _archived_count(target: Engine) -> int:
    try:
        with target.connect() as conn:
            return conn.execute(
                text("SELECT count(*) FROM archive.prospects WHERE prospect_id BETWEEN :a AND :b"),
                {"a": KILLED_PROSPECTS.start, "b": KILLED_PROSPECTS.stop - 1},
            ).scalar_one()
    except Exception:  # noqa: BLE001 - the archive table is created by the first batch
        return 0


def _running_archive(deployment: Deployment, run_id: str) -> str | None:
    """The worker running the run's archive task, once a few of its batches are committed."""
    with deployment.metadata.connect() as conn:
        host = conn.execute(
            text(
                "SELECT hostname FROM task_instance WHERE dag_id = 'retention_prospection' AND run_id = :r "
                "AND task_id = 'archive' AND state = 'running'"
            ),
            {"r": run_id},
        ).scalar()
    return host if host and _archived_count(deployment.target) >= 3 * KILL_BATCH_SIZE else None


def test_a_worker_killed_in_the_middle_of_an_archive_loses_and_duplicates_nothing(deployment, cluster_report):
    before = _add_due_prospects(deployment.target)
    assert len(before) == len(KILLED_PROSPECTS)
    run_id = deployment.operator.trigger("retention_prospection", mode="execute", batch_size=KILL_BATCH_SIZE)

    deadline = time.monotonic() + RUN_TIMEOUT
    while (victim := _running_archive(deployment, run_id)) is None:
        assert time.monotonic() < deadline, f"the archive never started{deployment.cluster.diagnostics()}"
        deployment.cluster.check_alive()
        deployment.approved += deployment.operator.approve_waiting()
        time.sleep(0.3)
    deployment.cluster.kill(victim)
    killed_at, committed_when_killed = time.monotonic(), _archived_count(deployment.target)
    assert committed_when_killed < len(KILLED_PROSPECTS), "the archive ended before the kill: more rows needed"

    state = deployment.wait_for_runs({"retention_prospection": run_id})["retention_prospection"]
    cluster_report.append(
        f"kill: {victim} killed with {committed_when_killed}/{len(KILLED_PROSPECTS)} rows archived; "
        f"the run ended {time.monotonic() - killed_at:.0f} s later"
    )

    assert state == "success", deployment.cluster.diagnostics()
    tries = [ti for ti in deployment.task_instances("retention_prospection", run_id) if ti["task_id"] == "archive"]
    assert [ti["hostname"] for ti in tries][0] == victim and len(tries) >= 2, tries
    survivor = next(w for w in WORKERS if w != victim)
    assert (tries[-1]["state"], tries[-1]["hostname"]) == ("success", survivor), tries
    # Every row exactly once, in the archive (all were due), with the content it had.
    assert _contents(deployment.target, "crm") == {}
    assert _contents(deployment.target, "archive") == before
    logged = deployment.audit(run_id)
    planned = next(e for e in logged if e["action"] == "plan" and e["table_name"] == "prospects")
    assert planned["details"]["due_for_archive"] >= len(KILLED_PROSPECTS)
    assert _moved(logged, "prospects", "archive") == planned["details"]["due_for_archive"]
    assert deployment.chain_intact()
    with deployment.target.connect() as conn:
        locks = conn.execute(select(func.count()).select_from(locks_table("archive"))).scalar_one()
    assert locks == 0, "the run gave its lease back"
