"""The project's own timestamps (rights register, holds, leases, audit), on SQLite and
PostgreSQL: stored with their zone, read back as aware UTC, compared as instants.

Times are chosen, never read from the wall clock: ``instants.utc_now`` is frozen per test.
The hour that matters most is 23:30 UTC - already the next day in Paris.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.exc import StatementError

from include.demo.seed import seed_demo
from include.retention.database import store
from include.retention.database.store import register_table
from include.retention.dates import instants
from include.retention.dates.instants import UtcDateTime
from include.retention.records import audit, locks
from include.retention.records.audit import RunContext
from include.retention.rights.requests import RequestRecord, close, open_deadlines, record

PARIS = ZoneInfo("Europe/Paris")
# 1 December 2026, 00:30 in Paris: still 30 November in UTC.
LATE_EVENING_UTC = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)
CTX = RunContext("manual__instants", "subject_request", date(2026, 12, 1), "test")


@pytest.fixture
def frozen(monkeypatch):
    """``frozen(moment)``: from now on the project's writers stamp ``moment``."""

    def freeze(moment: datetime) -> None:
        monkeypatch.setattr(instants, "utc_now", lambda: moment)

    return freeze


def _register(target):
    register = register_table(None, "rights_register")
    with target.engine.begin() as conn:
        register.create(conn)
    return register


def _raw(target, sql: str):
    with target.read() as conn:
        return conn.execute(text(sql)).scalar_one()


def _instants_table(target):
    table = Table("instants", MetaData(), Column("id", Integer, primary_key=True), Column("at", UtcDateTime()))
    with target.engine.begin() as conn:
        table.create(conn)
    return table


def test_a_request_closed_at_23_30_utc_is_stored_with_its_offset_and_is_dated_1_december_in_paris(target, frozen):
    register = _register(target)
    frozen(LATE_EVENING_UTC)
    with target.engine.begin() as conn:
        request_id = record(
            conn,
            register,
            RequestRecord("DDP-1", "access", date(2026, 11, 2), True),
            datetime(2026, 11, 2, tzinfo=PARIS),
        )
        close(conn, register, request_id, "completed", {})
    if target.is_sqlite:
        assert _raw(target, "SELECT closed_at FROM rights_register") == "2026-11-30 23:30:00.000000+00:00"
        assert _raw(target, "SELECT received_at FROM rights_register") == "2026-11-01 23:00:00.000000+00:00"
    else:
        assert _raw(target, "SELECT (closed_at AT TIME ZONE 'Europe/Paris')::date FROM rights_register") == date(
            2026, 12, 1
        )
    with target.read() as conn:
        row = conn.execute(select(register)).one()
    assert row.closed_at == LATE_EVENING_UTC and row.closed_at.utcoffset() == timedelta(0)
    assert row.closed_at.astimezone(PARIS).date() == date(2026, 12, 1)
    assert row.received_at == datetime(2026, 11, 2, tzinfo=PARIS) and row.received_at.tzinfo == UTC


def test_a_request_closed_a_minute_ago_is_never_overdue_even_at_23_30_utc(target, frozen):
    """Received 31 October, due 30 November; at 23:29 UTC on the 30th (00:29 in Paris on
    1 December) it is one day overdue; closed a minute later, it is in no list."""
    register = _register(target)
    with target.engine.begin() as conn:
        request_id = record(
            conn,
            register,
            RequestRecord("DDP-2", "erasure", date(2026, 10, 31), True),
            datetime(2026, 10, 31, 9, tzinfo=PARIS),
        )
        before = open_deadlines(conn, register, date(2026, 12, 1))
        frozen(LATE_EVENING_UTC)
        close(conn, register, request_id, "completed", {})
    assert [(d.reference, d.due, d.days_left) for d in before] == [("DDP-2", date(2026, 11, 30), -1)]
    with target.read() as conn:
        for today in (date(2026, 11, 30), date(2026, 12, 1), date(2027, 1, 1)):
            assert open_deadlines(conn, register, today, within_days=100_000) == []


