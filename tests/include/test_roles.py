"""Least-privilege roles on a real PostgreSQL: the pipeline can run the schedule but not
touch the audit log; the DPO can read the audit log and the archive, and nothing else."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from engine_helpers import run_category
from include.demo.seed import seed_demo
from include.retention.policy import load_policy
from include.retention.roles import PIPELINE_ROLE, READER_ROLE, least_privilege_sql
from include.retention.target import connect
from throwaway_postgres import fresh_postgres_database

SCRIPT = Path(__file__).resolve().parents[2] / "sql" / "least_privilege_roles.sql"


@pytest.fixture
def secured(postgres_server):
    """A seeded demo database with the roles script applied by the administrator."""
    url = fresh_postgres_database(postgres_server)
    admin = connect(url)
    seed_demo(admin.engine, "crm", date(2026, 11, 26))
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


def test_the_pipeline_role_runs_the_schedule(secured):
    pipeline = secured[PIPELINE_ROLE]
    result = run_category(pipeline, load_policy(), category="prospection")
    assert result.archived["prospects"] > 0 and result.purged["deleted"]["prospects"] > 0


@pytest.mark.parametrize("statement", [
    "UPDATE archive.retention_audit SET row_count = 0",
    "DELETE FROM archive.retention_audit",
    "TRUNCATE archive.retention_audit",
])
def test_the_pipeline_role_cannot_change_the_audit_log(secured, statement):
    pipeline = secured[PIPELINE_ROLE]
    run_category(pipeline, load_policy(), category="prospection")
    with pytest.raises(ProgrammingError, match="permission denied"), pipeline.engine.begin() as conn:
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
