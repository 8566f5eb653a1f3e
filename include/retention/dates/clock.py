"""When a row's clock runs out, in SQL.

Two questions are answered here, for PostgreSQL and SQLite alike:

* *Is this row past its period?*  ``start + period <= as_of`` is turned into a plain
  comparison of the raw column with a bound parameter (``periods.last_due_start``), so
  the database can use an index on the start column (on SQLite: a range on the raw text,
  then the row's day - see below).
* *Until when must this row be kept?*  ``retention_until = start + active + archive`` is
  computed in SQL for every archived row at once, with the same calendar rules as
  ``Period.add_to`` (month clamping, 29 February -> 28 February).

Dates are counted in the company's time zone. ``timestamp with time zone`` columns are
converted to it; naive timestamps (PostgreSQL ``timestamp``) are read in the policy's
``naive_timezone`` - by default the company's own, i.e. wall-clock time; Odoo and many
frameworks store UTC there - and converted; ``date`` columns are used as they are.

SQLite has no date type: an application stores text, and comparing that text with a bound
compares spellings, not days ('2024-06-16 00:00:00' sorts before the bound
'2024-06-16 00:00:00.000000'). There every value is read by what it says, whatever the
column's declared type (``parse_stored_text``): ``YYYY-MM-DD`` is a day; a naive
``YYYY-MM-DD[ T]HH:MM[:SS[.fff...]]`` is wall-clock time in ``naive_timezone``; the same
followed by ``Z`` or ``+HH:MM``/``-HH:MM`` is an instant. Its day in the company's zone is
computed by ``local_day_of_text``, a deterministic Python function registered on every
SQLite connection (``register_sqlite_functions``; an SQLite database lives in-process):
SQLite has no named time zones, and the day of an instant in Paris depends on the DST
rules of that date. Anything else is no date at all: never due, never dated - and the
pre-archive gate, using ``sqlite_readable`` (the same grammar, in plain SQL), stops the run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Boolean, Date, DateTime, String, and_, case, cast, func, literal, type_coerce
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement, Grouping
from sqlalchemy.sql.visitors import InternalTraversal

from include.retention.dates.periods import Period


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

    NULL never compares true, so rows without a start are never due. The test is written
    once per backend and the compiler picks: callers (``TableNode.due``) need not know
    which database they talk to.
    """
    typed = column < literal(first_not_due(column.type, period, as_of, zones), type_=column.type)
    return _ByDialect(typed, _sqlite_is_due(column, period, as_of, zones))


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
        return _sqlite_local_day(column, zones)
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


def retention_dates(
    start: ColumnElement[Any], active: Period, archive: Period, dialect: str, zones: Zones
) -> tuple[ColumnElement[date], ColumnElement[date]]:
    """``(retention_start, retention_until)`` for a row: its start day, and
    ``start + active period + archive period`` - the archive period follows the active
    one, so each is added in turn with its own month clamping."""
    start_day = local_date(start, dialect, zones)
    return start_day, add_period(add_period(start_day, active, dialect), archive, dialect)


# SQLite: dates stored as text ------------------------------------------------------------

SQLITE_LOCAL_DAY = "retention_local_day"
_UTC = UTC
# The whole grammar: a day, optionally a time (seconds and fraction optional), optionally a zone.
_STORED_TEXT = re.compile(
    r"(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})"
    r"(?:[ T](?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?)?"
    r"(?P<zone>Z|[+-][0-9]{2}:[0-9]{2})?)?"
)
_MAX_OFFSET_HOURS = 14  # as SQLite's own date functions: no zone is further from UTC


def parse_stored_text(value: Any) -> date | datetime | None:
    """What a stored SQLite value says: a ``date`` (``YYYY-MM-DD``), a naive ``datetime``
    (wall-clock text), an aware one (text with ``Z`` or an offset), or None when it is none
    of these - any other spelling, an impossible day or time, a number, a blob.

    Fractional seconds are cut to microseconds: only the day is ever used.
    """
    match = _checked(value)
    if match is None:
        return None
    if match["hour"] is None:
        return date.fromisoformat(match["day"])
    return _moment(match)


