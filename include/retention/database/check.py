"""The policy held against the live database, before any of its names reach SQL.

Every identifier the policy names is checked here against the real database
(``check_against_database``): schemas, tables, columns, the types a clock reads, the
anonymisation rules' column types, the foreign keys no category declares, the text column a
re-consent notice is written to. A problem is named by its key path in the policy, so a
schema change is told in the policy's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    Numeric,
    String,
    inspect,
)
from sqlalchemy.engine import Connection
from sqlalchemy.types import NullType

from include.retention.database.capabilities import capabilities_of
from include.retention.database.partitioning import layout_problems
from include.retention.dates.clock import is_temporal
from include.retention.errors import PolicyError, Problem
from include.retention.policy.conditions import columns_of
from include.retention.policy.model import (
    Category,
    PrefixRule,
    RelationStep,
    RetentionPolicy,
    RoundRule,
    TableBase,
    TablePolicy,
)


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
        problems += _reconsent_address_problems(inspector, policy, category, schemas, dialect)
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
        column = node.start_event.column
        partitions = capabilities_of(dialect).partitions  # which implies schemas: schema is set
        if node.partitioned and partitions and schema is not None and column is not None and column in columns:
            problems += layout_problems(inspector.bind, schema, node.table, column, f"{path}.partitioned")
    problems += _anonymize_type_problems(node, path, columns, where)
    problems += _undeclared_children(inspector, node, path, schema, where, _moved_with(policy, node))
    for i, child in enumerate(node.children):
        problems += _node_problems(inspector, policy, child, f"{path}.children[{i}]", schemas, dialect)
    return problems


def _reconsent_address_problems(
    inspector: Any, policy: RetentionPolicy, category: Category, schemas: set[str] | None, dialect: str
) -> list[Problem]:
    """The column a re-consent notice is written to exists and holds text.

    A missing schema or table is already told at its own key. A number or a date there would be
    cast to text and written to as an address; a typeless SQLite column could hold anything."""
    block, name = category.reconsent, category.asked_table
    root = next((t for t in category.tables if t.table == name), None)
    if block is None or root is None:
        return []
    schema = (root.schema_name or policy.source_schema) if capabilities_of(dialect).separate_schemas else None
    if (schemas is not None and schema not in schemas) or not inspector.has_table(root.table, schema=schema):
        return []
    where = f"{schema}.{root.table}" if schema else root.table
    path = f"categories.{category.key}.reconsent.address_column"
    column = block.address_column
    columns = {c["name"]: c["type"] for c in inspector.get_columns(root.table, schema=schema)}
    if column not in columns:
        return [
            Problem(
                path,
                f"column {column!r} not in table {where}, so re-consent notices have no address to go to; "
                f"columns are: {', '.join(columns)}",
                column,
            )
        ]
    if isinstance(columns[column], String):
        return []
    texts = [n for n, t in columns.items() if isinstance(t, String)]
    declared = "of no declared type" if isinstance(columns[column], NullType) else f"is {columns[column]}"
    return [
        Problem(
            path,
            f"column {column!r} of {where} {declared}, not text: it cannot hold an e-mail address; "
            f"text columns are: {', '.join(texts) or 'none'}",
            column,
        )
    ]


def _missing_columns(
    named: Sequence[tuple[str, str | None]], columns: dict[str, Any], path: str, where: str
) -> list[Problem]:
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
                problems += _missing_columns(named, last_columns, key, last_where)
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
            f"{column} is {_kind(column_type)}"
            for column, (_, column_type) in zip(spec.first_non_null, found, strict=True)
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
            fits = isinstance(column_type, Numeric | Integer)
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
        trees += [dep for _, dep in dependants_of(policy, node)]
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


def dependants_of(policy: RetentionPolicy, node: TablePolicy) -> list[tuple[Category, TablePolicy]]:
    """The tables of every category whose rows are archived with ``node``'s rows (``archived_with``)."""
    return [
        (category, table)
        for category in policy.categories.values()
        for table in category.tables
        if table.archived_with is not None and table.archived_with.table == node.table
    ]
