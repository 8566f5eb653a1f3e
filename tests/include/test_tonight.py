"""Tonight: what the next run of a category will do, counted as its plan counts, changing nothing."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from crm_helpers import KEY
from engine_helpers import AS_OF, CLUB_POLICY, audit_events, club_policy, create_club, run_category, schema_metadata
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InternalError

from include.retention.database.store import audit_table
from include.retention.database.target import Target, connect
from include.retention.policy.load import parse_policy
from include.retention.policy.model import RetentionPolicy
from include.retention.records.audit import RunContext
from include.retention.records.holds import NewHold, add_hold
from include.retention.schedule.context import StepContext
from include.retention.schedule.plan import CategoryPlan, plan_category
from include.retention.schedule.tonight import CategoryForecast, forecast
from scripts.throwaway_postgres import fresh_postgres_database

RECONSENT = {
    "address_column": "email",
    "notice_days": 30,
    "sender": "Service données personnelles <rgpd@example.fr>",
    "answer_url": "https://www.example.fr/consentement",
}
LATER = date(2026, 11, 27)  # member 2 falls due; member 5, archived on AS_OF, reaches its end of life
CLUB_TABLES = ("members", "member_events", "member_event_files")


def _hold(target: Target, policy: RetentionPolicy, member: int) -> None:
    hold = NewHold(
        reference=f"RG-2026-00{member}",
        scope="rows",
        reason="Litige en cours",
        created_by="dpo@example.fr",
        table="members",
        keys=[member],
    )
    add_hold(target, policy, hold, KEY, RunContext("manual__hold", "legal_hold", AS_OF, policy.version), AS_OF)


def _as_planned(plan: CategoryPlan) -> CategoryForecast:
    """The forecast a dry run's plan makes (its deletion limits flagged by the run)."""
    return CategoryForecast.of(plan, list(plan.over_limit), seconds=0.0)


def _state(target: Target, policy: RetentionPolicy) -> dict[str, Any]:
    """Every table of both sides with its row count, and the audit log: what a write would change."""
    with target.read() as conn:
        inspector = inspect(conn)
        present = set(inspector.get_schema_names())
        schemas = (None, "archive") if target.is_sqlite else tuple(s for s in ("club", "archive") if s in present)
        names = [(schema, name) for schema in schemas for name in inspector.get_table_names(schema=schema)]
        counts = {
            (schema, name): conn.execute(
                select(func.count()).select_from(Table(name, MetaData(), schema=schema))
            ).scalar_one()
            for schema, name in names
        }
    has_trail = ("archive", audit_table("archive", policy.audit_table).name) in counts
    return {"tables": counts, "audit": audit_events(target, policy) if has_trail else None}


def test_tonight_on_a_fresh_database_counts_what_is_due_and_creates_nothing(target):
    create_club(target)
    policy = club_policy()
    before = _state(target, policy)

    tonight = forecast(target, policy, "members", AS_OF)

    assert _state(target, policy) == before  # no audit table, no archive table, no row changed
    assert before["audit"] is None and not any(schema == "archive" for schema, _ in before["tables"])
    assert tonight.problem is None
    assert (tonight.due_for_archive, tonight.due_for_end_of_life, tonight.missing_start) == (5, 1, 1)
    assert tonight.end_action == "delete" and tonight.over_limit == ("members",)  # 5 of 8 rows: past the limit
    (members,) = tonight.tables
    assert (members.table, members.active_rows, members.due_for_archive, members.missing_start) == ("members", 8, 5, 1)
    assert tonight.seconds > 0


def test_tonight_counts_what_a_dry_run_plans_the_same_day_and_writes_nothing(target):
    """After a first run (archive and audit log in place) and two legal holds, the forecast of
    the next day is the dry run's plan of that day, and leaves the database as it found it."""
    create_club(target)
    if not target.is_sqlite:
        with target.engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pgcrypto"))
    policy = club_policy()
    run_category(target, policy)  # members 1, 3, 5, 7 archived, 4 destroyed
    _hold(target, policy, 2)  # falls due tomorrow
    _hold(target, policy, 5)  # archived, at its end of life tomorrow
    before = _state(target, policy)

    tonight = forecast(target, policy, "members", LATER)

    assert _state(target, policy) == before
    planned = _as_planned(run_category(target, policy, LATER, dry_run=True, run_id="run-2").plan)
    assert replace(tonight, seconds=0.0) == planned
    assert tonight.held == 2 and tonight.due_for_archive == 0 and tonight.due_for_end_of_life == 0
    assert tonight.to_dict()["as_of"] == "2026-11-27"


