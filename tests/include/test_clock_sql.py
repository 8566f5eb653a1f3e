"""The SQL clock agrees with the Python one, on SQLite and on PostgreSQL."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Column, Date, DateTime, Integer, MetaData, Table, insert, select

from include.retention.dates.clock import Zones, add_period, is_due, local_date, retention_dates
from include.retention.dates.periods import Period

PARIS = ZoneInfo("Europe/Paris")
ZONES = Zones(PARIS, PARIS)
START_DAYS = [
    date(2020, 2, 29),
    date(2021, 1, 31),
    date(2023, 3, 31),
    date(2024, 2, 29),
    date(2024, 12, 31),
    date(2025, 8, 31),
    date(2019, 10, 27),
    date(2026, 11, 26),
]


def _days_table(target):
    md = MetaData()
    table = Table("days", md, Column("id", Integer, primary_key=True), Column("d", Date))
    md.create_all(target.engine)
    with target.engine.begin() as conn:
        conn.execute(insert(table), [{"id": i, "d": d} for i, d in enumerate(START_DAYS)])
    return table


@pytest.mark.parametrize("period", ["P1Y", "P3Y", "P5Y", "P10Y", "P13M", "P1M", "P1Y1M1D", "P45D", "P0D"])
def test_sql_calendar_arithmetic_matches_python(target, period):
    table = _days_table(target)
    p = Period.parse(period)
    query = select(table.c.d, add_period(table.c.d, p, target.dialect)).order_by(table.c.id)
    with target.read() as conn:
        rows = conn.execute(query).all()
    assert [(start, end) for start, end in rows] == [(d, p.add_to(d)) for d in START_DAYS]


def test_retention_until_adds_archive_period_after_active_period_in_sql(target):
    table = _days_table(target)
    start, until = retention_dates(table.c.d, Period(3), Period(5), target.dialect, ZONES)
    with target.read() as conn:
        got = conn.execute(select(until).where(table.c.d == date(2020, 2, 29))).scalar_one()
    assert got == date(2028, 2, 28)


def _stamped_table(target, tz_aware: bool):
    md = MetaData()
    table = Table("events", md, Column("id", Integer, primary_key=True), Column("at", DateTime(timezone=tz_aware)))
    md.create_all(target.engine)
    return table


@pytest.mark.parametrize(
    "moment, due",
    [
        pytest.param(datetime(2023, 11, 26, 23, 59, tzinfo=PARIS), True, id="last_minute_of_the_due_day_in_paris"),
        pytest.param(datetime(2023, 11, 27, 0, 30, tzinfo=PARIS), False, id="00h30_paris_next_day_still_26th_in_utc"),
        pytest.param(datetime(2023, 11, 26, 23, 30, tzinfo=UTC), False, id="23h30_utc_is_27th_in_paris"),
    ],
)
def test_due_dates_are_counted_in_europe_paris_for_timestamps_with_time_zone(target, moment, due):
    table = _stamped_table(target, tz_aware=True)
    stored = moment if target.dialect == "postgresql" else moment.astimezone(PARIS)  # SQLite keeps Paris wall time
    with target.engine.begin() as conn:
        conn.execute(insert(table), [{"id": 1, "at": stored}])
        selected = conn.execute(
            select(table.c.id).where(is_due(table.c.at, Period(3), date(2026, 11, 26), ZONES))
        ).all()
        day = conn.execute(select(local_date(table.c.at, target.dialect, ZONES))).scalar_one()
    assert bool(selected) is due
    assert day == moment.astimezone(PARIS).date()


def test_naive_timestamps_are_read_as_paris_wall_clock_time(target):
    table = _stamped_table(target, tz_aware=False)
    with target.engine.begin() as conn:
        conn.execute(
            insert(table),
            [{"id": 1, "at": datetime(2023, 11, 26, 23, 59)}, {"id": 2, "at": datetime(2023, 11, 27, 0, 0)}],
        )
        selected = (
            conn.execute(select(table.c.id).where(is_due(table.c.at, Period(3), date(2026, 11, 26), ZONES)))
            .scalars()
            .all()
        )
    assert selected == [1]


def test_date_columns_are_due_on_the_anniversary(target):
    table = _days_table(target)
    with target.read() as conn:
        selected = (
            conn.execute(select(table.c.d).where(is_due(table.c.d, Period(1), date(2021, 2, 28), ZONES)))
            .scalars()
            .all()
        )
    assert date(2020, 2, 29) in selected
    assert all(d <= date(2020, 2, 29) for d in selected)


def test_naive_timestamps_stored_in_utc_are_counted_in_paris(target):
    """Odoo stores naive UTC: 23:30 UTC on 26 November 2023 is already 27 November in Paris.
    (The SQLite clock converts too; the catalog still refuses a naive_timezone there.)"""
    table = _stamped_table(target, tz_aware=False)
    zones = Zones(PARIS, ZoneInfo("UTC"))
    with target.engine.begin() as conn:
        conn.execute(
            insert(table),
            [{"id": 1, "at": datetime(2023, 11, 26, 22, 59)}, {"id": 2, "at": datetime(2023, 11, 26, 23, 30)}],
        )
        due = conn.execute(select(table.c.id).where(is_due(table.c.at, Period(3), date(2026, 11, 26), zones))).all()
        days = conn.execute(select(local_date(table.c.at, target.dialect, zones)).order_by(table.c.id)).scalars().all()
    assert [row.id for row in due] == [1]
    assert days == [date(2023, 11, 26), date(2023, 11, 27)]
