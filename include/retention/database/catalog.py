"""The live database as the policy sees it: checked, reflected, and its archive tables.

Every identifier the policy names is checked here against the real database before any
SQL uses it (``check_against_database``). The engine then works on ``TableNode`` trees:
a reflected active table, its archive twin and its children.

An archive table keeps only what the policy allows - the key columns, the foreign key
to the parent, the ``archive_columns`` and the ``subject_identifiers`` (so that rights
requests and legal holds find archived rows by any of them: ``archive_layout``) - plus
the facts a DPO needs to prove why the row is there and until when: ``retention_start``,
``retention_until``, ``archived_at``, ``policy_version``, ``run_id`` and ``anonymized``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    and_,
    exists,
    false,
    inspect,
    literal,
    not_,
    or_,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database.capabilities import capabilities_of
from include.retention.database.partitioning import layout_problems
from include.retention.database.start_events import ongoing_expression, start_expression
from include.retention.dates import instants
from include.retention.dates.clock import Zones, is_due, is_temporal
from include.retention.dates.instants import UtcDateTime
from include.retention.dates.periods import Period
from include.retention.errors import PolicyError, Problem
from include.retention.policy.conditions import columns_of, is_not_true, to_sql
from include.retention.policy.model import (
    Category,
    PrefixRule,
    RelationStep,
    RetentionPolicy,
    RoundRule,
    TableBase,
    TablePolicy,
    category_precedence,
)

ARCHIVE_METADATA_COLUMNS = (
    "retention_start",
    "retention_until",
    "archived_at",
    "policy_version",
    "run_id",
    "anonymized",
)


def archive_stamp(archive: Table, policy_version: str, run_id: str) -> list[ColumnElement[Any]]:
    """What every row archived now carries after its retention dates: ``archived_at``,
    ``policy_version``, ``run_id``, and ``anonymized`` false."""
    return [
        literal(instants.utc_now(), type_=archive.c.archived_at.type),
        literal(policy_version),
        literal(run_id),
        false(),
    ]


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


def linked_rows(
    node: TableNode, side: Side, foreign_key: Sequence[str], parent: TableNode, parent_rows: ColumnElement[bool]
) -> ColumnElement[bool]:
    """Rows of ``node`` (active or archive side) whose ``foreign_key`` holds the key of one of
    the ``parent`` rows selected by ``parent_rows``: children, or retained dependants."""
    keys = select(*(parent.table(side).c[c] for c in parent.key_columns)).where(parent_rows)
    return key_of(node.table(side), foreign_key).in_(keys)


def check_against_database(
    policy: RetentionPolicy, conn: Connection, dialect: str, categories: list[str] | None = None
) -> None:
    """Raise ``PolicyError`` naming every schema, table or column the database lacks.

    ``categories`` limits the check to those categories: a run checks its own, so that
    one category broken by a schema change does not stop the others from being enforced.
    """
    problems: list[Problem] = []
    if not capabilities_of(dialect).time_zones and not policy.zones.naive_is_wall_clock:
        problems.append(
            Problem(
                "naive_timezone",
                "SQLite cannot convert between time zones in SQL: store "
                f"timestamps as {policy.timezone} wall-clock time there",
                policy.naive_timezone,
            )
        )
    inspector = inspect(conn)
    schemas = set(inspector.get_schema_names()) if capabilities_of(dialect).separate_schemas else None
    for key, category in policy.categories.items():
        if categories is not None and key not in categories:
            continue
        for t_index, table in enumerate(category.tables):
            path = f"categories.{key}.tables[{t_index}]"
            problems += _node_problems(inspector, policy, table, path, schemas, dialect)
    if problems:
        raise PolicyError(policy.source, problems)


def _node_problems(
    inspector: Any, policy: RetentionPolicy, node: TableBase, path: str, schemas: set[str] | None, dialect: str
) -> list[Problem]:
    schema = (node.schema_name or policy.source_schema) if capabilities_of(dialect).separate_schemas else None
    where = f"{schema}.{node.table}" if schema else node.table
    if schemas is not None and schema not in schemas:
        return [Problem(f"{path}.schema", f"schema {schema!r} does not exist in the database", schema)]
    if not inspector.has_table(node.table, schema=schema):
        return [Problem(f"{path}.table", f"table {where} does not exist in the database", node.table)]
    columns = {c["name"]: c for c in inspector.get_columns(node.table, schema=schema)}
    problems = _missing_columns(_named_columns(node), columns, path, where)
    if isinstance(node, TablePolicy):
        problems += _start_event_problems(inspector, node, path, schema, columns, where)
        if node.partitioned and capabilities_of(dialect).partitions and node.start_event.column in columns:
            problems += layout_problems(
                inspector.bind, schema, node.table, node.start_event.column, f"{path}.partitioned"
            )
    problems += _anonymize_type_problems(node, path, columns, where)
    problems += _undeclared_children(inspector, node, path, schema, where, _moved_with(policy, node))
    for i, child in enumerate(node.children):
        problems += _node_problems(inspector, policy, child, f"{path}.children[{i}]", schemas, dialect)
    return problems


def _missing_columns(named: list[tuple[str, str]], columns: dict[str, Any], path: str, where: str) -> list[Problem]:
    return [
        Problem(f"{path}.{key}", f"column {column!r} not in table {where}; columns are: {', '.join(columns)}", column)
        for key, column in named
        if column not in columns
    ]


def _named_columns(node: TableBase) -> list[tuple[str, str]]:
    named = [("primary_key", c) for c in node.primary_key]
    named += [("archive_columns", c) for c in node.archive_columns]
    named += [(f"subject_identifiers.{kind}", c) for kind, cols in node.subject_identifiers.items() for c in cols]
    named += [("provided_columns", c) for c in node.provided_columns]
    named += [("foreign_key", c) for c in getattr(node, "foreign_key", [])]
    if isinstance(node, TablePolicy):
        named += [("scope", c) for c in columns_of(node.scope)]
        if node.archived_with:
            named += [("archived_with.foreign_key", c) for c in node.archived_with.foreign_key]
    return named


def _start_event_problems(
    inspector: Any, node: TablePolicy, path: str, schema: str | None, columns: dict[str, Any], where: str
) -> list[Problem]:
    """Every clock source exists, holds dates, and all fallbacks share one type."""
    event = node.start_event
    problems: list[Problem] = []
    kinds: list[tuple[str, str]] = []
    for i, source in enumerate(event.sources):
        base = f"{path}.start_event" + (f".first_of[{i}]" if event.first_of else "")
        if source.column:
            found = _temporal(columns, source.column, f"{base}.column", where, problems)
            key = f"{base}.column"
        else:
            name = "latest" if source.latest else "earliest"
            aggregate = source.latest or source.earliest
            key = f"{base}.{name}"
            found = _related_value_problems(inspector, aggregate, key, schema, node, columns, problems)
        if found is not None:
            kinds.append((key, _kind(found)))
    if len({kind for _, kind in kinds}) > 1:
        listed = "; ".join(f"{key} is {kind}" for key, kind in kinds)
        problems.append(
            Problem(
                f"{path}.start_event.first_of",
                f"fallbacks must all be dates or all be timestamps of one kind: {listed}",
            )
        )
    rule = event.ongoing_if_open
    if rule is not None:
        key = f"{path}.start_event.ongoing_if_open"
        if rule.first_non_null is not None:
            _related_value_problems(inspector, rule, key, schema, node, columns, problems)
        else:
            # One column: only that it exists, as before (an end marker need not be a date).
            reached = _path_problems(inspector, rule.path, f"{key}.path", schema, node, columns, problems)
            if reached is not None:
                last_columns, last_where = reached
                named = [("column", rule.column)] + [("where", c) for c in columns_of(rule.where)]
                problems += _missing_columns(named, last_columns, key, last_where)  # type: ignore[list-item]
    return problems


def _related_value_problems(
    inspector: Any,
    spec: Any,
    key: str,
    schema: str | None,
    node: TablePolicy,
    columns: dict[str, Any],
    problems: list[Problem],
) -> Any:
    """Check a value read over a path (``latest``/``earliest``/``ongoing_if_open``): the path,
    its ``where``, and that every column of it holds dates of one kind. Return that type,
    or None when something is wrong (already recorded in ``problems``)."""
    reached = _path_problems(inspector, spec.path, f"{key}.path", schema, node, columns, problems)
    if reached is None:
        return None
    last_columns, last_where = reached
    problems += _missing_columns([("where", c) for c in columns_of(spec.where)], last_columns, key, last_where)
    if spec.first_non_null is None:
        return _temporal(last_columns, spec.column, f"{key}.column", last_where, problems)
    found = [
        (f"{key}.first_non_null[{i}]", _temporal(last_columns, c, f"{key}.first_non_null[{i}]", last_where, problems))
        for i, c in enumerate(spec.first_non_null)
    ]
    if any(column_type is None for _, column_type in found):
        return None
    # The rule ``first_of`` applies to its fallbacks: COALESCE of a date and a timestamp, or
    # of an aware and a naive timestamp, would silently read one of them in the wrong zone.
    if len({_kind(column_type) for _, column_type in found}) > 1:
        listed = "; ".join(
            f"{column} is {_kind(column_type)}" for column, (_, column_type) in zip(spec.first_non_null, found)
        )
        problems.append(
            Problem(
                f"{key}.first_non_null",
                "an expression over columns of different types: "
                f"first_non_null needs all dates or all timestamps of one kind ({listed} in "
                f"{last_where})",
                spec.first_non_null,
            )
        )
        return None
    return found[0][1]


def _temporal(columns: dict[str, Any], column: str, key: str, where: str, problems: list[Problem]) -> Any:
    """The column's type if it holds dates; otherwise record why not and return None."""
    if column not in columns:
        problems.append(
            Problem(key, f"column {column!r} not in table {where}; columns are: {', '.join(columns)}", column)
        )
        return None
    column_type = columns[column]["type"]
    if not is_temporal(column_type):
        dated = [n for n, c in columns.items() if is_temporal(c["type"])]
        problems.append(
            Problem(
                key,
                f"column {column!r} of {where} is {column_type}, not a date or timestamp; "
                f"date columns are: {', '.join(dated) or 'none'}",
                column,
            )
        )
        return None
    return column_type


