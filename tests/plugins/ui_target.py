"""The target the UI tests look at: the demo CRM on SQLite after two categories' runs, and a
pseudonymised rights-request event about a prospect whose data was destroyed."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

from sqlalchemy import text

from include.demo.seed import seed_demo
from include.retention.database import store
from include.retention.database.identity import SubjectKey, subject_hash
from include.retention.database.target import connect
from include.retention.policy.load import load_policy
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.records.holds import NewHold, add_hold
from include.retention.reports import certificate
from include.retention.schedule.archive import archive_category
from include.retention.schedule.context import StepContext
from include.retention.schedule.limits import approved_counts
from include.retention.schedule.plan import plan_category
from include.retention.schedule.purge import purge_category
from include.retention.schedule.summary import summarize_run
from include.retention.settings import REPORTS_ENV_VAR

AS_OF = date(2026, 11, 26)
SECRET = "ui-test-subject-secret-" + "x" * 20
RUNS = {"prospection": "scheduled__prospection", "web_forms": "scheduled__web_forms"}


def seeded_target(path: Path) -> tuple[str, dict[str, str]]:
    """The demo CRM on SQLite after two categories' runs; returns the connection and two e-mails."""
    target = connect(f"sqlite:///{path}")
    seed_demo(target.engine, None, AS_OF)
    policy = load_policy()
    with target.read() as conn:
        oldest, newest = (
            conn.execute(
                text(
                    f"SELECT email FROM prospects WHERE last_inbound_contact_at IS NOT NULL "
                    f"ORDER BY last_inbound_contact_at {order} LIMIT 1"
                )
            ).scalar_one()
            for order in ("ASC", "DESC")
        )
    for category, run_id in RUNS.items():  # what the DAG's tasks do, without Airflow
        step = StepContext.build(
            target, policy, category, RunContext(run_id, f"retention_{category}", AS_OF, policy.version)
        )
        approved = approved_counts(plan_category(step))  # the demo's backlog passes the limit
        summarize_run(step, archive_category(step, approved=approved), purge_category(step, approved=approved))
        _issue_certificate(step, path.parent / "reports")
    with target.engine.begin() as conn:  # a rights request about the oldest prospect, pseudonymised
        audit.record(
            conn,
            store.audit_table("archive", policy.audit_table),
            RunContext("manual__request", "subject_request", AS_OF, policy.version),
            category="prospection",
            action="rights_request",
            row_count=1,
            subject_hash=subject_hash(SubjectKey(SECRET, "test"), "email", oldest),
        )
    add_hold(
        target,
        policy,
        NewHold("RG-UI-1", "category", "Enquete CNIL en cours", "dpo@example.fr", category="suppliers"),
        None,
        RunContext("manual__hold", "legal_hold", AS_OF, policy.version),
        AS_OF,
    )
    target.dispose()
    return json.dumps({"conn_type": "sqlite", "host": str(path)}), {"destroyed": oldest, "active": newest}


def _issue_certificate(step: StepContext, reports: Path) -> None:
    """The run's certificate in the home's reports folder, as the summary task writes it: the
    chain status wants one for every finished run (else CERTIFICATES MISSING)."""
    before = os.environ.get(REPORTS_ENV_VAR)
    os.environ[REPORTS_ENV_VAR] = str(reports)
    try:
        certificate.issue(step)
    finally:
        if before is None:
            del os.environ[REPORTS_ENV_VAR]
        else:
            os.environ[REPORTS_ENV_VAR] = before


def bearer(client, user: str = "dpo") -> dict[str, str]:
    """The Authorization header of ``user`` (the simple auth manager's generated password),
    from the API server's token endpoint."""
    passwords = json.loads(Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())
    response = client.post("/auth/token", json={"username": user, "password": passwords[user]})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
