"""The live database as the policy sees it: ``TableNode`` trees of reflected tables.

The engine works on ``TableNode`` trees: a reflected active table, its archive twin
(``archive_tables``), its children, and the categories' rows archived with it
(``Dependant``), reached only after ``check_against_database`` has passed (``open_category``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    MetaData,
    String,
    Table,
    and_,
    exists,
    false,
    func,
    inspect,
    literal,
    not_,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database import store
from include.retention.database.archive_tables import ARCHIVE_METADATA_COLUMNS, archive_table_of, ensure_archive_table
from include.retention.database.check import check_against_database, dependants_of
from include.retention.database.start_events import ongoing_expression, restarted_by_consent, start_expression
from include.retention.dates.clock import Zones, is_due
from include.retention.dates.periods import Period
from include.retention.policy.conditions import is_not_true, to_sql
from include.retention.policy.model import (
    Category,
    RelationStep,
    RetentionPolicy,
    TableBase,
    TablePolicy,
    category_precedence,
)

# Composite keys are stored as their parts joined by the ASCII unit separator (``key_text``).
KEY_SEPARATOR = "\x1f"


class Side(StrEnum):
    """Which of a table's two homes a step reads or changes: the active table (``source``) or
    its archive twin. The values are the words the audit log, approval keys and exports use."""

    ACTIVE = "active"
    ARCHIVE = "archive"


@dataclass
class TableNode:
    """One table of a category's tree, with everything needed to build its SQL."""

    policy: TableBase
    source: Table
    archive: Table
    foreign_key: list[str] = field(default_factory=list)  # columns pointing at the parent
    children: list[TableNode] = field(default_factory=list)
    # Root tables only: the start expression, the "still open" test and the row scope.
    start: Any = None
    ongoing: ColumnElement[bool] | None = None
    scope: ColumnElement[bool] = field(default_factory=true)
    # Rows of other categories archived with this table's rows (``archived_with``).
    dependants: list[Dependant] = field(default_factory=list)
    # A retained dependant that leaves on its parent's start event (``on_parent_event``).
    release: Release | None = None

    @property
    def name(self) -> str:
        return self.policy.table

    def table(self, side: Side) -> Table:
        """The active table or its archive twin."""
        return {Side.ACTIVE: self.source, Side.ARCHIVE: self.archive}[side]

    @property
    def root_policy(self) -> TablePolicy:
        """A root table's policy (its start event, scope, partitioning); a child table has none."""
        if not isinstance(self.policy, TablePolicy):
            raise TypeError(f"{self.name} is a child table: it has no start event of its own")
        return self.policy

    @property
    def copied_columns(self) -> list[str]:
        """The source columns an archive row keeps (its archive columns and keys), in the
        archive table's order; ``ARCHIVE_METADATA_COLUMNS`` follow them."""
        return [c.name for c in self.archive.columns if c.name not in ARCHIVE_METADATA_COLUMNS]

    def due(self, period: Period, as_of: date, zones: Zones) -> ColumnElement[bool]:
        """Rows of this category whose period has ended and that nothing keeps ongoing.

        A dependant released by its parent's event (``Release``) is due once that event plus
        ``period`` has passed, whatever its own start (undated too: it then moves undated);
        one whose parent is not in the active base, or is there but governed by no category
        (no clock will ever release it), follows its own clock."""
        if self.release is not None:
            return and_(
                self.scope,
                self.release.not_open_itself(),
                or_(
                    self.release.released(period, as_of, zones),
                    and_(not_(self.release.governed()), is_due(self.start, period, as_of, zones)),
                ),
            )
        return and_(self.scope, is_due(self.start, period, as_of, zones), self._not_ongoing())

    def missing_start(self) -> ColumnElement[bool]:
        """Rows of this category with no start date (and no open related row)."""
        return and_(self.scope, self.start.is_(None), self._not_open())

    def expired(self, as_of: date) -> ColumnElement[bool]:
        """Archive rows whose retention has run out and that are not yet anonymised."""
        archive = self.archive
        return and_(
            archive.c.retention_until <= literal(as_of, type_=archive.c.retention_until.type),
            archive.c.anonymized == false(),
        )

    def ageable(self) -> ColumnElement[bool]:
        """Rows of this category whose clock runs: a start date, and nothing keeping them open."""
        return and_(self.scope, self.start.is_not(None), self._not_open())

    def held_open(self) -> ColumnElement[bool]:
        """Rows of this category kept active by an open related row (a dependant released by
        its parent's event: its own, or one that keeps its parent ongoing)."""
        if self.release is not None:
            return and_(self.scope, self.release.open())
        return and_(self.scope, self.ongoing) if self.ongoing is not None else false()

    def _not_ongoing(self) -> ColumnElement[bool]:
        return is_not_true(self.ongoing) if self.ongoing is not None else true()

    def _not_open(self) -> ColumnElement[bool]:
        """Not kept active by an open related row. A released dependant is not kept by its
        parent merely being active (its parent's clock decides when it leaves), only by what
        ``held_open`` counts: its own open row, or one keeping its parent ongoing."""
        return not_(self.release.open()) if self.release is not None else self._not_ongoing()

    @property
    def key_columns(self) -> list[str]:
        return list(self.policy.primary_key)

    def walk(self) -> list[TableNode]:
        return [self] + [n for child in self.children for n in child.walk()]

    def walk_all(self) -> list[TableNode]:
        """This tree and the trees of its dependants: every table a batch may write."""
        return self.walk() + [n for dep in self.dependants for n in dep.node.walk()]