def _kind(column_type: Any) -> str:
    if isinstance(column_type, DateTime):
        return "a timestamp with time zone" if column_type.timezone else "a timestamp"
    return "a date"


def _path_problems(
    inspector: Any,
    steps: list[RelationStep],
    key: str,
    schema: str | None,
    node: TablePolicy,
    columns: dict[str, Any],
    problems: list[Problem],
) -> tuple[dict[str, Any], str] | None:
    """Check each hop of a relation path; return the last table's columns and name, if it exists."""
    previous_columns, previous_key = columns, list(node.primary_key)
    previous_where = f"{schema}.{node.table}" if schema else node.table
    for j, step in enumerate(steps):
        step_key = f"{key}[{j}]"
        step_schema = schema if schema is None else (step.schema_name or schema)
        where = f"{step_schema}.{step.table}" if step_schema else step.table
        if not inspector.has_table(step.table, schema=step_schema):
            problems.append(Problem(f"{step_key}.table", f"table {where} does not exist in the database", step.table))
            return None
        step_columns = {c["name"]: c for c in inspector.get_columns(step.table, schema=step_schema)}
        references = list(step.references or previous_key)
        found = len(problems)
        problems += _missing_columns([("foreign_key", c) for c in step.foreign_key], step_columns, step_key, where)
        problems += _missing_columns(
            [("references", c) for c in references], previous_columns, step_key, previous_where
        )
        if len(references) != len(step.foreign_key):
            problems.append(
                Problem(
                    f"{step_key}.foreign_key",
                    f"has {len(step.foreign_key)} column(s) but references {len(references)} of {previous_where}",
                    step.foreign_key,
                )
            )
        # A hop's own filter (a polymorphic link's type column) is a condition on this table.
        problems += _missing_columns([("where", c) for c in columns_of(step.where)], step_columns, step_key, where)
        if len(problems) > found:
            return None
        previous_columns, previous_where = step_columns, where
        previous_key = inspector.get_pk_constraint(step.table, schema=step_schema)["constrained_columns"]
    return previous_columns, previous_where


