"""When a row's clock runs out, in SQL.

Two questions are answered here, for PostgreSQL and SQLite alike:

* *Is this row past its period?*  ``start + period <= as_of`` is turned into a plain
  comparison of the raw column with a bound parameter (``periods.last_due_start``), so
  the database can use an index on the start column.
* *Until when must this row be kept?*  ``retention_until = start + active + archive`` is
  computed in SQL for every archived row at once, with the same calendar rules as
  ``Period.add_to`` (month clamping, 29 February -> 28 February).

Dates are counted in the company's time zone. ``timestamp with time zone`` columns are
converted to it; naive timestamps (PostgreSQL ``timestamp``, every SQLite timestamp) are
read in the policy's ``naive_timezone`` - by default the company's own, i.e. wall-clock
time; Odoo and many frameworks store UTC there - and converted; ``date`` columns are used
as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, DateTime, case, cast, func, literal, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from .periods import Period


def is_temporal(column_type: Any) -> bool:
    """Whether a reflected column type can hold a start event."""
    return isinstance(column_type, (Date, DateTime))


@dataclass(frozen=True)
class Zones:
    """The company's time zone, and the one naive timestamps are stored in."""

    company: ZoneInfo
    naive: ZoneInfo

    @property
    def naive_is_wall_clock(self) -> bool:
        return self.naive.key == self.company.key


def is_due(column: ColumnElement[Any], period: Period, as_of: date, zones: Zones) -> ColumnElement[bool]:
    """``local_date(column) + period <= as_of``, as an index-friendly comparison.

    NULL never compares true, so rows without a start are never due.
    """
    return column < literal(first_not_due(column.type, period, as_of, zones), type_=column.type)


def first_not_due(column_type: Any, period: Period, as_of: date, zones: Zones) -> date | datetime:
    """The earliest start value that is not yet due, in the column's own type: every start
    before it is due (a partition whose upper bound is at most this value is due whole)."""
    first = period.last_due_start(as_of) + timedelta(days=1)
    if isinstance(column_type, DateTime):
        midnight = datetime.combine(first, time.min, tzinfo=zones.company)
        return midnight if column_type.timezone else midnight.astimezone(zones.naive).replace(tzinfo=None)
    return first


def local_date(column: ColumnElement[Any], dialect: str, zones: Zones) -> ColumnElement[date]:
    """The calendar day of a start event, in the company's time zone."""
    column_type = column.type
    if dialect == "sqlite":
        # SQLite cannot convert between named zones: catalog refuses a naive_timezone there.
        return type_coerce(func.date(column), Date)
    if isinstance(column_type, DateTime) and column_type.timezone:
        return cast(func.timezone(literal(zones.company.key), column), Date)
    if isinstance(column_type, DateTime) and not zones.naive_is_wall_clock:
        as_instant = func.timezone(literal(zones.naive.key), column)
        return cast(func.timezone(literal(zones.company.key), as_instant), Date)
    return cast(column, Date)


def add_period(day: ColumnElement[date], period: Period, dialect: str) -> ColumnElement[date]:
    """``day + period`` in SQL with ``Period.add_to``'s calendar rules."""
    if period.is_zero:
        return day
    if dialect == "postgresql":
        # PostgreSQL adds months first and clamps to the month's end, like Period.add_to.
        interval = func.make_interval(period.years, period.months, 0, period.days)
        return cast(day + interval, Date)
    if dialect == "sqlite":
        return _sqlite_add_period(day, period)
    raise NotImplementedError(f"calendar arithmetic is not implemented for the {dialect!r} dialect")


def _sqlite_add_period(day: ColumnElement[date], period: Period) -> ColumnElement[date]:
    # SQLite's date(d, '+12 months') rolls 29 February over into 1 March. When the day of
    # the month changed, the month overflowed: step back to the last day of the month
    # before, which is the clamped date Period.add_to gives.
    shifted: ColumnElement[Any] = day
    if period.total_months:
        months = f"{period.total_months:+d} months"
        rolled = func.date(day, months)
        shifted = case(
            (func.strftime("%d", rolled) == func.strftime("%d", day), rolled),
            else_=func.date(day, months, "start of month", "-1 day"),
        )
    if period.days:
        shifted = func.date(shifted, f"{period.days:+d} days")
    return type_coerce(shifted, Date)


def retention_dates(start: ColumnElement[Any], active: Period, archive: Period, dialect: str,
                    zones: Zones) -> tuple[ColumnElement[date], ColumnElement[date]]:
    """``(retention_start, retention_until)`` for a row: its start day, and
    ``start + active period + archive period`` - the archive period follows the active
    one, so each is added in turn with its own month clamping."""
    start_day = local_date(start, dialect, zones)
    return start_day, add_period(add_period(start_day, active, dialect), archive, dialect)
