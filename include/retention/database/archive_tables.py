"""Archive tables: what an archive row keeps of its active row, and how the table is created.

An archive table keeps only what the policy allows - the key columns, the foreign key
to the parent, the ``archive_columns`` and the ``subject_identifiers`` (so that rights
requests and legal holds find archived rows by any of them: ``archive_layout``) - plus
the facts a DPO needs to prove why the row is there and until when: ``retention_start``,
``retention_until``, ``archived_at``, ``policy_version``, ``run_id`` and ``anonymized``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Index,
    MetaData,
    String,
    Table,
    false,
    inspect,
    literal,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database.capabilities import capabilities_of
from include.retention.dates import instants
from include.retention.dates.instants import UtcDateTime
from include.retention.errors import PolicyError, Problem
from include.retention.policy.model import (
    TableBase,
    TablePolicy,
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


def archive_table_of(metadata: MetaData, source: Table, node: TableBase, archive_schema: str) -> Table:
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


def ensure_archive_table(conn: Connection, archive: Table, node: TableBase) -> None:
    """Create the archive table if it is missing; refuse an existing one that lacks a needed column.

    An archive table created by an earlier policy version that archived fewer columns
    must be migrated by a person (the engine never alters archived evidence by itself).
    """
    inspector = inspect(conn)
    if not inspector.has_table(archive.name, schema=archive.schema):
        _create_archive_table(conn, archive)
        return
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
                    + _why_identifiers(node, missing),
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
    assert archive.schema is not None  # an archive table always lives in the archive schema
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
