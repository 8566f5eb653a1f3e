"""Where a row's clock starts, as one SQL expression evaluated by the database.

Real schemas rarely hold a ready-made start date. The start can be:

* a column of the row (``last_inbound_contact_at``);
* the latest or earliest value of a column over related rows, reached through a path of
  foreign keys and filtered (``latest mail_message.date where message_type = 'email'
  and author is the partner``) - a correlated aggregate subquery;
* the latest or earliest value of a per-row expression over related rows: the first
  non-NULL of several columns of each related row (``max(coalesce(date_cloture,
  date_fin_validite))``: a contract line ends when it was closed, else on its planned end).
  Aggregating the expression row by row is not the same as combining aggregates: one line
  closed early and another with only a planned end;
* the first non-empty of an ordered list of those (``COALESCE``);
* for the rows a category asks for re-consent, the later of that start and the day the
  person last answered yes (``restarted_by_consent``): a yes restarts the clock;

and the row is *ongoing* - it stays active whatever its start - while a related row is
still open (its value, a column or an expression, is empty): an ``EXISTS`` subquery.

Each hop of a path may carry its own ``where``, a condition on that hop's table: a
polymorphic link (``elementtype`` + ``fk_element``) is a hop plus a filter, so a row of
another type that happens to hold the same id is never taken for a related row.

``plan``, ``archive``, ``purge`` and the reports all use these same expressions, so they
can never disagree about a row's clock. Nothing is computed row by row in Python.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Date, Table, and_, case, exists, func, or_, select, type_coerce
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from include.retention.dates.clock import Zones, local_date
from include.retention.policy.conditions import to_sql
from include.retention.policy.model import Aggregate, ClockSource, OpenRelated, RelationStep, StartEvent

Reflect = Callable[[RelationStep], Table]


def start_expression(
    event: StartEvent, source: Table, key_columns: Sequence[str], reflect: Reflect, zones: Zones | None = None
) -> ColumnElement[Any]:
    """The row's start date or timestamp; NULL when it has none.

    ``zones``: the policy's zones, for SQLite, where dates are text and ``max``/``min``
    compare text as text: ``2023-11-27T00:10:00+02:00`` (the 26th in Paris) would beat
    ``2023-11-26T23:30:00Z`` (the 27th). There a ``latest``/``earliest`` over related rows
    aggregates each row's day in the company's zone (the clock's own reading,
    ``clock.local_date``), and the start is that day: every later use reads a start by its
    day only. Other databases compare typed values and aggregate them as they are."""
    candidates = [_source_expression(s, source, key_columns, reflect, zones) for s in event.sources]
    return candidates[0] if len(candidates) == 1 else func.coalesce(*candidates)


def restarted_by_consent(
    start: ColumnElement[Any], latest_yes: ColumnElement[date], zones: Zones
) -> ColumnElement[date]:
    """The clock of a row whose person was asked and said yes (a re-consent answer): the
    later of its start, as a day in the company's zone, and ``latest_yes``, the day of the
    last yes (NULL when none). A yes is a new consent, so the active period runs again from
    it; an older yes never pulls a later start back. NULL only when both are NULL.

    PostgreSQL's GREATEST ignores NULLs. SQLite's two-argument ``max`` does not, so there it
    is a CASE on the two ``YYYY-MM-DD`` texts (the clock's reading of a start: ``local_date``),
    which compare as days."""
    on_postgresql = func.greatest(local_date(start, "postgresql", zones), latest_yes, type_=Date)
    day = local_date(start, "sqlite", zones)
    later = case(
        (latest_yes.is_(None), day),
        (or_(day.is_(None), latest_yes > day), latest_yes),
        else_=day,
    )
    return _OnSqlite(on_postgresql, type_coerce(later, Date))


def ongoing_expression(
    event: StartEvent, source: Table, key_columns: Sequence[str], reflect: Reflect
) -> ColumnElement[bool] | None:
    """True while a related row is still open (``ongoing_if_open``); None when not declared."""
    rule = event.ongoing_if_open
    if rule is None:
        return None
    last, joined, correlation = _walk(rule.path, source, key_columns, reflect)
    return exists(
        select(1).select_from(joined).where(correlation, _row_value(last, rule).is_(None), to_sql(last, rule.where))
    )


def clock_inputs(event: StartEvent) -> list[tuple[str | None, str]]:
    """The columns a clock reads: ``(None, column)`` on the row's own table, or
    ``(table, column)`` on the last table of a related path - every column of a
    ``first_non_null`` expression, since each may be the one a row's value comes from."""
    inputs: list[tuple[str | None, str]] = []
    for source in event.sources:
        aggregate = source.latest or source.earliest
        if aggregate is not None:
            inputs += [(aggregate.path[-1].table, column) for column in aggregate.columns]
        elif source.column:
            inputs.append((None, source.column))
    return inputs


def future_checks(event: StartEvent) -> dict[tuple[str | None, str], bool]:
    """Each column a clock reads as a date that may be checked for the future, keyed as in
    ``clock_inputs``, and whether it is *planned*: named in the ``planned`` key of every
    source that reads it (a contract line's planned end, which may lie ahead without being a
    wrong clock). A column one source reads as an event that happened is not planned, even
    if another calls it planned: its typo would keep rows active for ever all the same.
    ``ongoing_if_open``'s planned columns are listed too (a planned end there is checked
    against the far bound); its other columns are only tested for emptiness."""
    checks: dict[tuple[str | None, str], bool] = {}
    for source in event.sources:
        aggregate = source.latest or source.earliest
        if aggregate is not None:
            planned = set(aggregate.planned or [])
            for column in aggregate.columns:
                key = (aggregate.path[-1].table, column)
                checks[key] = checks.get(key, True) and column in planned
        elif source.column:
            checks[(None, source.column)] = False
    rule = event.ongoing_if_open
    if rule is not None:
        for column in rule.planned or []:
            checks.setdefault((rule.path[-1].table, column), True)
    return checks


def open_inputs(event: StartEvent) -> list[tuple[str, str]]:
    """The columns ``ongoing_if_open`` tests for emptiness, as ``(table, column)``: on SQLite
    they must hold readable dates too, or a line whose end is stored as ``''`` is neither
    open nor dated."""
    rule = event.ongoing_if_open
    return [] if rule is None else [(rule.path[-1].table, column) for column in rule.columns]


def _source_expression(
    source_spec: ClockSource, source: Table, key_columns: Sequence[str], reflect: Reflect, zones: Zones | None
) -> ColumnElement[Any]:
    if source_spec.column:
        return source.c[source_spec.column]
    if source_spec.latest is not None:
        return _aggregate(source_spec.latest, func.max, source, key_columns, reflect, zones)
    assert source_spec.earliest is not None  # a ClockSource holds exactly one of the three
    return _aggregate(source_spec.earliest, func.min, source, key_columns, reflect, zones)


def _aggregate(
    aggregate: Aggregate, pick: Any, source: Table, key_columns: Sequence[str], reflect: Reflect, zones: Zones | None
) -> ColumnElement[Any]:
    last, joined, correlation = _walk(aggregate.path, source, key_columns, reflect)
    value = _row_value(last, aggregate)
    if zones is not None:
        value = _OnSqlite(value, local_date(value, "sqlite", zones))
    query = select(pick(value)).select_from(joined).where(correlation, to_sql(last, aggregate.where))
    # Correlated to the row by name, at whatever depth the clock is used (inside an EXISTS on
    # another table too: the re-consent register's period end); automatic correlation would
    # only look one query up.
    return query.correlate(source).scalar_subquery()


def _row_value(last: Any, spec: Aggregate | OpenRelated) -> ColumnElement[Any]:
    """The related row's value: its column, or the first non-NULL of its columns. COALESCE
    takes the first column's type, which the database check (``check``) made the type of every column."""
    columns = [last.c[c] for c in spec.columns]
    return columns[0] if len(columns) == 1 else func.coalesce(*columns)


def _walk(
    path: Sequence[RelationStep], source: Table, key_columns: Sequence[str], reflect: Reflect
) -> tuple[Any, Any, ColumnElement[bool]]:
    """Join the path's tables; return the last one, the join, and the link to ``source``.

    Every step is aliased, so a path may come back to the source table itself. A step's
    ``where`` belongs to its link: the hop reaches only the rows of that table it selects.
    """
    previous: Any = source
    previous_key = list(key_columns)
    joined: Any = None
    correlation: ColumnElement[bool] | None = None
    for i, step in enumerate(path):
        reflected = reflect(step)
        table = reflected.alias(f"clock_{i}")
        references = list(step.references or previous_key)
        link = and_(
            *(table.c[fk] == previous.c[ref] for fk, ref in zip(step.foreign_key, references, strict=True)),
            to_sql(table, step.where),
        )
        if joined is None:
            joined, correlation = table, link
        else:
            joined = joined.join(table, link)
        previous = table
        previous_key = [c.name for c in reflected.primary_key.columns]
    assert correlation is not None  # a path has at least one step (policy validation)
    return previous, joined, correlation


class _OnSqlite(ColumnElement[Any]):
    """An expression as it is, or on SQLite another one (a related row's value, or there its
    day in the company's zone, NULL for NULL or unreadable text, skipped by the aggregate as
    NULL always was; the later of two days, GREATEST or a CASE on text days). The compiler
    picks by the connection's dialect, so the expression is built once for every backend."""

    __visit_name__ = "retention_on_sqlite"
    inherit_cache = True
    _traverse_internals = [
        ("value", InternalTraversal.dp_clauseelement),
        ("sqlite", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, value: ColumnElement[Any], sqlite: ColumnElement[Any]):
        self.value = value
        self.sqlite = sqlite
        self.type = value.type

    @property
    def _from_objects(self) -> list[Any]:
        return self.value._from_objects


@compiles(_OnSqlite)
def _compile_value(element: _OnSqlite, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.value, **kw)


@compiles(_OnSqlite, "sqlite")
def _compile_sqlite(element: _OnSqlite, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.sqlite, **kw)
