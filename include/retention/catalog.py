"""The live database as the policy sees it: checked, reflected, and its archive tables.

Every identifier the policy names is checked here against the real database before any
SQL uses it (``check_against_database``). The engine then works on ``TableNode`` trees:
a reflected active table, its archive twin and its children.

An archive table keeps only what the policy allows - the key columns, the foreign key
to the parent, the ``archive_columns`` - plus the facts a DPO needs to prove why the row
is there and until when: ``retention_start``, ``retention_until``, ``archived_at``,
``policy_version``, ``run_id`` and ``anonymized``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

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
    inspect,
)
from sqlalchemy.engine import Connection

from .clock import is_temporal
from .errors import PolicyError, Problem
from .policy import Category, PrefixRule, RetentionPolicy, RoundRule, TablePolicy, TableBase

ARCHIVE_METADATA_COLUMNS = (
    "retention_start", "retention_until", "archived_at", "policy_version", "run_id", "anonymized",
)


@dataclass
class TableNode:
    """One table of a category's tree, with everything needed to build its SQL."""

    policy: TableBase
    source: Table
    archive: Table
    foreign_key: list[str] = field(default_factory=list)  # columns pointing at the parent
    children: list["TableNode"] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.policy.table

    @property
    def key_columns(self) -> list[str]:
        return list(self.policy.primary_key)

    def walk(self) -> list["TableNode"]:
        return [self] + [n for child in self.children for n in child.walk()]


def check_against_database(policy: RetentionPolicy, conn: Connection, dialect: str,
                           categories: list[str] | None = None) -> None:
    """Raise ``PolicyError`` naming every schema, table or column the database lacks.

    ``categories`` limits the check to those categories: a run checks its own, so that
    one category broken by a schema change does not stop the others from being enforced.
    """
    problems: list[Problem] = []
    inspector = inspect(conn)
    schemas = None if dialect == "sqlite" else set(inspector.get_schema_names())
    for key, category in policy.categories.items():
        if categories is not None and key not in categories:
            continue
        for t_index, table in enumerate(category.tables):
            path = f"categories.{key}.tables[{t_index}]"
            problems += _node_problems(inspector, policy, table, path, schemas, dialect)
    if problems:
        raise PolicyError(policy.source, problems)


def _node_problems(inspector: Any, policy: RetentionPolicy, node: TableBase, path: str,
                   schemas: set[str] | None, dialect: str) -> list[Problem]:
    schema = None if dialect == "sqlite" else (node.schema_name or policy.source_schema)
    where = f"{schema}.{node.table}" if schema else node.table
    if schemas is not None and schema not in schemas:
        return [Problem(f"{path}.schema", f"schema {schema!r} does not exist in the database", schema)]
    if not inspector.has_table(node.table, schema=schema):
        return [Problem(f"{path}.table", f"table {where} does not exist in the database", node.table)]
    columns = {c["name"]: c for c in inspector.get_columns(node.table, schema=schema)}
    problems = [
        Problem(f"{path}.{key}", f"column {column!r} not in table {where}; columns are: {', '.join(columns)}", column)
        for key, column in _named_columns(node)
        if column not in columns
    ]
    if isinstance(node, TablePolicy) and node.start_event.column in columns:
        column_type = columns[node.start_event.column]["type"]
        if not is_temporal(column_type):
            dated = [n for n, c in columns.items() if is_temporal(c["type"])]
            problems.append(Problem(
                f"{path}.start_event.column",
                f"column {node.start_event.column!r} of {where} is {column_type}, not a date or timestamp; "
                f"date columns are: {', '.join(dated) or 'none'}",
                node.start_event.column,
            ))
    problems += _anonymize_type_problems(node, path, columns, where)
    problems += _undeclared_children(inspector, node, path, schema, where)
    for i, child in enumerate(node.children):
        problems += _node_problems(inspector, policy, child, f"{path}.children[{i}]", schemas, dialect)
    return problems


def _named_columns(node: TableBase) -> list[tuple[str, str]]:
    named = [("primary_key", c) for c in node.primary_key]
    named += [("archive_columns", c) for c in node.archive_columns]
    named += [(f"subject_identifiers.{kind}", c) for kind, cols in node.subject_identifiers.items() for c in cols]
    named += [("foreign_key", c) for c in getattr(node, "foreign_key", [])]
    if isinstance(node, TablePolicy):
        named.append(("start_event.column", node.start_event.column))
    return named


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
            problems.append(Problem(f"{path}.anonymize.{column}",
                                    f"rule does not fit column {column!r} of {where}, which is {column_type}",
                                    rule if isinstance(rule, str) else rule.model_dump()))
    return problems


