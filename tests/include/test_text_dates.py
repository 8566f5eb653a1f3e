"""Dates stored as text on SQLite are dated in Europe/Paris, exactly as Python dates them.

SQLite has no date type: an application stores text, in whatever ISO form its framework
writes - a plain date, a timestamp with or without fractional seconds, with a space or a
'T', naive (wall-clock time) or with 'Z' or an offset (an instant). The clock must date
each row by its calendar day in the company's time zone, on the boundary day and the days
around it, across DST changes and 29 February; the reference is ``Period.add_to`` and
Python's ``zoneinfo``, never the SQL under test. Text that is none of those formats stops
the pre-archive gate, naming table, column and a sample key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from engine_helpers import AS_OF, archive_rows, club_policy, create_club, ids, run_category
from sqlalchemy import MetaData, String, Table, bindparam, select, text

from include.retention.database.target import Target, connect
from include.retention.dates.clock import Zones, is_due, local_date, retention_dates
from include.retention.dates.periods import Period
from include.retention.records.audit import RunContext
from include.retention.schedule.context import StepContext
from include.retention.schedule.quality import QualityGateFailed, pre_archive_gate

PARIS = ZoneInfo("Europe/Paris")
UTC = UTC
ZONES = Zones(PARIS, PARIS)


def _wall(moment: datetime, fmt: str) -> str:
    return moment.astimezone(PARIS).strftime(fmt)


# How applications write a moment (an aware datetime) as text. Naive formats write the
# Paris wall-clock time; zoned formats write the instant in some zone with its offset.
FORMATS: dict[str, Callable[[datetime], str]] = {
    "date": lambda m: _wall(m, "%Y-%m-%d"),
    "space_seconds": lambda m: _wall(m, "%Y-%m-%d %H:%M:%S"),
    "space_microseconds": lambda m: m.astimezone(PARIS).replace(tzinfo=None).isoformat(" ", "microseconds"),
    "t_seconds": lambda m: _wall(m, "%Y-%m-%dT%H:%M:%S"),
    "t_milliseconds": lambda m: m.astimezone(PARIS).replace(tzinfo=None).isoformat("T", "milliseconds"),
    "t_minutes": lambda m: _wall(m, "%Y-%m-%dT%H:%M"),
    "zulu": lambda m: m.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "zulu_fraction": lambda m: m.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    "utc_offset_project": lambda m: m.astimezone(UTC).isoformat(" ", "microseconds"),  # '...+00:00'
    "paris_offset": lambda m: m.astimezone(PARIS).isoformat("T", "seconds"),
    "plus_0530": lambda m: m.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat("T", "seconds"),
    "minus_0300": lambda m: m.astimezone(timezone(timedelta(hours=-3))).isoformat(" ", "seconds"),
    "plus_1400": lambda m: m.astimezone(timezone(timedelta(hours=14))).isoformat("T", "minutes"),
    "minus_1100": lambda m: m.astimezone(timezone(timedelta(hours=-11))).isoformat(" ", "microseconds"),
}
NAIVE_FORMATS = {"date", "space_seconds", "space_microseconds", "t_seconds", "t_milliseconds", "t_minutes"}


def paris_day(moment: datetime) -> date:
    """The reference: the day the stored text stands for, in Paris."""
    return moment.astimezone(PARIS).date()


@dataclass(frozen=True)
class Boundary:
    """A period and a run date; ``first`` is the first start day that is not yet due."""

    period: Period
    as_of: date
    first: date

    def moments(self) -> list[datetime]:
        """Around the boundary: midnight, 23:59:59 and noon in Paris, and 22:30, 23:30 and
        00:30 UTC, on the day before the last due day up to the day after the first not-due day."""
        found = []
        for offset in range(-2, 2):
            day = self.first + timedelta(days=offset)
            found += [
                datetime.combine(day, t, PARIS)
                for t in (time(0), time(0, 0, 1), time(12), time(23, 59), time(23, 59, 59), time(23, 59, 59, 999999))
            ]
            found += [datetime.combine(day, t, UTC) for t in (time(0, 30), time(22, 30), time(23, 30))]
        return found


def _boundary(period: str, as_of: date, first: date) -> Boundary:
    p = Period.parse(period)
    assert p.add_to(first - timedelta(days=1)) <= as_of < p.add_to(first)  # the scenario itself is right
    return Boundary(p, as_of, first)


BOUNDARIES = {
    "winter": _boundary("P3Y", date(2026, 11, 26), date(2023, 11, 27)),
    "summer": _boundary("P3Y", date(2027, 6, 15), date(2024, 6, 16)),
    "spring_dst_day": _boundary("P3Y", date(2027, 3, 30), date(2024, 3, 31)),
    "day_after_spring_dst": _boundary("P3Y", date(2027, 3, 31), date(2024, 4, 1)),
    "autumn_dst_day": _boundary("P3Y", date(2027, 10, 26), date(2024, 10, 27)),
    "day_after_autumn_dst": _boundary("P3Y", date(2027, 10, 27), date(2024, 10, 28)),
    "leap_day_due_on_28_february": _boundary("P1Y", date(2025, 2, 28), date(2024, 3, 1)),
    "leap_day_not_yet_due": _boundary("P1Y", date(2025, 2, 27), date(2024, 2, 28)),
    "zero_period_rights_register": _boundary("P0D", date(2026, 11, 30), date(2026, 12, 1)),
}


@pytest.fixture
def sqlite_target(tmp_path) -> Target:
    t = connect(f"sqlite:///{tmp_path / 'target.db'}", "archive")
    yield t
    t.dispose()


def _text_table(target: Target, values: list[object], declared: str = "DATETIME") -> Table:
    """A table whose clock column holds exactly the given values, as the application stored them."""
    with target.engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE events (id INTEGER PRIMARY KEY, at {declared})"))
        for i, value in enumerate(values):
            conn.execute(text("INSERT INTO events (id, at) VALUES (:id, :at)"), {"id": i, "at": value})
    return Table("events", MetaData(), autoload_with=target.engine)


def _due_ids(target: Target, table: Table, boundary: Boundary, zones: Zones = ZONES) -> set[int]:
    with target.read() as conn:
        return set(
            conn.execute(select(table.c.id).where(is_due(table.c.at, boundary.period, boundary.as_of, zones))).scalars()
        )


@pytest.mark.parametrize("declared", ["DATETIME", "DATE"])
@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("scenario", list(BOUNDARIES))
def test_text_dates_are_due_exactly_when_their_paris_day_is(sqlite_target, scenario, fmt, declared):
    boundary = BOUNDARIES[scenario]
    moments = boundary.moments()
    table = _text_table(sqlite_target, [FORMATS[fmt](m) for m in moments], declared)
    expected = {i for i, m in enumerate(moments) if boundary.period.add_to(paris_day(m)) <= boundary.as_of}
    assert _due_ids(sqlite_target, table, boundary) == expected


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("scenario", ["winter", "spring_dst_day", "autumn_dst_day", "leap_day_due_on_28_february"])
def test_retention_dates_of_text_dates_are_their_paris_day_plus_the_periods(sqlite_target, scenario, fmt):
    boundary = BOUNDARIES[scenario]
    moments = boundary.moments()
    table = _text_table(sqlite_target, [FORMATS[fmt](m) for m in moments])
    active, archive = Period(3), Period(5)
    start, until = retention_dates(table.c.at, active, archive, sqlite_target.dialect, ZONES)
    with sqlite_target.read() as conn:
        rows = conn.execute(
            select(table.c.id, start, until, local_date(table.c.at, "sqlite", ZONES)).order_by(table.c.id)
        ).all()
    expected = [
        (i, paris_day(m), archive.add_to(active.add_to(paris_day(m))), paris_day(m)) for i, m in enumerate(moments)
    ]
    assert [tuple(r) for r in rows] == expected


def test_a_timestamp_at_midnight_on_the_first_day_not_due_is_not_due(sqlite_target):
    """The reported case: '2024-06-16 00:00:00' sorted before the bound SQLAlchemy rendered
    with microseconds, so the row was archived a day early."""
    boundary = BOUNDARIES["summer"]
    table = _text_table(
        sqlite_target,
        [
            "2024-06-16 00:00:00",
            "2024-06-16T00:00:00",
            "2024-06-16",
            "2024-06-15 23:59:59",
            "2024-06-15T23:59:59.999999",
        ],
    )
    assert _due_ids(sqlite_target, table, boundary) == {3, 4}


def test_the_rights_register_utc_text_at_23h30_is_dated_the_next_day_in_paris(sqlite_target):
    """The project's own instants are stored as UTC text with '+00:00' (instants.stored_text):
    a request closed at 23:30 UTC on 30 November was closed on 1 December in Paris, so with
    a zero active period it is not overdue on 30 November, and it is on 1 December."""
    table = _text_table(sqlite_target, ["2026-11-30 23:30:00.000000+00:00", "2026-11-30 22:59:59.999999+00:00"])
    with sqlite_target.read() as conn:
        days = conn.execute(select(local_date(table.c.at, "sqlite", ZONES)).order_by(table.c.id)).scalars().all()
    assert days == [date(2026, 12, 1), date(2026, 11, 30)]
    assert _due_ids(sqlite_target, table, Boundary(Period(), date(2026, 11, 30), date(2026, 12, 1))) == {1}
    assert _due_ids(sqlite_target, table, Boundary(Period(), date(2026, 12, 1), date(2026, 12, 2))) == {0, 1}


def test_naive_text_is_read_in_the_naive_time_zone_when_it_is_not_the_company_one(sqlite_target):
    """The clock itself converts naive text from ``naive_timezone`` (UTC here, as Odoo stores
    it): 23:30 UTC on 26 November 2023 is already 27 November in Paris."""
    zones = Zones(PARIS, ZoneInfo("UTC"))
    table = _text_table(
        sqlite_target, ["2023-11-26 22:59:59", "2023-11-26 23:30:00", "2023-11-26", "2023-11-26T23:30:00+02:00"]
    )
    boundary = BOUNDARIES["winter"]
    assert _due_ids(sqlite_target, table, boundary, zones) == {0, 2, 3}
    with sqlite_target.read() as conn:
        days = conn.execute(select(local_date(table.c.at, "sqlite", zones)).order_by(table.c.id)).scalars().all()
    assert days == [date(2023, 11, 26), date(2023, 11, 27), date(2023, 11, 26), date(2023, 11, 26)]


# member_id -> the moment of its last contact; the club policy keeps 3 years active, 5 archived.
CLUB_MOMENTS = {
    1: datetime(2023, 11, 26, 23, 59, 59, tzinfo=PARIS),  # last minute of the last due day: due
    2: datetime(2023, 11, 27, 0, 0, tzinfo=PARIS),  # midnight of the first day not due: stays
    3: datetime(2023, 11, 26, 0, 0, tzinfo=PARIS),  # midnight of the last due day: due
    4: datetime(2018, 11, 26, 10, 0, tzinfo=PARIS),  # 3 + 5 years exactly: archived and destroyed
    5: datetime(2018, 11, 27, 0, 0, tzinfo=PARIS),  # archived, kept until 27 November 2026
    7: datetime(2020, 2, 29, 23, 30, tzinfo=PARIS),  # leap day: kept until 28 February 2028
    8: datetime(2023, 11, 26, 23, 30, tzinfo=UTC),  # 27 November in Paris: stays
}


# Formats a whole run tries in ``make test``: naive (a date, seconds, milliseconds with a 'T') and
# zoned (UTC with a fraction, the two offsets furthest from Paris). The other formats run in
# ``make test-deep`` only: the clock's SQL for each is checked on every boundary above.
RUN_FORMATS = {"date", "space_seconds", "t_milliseconds", "zulu_fraction", "plus_1400", "minus_1100"}


@pytest.mark.parametrize("fmt", [f if f in RUN_FORMATS else pytest.param(f, marks=pytest.mark.deep) for f in FORMATS])
def test_a_run_moves_and_stamps_text_dated_rows_by_their_paris_day(sqlite_target, fmt):
    """The production path (gate, plan, archive, purge) on a table whose clock is text."""
    create_club(sqlite_target)
    with sqlite_target.engine.begin() as conn:
        for member, moment in CLUB_MOMENTS.items():
            conn.execute(
                text("UPDATE members SET last_contact_at = :at WHERE member_id = :id"),
                {"at": FORMATS[fmt](moment), "id": member},
            )
    policy = club_policy()
    ctx = RunContext(run_id="gate-text", dag_id="retention_members", as_of=AS_OF, policy_version=policy.version)
    gate_results = pre_archive_gate(
        StepContext.build(sqlite_target, policy, "members", ctx), now=datetime(2026, 11, 26, 12, tzinfo=PARIS)
    )
    assert all(r.success for r in gate_results)
    run_category(sqlite_target, policy)

    active, archive = Period(3), Period(5)
    days = {m: paris_day(moment) for m, moment in CLUB_MOMENTS.items()}
    due = {m for m, d in days.items() if active.add_to(d) <= AS_OF}
    until = {m: archive.add_to(active.add_to(days[m])) for m in due}
    kept = {m for m in due if until[m] > AS_OF}
    assert ids(sqlite_target, "members") == sorted(set(range(1, 9)) - due)
    stamped = {
        r["member_id"]: (r["retention_start"], r["retention_until"]) for r in archive_rows(sqlite_target, "members")
    }
    assert stamped == {m: (days[m], until[m]) for m in kept}
    assert due == {1, 3, 4, 5, 7} and kept == {1, 3, 5, 7}  # the reference itself, spelled out


ACCEPTED = [
    "2024-06-16",
    "2024-06-16 10:00:00",
    "2024-06-16T10:00:00",
    "2024-06-16 10:00",
    "2024-06-16T10:00",
    "2024-06-16 10:00:00.5",
    "2024-06-16 10:00:00.123456789",
    "2024-06-16T10:00:00Z",
    "2024-06-16 10:00:00.123Z",
    "2024-06-16T10:00+02:00",
    "2024-06-16 10:00:00-03:30",
    "2024-06-16 10:00:00.000000+00:00",
    "2024-02-29 23:59:59",
    "0001-01-01",
    "9999-12-31",
    "9999-12-31 23:59:59",
    "2024-06-16T23:59:59+14:00",
]
UNREADABLE: list[object] = [
    "",
    " ",
    "N/A",
    "null",
    "31/12/2020",
    "2024-13-45",
    "2024-02-30",
    "2023-02-29",
    "2024-00-10",
    "2024-06-00",
    "0000-01-01",
    "2024-06-16 24:00:00",
    "2024-06-16 23:60:00",
    "2024-06-16 23:59:60",
    "10:00",
    "2024-06-16Z",
    "2024-06-16+02:00",
    "2024-06-16 10:00:00 +02:00",
    "2024-06-16 10:00:00+15:00",
    "2024-06-16 10:00:00+02:60",
    "2024-06-16 10:00:00+0200",
    "2024-06-16t10:00:00",
    "2024-06-16 10:00:00z",
    "2024-06-16 10:00:00.",
    "2024-06-16 10:00.5",
    "2024-06-16 10",
    "2024-06-16 10:0",
    "20240616",
    " 2024-06-16",
    "2024-06-16 ",
    "2024-06-16\n",
    "2024-6-16",
    "２０２４-06-16",
    "2024-06-16T10:00:00ZZ",
    "2024-06-16 10:00:00.12a",
    "2024-06-16 10:00:00.1+02:00x",
    "2024-06-16  10:00:00",
    "2024-06-16_10:00:00",
    2460000.5,
    1718496000,
    20240616,
]


def test_the_gate_accepts_every_format_the_clock_reads(sqlite_target):
    create_club(sqlite_target)
    with sqlite_target.engine.begin() as conn:
        conn.execute(text("DELETE FROM member_event_files"))
        conn.execute(text("DELETE FROM member_events"))
        conn.execute(text("DELETE FROM members"))
        for i, value in enumerate(ACCEPTED):
            conn.execute(
                text("INSERT INTO members (member_id, last_contact_at) VALUES (:id, :at)"), {"id": i, "at": value}
            )
    policy = club_policy()
    ctx = RunContext(run_id="gate-ok", dag_id="retention_members", as_of=AS_OF, policy_version=policy.version)
    step = StepContext.build(sqlite_target, policy, "members", ctx)
    with pytest.raises(QualityGateFailed) as failed:  # only the future dates (9999) fail, not readability
        pre_archive_gate(step, now=datetime(2026, 11, 26, 12, tzinfo=PARIS))
    assert "readable_dates" not in str(failed.value)
    assert "no_future_last_contact_at on members: 2 row(s)" in str(failed.value)


def test_every_unreadable_value_stops_the_gate_naming_table_column_and_a_key(sqlite_target):
    create_club(sqlite_target)
    with sqlite_target.engine.begin() as conn:
        for i, value in enumerate(UNREADABLE):
            conn.execute(
                text("INSERT INTO members (member_id, last_contact_at) VALUES (:id, :at)"),
                {"id": 1000 + i, "at": value},
            )
    policy = club_policy()
    ctx = RunContext(run_id="gate-bad", dag_id="retention_members", as_of=AS_OF, policy_version=policy.version)
    before = ids(sqlite_target, "members")
    with pytest.raises(QualityGateFailed) as failed:
        pre_archive_gate(
            StepContext.build(sqlite_target, policy, "members", ctx), now=datetime(2026, 11, 26, 12, tzinfo=PARIS)
        )
    message = str(failed.value)
    assert f"readable_dates_last_contact_at on members: {len(UNREADABLE)} row(s)" in message
    assert "member_id=1000" in message
    assert ids(sqlite_target, "members") == before


@pytest.mark.parametrize("value", UNREADABLE, ids=repr)
def test_the_clock_never_reads_a_value_the_gate_refuses(sqlite_target, value):
    """Whatever the gate refuses, the clock neither moves nor dates: every step after a
    refused gate (a report, a post-run check) sees it as undated, never as due."""
    table = _text_table(sqlite_target, [value])
    assert _due_ids(sqlite_target, table, BOUNDARIES["winter"]) == set()
    with sqlite_target.read() as conn:
        assert conn.execute(select(local_date(table.c.at, "sqlite", ZONES))).scalar_one() is None


def test_the_gate_and_the_clock_agree_on_what_is_readable(sqlite_target):
    """Same grammar on both sides, checked on the fixed lists and on generated near-misses."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from include.retention.dates.clock import parse_stored_text, sqlite_readable

    readable = select(sqlite_readable(bindparam("v", type_=String)))

    def sql_says(value: str) -> bool:
        with sqlite_target.read() as conn:
            return bool(conn.execute(readable, {"v": value}).scalar_one())

    for value in ACCEPTED:
        assert sql_says(value) and parse_stored_text(value) is not None, value
    for value in UNREADABLE:
        assert not sql_says(value) and parse_stored_text(value) is None, value

    pieces = st.sampled_from(
        [
            "2024",
            "-",
            "06",
            "16",
            "02",
            "29",
            "30",
            "13",
            "00",
            " ",
            "T",
            "t",
            ":",
            "10",
            "24",
            "59",
            "60",
            ".",
            "5",
            "123456",
            "Z",
            "z",
            "+",
            "-",
            "02:00",
            "14:00",
            "15:00",
            "0",
            "9",
        ]
    )
    candidates = st.one_of(
        st.lists(pieces, max_size=12).map("".join),
        st.sampled_from(ACCEPTED).flatmap(
            lambda v: st.tuples(st.just(v), st.integers(0, len(v)), pieces).map(
                lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
            )
        ),
        st.sampled_from(ACCEPTED).flatmap(lambda v: st.integers(0, len(v)).map(lambda n: v[:n])),
        st.text(alphabet="0123456789-:T .Z+", max_size=32),
    )

    @settings(
        max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(candidates)
    def agree(value):
        assert sql_says(value) == (parse_stored_text(value) is not None), value

    agree()


def test_a_zoned_text_date_in_the_future_is_caught_by_its_instant(sqlite_target):
    """now + 1 day = 27 November 2026 12:00 in Paris = 11:00 UTC. 11:00 at -08:00 is 19:00 UTC
    (future); 11:30 at +05:00 is 06:30 UTC (not future). Comparing the text got both wrong."""
    create_club(sqlite_target)
    with sqlite_target.engine.begin() as conn:
        conn.execute(text("UPDATE members SET last_contact_at = '2026-11-27 11:00:00-08:00' WHERE member_id = 8"))
        conn.execute(text("UPDATE members SET last_contact_at = '2026-11-27T11:30:00+05:00' WHERE member_id = 2"))
    policy = club_policy()
    ctx = RunContext(run_id="gate-future", dag_id="retention_members", as_of=AS_OF, policy_version=policy.version)
    with pytest.raises(QualityGateFailed, match=r"no_future_last_contact_at on members: 1 row\(s\).*member_id=8"):
        pre_archive_gate(
            StepContext.build(sqlite_target, policy, "members", ctx), now=datetime(2026, 11, 26, 12, tzinfo=PARIS)
        )


def test_the_due_test_on_text_lets_sqlite_use_an_index_on_the_start_column(sqlite_target):
    table = _text_table(sqlite_target, ["2020-01-01 10:00:00"])
    with sqlite_target.engine.begin() as conn:
        conn.execute(text("CREATE INDEX events_at ON events (at)"))
    boundary = BOUNDARIES["winter"]
    query = select(table.c.id).where(is_due(table.c.at, boundary.period, boundary.as_of, ZONES))
    sql = str(query.compile(sqlite_target.engine, compile_kwargs={"literal_binds": True}))
    with sqlite_target.read() as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
    assert "USING COVERING INDEX events_at (at<?)" in plan, plan


def test_derived_and_negated_text_clocks_read_each_value_by_its_paris_day(sqlite_target):
    """The start may be a COALESCE of columns or the latest related value (a correlated
    subquery), and the engine also asks for rows that are *not* due: every form reads the
    text the same way. (Within one subquery, MAX compares the text: keep one format per
    column for ``latest``/``earliest`` clocks.)"""
    from sqlalchemy import func

    boundary = BOUNDARIES["winter"]  # first day not due: 27 November 2023
    with sqlite_target.engine.begin() as conn:
        conn.execute(text("CREATE TABLE people (id INTEGER PRIMARY KEY, seen DATETIME, joined DATETIME)"))
        conn.execute(text("CREATE TABLE visits (id INTEGER PRIMARY KEY, person_id INTEGER, at DATETIME)"))
        conn.execute(
            text(
                "INSERT INTO people VALUES (1, NULL, '2023-11-27 00:00:00'), "
                "(2, '2023-11-26T23:30:00Z', '2000-01-01'), (3, '2023-11-26 23:59:59', NULL), "
                "(4, NULL, NULL)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO visits VALUES (1, 1, '2023-11-26T22:59:59Z'), (2, 1, '2023-11-20'), "
                "(3, 2, '2023-11-26T23:00:00+00:00'), (4, 3, '2023-11-26 12:00:00')"
            )
        )
    people = Table("people", MetaData(), autoload_with=sqlite_target.engine)
    visits = Table("visits", MetaData(), autoload_with=sqlite_target.engine)
    latest = select(func.max(visits.c.at)).where(visits.c.person_id == people.c.id).scalar_subquery()
    coalesced = func.coalesce(people.c.seen, people.c.joined)
    with sqlite_target.read() as conn:

        def split(start):
            due = is_due(start, boundary.period, boundary.as_of, ZONES)
            return (
                set(conn.execute(select(people.c.id).where(due)).scalars()),
                set(conn.execute(select(people.c.id).where(~due)).scalars()),
            )

        # 2: 23:30 UTC on the 26th is the 27th in Paris; 1: joined at midnight on the 27th.
        assert split(coalesced) == ({3}, {1, 2})
        # 1: 22:59:59 UTC is 23:59:59 in Paris, still the 26th; 2: midnight in Paris, the 27th.
        assert split(latest) == ({1, 3}, {2})


# Readable text whose instant lies past 9999-12-31 23:59:59 UTC once its offset is applied:
# SQLite's datetime() gives NULL for it, and the gate must still call it a future date.
BEYOND_YEAR_9999 = [
    "9999-12-31 23:59-12:00",
    "9999-12-31T12:00:00.5-14:59",
    "9999-12-31 12:00:59-12:00",
    "9999-12-31T23:59:59.999-00:01",
]


@pytest.mark.parametrize("value", BEYOND_YEAR_9999)
def test_a_readable_date_whose_instant_is_beyond_year_9999_is_flagged_as_in_the_future(sqlite_target, value):
    """Such a row would never be due: unflagged, it would be kept forever without anyone told."""
    from include.retention.dates.clock import parse_stored_text, sqlite_later_than, sqlite_readable

    assert parse_stored_text(value) is not None  # readable: the clock reads it, so the gate must judge it
    table = _text_table(sqlite_target, [value])
    now = datetime(2026, 11, 26, 12, tzinfo=PARIS)
    with sqlite_target.read() as conn:
        flagged = (
            conn.execute(
                select(table.c.id).where(sqlite_readable(table.c.at) & sqlite_later_than(table.c.at, now, ZONES))
            )
            .scalars()
            .all()
        )
    assert flagged == [0]


def test_the_gate_stops_on_a_date_beyond_year_9999_after_its_offset(sqlite_target):
    create_club(sqlite_target)
    with sqlite_target.engine.begin() as conn:
        conn.execute(text("UPDATE members SET last_contact_at = '9999-12-31 23:59-12:00' WHERE member_id = 8"))
    policy = club_policy()
    ctx = RunContext(run_id="gate-9999", dag_id="retention_members", as_of=AS_OF, policy_version=policy.version)
    with pytest.raises(QualityGateFailed, match=r"no_future_last_contact_at on members: 1 row\(s\).*member_id=8"):
        pre_archive_gate(
            StepContext.build(sqlite_target, policy, "members", ctx), now=datetime(2026, 11, 26, 12, tzinfo=PARIS)
        )