def test_an_open_request_due_today_is_not_overdue_today(target):
    register = _register(target)
    with target.engine.begin() as conn:
        record(
            conn,
            register,
            RequestRecord("DDP-3", "access", date(2026, 11, 1), True),
            datetime(2026, 11, 1, 23, 59, tzinfo=PARIS),
        )
        deadlines = open_deadlines(conn, register, date(2026, 12, 1))
    assert [(d.due, d.days_left) for d in deadlines] == [(date(2026, 12, 1), 0)]


def test_a_naive_datetime_is_refused_on_write(target):
    register = _register(target)
    with target.engine.begin() as conn, pytest.raises(StatementError, match="naive datetime 2026-11-30T23:30:00"):
        record(
            conn, register, RequestRecord("DDP-4", "access", date(2026, 11, 30), True), datetime(2026, 11, 30, 23, 30)
        )


def test_instants_given_in_any_zone_sort_and_compare_as_instants(target):
    new_york = ZoneInfo("America/New_York")
    moments = {
        1: datetime(2026, 12, 1, 0, 30, tzinfo=PARIS),  # 23:30 UTC on the 30th
        2: datetime(2026, 11, 30, 23, 45, tzinfo=UTC),
        3: datetime(2026, 11, 30, 18, 40, tzinfo=new_york),  # 23:40 UTC
        4: datetime(2026, 11, 30, 23, 30, 0, 1, tzinfo=UTC),
    }
    table = _instants_table(target)
    with target.engine.begin() as conn:
        conn.execute(insert(table), [{"id": k, "at": v} for k, v in moments.items()])
        in_order = conn.execute(select(table.c.id).order_by(table.c.at)).scalars().all()
        from_23_35 = (
            conn.execute(
                select(table.c.id).where(table.c.at >= datetime(2026, 12, 1, 0, 35, tzinfo=PARIS)).order_by(table.c.id)
            )
            .scalars()
            .all()
        )
        exactly = conn.execute(select(table.c.id).where(table.c.at == LATE_EVENING_UTC)).scalars().all()
    assert in_order == [1, 4, 3, 2]
    assert from_23_35 == [2, 3]
    assert exactly == [1]


@pytest.mark.parametrize(
    "stored, read",
    [
        ("2026-11-30 23:30:00.123456", datetime(2026, 11, 30, 23, 30, 0, 123456, tzinfo=UTC)),
        ("2026-11-30 23:30:00", LATE_EVENING_UTC),
        ("2026-11-30T23:30:00", LATE_EVENING_UTC),
        ("2026-11-30T23:30:00Z", LATE_EVENING_UTC),
        ("2026-12-01 00:30:00+01:00", LATE_EVENING_UTC),
    ],
)
def test_timestamps_written_by_earlier_versions_on_sqlite_are_read_as_utc(tmp_path, stored, read):
    from include.retention.database.target import connect

    target = connect(f"sqlite:///{tmp_path / 'legacy.db'}", "archive")
    table = _instants_table(target)
    with target.engine.begin() as conn:
        conn.execute(text("INSERT INTO instants (id, at) VALUES (1, :stored)"), {"stored": stored})
        assert conn.execute(select(table.c.at)).scalar_one() == read
        assert conn.execute(select(table.c.at)).scalar_one().tzinfo == UTC
    target.dispose()


def test_stored_text_on_sqlite_has_one_width_so_text_order_is_time_order():
    texts = [
        instants.stored_text(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s, microseconds=u))
        for s, u in ((0, 0), (0, 1), (59, 999_999), (86_400 * 400, 5))
    ]
    assert {len(t) for t in texts} == {32} and all(t.endswith("+00:00") for t in texts)
    assert texts == sorted(texts)


