"""An independent oracle: where each row must be on date D, in plain Python.

Written from the charter (``/work/shared/spec/retention-schedule.md``) and the docs'
date rules and policy concepts (docs/explanation/), not from the engine's SQL, so that the property
tests compare two readings of the same rules. It reads the parsed policy (the project's
``RetentionPolicy``: just the YAML as objects) and the rows as Python values, and keeps its
own calendar arithmetic (``add_period``), checked against the spec's examples.

The rules it applies, in the spec's words:

* **Clock.** A row's start is its start column, or the latest/earliest value over related
  rows reached by a foreign-key path (filtered by ``where``), or the first non-empty of
  ``first_of``. The value of a related row is one column, or with ``first_non_null`` the
  first of its columns that is not empty ("a line ends on its closing date when it was
  closed, else on its planned end date"); the aggregate is taken over those per-row values,
  rows with no value left out. A ``where`` on a step of the path keeps only that step's rows
  that match it (a polymorphic link: ``elementtype = 'contrat'``); the aggregate's own
  ``where`` is on the last table. Timestamps count as their date in the policy's zone (Europe/Paris): an aware
  value is converted, a naive one (and SQLite text without an offset) is Paris wall-clock
  time, a ``date`` is used as it is. A row is due when ``start + period <= D``; periods are
  calendar periods, months first (clamped to the month's end), then days.
* **Missing start.** ``ongoing`` or ``defect``: either way the row stays where it is.
  ``ongoing_if_open``: a related row whose end (its column, or every column of its
  ``first_non_null``) is empty keeps the row active: an open-ended line.
* **Scopes and precedence.** A root row is governed by the categories whose scope it
  matches (three-valued logic: a NULL result does not match); among them the earliest in
  ``precedence`` wins and the others leave the row alone.
* **Archive.** A governed row past its active period moves to its category's archive with
  its children (to any depth), stamped ``retention_start`` = its start day and
  ``retention_until`` = start + active period + archive period (fixed then). A category
  without an archive destroys it at once, children included.
* **End of life.** An archived row with ``retention_until <= D`` is destroyed (or, with
  ``end_action: anonymize``, anonymised in place), children included, in the same run in
  which it was archived if it is already past its whole horizon.
* **Retained dependants** (``archived_with``). They follow their own category's clock but
  wait in the active base while the row they point at is active (one that points at no row
  of the active base - a NULL link, an orphan - just follows its own clock); they leave it
  in the same run as that row, with their own ``retention_until`` (own start + active + archive;
  none when their start is missing: such a row is never destroyed, and keeps its parent).
  While one of them is still retained (not destroyed), the row it points at is neither
  destroyed nor anonymised. A dependant past its own horizon is destroyed in the same run,
  and the parent it held is released in that run, whatever the order of the categories.
* **Dependants that leave on their parent's event** (``leaves_active: on_parent_event``):
  records kept for a legal obligation that hang off a customer "leave the active base as
  soon as the relationship that justified them ends". A dependant whose parent row is in the
  active base leaves it when that parent has a known start in the category that governs it
  (scope, then precedence), nothing keeps the parent ongoing, the parent is not held, and
  parent start + the dependant's active period <= D - whether or not its own start has
  passed. A dependant whose parent is not in the active base (no parent, or an orphan), or
  is there but governed by no category (no clock will ever release it), follows its own
  clock. Its dates stay its own (own start + active + archive; undated when
  its start is missing), it is destroyed in the same run when already past that horizon,
  and the parent stays in the archive while it is retained. A held dependant, or one whose
  own ``ongoing_if_open`` is open, stays. Whatever the mode, the parent's archiving carries
  the dependants still in the active base.
* **Legal holds.** A held row is never archived, destroyed or anonymised; a parent with a
  held child is held with its whole tree; a retained dependant whose parent is held is not
  destroyed either (it is about the same person).

``run`` applies one night (every category, for one date) to a ``State`` and returns the
next one; the result does not depend on the order of the categories.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from include.retention.policy.model import (
    Category,
    ClockSource,
    RetentionPolicy,
    StartEvent,
    TableBase,
    TablePolicy,
)

Key = tuple[Any, ...]
Rows = Mapping[str, Sequence[Mapping[str, Any]]]

ACTIVE, ARCHIVE, DESTROYED, ANONYMISED = "active", "archive", "destroyed", "anonymised"


# --- calendar ----------------------------------------------------------------------------


def add_period(start: date, years: int = 0, months: int = 0, days: int = 0) -> date:
    """``start`` + a calendar period: whole months first, the day clamped to the end of the
    target month (29 Feb + 1 year = 28 Feb), then days."""
    month_number = start.month - 1 + months + 12 * years
    year = start.year + month_number // 12
    month = month_number % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day) + timedelta(days=days)


def plus(start: date, *periods: Any) -> date:
    """``start`` + each period in turn (``Period`` objects or None), as the spec adds the
    active then the archive period."""
    for period in periods:
        if period is not None:
            start = add_period(start, period.years, period.months, period.days)
    return start


def last_due_start(as_of: date, *periods: Any) -> date:
    """The latest start that is past ``periods`` on ``as_of`` (used to aim generated dates
    at the boundary). Found by walking days, not by inverting the arithmetic."""
    day = as_of
    while plus(day, *periods) > as_of:
        day -= timedelta(days=1)
    return day


def local_day(value: Any, zone: ZoneInfo) -> date | None:
    """The day a stored value stands for in the company's zone.

    ``date``: itself. Aware ``datetime``: converted to ``zone``. Naive ``datetime``: the
    zone's wall-clock time. Text (SQLite): ``YYYY-MM-DD``, or an ISO timestamp with a space
    or ``T``, with or without fractional seconds, with or without ``Z`` or an offset."""
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_text(value)
    if isinstance(value, datetime):
        return value.astimezone(zone).date() if value.tzinfo is not None else value.date()
    if isinstance(value, date):
        return value
    raise TypeError(f"not a date: {value!r}")


def parse_text(text: str) -> date | datetime:
    text = text.strip()
    if len(text) == 10:
        return date.fromisoformat(text)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def moment(value: Any, zone: ZoneInfo) -> tuple[date, Any]:
    """A sort key that orders values of one column as instants (aware) or wall-clock times."""
    if isinstance(value, str):
        value = parse_text(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(zone).replace(tzinfo=None)
        return value.date(), value
    return value, datetime(value.year, value.month, value.day)


# --- conditions (three-valued, as SQL) ----------------------------------------------------


def evaluate(cond: Any, row: Mapping[str, Any]) -> bool | None:
    """True, False or None (unknown) for a policy condition on a row."""
    data = cond.model_dump(by_alias=True, exclude_none=True) if hasattr(cond, "model_dump") else cond
    return _evaluate(data, row)


def _evaluate(cond: Mapping[str, Any], row: Mapping[str, Any]) -> bool | None:
    if "all" in cond:
        results = [_evaluate(c, row) for c in cond["all"]]
        return False if False in results else (None if None in results else True)
    if "any" in cond:
        results = [_evaluate(c, row) for c in cond["any"]]
        return True if True in results else (None if None in results else False)
    if "not" in cond:
        inner = _evaluate(cond["not"], row)
        return None if inner is None else not inner
    value = row[cond["column"]]
    if "is_null" in cond:
        return value is None
    if "is_not_null" in cond:
        return value is not None
    if value is None:
        return None
    if "equals" in cond:
        return value == cond["equals"]
    return value in cond["in"]


def matches(cond: Any, row: Mapping[str, Any]) -> bool:
    return cond is None or evaluate(cond, row) is True


def row_value(rule: Any, row: Mapping[str, Any]) -> Any:
    """A related row's value for an aggregate or ``ongoing_if_open``: its ``column``, or the
    first of its ``first_non_null`` columns that is not empty (None when all are)."""
    columns = getattr(rule, "first_non_null", None) or [rule.column]
    return next((row[c] for c in columns if row[c] is not None), None)


# --- state --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where one row is: active, in an archive table (with its stamped dates), destroyed,
    or anonymised (in the archive, dates removed)."""

    state: str
    archive_table: str | None = None
    retention_start: date | None = None
    retention_until: date | None = None

    def __str__(self) -> str:
        if self.state == ARCHIVE:
            return f"archive {self.archive_table} {self.retention_start}..{self.retention_until}"
        if self.state == ANONYMISED:
            return f"anonymised in {self.archive_table}"
        return self.state