def _anonymize_type_problems(node: TableBase, path: str, columns: dict[str, Any], where: str) -> list[Problem]:
    """A rule must fit its column's type: dates are truncated, numbers rounded, text cut."""
    problems = []
    for column, rule in node.anonymize.items():
        if column not in columns:
            continue
        column_type = columns[column]["type"]
        fits = {
            "year": is_temporal(column_type),
            "month": is_temporal(column_type),
        }.get(rule if isinstance(rule, str) else "", True)
        if isinstance(rule, RoundRule):
            fits = isinstance(column_type, Numeric) or isinstance(column_type, Integer)
        if isinstance(rule, PrefixRule):
            fits = isinstance(column_type, String)
        if not fits:
            problems.append(
                Problem(
                    f"{path}.anonymize.{column}",
                    f"rule does not fit column {column!r} of {where}, which is {column_type}",
                    rule if isinstance(rule, str) else rule.model_dump(),
                )
            )
    return problems


def _moved_with(policy: RetentionPolicy, node: TableBase) -> set[str]:
    """Tables whose rows the policy moves in the same batch as ``node``'s rows.

    Its children, its retained dependants, and their descendants. A row of one of those
    that points at ``node`` without belonging to it would make the batch fail on the
    foreign key and roll back - loud and safe - so those links are accepted here.
    """
    trees: list[TableBase] = list(node.children)
    if isinstance(node, TablePolicy):
        trees += [dep for _, dep in _dependants_of(policy, node)]
    return {t.table for tree in trees for t in tree.walk()}