@dataclass
class Dependant:
    """A table of another category whose rows are archived with this table's rows."""

    node: TableNode
    category: Category
    foreign_key: list[str]

    def linked(self, side: Side, parent: TableNode, parent_rows: ColumnElement[bool]) -> ColumnElement[bool]:
        """The dependant rows of the parent rows selected by ``parent_rows`` (on one side)."""
        return linked_rows(self.node, side, self.foreign_key, parent, parent_rows)

    def retained(self, parent: TableNode) -> ColumnElement[bool]:
        """Archive rows of ``parent`` that still have a dependant in the archive (not anonymised:
        an anonymised row is no one's data, and needs no one kept). A parent with one is never
        destroyed: the dependant would point at nothing."""
        archive = self.node.archive
        return exists().where(
            *(
                archive.c[fk] == parent.archive.c[pk]
                for fk, pk in zip(self.foreign_key, parent.key_columns, strict=True)
            ),
            archive.c.anonymized == false(),
        )


@dataclass
class ParentClock:
    """One parent category's clock, on the parent row of a released dependant (``row``: the
    alias of the parent table inside the dependant's release subquery)."""

    category: Category
    policy: TablePolicy
    start: Any
    ongoing: ColumnElement[bool] | None
    scope: ColumnElement[bool]

    def ended(self, period: Period, as_of: date, zones: Zones) -> ColumnElement[bool]:
        """The parent row is governed by this category, its start is known, nothing keeps it
        ongoing, and its start + ``period`` (the dependant's active period) has passed."""
        return and_(
            self.scope,
            self.start.is_not(None),
            is_not_true(self.ongoing) if self.ongoing is not None else true(),
            is_due(self.start, period, as_of, zones),
        )

    def open(self) -> ColumnElement[bool]:
        return and_(self.scope, self.ongoing) if self.ongoing is not None else false()