def _checked(value: Any) -> re.Match[str] | None:
    """The grammar's match for ``value`` when every field is in range, else None. Fields are
    two ASCII digits each, so they compare as text."""
    match = _STORED_TEXT.fullmatch(value) if isinstance(value, str) else None
    if match is None or not _is_calendar_day(match["day"]):
        return None
    if match["hour"] is not None and (
        match["hour"] > "23" or match["minute"] > "59" or (match["second"] or "00") > "59"
    ):
        return None
    zone = match["zone"]
    if zone is not None and zone != "Z" and (zone[1:3] > f"{_MAX_OFFSET_HOURS:02d}" or zone[4:6] > "59"):
        return None
    return match


@lru_cache(maxsize=65536)
def _is_calendar_day(text: str) -> bool:
    """A real day: refuses 2024-02-30, month 13, year 0 (many rows share a day: cached)."""
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _moment(match: re.Match[str]) -> datetime:
    """The datetime of checked text with a time: naive, or aware with its offset."""
    day, zone, fraction = match["day"], match["zone"], match["fraction"] or "0"
    return datetime(
        int(day[:4]),
        int(day[5:7]),
        int(day[8:]),
        int(match["hour"]),
        int(match["minute"]),
        int(match["second"] or 0),
        int(fraction[:6].ljust(6, "0")),
        _offset(zone) if zone else None,
    )


@lru_cache(maxsize=256)
def _offset(zone: str) -> timezone:
    """'Z', '+02:00' or '-03:30' as a fixed offset (checked text: in range)."""
    if zone == "Z":
        return _UTC
    size = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return timezone(-size if zone[0] == "-" else size)


@lru_cache(maxsize=64)
def _zone_named(key: str) -> ZoneInfo:
    return ZoneInfo(key)


def local_day_of_text(value: Any, company_zone: str, naive_zone: str) -> str | None:
    """The day a stored value stands for in the company's zone, as ``YYYY-MM-DD``; None if
    it is not a date (``parse_stored_text``).

    Registered on every SQLite connection as ``retention_local_day`` (deterministic: the
    same text and zones give the same day). Naive text is read in ``naive_zone``. A day,
    and wall-clock text in the company's own zone, are their own day: no conversion.
    """
    match = _checked(value)
    if match is None:
        return None
    if match["hour"] is None or (match["zone"] is None and naive_zone == company_zone):
        return match["day"]
    moment = _moment(match)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone_named(naive_zone))
    try:
        return moment.astimezone(_zone_named(company_zone)).date().isoformat()
    except OverflowError:  # within hours of 0001-01-01 or 9999-12-31: its own day will do
        return match["day"]


def register_sqlite_functions(dbapi_connection: Any) -> None:
    """Give a new SQLite connection the clock's functions (``target`` calls this on connect)."""
    dbapi_connection.create_function(SQLITE_LOCAL_DAY, 3, local_day_of_text, deterministic=True)


def _sqlite_local_day(column: ColumnElement[Any], zones: Zones) -> ColumnElement[date]:
    day = getattr(func, SQLITE_LOCAL_DAY)(column, literal(zones.company.key, String), literal(zones.naive.key, String))
    return type_coerce(day, Date)


def _sqlite_is_due(column: ColumnElement[Any], period: Period, as_of: date, zones: Zones) -> ColumnElement[bool]:
    """The row's day in the company's zone is before the first day not yet due.

    The first comparison only lets SQLite use an index on the raw text: every accepted
    value starts with its own ``YYYY-MM-DD``, less than two days from its day in any zone
    (offsets are at most 14:59 either way), so text dated two days after that first day or
    later cannot be due. Numbers and blobs sort before text and pass it; the day function
    rejects them.
    """
    first = period.last_due_start(as_of) + timedelta(days=1)
    index_range = column < literal((first + timedelta(days=2)).isoformat(), String)
    return and_(index_range, _sqlite_local_day(column, zones) < literal(first.isoformat(), String)).self_group()