def _undeclared_children(
    inspector: Any, node: TableBase, path: str, schema: str | None, where: str, declared: set[str]
) -> list[Problem]:
    """Foreign keys pointing at this table from tables the policy does not declare.

    Deleting the parent would then fail on the foreign key, cascade silently, or leave
    orphans: the policy must say what happens to those rows.
    """
    problems = _self_reference_problems(inspector, node, path, schema, where)
    for other in inspector.get_table_names(schema=schema):
        if other in declared or other == node.table:
            continue
        for fk in inspector.get_foreign_keys(other, schema=schema):
            if fk["referred_table"] == node.table and fk.get("referred_schema") in (None, schema):
                problems.append(
                    Problem(
                        f"{path}.children",
                        f"table {other} has a foreign key to {where} ({', '.join(fk['constrained_columns'])}) "
                        f"but is not declared as a child; declare it so its rows move and die with their parent",
                        other,
                    )
                )
    return problems


_SELF_REFERENCE_EFFECTS = {
    "NO ACTION": "archiving or erasing a row that another row still points at fails on the foreign key, and "
    "the whole run with it, every time it is tried",
    "RESTRICT": "archiving or erasing a row that another row still points at fails on the foreign key, and "
    "the whole run with it, every time it is tried",
    "CASCADE": "archiving or erasing a row would make the database delete every row pointing at it, rows the "
    "policy did not choose, without archiving them",
    "SET DEFAULT": "archiving or erasing a row would make the database point the rows pointing at it at the "
    "column's default, a row the policy knows nothing of",
}