@dataclass
class Release:
    """When a dependant with ``leaves_active: on_parent_event`` leaves the active base: as soon
    as its parent row, still active, has reached its start event in the category whose
    effective scope holds it (a partner table serves prospects and customers: the one that
    governs that row), plus the dependant's own active period. Built on the dependant's active
    table; ``parent_active`` is the "parent still in the active base" test."""

    row: Any  # the parent table, aliased
    link: ColumnElement[bool]  # ``row`` is the dependant's parent
    clocks: list[ParentClock]
    parent_active: ColumnElement[bool]
    own_ongoing: ColumnElement[bool] | None  # the dependant's own ``ongoing_if_open``

    def released(self, period: Period, as_of: date, zones: Zones) -> ColumnElement[bool]:
        return (
            exists()
            .select_from(self.row)
            .where(self.link, or_(false(), *(clock.ended(period, as_of, zones) for clock in self.clocks)))
        )

    def open(self) -> ColumnElement[bool]:
        """Kept active by an open related row: its own, or one keeping its parent ongoing."""
        parent_open = exists().select_from(self.row).where(self.link, or_(false(), *(c.open() for c in self.clocks)))
        return or_(self.own_ongoing, parent_open) if self.own_ongoing is not None else parent_open

    def governed(self) -> ColumnElement[bool]:
        """The parent row is in the active base and some category's effective scope holds it:
        a clock that can release the dependant runs on it."""
        return exists().select_from(self.row).where(self.link, or_(false(), *(c.scope for c in self.clocks)))

    def not_open_itself(self) -> ColumnElement[bool]:
        return is_not_true(self.own_ongoing) if self.own_ongoing is not None else true()


def key_of(table: Any, columns: Sequence[str]) -> Any:
    """A table's key as one comparable expression (a row value for composite keys)."""
    cols = [table.c[name] for name in columns]
    return cols[0] if len(cols) == 1 else tuple_(*cols)


def key_text(table: Any, columns: Sequence[str]) -> ColumnElement[str]:
    """A row's key as the text the project's registers store (a legal hold's rows, a
    re-consent ask): the value as text, a composite key's parts joined by ``KEY_SEPARATOR``.
    Here, below both registers' users, so the clock (``start_events``) can read it too."""
    parts = [table.c[c].cast(String) for c in columns]
    if len(parts) == 1:
        return parts[0]
    joined: Any = parts[0]
    for part in parts[1:]:
        joined = joined + literal(KEY_SEPARATOR) + part
    return joined


def linked_rows(
    node: TableNode, side: Side, foreign_key: Sequence[str], parent: TableNode, parent_rows: ColumnElement[bool]
) -> ColumnElement[bool]:
    """Rows of ``node`` (active or archive side) whose ``foreign_key`` holds the key of one of
    the ``parent`` rows selected by ``parent_rows``: children, or retained dependants."""
    keys = select(*(parent.table(side).c[c] for c in parent.key_columns)).where(parent_rows)
    return key_of(node.table(side), foreign_key).in_(keys)


def reflect_category(
    conn: Connection,
    policy: RetentionPolicy,
    category: Category,
    source_schema_of: Callable[[str | None], str | None],
    archive_schema: str,
) -> list[TableNode]:
    """Reflect a category's active tables and define (not create) their archive twins.

    The re-consent register is read by the clocks of asked tables only when it exists: before
    the first campaign nobody has said yes, and a reader (a report, "was X erased?") creates
    nothing."""
    metadata = MetaData()
    register = store.reconsent_table(archive_schema)
    answers = register if store.table_exists(conn, register) else None
    return [
        _reflect_node(conn, metadata, policy, table, source_schema_of, archive_schema, category, answers)
        for table in category.tables
    ]