def sqlite_readable(value: ColumnElement[Any]) -> ColumnElement[bool]:
    """``parse_stored_text(value) is not None``, in plain SQL: the pre-archive gate runs on
    Great Expectations' own connection, which has no Python function. Never NULL.

    Checked piece by piece on the text: the day (a real calendar day: SQLite's ``date``
    with a modifier normalises 30 February to 1 March, which then differs), the time
    (hour below 24, minutes and seconds below 60), the zone (``Z`` or an offset of at most
    14:59), and between them nothing but optional seconds and digits of a fraction.
    """
    length = func.length(value)
    zone_length = _sqlite_zone_length(value)
    middle = func.substr(value, 17, length - 16 - zone_length)  # ':SS' and '.fff', both optional
    day = func.substr(value, 1, 10)
    day_ok = and_(
        value.op("GLOB")("[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"), day >= "0001", func.date(day, "+0 days") == day
    )
    time_ok = and_(
        func.substr(value, 11, 1).in_([" ", "T"]),
        func.substr(value, 12, 5).op("GLOB")("[0-2][0-9]:[0-5][0-9]"),
        func.substr(value, 12, 2) < "24",
        (middle == "")
        | middle.op("GLOB")(":[0-5][0-9]")
        | and_(middle.op("GLOB")(":[0-5][0-9].[0-9]*"), func.substr(middle, 5).op("NOT GLOB")("*[^0-9]*")),
        (zone_length < 6)
        | and_(func.substr(value, -5, 2) <= f"{_MAX_OFFSET_HOURS:02d}", func.substr(value, -2, 2) < "60"),
    )
    readable = and_(func.typeof(value) == "text", day_ok, (length == 10) | time_ok)
    return func.coalesce(readable, False)


def sqlite_later_than(value: ColumnElement[Any], moment: datetime, zones: Zones) -> ColumnElement[bool]:
    """Whether readable stored text lies after the aware ``moment``, in plain SQL (for the
    gate's "no date in the future" check): a day after the moment's day in the company's
    zone, naive text after the moment's wall-clock time in ``naive_timezone``, an instant
    after the moment. To the second: SQLite's ``datetime`` normalises 'T', 'Z' and offsets.

    Readable text whose instant SQLite cannot compute (``datetime`` is NULL: a day in 9999
    whose offset carries it past 9999-12-31 UTC) counts as in the future: such a row is never
    due, and unflagged it would be kept forever with no one told."""

    def stamp(zone: Any) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    return func.coalesce(
        case(
            (func.length(value) == 10, value > moment.astimezone(zones.company).date().isoformat()),
            (_sqlite_zone_length(value) > 0, func.datetime(value) > stamp(_UTC)),
            else_=func.datetime(value) > stamp(zones.naive),
        ),
        True,
    )


def _sqlite_zone_length(value: ColumnElement[Any]) -> ColumnElement[int]:
    """How many characters of readable text are its zone: 1 ('Z'), 6 ('+02:00') or 0."""
    return case((value.op("GLOB")("*Z"), 1), (value.op("GLOB")("*[+-][0-9][0-9]:[0-9][0-9]"), 6), else_=0)


class _ByDialect(ColumnElement[bool]):
    """One condition written for SQLite and for every other backend; the compiler renders
    the one for the connection's dialect. Both are real children, so the statement caches,
    copies and correlates as usual."""

    __visit_name__ = "retention_by_dialect"
    inherit_cache = True
    _traverse_internals = [
        ("default", InternalTraversal.dp_clauseelement),
        ("sqlite", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()

    def __init__(self, default: ColumnElement[bool], sqlite: ColumnElement[bool]):
        self.default = default
        self.sqlite = sqlite

    @property
    def _from_objects(self) -> list[Any]:
        return self.default._from_objects

    def self_group(self, against: Any = None) -> ColumnElement[Any]:
        # A condition on its own or in AND/OR stays as it is: no "(...) = 1" around it on
        # SQLite, which would hide the range on the start column from the index. Under any
        # other operator (IS NULL, =) it is parenthesised.
        if against in (None, operators._asbool, operators.and_, operators.or_):
            return self
        return Grouping(self)

    def _negate(self) -> ColumnElement[Any]:
        return _ByDialect(~self.default, ~self.sqlite)


@compiles(_ByDialect)
def _compile_default(element: _ByDialect, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.default, **kw)


@compiles(_ByDialect, "sqlite")
def _compile_sqlite(element: _ByDialect, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.sqlite, **kw)