def _self_reference_problems(
    inspector: Any, node: TableBase, path: str, schema: str | None, where: str
) -> list[Problem]:
    """A foreign key from a governed table to itself (a company's contacts in the same table,
    ``parent_id``) is safe only with ``ON DELETE SET NULL``.

    A referenced row may leave (archived, destroyed, erased) while a row pointing at it stays:
    each row has its own clock. The database then does what the constraint says, and only
    SET NULL - what the application itself does when it deletes a parent row - neither
    fails every run (NO ACTION, RESTRICT) nor deletes or relinks rows the policy did not
    choose (CASCADE, SET DEFAULT)."""
    problems = []
    for fk in inspector.get_foreign_keys(node.table, schema=schema):
        if fk["referred_table"] != node.table or fk.get("referred_schema") not in (None, schema):
            continue
        action = ((fk.get("options") or {}).get("ondelete") or "NO ACTION").upper()
        if action == "SET NULL":
            problems += _not_null_set_null(inspector, node, fk["constrained_columns"], path, schema, where)
            continue
        effect = _SELF_REFERENCE_EFFECTS.get(
            action, f"the database's ON DELETE {action} would act on rows the policy did not choose"
        )
        columns = ", ".join(fk["constrained_columns"])
        problems.append(
            Problem(
                path,
                f"table {where} has a foreign key to itself ({columns}) with ON DELETE {action}: each row has its "
                f"own clock, and {effect}; make the constraint ON DELETE SET NULL (what the application does when "
                f"it deletes the row a {columns} points at)",
                columns,
            )
        )
    return problems


def _not_null_set_null(
    inspector: Any, node: TableBase, constrained: list[str], path: str, schema: str | None, where: str
) -> list[Problem]:
    """ON DELETE SET NULL on a NOT NULL column fails like NO ACTION: every run would stop on it."""
    nullable = {c["name"]: c["nullable"] for c in inspector.get_columns(node.table, schema=schema)}
    strict = [c for c in constrained if not nullable.get(c, True)]
    if not strict:
        return []
    return [
        Problem(
            path,
            f"table {where} has a foreign key to itself ({', '.join(constrained)}) with ON DELETE "
            f"SET NULL, but {', '.join(strict)} is NOT NULL: archiving or erasing a row that another "
            "row still points at fails, and the whole run with it; allow NULL in the column",
            strict,
        )
    ]


def reflect_category(
    conn: Connection,
    policy: RetentionPolicy,
    category: Category,
    source_schema_of: Callable[[str | None], str | None],
    archive_schema: str,
) -> list[TableNode]:
    """Reflect a category's active tables and define (not create) their archive twins."""
    metadata = MetaData()
    return [
        _reflect_node(conn, metadata, policy, table, source_schema_of, archive_schema, category)
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
) -> TableNode:
    schema_name = node.schema_name or policy.source_schema
    source = Table(node.table, metadata, schema=source_schema_of(schema_name), autoload_with=conn)
    foreign_key = list(getattr(node, "foreign_key", []))
    archive = _archive_table(metadata, source, node, archive_schema)
    table_node = TableNode(node, source, archive, foreign_key)
    if isinstance(node, TablePolicy):

        def reflect(step: RelationStep) -> Table:
            step_schema = source_schema_of(step.schema_name or schema_name)
            return Table(step.table, metadata, schema=step_schema, autoload_with=conn)

        table_node.start = start_expression(node.start_event, source, node.primary_key, reflect, policy.zones)
        own_ongoing = ongoing_expression(node.start_event, source, node.primary_key, reflect)
        parent_reflect = _parent_reflector(conn, metadata, policy, node, source_schema_of)
        parent_active = _parent_still_active(node, source, parent_reflect)
        table_node.ongoing = _any_of(own_ongoing, parent_active)
        if node.archived_with is not None and node.archived_with.on_parent_event:
            table_node.release = _release(policy, node, source, parent_reflect, parent_active, own_ongoing)
        table_node.scope = _effective_scope(policy, category, node, source)
        table_node.dependants = [
            Dependant(
                _reflect_node(conn, metadata, policy, dep, source_schema_of, archive_schema, dep_category),
                dep_category,
                list(dep.archived_with.foreign_key),
            )  # type: ignore[union-attr]
            for dep_category, dep in _dependants_of(policy, node)
        ]
    table_node.children = [
        _reflect_node(conn, metadata, policy, child, source_schema_of, archive_schema, category)
        for child in node.children
    ]
    return table_node


