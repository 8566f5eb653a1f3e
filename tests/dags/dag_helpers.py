"""What the DAG tests share: the seeded demo CRM on PostgreSQL, and a policy for small seeds."""

from __future__ import annotations

import json
import os
from datetime import date, datetime, time, timedelta
from pathlib import Path

import yaml

from include.demo.seed import PARIS
from include.retention.database import store
from include.retention.database.target import Target
from include.retention.policy.load import DEFAULT_POLICY_PATH

AS_OF = date(2026, 11, 26)
SUBJECT_SECRET = "e2e-subject-secret-" + "s" * 30
PER_PHASE = 6
# The shipped policy's reconsent.notice_days for prospection: a due prospect with an address
# waits for the ask until this many days past the end of its active period.
NOTICE = timedelta(days=30)


def record_prospect_asked(target: Target, prospect_id: int, period_end: date) -> None:
    """The campaign's record of the re-consent notice sent to a prospect ``NOTICE`` before its
    active period ends on ``period_end``: the promise is kept, the row may leave that day."""
    register = store.reconsent_table("archive")
    sent = datetime.combine(period_end - NOTICE, time(10), tzinfo=PARIS)
    target.ensure_archive_schema()
    with target.engine.begin() as conn:
        store.ensure_table(conn, register)
        conn.execute(
            register.insert().values(
                category="prospection",
                table_name="prospects",
                row_key=str(prospect_id),
                period_end=period_end,
                subject_hash="0" * 64,
                token_id=f"{prospect_id:032x}",
                expires_on=period_end - timedelta(days=1),
                status="sent",
                recorded_at=sent,
                sent_at=sent,
            )
        )


def policy_without_deletion_limit(folder: Path) -> Path:
    """The shipped schedule with no deletion limit: a small seed moves most of each table in
    one run, which the shipped limit (rightly) stops for approval. The approval tests use the
    shipped policy itself."""
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    data["deletion_limit"] = {"rows": None, "fraction": 1.0}
    path = folder / "retention_policy_no_limit.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def admin_headers(client) -> dict[str, str]:
    """A Bearer token for the test ``admin`` user (the passwords file of the root conftest)."""
    passwords = json.loads(Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())
    response = client.post("/auth/token", json={"username": "admin", "password": passwords["admin"]})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def policy_with_schedule(folder: Path, base: Path, category: str, cron: str) -> Path:
    """A copy of the policy ``base`` in which ``category`` runs on ``cron`` (the other
    categories keep theirs): to make the scheduler start that category's run when a test wants."""
    data = yaml.safe_load(base.read_text(encoding="utf-8"))
    data["categories"][category]["schedule"] = cron
    path = folder / f"retention_policy_{category}_on_{cron.replace(' ', '_').replace('*', 'x')}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