def test_audit_recorded_at_round_trips_as_aware_utc_and_the_chain_verifies(target, frozen):
    target.ensure_archive_schema()
    trail = store.audit_table(target.archive_schema, "retention_audit")
    frozen(datetime(2026, 12, 1, 0, 30, tzinfo=PARIS))
    with target.engine.begin() as conn:
        store.ensure_audit_table(conn, trail)
        audit.record(conn, trail, CTX, category="rights", action="rights_request", row_count=0)
    if target.is_sqlite:
        assert _raw(target, "SELECT recorded_at FROM archive.retention_audit") == "2026-11-30 23:30:00.000000+00:00"
    with target.read() as conn:
        (event,) = audit.events(conn, trail)
        assert event["recorded_at"] == LATE_EVENING_UTC and event["recorded_at"].tzinfo == UTC
        assert audit.verify_chain(conn, trail).intact


def test_a_lease_not_renewed_for_just_under_24_hours_is_busy_and_just_over_is_taken_over(target, frozen):
    taken = datetime(2026, 11, 30, 23, 30, tzinfo=PARIS)
    frozen(taken)
    locks.take_lease(target, "prospection", "run-a", "retention_prospection")
    frozen(taken + locks.STALE_AFTER - timedelta(minutes=1))
    with pytest.raises(locks.CategoryBusy, match="run 'run-a'"):
        locks.take_lease(target, "prospection", "run-b", "retention_prospection")
    frozen(taken + locks.STALE_AFTER + timedelta(minutes=1))
    locks.take_lease(target, "prospection", "run-b", "retention_prospection")
    table = store.locks_table(target.archive_schema)
    with target.read() as conn:
        lease = conn.execute(select(table)).one()
    assert (lease.run_id, lease.acquired_at, lease.renewed_at) == (
        "run-b",
        taken + locks.STALE_AFTER + timedelta(minutes=1),
        taken + locks.STALE_AFTER + timedelta(minutes=1),
    )
    assert lease.renewed_at.tzinfo == UTC


def test_a_lease_renewed_by_an_earlier_version_on_sqlite_is_read_in_utc(tmp_path, frozen):
    """Its naive text was UTC: read as Paris time it would look an hour younger."""
    from include.retention.database.target import connect

    target = connect(f"sqlite:///{tmp_path / 'lease.db'}", "archive")
    frozen(datetime(2026, 11, 29, 9, 0, tzinfo=UTC))
    locks.take_lease(target, "prospection", "run-a", "retention_prospection")
    with target.engine.begin() as conn:  # what DateTime(timezone=True) wrote: UTC, no offset
        conn.execute(text("UPDATE archive.retention_run_locks SET renewed_at = '2026-11-29 10:00:00.000000'"))
    frozen(datetime(2026, 11, 30, 9, 59, tzinfo=UTC))
    with pytest.raises(locks.CategoryBusy):
        locks.take_lease(target, "prospection", "run-b", "retention_prospection")
    frozen(datetime(2026, 11, 30, 10, 1, tzinfo=UTC))
    locks.take_lease(target, "prospection", "run-b", "retention_prospection")
    target.dispose()


def test_the_demo_register_is_seeded_with_offsets(target):
    """The demo's rights register has the project's layout: its instants carry their zone."""
    schema = None if target.is_sqlite else "crm"
    seed_demo(target.engine, schema, date(2026, 12, 1))
    register = register_table(schema, "rights_requests")
    with target.read() as conn:
        rows = conn.execute(select(register.c.received_at, register.c.closed_at)).all()
        if target.is_sqlite:
            stored = conn.execute(
                text(
                    "SELECT received_at FROM rights_requests UNION ALL "
                    "SELECT closed_at FROM rights_requests WHERE closed_at IS NOT NULL"
                )
            ).scalars()
            assert {(len(s), s[-6:]) for s in stored} == {(32, "+00:00")}
    assert rows and all(r.received_at.tzinfo == UTC for r in rows)
    assert any(r.closed_at for r in rows) and all(r.closed_at.tzinfo == UTC for r in rows if r.closed_at)


