"""Tonight's forecast tells what the run will find when it comes, and never stands in a run's
way: legal holds read as of the run's day, a READ ONLY transaction and bounded waits on
PostgreSQL (issue 20, review R1)."""

from __future__ import annotations

import copy
import threading
import time
from datetime import datetime, timedelta

import pytest
from crm_helpers import KEY
from engine_helpers import AS_OF, CLUB_POLICY, club_policy, create_club, run_category, schema_metadata
from sqlalchemy import Column, DateTime, Integer, Table, text

from include.retention.database.target import connect
from include.retention.policy.load import parse_policy
from include.retention.policy.model import RetentionPolicy
from include.retention.records.audit import RunContext
from include.retention.records.holds import NewHold, add_hold
from include.retention.schedule import tonight
from include.retention.schedule.tonight import forecast
from scripts.throwaway_postgres import fresh_postgres_database


def test_a_hold_that_expires_before_tomorrows_run_keeps_nothing_in_tomorrows_forecast(target):
    create_club(target)
    policy = club_policy()
    run_category(target, policy)  # member 5 archived on AS_OF, at its end of life from 27 Nov
    today = datetime.now(policy.zone).date()
    tomorrow = today + timedelta(days=1)
    hold = NewHold(
        reference="RG-2026-005",
        scope="rows",
        reason="Litige en cours",
        created_by="dpo@example.fr",
        table="members",
        keys=[5],
        expires_on=tomorrow,  # in force until tonight's midnight, gone when tomorrow's run comes
    )
    add_hold(target, policy, hold, KEY, RunContext("manual__hold", "legal_hold", today, policy.version), today)

    tonight_run, tomorrow_run = (
        forecast(target, policy, "members", today),
        forecast(target, policy, "members", tomorrow),
    )

    assert tonight_run.held == 1
    assert tomorrow_run.held == 0
    assert tomorrow_run.due_for_end_of_life == tonight_run.due_for_end_of_life + 1  # member 5 is destroyed then


@pytest.fixture
def pg_target(postgres_server: str):
    url = fresh_postgres_database(postgres_server)
    target = connect(url, "archive")
    create_club(target)
    yield target, url
    target.dispose()


def test_the_forecast_transaction_refuses_a_write_on_a_normal_connection(pg_target, monkeypatch):
    """The connection writes as the runs do: only the forecast's SET TRANSACTION READ ONLY
    stops a write slipped into its counting."""
    target, _ = pg_target
    counting = tonight.count_category

    def writing_first(conn, *args, **kwargs):
        conn.execute(text("CREATE TABLE club.slipped_in (id integer)"))
        return counting(conn, *args, **kwargs)

    monkeypatch.setattr(tonight, "count_category", writing_first)

    tried = forecast(target, club_policy(), "members", AS_OF)

    assert tried.problem is not None and "ReadOnlySqlTransaction" in tried.problem
    with target.read() as conn:
        assert conn.execute(text("SELECT to_regclass('club.slipped_in')")).scalar() is None


def test_a_table_a_run_holds_makes_a_problem_within_the_lock_wait_not_a_page_waiting(pg_target):
    """A run detaching or dropping a partition holds ACCESS EXCLUSIVE on the table: the
    forecast gives up after its lock wait and says which table is busy."""
    target, url = pg_target
    policy = _with_visitors(target)
    run = connect(url, "archive")
    holder = run.engine.connect()
    lock = holder.begin()
    holder.execute(text("LOCK TABLE club.members IN ACCESS EXCLUSIVE MODE"))
    found = {}
    try:
        started = time.monotonic()
        worker = threading.Thread(
            target=lambda: found.update({key: forecast(target, policy, key, AS_OF) for key in ("members", "visitors")})
        )
        worker.start()
        worker.join(20)
        waited = time.monotonic() - started
        assert not worker.is_alive(), "the forecast still waits behind the run's lock"
    finally:
        lock.rollback()
        holder.close()
        worker.join()
        run.dispose()

    assert waited < 15
    busy, visitors = found["members"], found["visitors"]
    assert busy.problem == "table busy: a run holds it (club.members)"
    assert (busy.due_for_archive, busy.tables) == (0, ())
    assert visitors.problem is None and visitors.due_for_archive == 1  # the other category still counted
    assert forecast(target, policy, "members", AS_OF).problem is None  # the lock gone, counted again


def _with_visitors(target) -> RetentionPolicy:
    """The club's policy and a second category, ``visitors``, of a table of its own (one due)."""
    md, _ = schema_metadata(target, "club")
    table = Table("visitors", md, Column("visitor_id", Integer, primary_key=True), Column("last_seen_at", DateTime))
    md.create_all(target.engine, tables=[table])
    with target.engine.begin() as conn:
        conn.execute(table.insert(), [{"visitor_id": 1, "last_seen_at": datetime(2020, 1, 1)}])
    data = copy.deepcopy(CLUB_POLICY)
    visitors = copy.deepcopy(data["categories"]["members"])
    visitors["label"] = {"fr": "Visiteurs", "en": "Visitors"}
    visitors["tables"] = [
        {
            "table": "visitors",
            "primary_key": "visitor_id",
            "start_event": {"column": "last_seen_at", "when_missing": "defect"},
            "archive_columns": ["last_seen_at"],
        }
    ]
    data["categories"]["visitors"] = visitors
    return parse_policy(data, source="club.yaml")


def test_the_forecast_leaves_the_connection_with_the_servers_defaults(pg_target):
    target, _ = pg_target
    forecast(target, club_policy(), "members", AS_OF)
    with target.read() as conn:
        settings = [conn.exec_driver_sql(f"SHOW {name}").scalar() for name in ("lock_timeout", "statement_timeout")]
        assert settings == ["0", "0"]
        assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "off"
