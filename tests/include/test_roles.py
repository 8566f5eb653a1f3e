"""Least-privilege roles on a real PostgreSQL: the pipeline can run the schedule but not
touch the audit log; the DPO can read the audit log and the archive, and nothing else."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from crm_helpers import AS_OF, KEY
from engine_helpers import run_category
from include.retention import dpo_report
from include.retention.audit import RunContext
from include.retention.holds import NewHold, add_hold, lift_hold
from include.retention.locks import category_step, release_lease
from include.retention.postflight import post_run_gate
from include.retention.quality import pre_archive_gate
from include.retention.requests import RequestRecord, handle
from include.retention.steps import StepContext
from include.retention.subjects import Subject
from include.demo.seed import seed_demo
from include.retention.policy import load_policy
from include.retention.roles import PIPELINE_ROLE, READER_ROLE, least_privilege_sql
from include.retention.target import connect
from throwaway_postgres import fresh_postgres_database

SCRIPT = Path(__file__).resolve().parents[2] / "include" / "sql" / "least_privilege_roles.sql"


@pytest.fixture
def secured(postgres_server):
    """A seeded demo database with the roles script applied by the administrator."""
    url = fresh_postgres_database(postgres_server)
    admin = connect(url)
    seed_demo(admin.engine, "crm", date(2026, 11, 26))
    with admin.engine.begin() as conn:  # a table of the same schema that the policy does not name
        conn.execute(text("CREATE TABLE crm.payroll (employee_id int PRIMARY KEY, salary numeric)"))
    raw = admin.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(SCRIPT.read_text())  # as a DBA would run it: no parameters, plain SQL
        cursor.execute(f"ALTER ROLE {PIPELINE_ROLE} LOGIN; ALTER ROLE {READER_ROLE} LOGIN;")
        raw.commit()
    finally:
        raw.close()
    admin.dispose()
    as_role = {role: connect(make_url(url).set(username=role).render_as_string(hide_password=False))
               for role in (PIPELINE_ROLE, READER_ROLE)}
    yield as_role
    for target in as_role.values():
        target.dispose()


def test_the_committed_script_is_what_the_code_generates():
    assert SCRIPT.read_text() == least_privilege_sql(load_policy())


def test_the_pipeline_role_runs_the_whole_pipeline(secured):
    """Every category's run, its checks and lease, a legal hold added and lifted, an erasure
    request, the DPO report and the chain check - all as the pipeline's role."""
    pipeline, policy = secured[PIPELINE_ROLE], load_policy()
    ctx = RunContext("manual__roles", "legal_hold", AS_OF, policy.version)
    add_hold(pipeline, policy, NewHold("RG-ROLES-1", "category", "Inquiry", "dpo", category="suppliers"), KEY, ctx,
             AS_OF)
    for category in policy.categories:
        run_id = f"scheduled__{category}"
        with category_step(pipeline, category, run_id, f"retention_{category}"):
            step = StepContext.build(pipeline, policy, category, RunContext(run_id, f"retention_{category}", AS_OF,
                                                                            policy.version), KEY)
            pre_archive_gate(step)
            result = run_category(pipeline, policy, category=category, run_id=run_id, subject_key=KEY)
            post_run_gate(step)
        release_lease(pipeline, category, run_id)
        if category == "suppliers":
            assert result.archived == {}  # held
        elif category != "navigation_tracking":
            assert sum(result.archived.values()) > 0, category
    lift_hold(pipeline, policy, "RG-ROLES-1", "dpo", "closed", ctx, AS_OF)
    request = RequestRecord("DDP-ROLES-1", "erasure", AS_OF, True, requester_email="someone@example.org")
    with pipeline.read() as conn:
        email = conn.execute(text("SELECT email FROM crm.customers LIMIT 1")).scalar_one()
    handled = handle(pipeline, policy, KEY, request, Subject.of({"email": email}),
                     RunContext("manual__erasure", "subject_request", AS_OF, policy.version),
                     datetime(2026, 11, 26, tzinfo=timezone.utc))
    assert handled.status == "completed"
    report = dpo_report.build(pipeline, policy, date(2026, 11, 1), AS_OF, AS_OF, KEY)
    assert report.chain.intact and report.holds[0].status == "lifted"


@pytest.mark.parametrize("statement", [
    "UPDATE archive.retention_audit SET row_count = 0",
    "DELETE FROM archive.retention_audit",
    "TRUNCATE archive.retention_audit",
    "ALTER TABLE archive.retention_audit DISABLE TRIGGER ALL",
    "DROP TABLE archive.retention_audit",
    "DELETE FROM archive.retention_legal_holds",
    "DELETE FROM archive.retention_suppression",
    "SELECT count(*) FROM crm.payroll",
    "CREATE TABLE crm.pipeline_notes (id int)",
    "CREATE TABLE public.pipeline_notes (id int)",
    "CREATE SCHEMA pipeline_own",
    "ALTER TABLE crm.prospects ADD COLUMN score int",
    "DROP TABLE crm.prospects",
])
def test_the_pipeline_role_can_do_nothing_else(secured, statement):
    """In particular, it can neither change nor remove audit events, nor create tables outside the archive."""
    pipeline = secured[PIPELINE_ROLE]
    run_category(pipeline, load_policy(), category="prospection")
    with pytest.raises(ProgrammingError, match="permission denied|must be owner|privileges"), \
            pipeline.engine.begin() as conn:
        conn.execute(text(statement))


def test_the_dpo_reads_the_audit_log_and_the_archive(secured):
    run_category(secured[PIPELINE_ROLE], load_policy(), category="prospection")
    with secured[READER_ROLE].read() as conn:
        assert conn.execute(text("SELECT count(*) FROM archive.retention_audit")).scalar_one() > 0
        assert conn.execute(text("SELECT count(*) FROM archive.prospects")).scalar_one() > 0


@pytest.mark.parametrize("statement", [
    "SELECT count(*) FROM crm.prospects",
    "INSERT INTO archive.retention_audit (event_id) VALUES (999999)",
    "DELETE FROM archive.prospects",
])
def test_the_dpo_can_do_nothing_else(secured, statement):
    run_category(secured[PIPELINE_ROLE], load_policy(), category="prospection")
    with pytest.raises(ProgrammingError, match="permission denied"), secured[READER_ROLE].engine.begin() as conn:
        conn.execute(text(statement))