def _dependants_of(policy: RetentionPolicy, node: TablePolicy) -> list[tuple[Category, TablePolicy]]:
    return [
        (category, table)
        for category in policy.categories.values()
        for table in category.tables
        if table.archived_with is not None and table.archived_with.table == node.table
    ]


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
) -> Release:
    """The parent clocks a released dependant reads: each category of which the parent table
    is a root, on one alias of it (chains of dependants are refused at load: a parent has no
    ``archived_with`` wait of its own)."""
    link = node.archived_with
    assert link is not None
    parent = reflect(RelationStep(table=link.table, foreign_key=link.foreign_key))
    row = parent.alias("released_parent")
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
                    start_expression(table.start_event, row, table.primary_key, reflect, policy.zones),
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


@dataclass(frozen=True)
class ArchiveLayout:
    """What an archive table keeps of its active table, known from the policy alone: the
    administrator's ``roles`` script creates archive tables from it, the engine reflects them."""

    name: str
    kept: list[str]  # copied columns, in the archive table's order
    primary_key: list[str]
    parent_link: list[str]  # foreign key to the parent (a child table)
    dependant_link: list[str]  # foreign key to the row it is archived with (``archived_with``)

    def indexes(self) -> list[tuple[str, list[str]]]:
        """(name, columns) of each index besides the primary key."""
        found = [(f"ix_{self.name}_retention_until", ["retention_until"])]
        if self.parent_link:
            found.append((f"ix_{self.name}_parent", self.parent_link))
        if self.dependant_link:  # "does this parent still have a dependant here?", asked per parent row
            found.append((f"ix_{self.name}_archived_with", self.dependant_link))
        return found


def archive_layout(node: TableBase) -> ArchiveLayout:
    """The archive table of ``node``: its keys and links, its ``archive_columns``, then every
    column its ``subject_identifiers`` declare (``identifier_columns``).

    The identifiers are kept even where ``archive_columns`` leaves them out: an archived row is
    still the person's data until its end of life, and a legal hold, an erasure or "was X
    erased?" given by any declared identifier (a phone alone) must find it. Anonymisation
    blanks them (``anonymize.identifier_rules``). The engine's table definition, the archive
    step's copy and the roles script's creation function all read this one layout.
    """
    parent_link = list(getattr(node, "foreign_key", []))
    dependant_link = (
        list(node.archived_with.foreign_key) if isinstance(node, TablePolicy) and node.archived_with else []
    )
    kept = list(
        dict.fromkeys(
            [*node.primary_key, *parent_link, *dependant_link, *node.archive_columns, *identifier_columns(node)]
        )
    )
    return ArchiveLayout(node.archive_name, kept, list(node.primary_key), parent_link, dependant_link)


def identifier_columns(node: TableBase) -> list[str]:
    """The columns ``node`` declares as subject identifiers, in the policy's order, once each."""
    return list(dict.fromkeys(c for columns in node.subject_identifiers.values() for c in columns))


def archive_metadata_columns() -> list[Column[Any]]:
    """The facts each archive row carries after its copied columns (``ARCHIVE_METADATA_COLUMNS``)."""
    return [
        Column("retention_start", Date),
        Column("retention_until", Date),
        Column("archived_at", UtcDateTime()),  # an instant of the project: UTC with its offset
        Column("policy_version", String(64)),
        Column("run_id", String(250)),
        Column("anonymized", Boolean, nullable=False, default=False),
    ]


def _archive_table(metadata: MetaData, source: Table, node: TableBase, archive_schema: str) -> Table:
    layout = archive_layout(node)
    columns = [
        Column(name, source.c[name].type, primary_key=name in layout.primary_key, autoincrement=False)
        for name in layout.kept
    ]
    table = Table(layout.name, metadata, *columns, *archive_metadata_columns(), schema=archive_schema)
    for name, indexed in layout.indexes():
        Index(name, *(table.c[c] for c in indexed))
    return table