def _undeclared_children(inspector: Any, node: TableBase, path: str, schema: str | None,
                         where: str) -> list[Problem]:
    """Foreign keys pointing at this table from tables the policy does not declare.

    Deleting the parent would then fail on the foreign key, cascade silently, or leave
    orphans: the policy must say what happens to those rows.
    """
    declared = {child.table for child in node.children}
    problems = []
    for other in inspector.get_table_names(schema=schema):
        if other in declared or other == node.table:
            continue
        for fk in inspector.get_foreign_keys(other, schema=schema):
            if fk["referred_table"] == node.table and fk.get("referred_schema") in (None, schema):
                problems.append(Problem(
                    f"{path}.children",
                    f"table {other} has a foreign key to {where} ({', '.join(fk['constrained_columns'])}) "
                    f"but is not declared as a child; declare it so its rows move and die with their parent",
                    other,
                ))
    return problems


def reflect_category(conn: Connection, policy: RetentionPolicy, category: Category,
                     source_schema_of: Callable[[str | None], str | None],
                     archive_schema: str) -> list[TableNode]:
    """Reflect a category's active tables and define (not create) their archive twins."""
    metadata = MetaData()
    return [_reflect_node(conn, metadata, policy, table, source_schema_of, archive_schema)
            for table in category.tables]


def _reflect_node(conn: Connection, metadata: MetaData, policy: RetentionPolicy, node: TableBase,
                  source_schema_of: Callable[[str | None], str | None], archive_schema: str) -> TableNode:
    schema = source_schema_of(node.schema_name or policy.source_schema)
    source = Table(node.table, metadata, schema=schema, autoload_with=conn)
    foreign_key = list(getattr(node, "foreign_key", []))
    archive = _archive_table(metadata, source, node, foreign_key, archive_schema)
    table_node = TableNode(node, source, archive, foreign_key)
    table_node.children = [
        _reflect_node(conn, metadata, policy, child, source_schema_of, archive_schema)
        for child in node.children
    ]
    return table_node


def _archive_table(metadata: MetaData, source: Table, node: TableBase, foreign_key: list[str],
                   archive_schema: str) -> Table:
    keep = list(dict.fromkeys([*node.primary_key, *foreign_key, *node.archive_columns]))
    columns = [
        Column(name, source.c[name].type, primary_key=name in node.primary_key, autoincrement=False)
        for name in keep
    ]
    columns += [
        Column("retention_start", Date),
        Column("retention_until", Date),
        Column("archived_at", DateTime(timezone=True)),
        Column("policy_version", String(64)),
        Column("run_id", String(250)),
        Column("anonymized", Boolean, nullable=False, default=False),
    ]
    table = Table(node.table, metadata, *columns, schema=archive_schema)
    Index(f"ix_{node.table}_retention_until", table.c.retention_until)
    if foreign_key:
        Index(f"ix_{node.table}_parent", *(table.c[c] for c in foreign_key))
    return table


def ensure_archive_tables(conn: Connection, nodes: list[TableNode]) -> None:
    """Create missing archive tables; refuse an existing one that lacks a needed column.

    An archive table created by an earlier policy version that archived fewer columns
    must be migrated by a person (the engine never alters archived evidence by itself).
    """
    inspector = inspect(conn)
    for node in (n for root in nodes for n in root.walk()):
        archive = node.archive
        if not inspector.has_table(archive.name, schema=archive.schema):
            archive.create(conn)
            continue
        existing = {c["name"] for c in inspector.get_columns(archive.name, schema=archive.schema)}
        missing = [c.name for c in archive.columns if c.name not in existing]
        if missing:
            raise PolicyError("<archive>", [Problem(
                f"table {archive.schema}.{archive.name}",
                f"existing archive table lacks column(s) {', '.join(missing)}; "
                "add them (ALTER TABLE ... ADD COLUMN) before archiving with this policy",
            )])


def open_category(conn: Connection, policy: RetentionPolicy, category: Category,
                  source_schema_of: Callable[[str | None], str | None], archive_schema: str,
                  dialect: str) -> list[TableNode]:
    """Check the whole policy against the live database, then reflect one category.

    Identifiers reach SQL only after this check has passed.
    """
    check_against_database(policy, conn, dialect, [category.key])
    return reflect_category(conn, policy, category, source_schema_of, archive_schema)


def archive_exists(conn: Connection, node: TableNode) -> bool:
    return inspect(conn).has_table(node.archive.name, schema=node.archive.schema)