def _reflect_node(
    conn: Connection,
    metadata: MetaData,
    policy: RetentionPolicy,
    node: TableBase,
    source_schema_of: Callable[[str | None], str | None],
    archive_schema: str,
    category: Category,
    answers: Table | None,
) -> TableNode:
    schema_name = node.schema_name or policy.source_schema
    source = Table(node.table, metadata, schema=source_schema_of(schema_name), autoload_with=conn)
    foreign_key = list(getattr(node, "foreign_key", []))
    archive = archive_table_of(metadata, source, node, archive_schema)
    table_node = TableNode(node, source, archive, foreign_key)
    if isinstance(node, TablePolicy):

        def reflect(step: RelationStep) -> Table:
            step_schema = source_schema_of(step.schema_name or schema_name)
            return Table(step.table, metadata, schema=step_schema, autoload_with=conn)

        table_node.start = _clock(policy, category, node, source, reflect, answers)
        own_ongoing = ongoing_expression(node.start_event, source, node.primary_key, reflect)
        parent_reflect = _parent_reflector(conn, metadata, policy, node, source_schema_of)
        parent_active = _parent_still_active(node, source, parent_reflect)
        table_node.ongoing = _any_of(own_ongoing, parent_active)
        if node.archived_with is not None and node.archived_with.on_parent_event:
            table_node.release = _release(policy, node, source, parent_reflect, parent_active, own_ongoing, answers)
        table_node.scope = _effective_scope(policy, category, node, source)
        table_node.dependants = [
            Dependant(
                _reflect_node(conn, metadata, policy, dep, source_schema_of, archive_schema, dep_category, answers),
                dep_category,
                list(dep.archived_with.foreign_key),
            )
            for dep_category, dep in dependants_of(policy, node)
            if dep.archived_with is not None  # always: dependants_of finds them by it
        ]
    table_node.children = [
        _reflect_node(conn, metadata, policy, child, source_schema_of, archive_schema, category, answers)
        for child in node.children
    ]
    return table_node


def _clock(
    policy: RetentionPolicy,
    category: Category,
    table: TablePolicy,
    row: Any,
    reflect: Callable[[RelationStep], Table],
    answers: Table | None,
) -> ColumnElement[Any]:
    """A root table's start expression on ``row`` (the table, or an alias of it); for the
    table a category asks for re-consent, restarted by the person's last yes in the register
    (``answers``; None when it does not exist yet)."""
    start = start_expression(table.start_event, row, table.primary_key, reflect, policy.zones)
    if answers is None or category.asked_table != table.table:
        return start
    yes = answers.alias("consent")  # its own name: the clock may be read inside a query on the register
    latest_yes = (
        select(func.max(yes.c.answered_on))
        .where(
            yes.c.category == category.key,
            yes.c.table_name == table.table,
            yes.c.row_key == key_text(row, table.primary_key),
            yes.c.answer == "yes",
            or_(yes.c.failure.is_(None), yes.c.failure != store.ASK_ERASED),  # not a yes of an erased row
        )
        .correlate(row)  # to the row at whatever depth the clock is used
        .scalar_subquery()
    )
    return restarted_by_consent(start, latest_yes, policy.zones)


def parent_schema(policy: RetentionPolicy, table: str) -> str | None:
    """The schema of an ``archived_with`` parent: the one its own root entry declares (load
    refuses one table name in two schemas, and requires the parent to be a root table), never
    its dependant's - a same-named table beside the dependant is not the parent."""
    for category in policy.categories.values():
        for entry in category.tables:
            if entry.table == table:
                return entry.schema_name or policy.source_schema
    return policy.source_schema


def _parent_reflector(
    conn: Connection,
    metadata: MetaData,
    policy: RetentionPolicy,
    node: TablePolicy,
    source_schema_of: Callable[[str | None], str | None],
) -> Callable[[Any], Table]:
    """Reflect the parent table and the tables of its clocks' paths in the parent's schema
    (a path step's own ``schema`` first)."""
    default = parent_schema(policy, node.archived_with.table) if node.archived_with is not None else None

    def reflect(step: RelationStep) -> Table:
        return Table(step.table, metadata, schema=source_schema_of(step.schema_name or default), autoload_with=conn)

    return reflect


def _parent_still_active(node: TablePolicy, source: Table, reflect: Callable[[Any], Table]) -> Any:
    """A retained dependant waits in the active base while its parent row is there."""
    link = node.archived_with
    if link is None:
        return None
    parent = reflect(RelationStep(table=link.table, foreign_key=link.foreign_key))
    parent_key = [c.name for c in parent.primary_key.columns]
    return exists().where(*(parent.c[pk] == source.c[fk] for fk, pk in zip(link.foreign_key, parent_key, strict=True)))