CREATE_ARCHIVE_FUNCTION = "retention_create_archive_table"
ROLES_COMMAND = (
    "python -m include.retention.database.roles <policy.yaml> | psql <database>, as the database administrator"
)


def ensure_archive_tables(conn: Connection, nodes: list[TableNode]) -> None:
    """Create missing archive tables; refuse an existing one that lacks a needed column.

    An archive table created by an earlier policy version that archived fewer columns
    must be migrated by a person (the engine never alters archived evidence by itself).
    """
    inspector = inspect(conn)
    for node in (n for root in nodes for n in root.walk_all()):
        archive = node.archive
        if not inspector.has_table(archive.name, schema=archive.schema):
            _create_archive_table(conn, archive)
            continue
        existing = {c["name"] for c in inspector.get_columns(archive.name, schema=archive.schema)}
        missing = [c.name for c in archive.columns if c.name not in existing]
        if missing:
            raise PolicyError(
                "<archive>",
                [
                    Problem(
                        f"table {archive.schema}.{archive.name}",
                        f"existing archive table lacks column(s) {', '.join(missing)}; "
                        "add them (ALTER TABLE ... ADD COLUMN) before archiving with this policy"
                        + _why_identifiers(node.policy, missing),
                    )
                ],
            )


def _why_identifiers(node: TableBase, missing: list[str]) -> str:
    """Why a missing identifier column matters, for whoever migrates the table: without it a
    hold or an erasure by that identifier cannot reach the archived rows."""
    identifiers = [c for c in identifier_columns(node) if c in missing]
    if not identifiers:
        return ""
    return (
        f"; {', '.join(identifiers)} is a subject identifier of {node.table} (subject_identifiers): "
        'archive rows keep it so that legal holds, erasures and "was X erased?" find the person\'s '
        "archived rows by it (rows archived before the column is added have no value there: "
        "they can be found only by their other identifiers)"
    )


def _create_archive_table(conn: Connection, archive: Table) -> None:
    """Create one archive table, as the connected role may.

    On PostgreSQL under the least-privilege roles the pipeline may create nothing: an object
    it owned could be swapped for a view over its own function, run by whoever reads it next.
    The administrator's SECURITY DEFINER function (``include/sql/least_privilege_roles.sql``)
    creates the policy's archive tables instead, owned by the administrator. A role that may
    create in the schema (an administrator's own connection, SQLite) creates the table itself.
    """
    if not capabilities_of(conn.dialect.name).definer_functions:
        archive.create(conn)
        return
    schema = conn.dialect.identifier_preparer.quote_identifier(archive.schema)
    callable_, creatable = conn.execute(
        text(
            "SELECT coalesce(has_function_privilege(p, 'EXECUTE'), false), has_schema_privilege(:schema, 'CREATE') "
            "FROM to_regprocedure(:function) AS p"
        ),
        {"function": f"{schema}.{CREATE_ARCHIVE_FUNCTION}(text)", "schema": archive.schema},
    ).one()
    if callable_:
        try:
            with conn.begin_nested():
                conn.execute(text(f"SELECT {schema}.{CREATE_ARCHIVE_FUNCTION}(:name)"), {"name": archive.name})
            return
        except DBAPIError as refused:
            why = str(refused.orig).splitlines()[0]
    elif creatable:
        archive.create(conn)
        return
    else:
        why = f"role {conn.execute(text('SELECT current_user')).scalar_one()} may not create it"
    raise PolicyError(
        "<archive>",
        [
            Problem(
                f"table {archive.schema}.{archive.name}",
                f"archive table {archive.schema}.{archive.name} is missing and cannot be created ({why}); "
                f"create it with the roles script of this policy: {ROLES_COMMAND}",
            )
        ],
    )


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
