"""Airflow's API server app with the Retention view mounted, over a seeded target: the client
the page tests (one file per page) share."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from ui_target import SECRET, bearer, seeded_target

from include.retention.database import store
from include.retention.database.target import Target, connect
from include.retention.files import site_folder
from include.retention.policy.load import load_policy
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.reports import certificate
from include.retention.settings import KEY_ENV_VAR


@contextmanager
def view_client(home: Path) -> Iterator:
    """A logged-in DPO's client (bearer token) over the demo target seeded in ``home``, its
    finished runs certified in ``home/reports``; ``client.home`` is ``home``."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    connection, people = seeded_target(home / "target.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_RETENTION_TARGET", connection)
        patch.setenv("RETENTION_REPORTS_DIR", str(home / "reports"))
        patch.setenv(KEY_ENV_VAR, SECRET)
        certify_runs(home / "target.db", None)
        purge_cached_app()
        with TestClient(create_app("core")) as client:
            client.home = home
            client.people = people
            client.headers.update(bearer(client))
            yield client
        purge_cached_app()


def certify_runs(database: Path, folder: str | None) -> int:
    """Each finished run's certificate in the reports folder, as the summary task writes it."""
    policy, target = load_policy(), connect(f"sqlite:///{database}")
    trail = store.audit_table("archive", policy.audit_table)
    try:
        with target.read() as conn, site_folder(folder):
            runs = certificate.latest_runs(conn, trail)
            for run in runs:
                certificate.write(certificate.build(conn, trail, policy, run["run_id"], run["dag_id"]))
    finally:
        target.dispose()
    return len(runs)


def copy_of_the_target(destination: Path, patch: pytest.MonkeyPatch) -> Target:
    """A copy of the view's target in ``destination``, the view pointed at it (tests that change it)."""
    source = Path(json.loads(os.environ["AIRFLOW_CONN_RETENTION_TARGET"])["host"])
    for name in ("target.db", "target.archive.db"):
        shutil.copy(source.with_name(name), destination / name)
    copy = json.dumps({"conn_type": "sqlite", "host": str(destination / "target.db")})
    patch.setenv("AIRFLOW_CONN_RETENTION_TARGET", copy)
    return connect(f"sqlite:///{destination / 'target.db'}")


def log_event(home: Path, run_id: str, dag_id: str, category: str, **event: Any) -> None:
    """One more audit event in the view's target in ``home``, as run ``run_id`` of ``dag_id``
    on 26 November 2026 (a preview): ``event`` holds the action, table, row count, details."""
    policy = load_policy()
    target = connect(f"sqlite:///{home / 'target.db'}")
    try:
        with target.engine.begin() as conn:
            audit.record(
                conn,
                store.audit_table("archive", policy.audit_table),
                RunContext(run_id, dag_id, date(2026, 11, 26), policy.version, dry_run=True),
                category=category,
                **event,
            )
    finally:
        target.dispose()