State = dict[str, dict[Key, Place]]  # table -> primary key -> place


@dataclass(frozen=True)
class Holds:
    """Legal holds in force: whole categories, and rows of a table by primary key."""

    categories: frozenset[str] = frozenset()
    rows: Mapping[str, frozenset[Key]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.categories) or any(self.rows.values())

    def union(self, other: Holds) -> Holds:
        tables = set(self.rows) | set(other.rows)
        return Holds(
            self.categories | other.categories,
            {t: self.rows.get(t, frozenset()) | other.rows.get(t, frozenset()) for t in tables},
        )

    def existing(self, state: State) -> Holds:
        """Only the rows that still exist (active or archived): a hold on a destroyed row is
        refused, as the legal_hold DAG refuses keys that match nothing."""
        return Holds(
            self.categories,
            {
                t: frozenset(k for k in keys if state.get(t, {}).get(k) is not None and state[t][k].state != DESTROYED)
                for t, keys in self.rows.items()
            },
        )


@dataclass(frozen=True)
class _Node:
    """One table of a category's tree, with the category that governs it."""

    category: Category
    table: TableBase
    parent_fk: tuple[str, ...] = ()


class Oracle:
    """The schedule applied to one dataset (the rows as the application wrote them)."""

    def __init__(self, policy: RetentionPolicy, rows: Rows, holds: Holds = Holds()) -> None:
        self.policy = policy
        self.zone = policy.zone
        self.rows = rows
        self.holds = holds
        self._pk: dict[str, tuple[str, ...]] = {}
        for category in policy.categories.values():
            for root in category.tables:
                for node in root.walk():
                    self._pk[node.table] = tuple(node.primary_key)

    # -- helpers -------------------------------------------------------------------------

    def key(self, table: str, row: Mapping[str, Any]) -> Key:
        return tuple(row[c] for c in self._pk.get(table) or self._guess_pk(table))

    def _guess_pk(self, table: str) -> tuple[str, ...]:
        return (next(iter(self.rows[table][0])),) if self.rows.get(table) else ("id",)

    def initial_state(self) -> State:
        return {table: {self.key(table, r): Place(ACTIVE) for r in self.rows.get(table, [])} for table in self._pk}

    def _children_of(self, node: TableBase, row: Mapping[str, Any]) -> list[tuple[TableBase, Mapping[str, Any]]]:
        """Every descendant row of ``row`` (any depth), with its table."""
        out: list[tuple[TableBase, Mapping[str, Any]]] = []
        parent_key = tuple(row[c] for c in node.primary_key)
        for child in node.children:
            for child_row in self.rows.get(child.table, []):
                if tuple(child_row[c] for c in child.foreign_key) == parent_key:
                    out.append((child, child_row))
                    out += self._children_of(child, child_row)
        return out

    def _related(
        self, start_table: str, start_row: Mapping[str, Any], path: Sequence[Any], state: State
    ) -> list[Mapping[str, Any]]:
        """Rows reached from a row by a foreign-key path, in the active base only (the
        application's live data: a related row already archived with its own parent is no
        longer part of anyone's activity)."""
        current: list[tuple[str, Mapping[str, Any]]] = [(start_table, start_row)]
        for step in path:
            nxt = []
            for table, row in current:
                references = list(step.references or self._pk.get(table) or self._guess_pk(table))
                wanted = tuple(row[c] for c in references)
                for candidate in self.rows.get(step.table, []):
                    if tuple(candidate[c] for c in step.foreign_key) != wanted:
                        continue
                    if not matches(getattr(step, "where", None), candidate):
                        continue
                    place = state.get(step.table, {}).get(self.key(step.table, candidate))
                    if place is None or place.state == ACTIVE:
                        nxt.append((step.table, candidate))
            current = nxt
        return [row for _, row in current]

    # -- the clock -------------------------------------------------------------------------

    def start_day(self, table: TablePolicy, row: Mapping[str, Any], state: State) -> date | None:
        """The row's start day in the company's zone; None when it has none."""
        for source in table.start_event.sources:
            day = self._source_day(source, table, row, state)
            if day is not None:
                return day
        return None

    def _source_day(self, source: ClockSource, table: TablePolicy, row: Mapping[str, Any], state: State) -> date | None:
        if source.column:
            return local_day(row[source.column], self.zone)
        aggregate = source.latest or source.earliest
        assert aggregate is not None, "a clock source is a column, latest or earliest"
        values = [
            value
            for r in self._related(table.table, row, aggregate.path, state)
            if matches(aggregate.where, r) and (value := row_value(aggregate, r)) is not None
        ]
        if not values:
            return None
        pick = max if source.latest else min
        return local_day(pick(values, key=lambda v: moment(v, self.zone)), self.zone)

    def is_open(self, event: StartEvent, table: TablePolicy, row: Mapping[str, Any], state: State) -> bool:
        rule = event.ongoing_if_open
        if rule is None:
            return False
        return any(
            row_value(rule, r) is None and matches(rule.where, r)
            for r in self._related(table.table, row, rule.path, state)
        )

    # -- who governs a row -------------------------------------------------------------------

    def governing(self, table_name: str, row: Mapping[str, Any]) -> tuple[Category, TablePolicy] | None:
        """The category whose clock this root row follows (scope, then precedence)."""
        candidates = [
            (c, t)
            for c in self.policy.categories.values()
            for t in c.tables
            if t.table == table_name and t.archived_with is None and matches(t.scope, row)
        ]
        if not candidates:
            return None
        ranked = [cand for cand in candidates if cand[0].key in self.policy.precedence]
        if ranked:
            return min(ranked, key=lambda cand: self.policy.precedence.index(cand[0].key))
        return candidates[0]

    def held(self, category: Category, table: TableBase, row: Mapping[str, Any]) -> bool:
        """A hold on the category, on the row, or on any row of its tree - its children, and
        the retained dependants that point at it (and theirs): "a parent with a held child is
        held with its whole tree", and a held invoice can neither stay in the active base
        pointing at a customer that left it nor follow it to the archive."""
        if category.key in self.holds.categories:
            return True
        tree = [(table, row)] + self._children_of(table, row)
        if any(tuple(r[c] for c in t.primary_key) in self.holds.rows.get(t.table, frozenset()) for t, r in tree):
            return True
        return any(
            self.held(dep_category, dependant, dep_row)
            for dep_category, dependant, dep_row in self._dependants_of(table, row)
        )

    def _dependants_of(self, table: TableBase, row: Mapping[str, Any]) -> list[tuple[Category, TablePolicy, Any]]:
        key = tuple(row[c] for c in table.primary_key)
        return [
            (category, dependant, dep_row)
            for category in self.policy.categories.values()
            for dependant in category.tables
            if dependant.archived_with is not None and dependant.archived_with.table == table.table
            for dep_row in self.rows.get(dependant.table, [])
            if tuple(dep_row[c] for c in dependant.archived_with.foreign_key) == key
        ]

    # -- one night -------------------------------------------------------------------------------

    def run(self, state: State, as_of: date) -> State:
        """Every category's run for ``as_of``; the next state."""
        new: State = {table: dict(places) for table, places in state.items()}
        self._archive_due(state, new, as_of)
        self._release_dependants(state, new, as_of)
        self._archive_dependants(state, new)
        self._end_of_life(new, as_of)
        return new

    def _move(self, new: State, category: Category, table: TableBase, row: Mapping[str, Any], place_for: Any) -> None:
        for node, r in [(table, row)] + self._children_of(table, row):
            new[node.table][self.key(node.table, r)] = place_for(node)

    def _archive_due(self, state: State, new: State, as_of: date) -> None:
        """Governed active rows past their active period: to the archive (or destroyed)."""
        for category in self.policy.categories.values():
            for table in category.tables:
                if table.archived_with is not None:
                    continue
                for row in self.rows.get(table.table, []):
                    key = self.key(table.table, row)
                    if state[table.table][key].state != ACTIVE:
                        continue
                    governing = self.governing(table.table, row)
                    if governing is None or governing[0].key != category.key:
                        continue
                    if self.held(category, table, row) or self.is_open(table.start_event, table, row, state):
                        continue
                    start = self.start_day(table, row, state)
                    if start is None or plus(start, category.active_period) > as_of:
                        continue
                    if not category.has_archive:
                        self._move(new, category, table, row, lambda _n: Place(DESTROYED))
                        continue
                    until = plus(start, category.active_period, category.archive_period)
                    self._move(
                        new, category, table, row, lambda n, s=start, u=until: Place(ARCHIVE, n.archive_name, s, u)
                    )

    def _parent_of(self, table: TablePolicy, row: Mapping[str, Any]) -> tuple[str, Key]:
        link = table.archived_with
        assert link is not None, f"{table.table} has no archived_with parent"
        return link.table, tuple(row[c] for c in link.foreign_key)

    def _release_dependants(self, state: State, new: State, as_of: date) -> None:
        """Dependants that leave the active base without their parent, with their own dates:
        with no parent in the active base (a NULL link, an orphan), on their own clock, in
        either mode; with ``leaves_active: on_parent_event``, when the relationship behind
        their parent has ended (the parent's start + their own active period)."""
        for category in self.policy.categories.values():
            for table in category.tables:
                link = table.archived_with
                if link is None:
                    continue
                on_parent_event = getattr(link, "leaves_active", "with_parent") == "on_parent_event"
                for row in self.rows.get(table.table, []):
                    if state[table.table][self.key(table.table, row)].state != ACTIVE:
                        continue
                    if self.held(category, table, row) or self.is_open(table.start_event, table, row, state):
                        continue
                    start = self.start_day(table, row, state)
                    parent = self._active_parent(table, row, state)
                    if parent is None:
                        due = start is not None and plus(start, category.active_period) <= as_of
                    elif on_parent_event and self.governing(link.table, parent) is None:
                        # No category governs the parent: no clock will ever release the
                        # dependant, so it follows its own (the README's rule).
                        due = start is not None and plus(start, category.active_period) <= as_of
                    elif on_parent_event:
                        due = self._parent_event_passed(table, parent, category.active_period, state, as_of)
                    else:
                        due = False
                    if not due:
                        continue
                    until = None if start is None else plus(start, category.active_period, category.archive_period)
                    self._move(
                        new, category, table, row, lambda n, s=start, u=until: Place(ARCHIVE, n.archive_name, s, u)
                    )

    def _active_parent(self, table: TablePolicy, row: Mapping[str, Any], state: State) -> Mapping[str, Any] | None:
        """The row a dependant points at, if it is in the active base at the start of the night."""
        parent_table, parent_key = self._parent_of(table, row)
        place = state.get(parent_table, {}).get(parent_key)
        if place is None or place.state != ACTIVE:
            return None
        return next(r for r in self.rows[parent_table] if self.key(parent_table, r) == parent_key)

    def _parent_event_passed(
        self, table: TablePolicy, parent: Mapping[str, Any], active_period: Any, state: State, as_of: date
    ) -> bool:
        """The parent's relationship has ended ``active_period`` ago: it has a known start in
        the category that governs it, nothing keeps it ongoing, and it is not held."""
        assert table.archived_with is not None, f"{table.table} has no archived_with parent"
        parent_table = table.archived_with.table
        governing = self.governing(parent_table, parent)
        if governing is None or self._parent_held(table, state, parent):
            return False
        _, parent_policy = governing
        if self.is_open(parent_policy.start_event, parent_policy, parent, state):
            return False
        start = self.start_day(parent_policy, parent, state)
        return start is not None and plus(start, active_period) <= as_of

    def _parent_row(self, table: TablePolicy, row: Mapping[str, Any]) -> Mapping[str, Any] | None:
        parent_table, parent_key = self._parent_of(table, row)
        return next((r for r in self.rows.get(parent_table, []) if self.key(parent_table, r) == parent_key), None)

    def _archive_dependants(self, state: State, new: State) -> None:
        """A dependant leaves the active base when the row it points at does (now or before)."""
        for category in self.policy.categories.values():
            for table in category.tables:
                if table.archived_with is None:
                    continue
                for row in self.rows.get(table.table, []):
                    key = self.key(table.table, row)
                    if new[table.table][key].state != ACTIVE or self.held(category, table, row):
                        continue
                    parent_table, parent_key = self._parent_of(table, row)
                    parent_place = new.get(parent_table, {}).get(parent_key)
                    if parent_place is None or parent_place.state == ACTIVE:
                        continue
                    # No start (a defect): it still leaves the active base with the row that
                    # justified it, but cannot be aged - archived without dates, never destroyed
                    # silently, and it keeps that row in the archive until a person dates it.
                    start = self.start_day(table, row, state)
                    until = None if start is None else plus(start, category.active_period, category.archive_period)
                    self._move(
                        new, category, table, row, lambda n, s=start, u=until: Place(ARCHIVE, n.archive_name, s, u)
                    )

    def _end_of_life(self, new: State, as_of: date) -> None:
        """Dependants first (their fate decides whether their parent is still kept)."""
        ordered = sorted(
            ((c, t) for c in self.policy.categories.values() for t in c.tables),
            key=lambda ct: ct[1].archived_with is None,
        )
        for category, table in ordered:
            for row in self.rows.get(table.table, []):
                key = self.key(table.table, row)
                place = new[table.table][key]
                if place.state != ARCHIVE or place.archive_table != table.archive_name:
                    continue
                if place.retention_until is None or place.retention_until > as_of:
                    continue
                if self.held(category, table, row) or self._kept_by_dependants(table, row, new):
                    continue
                if table.archived_with is not None and self._parent_held(table, new, self._parent_row(table, row)):
                    continue
                if category.end_action == "anonymize":
                    self._move(new, category, table, row, lambda n: Place(ANONYMISED, n.archive_name))
                else:
                    self._move(new, category, table, row, lambda _n: Place(DESTROYED))

    def _parent_held(self, table: TablePolicy, new: State, parent_row: Mapping[str, Any] | None) -> bool:
        """A hold on the row a dependant is archived with protects the dependant too: it is
        about the same person (docs/explanation/policy-concepts.md, "A held parent holds its dependants"). The parent is
        governed by the category whose archive holds it, or, while active, by its scope.
        Held means a hold on the parent's category, on the parent or on a row of its tree (not
        a hold on another of its dependants: that one keeps the parent, not its siblings)."""
        if parent_row is None:
            return False
        assert table.archived_with is not None, f"{table.table} has no archived_with parent"
        parent_table = table.archived_with.table
        parent_key = self.key(parent_table, parent_row)
        place = new.get(parent_table, {}).get(parent_key)
        if parent_row is None or place is None or place.state in (DESTROYED, ANONYMISED):
            return False
        if place.state == ARCHIVE:
            owners = [
                (c, t)
                for c in self.policy.categories.values()
                for t in c.tables
                if t.table == parent_table and t.archive_name == place.archive_table
            ]
        else:
            owners = [g for g in [self.governing(parent_table, parent_row)] if g is not None]
        for category, parent in owners:
            if category.key in self.holds.categories:
                return True
            tree = [(parent, parent_row)] + self._children_of(parent, parent_row)
            if any(self.key(t.table, r) in self.holds.rows.get(t.table, frozenset()) for t, r in tree):
                return True
        return False

    def _kept_by_dependants(self, table: TableBase, row: Mapping[str, Any], new: State) -> bool:
        """A dependant not destroyed (retained in the archive, or still active) keeps it."""
        return any(
            new[dependant.table][self.key(dependant.table, dep_row)].state != DESTROYED
            for _, dependant, dep_row in self._dependants_of(table, row)
        )


def describe_differences(expected: State, got: State, limit: int = 20) -> list[str]:
    """Row by row: ``table key: expected X, got Y``."""
    out = []
    for table in sorted(expected):
        for key in sorted(set(expected[table]) | set(got.get(table, {})), key=repr):
            want, have = expected[table].get(key), got.get(table, {}).get(key)
            if want != have:
                out.append(f"{table} {key}: expected {want}, got {have}")
    return out[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])


def states_for(runs: Iterable[date], oracle: Oracle) -> list[State]:
    """The state after each run date in turn, starting from every row active."""
    state = oracle.initial_state()
    out = []
    for day in runs:
        state = oracle.run(state, day)
        out.append(state)
    return out


__all__ = [
    "ACTIVE",
    "ARCHIVE",
    "ANONYMISED",
    "DESTROYED",
    "Holds",
    "Oracle",
    "Place",
    "State",
    "add_period",
    "describe_differences",
    "last_due_start",
    "local_day",
    "plus",
    "states_for",
]
