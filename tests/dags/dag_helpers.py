"""What the DAG tests share: the seeded demo CRM on PostgreSQL, where its prospects must be
after a run, and a policy for small seeds."""

from __future__ import annotations

import json
import os
from datetime import date, datetime, time, timedelta
from pathlib import Path

import yaml
from sqlalchemy import MetaData, Table, select, text

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
# Seed order (include/demo/seed.py): 3 phases x PER_PHASE, 2 missing dates, 2 leap days, then the
# prospect last heard from exactly ACTIVE_YEARS before the run's day (the tests record it as asked).
ON_BOUNDARY = 3 * PER_PHASE + 5
ACTIVE_YEARS = 3  # prospection (the spec): 3 years active, then the policy's archive period


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


def plus_years(day: date, years: int) -> date:
    """Calendar years, as the spec says: 29 February lands on 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def prospect_phases(target: Target, as_of: date, archive_years: int) -> dict[str, set[int]]:
    """Where each prospect must be after a run for ``as_of`` under a policy that keeps prospects
    ``ACTIVE_YEARS`` active then ``archive_years`` in the archive, from the spec alone: the last
    inbound contact's Paris calendar day, plus the active period, then the archive period from
    where the active one ends; past a period when that day <= ``as_of``. A prospect past its
    active period but with an address, not asked (all but ON_BOUNDARY), and less than the notice
    window past its end waits for the re-consent ask: it stays active."""
    phases: dict[str, set[int]] = {"active": set(), "archive": set(), "destroyed": set()}
    prospects = Table("prospects", MetaData(), schema="crm", autoload_with=target.engine)
    with target.read() as conn:
        rows = conn.execute(
            select(prospects.c.prospect_id, prospects.c.last_inbound_contact_at, prospects.c.email)
        ).all()
    for prospect_id, contact, email in rows:
        if contact is None:
            phases["active"].add(prospect_id)
            continue
        end_active = plus_years(contact.astimezone(PARIS).date(), ACTIVE_YEARS)
        waits = end_active + NOTICE > as_of and (email or "").strip(" ") and prospect_id != ON_BOUNDARY
        if end_active > as_of or waits:
            phases["active"].add(prospect_id)
        elif plus_years(end_active, archive_years) > as_of:
            phases["archive"].add(prospect_id)
        else:
            phases["destroyed"].add(prospect_id)
    return phases


def fail_erasures_on_an_application_trigger(target: Target, prospect_id: int) -> None:
    """The application keeps its own log of deleted contacts (a trigger the policy does not
    know), with a unique (e-mail, phone) that already holds the prospect: removing the prospect
    fails, and PostgreSQL quotes both values (``DETAIL:  Key (email, phone)=(...)``) - what the
    tests of errors and alerts need, a real statement failing with personal data in its message."""
    with target.engine.begin() as conn:
        conn.execute(text("CREATE TABLE crm.deleted_contacts (email text, phone text, UNIQUE (email, phone))"))
        conn.execute(
            text("INSERT INTO crm.deleted_contacts SELECT email, phone FROM crm.prospects WHERE prospect_id = :p"),
            {"p": prospect_id},
        )
        conn.execute(
            text(
                "CREATE FUNCTION crm.log_deletion() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "INSERT INTO crm.deleted_contacts VALUES (OLD.email, OLD.phone); RETURN OLD; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER log_deletion AFTER DELETE ON crm.prospects "
                "FOR EACH ROW EXECUTE FUNCTION crm.log_deletion()"
            )
        )