def test_tonight_counts_the_rows_waiting_for_the_reconsent_ask_as_the_plan_does(target):
    """Members whose active period ended within the notice window wait for the ask: neither due
    nor archived tonight, counted apart - as the dry run's plan counts them."""
    ended = date(2023, 11, 26)  # three years before AS_OF: the active period ends today
    create_club(target, {1: ended, 2: ended - timedelta(days=10), 3: date(2026, 1, 1), 4: date(2018, 11, 26)})
    policy = club_policy(reconsent=RECONSENT, deleted_on=["opposition"])

    tonight = forecast(target, policy, "members", AS_OF, subject_key=KEY)

    planned = _as_planned(run_category(target, policy, dry_run=True, subject_key=KEY).plan)
    assert replace(tonight, seconds=0.0) == planned
    assert (tonight.waiting_for_reconsent, tonight.due_for_archive, tonight.due_for_end_of_life) == (2, 1, 1)


def test_tonight_runs_in_a_read_only_transaction_on_postgresql(postgres_server):
    """Connected so that every transaction is READ ONLY, any write fails: the forecast still
    counts, while the plan (which audits its counts) cannot run there."""
    url = fresh_postgres_database(postgres_server)
    writer = connect(url, "archive")
    read_only = Target(
        create_engine(
            make_url(url).set(drivername="postgresql+psycopg"),
            connect_args={"options": "-c default_transaction_read_only=on"},
            hide_parameters=True,
        ),
        "archive",
    )
    try:
        create_club(writer)
        policy = club_policy()
        run_category(writer, policy)
        with pytest.raises(InternalError, match="read-only transaction"), read_only.engine.begin() as conn:
            conn.execute(text("CREATE TABLE club.probe (id integer)"))

        tonight = forecast(read_only, policy, "members", LATER)

        assert tonight.problem is None
        assert replace(tonight, seconds=0.0) == replace(forecast(writer, policy, "members", LATER), seconds=0.0)
        assert tonight.due_for_archive == 1 and tonight.due_for_end_of_life == 1  # member 2; member 5
        ctx = RunContext("run-2", "retention_members", LATER, policy.version, dry_run=True)
        with pytest.raises(InternalError, match="read-only transaction"):
            plan_category(StepContext.build(read_only, policy, "members", ctx))
    finally:
        read_only.dispose()
        writer.dispose()


def _with_visitors(start_column: str = "last_seen_at") -> RetentionPolicy:
    """The club's policy and a second category, ``visitors``, of a table of its own."""
    data = copy.deepcopy(CLUB_POLICY)
    visitors = copy.deepcopy(data["categories"]["members"])
    visitors["label"] = {"fr": "Visiteurs", "en": "Visitors"}
    visitors["tables"] = [
        {
            "table": "visitors",
            "primary_key": "visitor_id",
            "start_event": {"column": start_column, "when_missing": "defect"},
            "archive_columns": ["email"],
        }
    ]
    data["categories"]["visitors"] = visitors
    return parse_policy(data, source="club.yaml")


@pytest.mark.parametrize("broken", ["table", "column"])
def test_a_category_the_database_does_not_match_has_a_problem_and_the_others_are_counted(target, broken):
    create_club(target)
    policy = _with_visitors()
    if broken == "column":  # the table is there, without the start column the policy names
        md, _ = schema_metadata(target, "club")
        visitors = Table("visitors", md, Column("visitor_id", Integer, primary_key=True), Column("email", String(200)))
        md.create_all(target.engine, tables=[visitors])
        with target.engine.begin() as conn:
            conn.execute(visitors.insert(), [{"visitor_id": 1, "email": "visiteur@example.fr"}])

    broken_one, members = (forecast(target, policy, key, AS_OF) for key in ("visitors", "members"))

    assert broken_one.problem is not None and "visitors" in broken_one.problem
    if broken == "column":
        assert "last_seen_at" in broken_one.problem
    assert "@" not in broken_one.problem
    assert (broken_one.due_for_archive, broken_one.tables, broken_one.end_action) == (0, (), "delete")
    assert broken_one.to_dict()["problem"] == broken_one.problem
    assert members.problem is None and members.due_for_archive == 5