def _release(
    policy: RetentionPolicy,
    node: TablePolicy,
    source: Table,
    reflect: Callable[[Any], Table],
    parent_active: Any,
    own_ongoing: Any,
    answers: Table | None,
) -> Release:
    """The parent clocks a released dependant reads: each category of which the parent table
    is a root, on one alias of it (chains of dependants are refused at load: a parent has no
    ``archived_with`` wait of its own)."""
    link = node.archived_with
    assert link is not None
    parent = reflect(RelationStep(table=link.table, foreign_key=link.foreign_key))
    row = cast(Table, parent.alias("released_parent"))  # an alias reads like its table (.c)
    parent_key = [c.name for c in parent.primary_key.columns]
    clocks = []
    for category in policy.categories.values():
        for table in category.tables:
            if table.table != link.table:
                continue
            clocks.append(
                ParentClock(
                    category,
                    table,
                    _clock(policy, category, table, row, reflect, answers),
                    ongoing_expression(table.start_event, row, table.primary_key, reflect),
                    _effective_scope(policy, category, table, row),
                )
            )
    joined = and_(*(row.c[pk] == source.c[fk] for fk, pk in zip(link.foreign_key, parent_key, strict=True)))
    return Release(row, joined, clocks, parent_active, own_ongoing)


def _any_of(*conditions: Any) -> Any:
    present = [c for c in conditions if c is not None]
    return or_(*present) if present else None


def _effective_scope(
    policy: RetentionPolicy, category: Category, node: TablePolicy, source: Table
) -> ColumnElement[bool]:
    """The category's own scope, less the rows a category with precedence claims."""
    winners = category_precedence(policy, category.key)
    excluded = [
        is_not_true(to_sql(source, other.scope))
        for key in winners
        for other in policy.categories[key].tables
        if other.table == node.table
    ]
    return and_(to_sql(source, node.scope), *excluded)


def ensure_archive_tables(conn: Connection, nodes: list[TableNode]) -> None:
    """Create each missing archive table of the trees ``nodes``; refuse an existing one that
    lacks a needed column (``archive_tables.ensure_archive_table``)."""
    for node in (n for root in nodes for n in root.walk_all()):
        ensure_archive_table(conn, node.archive, node.policy)


def open_category(
    conn: Connection,
    policy: RetentionPolicy,
    category: Category,
    source_schema_of: Callable[[str | None], str | None],
    archive_schema: str,
    dialect: str,
) -> list[TableNode]:
    """Check a category against the live database, then reflect it.

    Identifiers reach SQL only after this check has passed: the check covers the
    category and every category whose tables its SQL reads (see ``related_categories``).
    """
    check_against_database(policy, conn, dialect, related_categories(policy, category.key))
    return reflect_category(conn, policy, category, source_schema_of, archive_schema)


def related_categories(policy: RetentionPolicy, key: str) -> list[str]:
    """``key`` and the categories whose tables a run of ``key`` touches.

    Those sharing one of its tables (their scopes decide precedence), those whose rows
    are archived with its rows (``archived_with``), and those its rows are archived with.
    """

    def tables(k: str) -> set[str]:
        return {n.table for t in policy.categories[k].tables for n in t.walk()}

    def parents(k: str) -> set[str]:
        return {t.archived_with.table for t in policy.categories[k].tables if t.archived_with}

    mine = tables(key)
    related = [key]
    for other in policy.categories:
        if other != key and (tables(other) & mine or parents(other) & mine or parents(key) & tables(other)):
            related.append(other)
    return related


def archive_exists(conn: Connection, node: TableNode) -> bool:
    return inspect(conn).has_table(node.archive.name, schema=node.archive.schema)