def test_a_register_written_by_an_earlier_version_on_sqlite_gets_its_offsets_back(tmp_path):
    """The register is also a policy table, read by the retention clock in SQL: its legacy
    UTC text (no offset) would be read there as Paris time. ``ensure_register`` rewrites it."""
    from include.retention.database.target import connect
    from include.retention.policy.load import load_policy
    from include.retention.rights.requests import ensure_register

    target = connect(f"sqlite:///{tmp_path / 'register.db'}", "archive")
    register = register_table(None, "rights_requests")
    with target.engine.begin() as conn:
        register.create(conn)
        for request_id, closed in (
            (1, "2026-11-30 23:30:00.000000"),
            (2, None),
            (3, "2026-11-30T23:30:00Z"),
            (4, "2026-11-30 23:30:00.000000+00:00"),
            (5, "last Tuesday"),
            (6, 1764545400),
        ):
            conn.execute(
                text(
                    "INSERT INTO rights_requests (request_id, reference, request_type, received_at, "
                    "due_at, extended, identity_verified, status, closed_at) VALUES (:id, :ref, 'access', "
                    "'2026-11-01 00:00:00.000000', '2026-12-01', 0, 1, 'completed', :closed)"
                ),
                {"id": request_id, "ref": f"DDP-{request_id}", "closed": closed},
            )
    ensure_register(target, load_policy())
    with target.read() as conn:
        stored = conn.execute(text("SELECT received_at, closed_at FROM rights_requests ORDER BY request_id")).all()
    target.dispose()
    utc = "2026-11-30 23:30:00.000000+00:00"
    assert [tuple(r) for r in stored] == [
        ("2026-11-01 00:00:00.000000+00:00", closed) for closed in (utc, None, utc, utc, "last Tuesday", 1764545400)
    ]


@pytest.mark.parametrize(
    "closed",
    [LATE_EVENING_UTC, datetime(2026, 12, 1, 10, 0, tzinfo=UTC)],
    ids=["00:30 in Paris", "11:00 in Paris"],
)
def test_in_the_dpo_report_a_request_closed_today_is_not_overdue_until_a_nightly_run_could_move_it(crm, frozen, closed):
    """The register is a policy table (active period P0D from closed_at): a request closed
    on 1 December in Paris is due that day and tonight's run archives it. The report of
    1 December does not call it overdue; that of 2 December, with no run between, does."""
    from crm_helpers import KEY

    from include.retention.database.identity import Subject
    from include.retention.policy.load import load_policy
    from include.retention.reports import dpo_report
    from include.retention.rights.requests import handle

    frozen(closed)
    policy, request = load_policy(), RequestRecord("DDP-DPO-1", "access", date(2026, 11, 28), True)
    handle(crm, policy, KEY, request, Subject.of({"email": "nobody@example.fr"}), CTX, closed)

    def overdue(today: date) -> int:
        report = dpo_report.build(crm, policy, today.replace(day=1), today, today, KEY)
        return sum(c.overdue for c in report.compliance if c.category == "rights_requests")

    assert [overdue(day) for day in (date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 2))] == [0, 0, 1]


def test_an_archived_rows_archived_at_is_an_instant_with_its_offset(target, frozen):
    """``archived_at`` is the project's own instant too: at 23:30 UTC the run archived it on
    1 December in Paris, and SQLite's text says so with its offset."""
    from engine_helpers import club_policy, create_club, run_category

    frozen(LATE_EVENING_UTC)
    create_club(target)
    run_category(target, club_policy())
    if target.is_sqlite:
        assert _raw(target, 'SELECT MIN(archived_at) FROM "archive"."members"') == "2026-11-30 23:30:00.000000+00:00"
    with target.read() as conn:
        stamped = conn.execute(text('SELECT DISTINCT archived_at FROM "archive"."members"')).scalars().all()
    assert len(stamped) == 1
    if not target.is_sqlite:
        assert stamped[0] == LATE_EVENING_UTC
