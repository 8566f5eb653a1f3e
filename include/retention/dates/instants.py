"""The project's own instants: when a request was closed, a hold lifted, a lease renewed, an
event recorded.

They are stored with their zone, so that every reader - the retention clock, the DPO report,
a person with a SQL prompt - reads the same instant:

* PostgreSQL: ``timestamp with time zone``;
* SQLite, which has no timestamp type: ISO 8601 text in UTC with an explicit offset,
  ``2026-11-30 23:30:00.000000+00:00``. Every value has the same width and the same
  offset, so comparing or sorting the text compares or sorts the instants, and SQLite's
  own date functions (and the retention clock) see the offset. A request closed at
  ``2026-11-30 23:30:00+00:00`` was closed on 1 December in Paris.

SQLAlchemy's ``DateTime(timezone=True)`` silently drops the offset on SQLite, which is how
a request closed a minute ago came to be read as Paris wall-clock time. Values it wrote
(naive text, always UTC in this project's writers) are read back as UTC.

Reading always gives an aware datetime in UTC. Writing a naive datetime is refused: it is a
programming error (which zone did the caller mean?), not something to guess.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, String, Table, not_, select, type_coerce, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

# Fixed width: 'YYYY-MM-DD HH:MM:SS.ffffff+00:00' (32 characters).
_STORED_WIDTH = 32


def utc_now() -> datetime:
    """Now, as an aware UTC datetime (what every writer of a project instant stamps)."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; a naive datetime is refused."""
    if not isinstance(value, datetime):
        raise TypeError(f"a project timestamp must be a datetime, not {type(value).__name__} ({value!r})")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise TypeError(
            f"naive datetime {value.isoformat()} refused for a project timestamp: pass an aware "
            "datetime (e.g. instants.utc_now()) - a naive one does not say which zone it is in"
        )
    return value.astimezone(UTC)


def stored_text(value: datetime) -> str:
    """The SQLite text of an instant: UTC, microseconds, explicit '+00:00' (fixed width)."""
    text = as_utc(value).isoformat(sep=" ", timespec="microseconds")
    if len(text) != _STORED_WIDTH:  # years before 1000 or after 9999 cannot be written at this width
        raise ValueError(f"instant {text} is out of the range a project timestamp stores")
    return text


def read_instant(value: Any) -> datetime:
    """An aware UTC datetime from what a backend returns.

    Text (SQLite) may be this module's format, or what earlier versions wrote: naive text
    (read as UTC - the project always stamped UTC), with or without fractional seconds, with
    a 'T' or a space, with 'Z' or an offset. A naive datetime is read as UTC too.
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"stored timestamp {value!r} is not ISO 8601 text") from None
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise TypeError(f"stored timestamp {value!r} ({type(value).__name__}) is not a date and time")
    if parsed.tzinfo is None or parsed.tzinfo.utcoffset(parsed) is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class _SqliteInstantText(UserDefinedType):
    """On SQLite: a column declared ``DATETIME`` (so reflection still sees a timestamp,
    and the retention clock can use it as a start event) whose text is passed through
    untouched - ``UtcDateTime`` formats and parses it."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "DATETIME"


class UtcDateTime(TypeDecorator):
    """A project instant: stored with its zone, read back as aware UTC (see the module doc)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(_SqliteInstantText())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return stored_text(value) if dialect.name == "sqlite" else as_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else read_instant(value)

    @property
    def python_type(self) -> type:
        return datetime


def normalise_sqlite_text(conn: Connection, table: Table, columns: Sequence[str]) -> int:
    """Rewrite, in place, what earlier versions wrote in ``columns`` of a project table on
    SQLite (UTC text without its offset) as this module's text; return how many values changed.

    ``UtcDateTime`` already reads such text as UTC, but SQL that reads the column directly -
    the retention clock, for the rights register that is also a policy table - reads naive
    text as wall-clock time in ``naive_timezone``. After this, every value says its zone.
    Not for the audit log: it is append-only, and its readers all go through this type.
    """
    if conn.dialect.name != "sqlite":
        return 0
    key = list(table.primary_key.columns)
    changed = 0
    for name in columns:
        raw = type_coerce(table.c[name], String)
        rows = conn.execute(
            select(*key, raw.label("raw")).where(raw.is_not(None), not_(raw.like(_STORED_PATTERN)))
        ).all()
        for row in rows:
            try:
                instant = read_instant(row.raw)
            except (TypeError, ValueError):  # not a date at all: left for the pre-archive gate to name
                continue
            conn.execute(update(table).where(*(c == row._mapping[c.name] for c in key)).values({name: instant}))
            changed += 1
    return changed


_STORED_PATTERN = "____-__-__ __:__:__.______+00:00"
