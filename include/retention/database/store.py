"""Every table the project owns, defined here and created one way.

The engine keeps its own records in the target database, beside the data it governs, so
that a batch and what it records commit or roll back together:

* the audit log (``<archive>.<audit_table>``, named by the policy), append-only;
* the legal-hold register (``retention_legal_holds`` and its ``retention_legal_hold_items``);
* the suppression list (``retention_suppression``): people who opposed prospection;
* the run leases (``retention_run_locks``): one run of a category at a time;
* the re-consent register (``retention_reconsent``): every notice asking a person whether
  they still want commercial messages, its signed token's id, delivery and answer;
* the data-subject request register (named by the policy's ``rights_register``, in the
  active schema: a category of the policy governs its retention).

The modules that use them (``records/``, ``rights/requests.py``) and the roles script
(``roles.py``: the administrator creates them and grants the pipeline what it may do) take
their layout from here. Each is created when first needed (``ensure_table``): a run that
writes no hold creates no hold register, and a missing register means "no hold".
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, ProgrammingError

from include.retention.dates.instants import UtcDateTime
from include.retention.errors import RetentionError

HOLDS_TABLE = "retention_legal_holds"
ITEMS_TABLE = "retention_legal_hold_items"
LOCKS_TABLE = "retention_run_locks"
SUPPRESSION_TABLE = "retention_suppression"
RECONSENT_TABLE = "retention_reconsent"
# On PostgreSQL under the least-privilege roles the pipeline may not UPDATE lifted_at: the
# administrator's function lifts a hold once its audit event is written (roles.py).
LIFT_FUNCTION = "retention_lift_hold"
# A request's reference: the register's column and the check before any SQL share it.
REQUEST_REFERENCE_LENGTH = 64


# --- The audit log ---------------------------------------------------------------------


def audit_table(schema: str | None, name: str) -> Table:
    return Table(
        name,
        MetaData(),
        Column("event_id", Integer, primary_key=True, autoincrement=False),  # assigned by record(): contiguous
        Column("recorded_at", UtcDateTime(), nullable=False),
        Column("run_id", String(250), nullable=False),
        Column("dag_id", String(250), nullable=False),
        Column("category", String(64), nullable=False),
        Column("table_name", String(128)),
        Column("action", String(32), nullable=False),
        Column("row_count", Integer, nullable=False),
        Column("policy_version", String(64), nullable=False),
        Column("as_of", Date, nullable=False),
        Column("dry_run", Boolean, nullable=False),
        Column("details", Text),
        # HMAC-SHA256 of the person's normalised identifier (see identity.py), never the identifier.
        Column("subject_hash", String(64), index=True),
        Column("prev_hash", String(64), nullable=False),
        Column("event_hash", String(64), nullable=False),
        schema=schema,
    )


def ensure_audit_table(conn: Connection, table: Table) -> None:
    """Create the audit table with its append-only triggers; refuse an older layout."""
    if ensure_table(conn, table):
        for statement in append_only_trigger_sql(conn.dialect.name, table):
            # No parameters: psycopg still reads % as a placeholder marker, hence %%.
            conn.exec_driver_sql(statement.replace("%", "%%") if conn.dialect.name == "postgresql" else statement)
        return
    missing = missing_columns(conn, table)
    if missing:
        raise RetentionError(
            f"audit table {table.schema}.{table.name} lacks column(s) {', '.join(missing)}: it was "
            "created by an earlier version without the hash chain; keep it as evidence under "
            "another name (ALTER TABLE ... RENAME) and let the next run create a new one"
        )


def append_only_trigger_sql(dialect: str, table: Table) -> list[str]:
    """Triggers by which the database itself refuses to change or remove an event.

    Names come from the policy and are validated identifiers.
    """
    name, schema = table.name, table.schema
    if dialect == "postgresql":
        function = f'"{schema}"."{name}_append_only"'
        return [
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION 'the audit log {schema}.{name} is append-only: % refused', TG_OP; END $$",
            f'CREATE OR REPLACE TRIGGER "{name}_append_only" BEFORE UPDATE OR DELETE ON "{schema}"."{name}" '
            f"FOR EACH ROW EXECUTE FUNCTION {function}()",
            f'CREATE OR REPLACE TRIGGER "{name}_no_truncate" BEFORE TRUNCATE ON "{schema}"."{name}" '
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        ]
    if dialect == "sqlite":
        return [
            f'CREATE TRIGGER "{schema}"."{name}_no_{operation.lower()}" BEFORE {operation} ON "{name}" '
            f"BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: {operation} refused'); END"
            for operation in ("UPDATE", "DELETE")
        ]
    return []


# --- The legal-hold register -------------------------------------------------------------


@dataclass(frozen=True)
class HoldTables:
    holds: Table
    items: Table


def hold_tables(archive_schema: str | None) -> HoldTables:
    metadata = MetaData()
    holds = Table(
        HOLDS_TABLE,
        metadata,
        Column("hold_id", Integer, primary_key=True, autoincrement=True),
        Column("reference", String(64), nullable=False, unique=True),
        Column("scope", String(16), nullable=False),
        Column("category", String(64)),
        Column("table_name", String(128)),
        Column("reason", Text, nullable=False),
        Column("created_by", String(128), nullable=False),
        Column("created_at", UtcDateTime(), nullable=False),
        Column("expires_on", Date),
        Column("lifted_at", UtcDateTime()),
        Column("lifted_by", String(128)),
        Column("lift_reason", Text),
        Column("expiry_recorded_at", UtcDateTime()),
        schema=archive_schema,
    )
    items = Table(
        ITEMS_TABLE,
        metadata,
        Column("hold_id", Integer, ForeignKey(holds.c.hold_id), primary_key=True),
        Column("kind", String(16), primary_key=True),  # "subject" (a keyed hash) or "row" (a key)
        Column("table_name", String(128), primary_key=True),  # "" for subject items
        Column("item", String(512), primary_key=True),
        schema=archive_schema,
    )
    return HoldTables(holds, items)


def ensure_hold_tables(conn: Connection, tables: HoldTables) -> None:
    for table in (tables.holds, tables.items):
        ensure_table(conn, table)


# --- Run leases, the suppression list, the request register ---------------------------------


def locks_table(archive_schema: str | None) -> Table:
    return Table(
        LOCKS_TABLE,
        MetaData(),
        Column("category", String(64), primary_key=True),
        Column("run_id", String(250), nullable=False),
        Column("dag_id", String(250), nullable=False),
        Column("holder", String(250), nullable=False),  # host:pid of the step that last renewed it
        Column("acquired_at", UtcDateTime(), nullable=False),
        Column("renewed_at", UtcDateTime(), nullable=False),
        schema=archive_schema,
    )


def suppression_table(archive_schema: str) -> Table:
    return Table(
        SUPPRESSION_TABLE,
        MetaData(),
        Column("subject_hash", String(64), primary_key=True),
        Column("kind", String(30), nullable=False),
        Column("suppressed_on", Date, nullable=False),
        Column("request_reference", String(64)),
        schema=archive_schema,
    )


# What a notice's register row says of it. ``pending``: recorded, never handed to the mail
# server; ``sending``: handed over, not yet marked (a crash there resends it, same Message-ID);
# ``sent``: accepted by the server; ``failed``: refused for good (a 5xx or a reported bounce);
# ``no_address`` / ``suppressed``: not asked (no usable address; on the suppression list).
RECONSENT_STATUSES = ("pending", "sending", "sent", "failed", "no_address", "suppressed")
# The ``failure`` of an ask whose row was erased (an erasure or opposition request): a yes is the
# person's, not the row key's, so the clock no longer reads it - a new row given the same key
# starts from its own event. The delivery status is left as it was (the DPO report's counts).
ASK_ERASED = "erased"
RECONSENT_ANSWERS = ("yes", "no")


def reconsent_table(archive_schema: str | None) -> Table:
    """The re-consent register: one row per person asked, per period end. Never the address:
    its keyed hash (``subject_hash``); never the token: its random id (the signature is
    recomputed from the key). One ask per row and period end (the unique key), so a second
    campaign the same day records nothing new."""
    return Table(
        RECONSENT_TABLE,
        MetaData(),
        Column("ask_id", Integer, primary_key=True, autoincrement=True),
        Column("category", String(64), nullable=False),
        Column("table_name", String(128), nullable=False),
        Column("row_key", String(512), nullable=False),
        Column("period_end", Date, nullable=False),
        Column("subject_hash", String(64)),
        Column("token_id", String(32), nullable=False, unique=True),
        Column("expires_on", Date, nullable=False),
        Column("status", String(20), nullable=False),
        Column("failure", String(200)),
        Column("recorded_at", UtcDateTime(), nullable=False),
        Column("sent_at", UtcDateTime()),
        Column("answer", String(10)),
        Column("answered_at", UtcDateTime()),
        Column("answered_on", Date),
        Column("run_id", String(250)),
        Column("policy_version", String(64)),
        UniqueConstraint("category", "table_name", "row_key", "period_end", name="retention_reconsent_one_ask"),
        schema=archive_schema,
    )


def register_table(schema: str | None, name: str) -> Table:
    """The request register's layout (the project's own table, in the active schema)."""
    return Table(
        name,
        MetaData(),
        Column("request_id", Integer, primary_key=True, autoincrement=True),
        Column("reference", String(REQUEST_REFERENCE_LENGTH), nullable=False, unique=True),
        Column("request_type", String(30), nullable=False),
        Column("requester_email", String(200)),
        Column("received_at", UtcDateTime(), nullable=False),
        Column("due_at", Date, nullable=False),
        Column("extended", Boolean, nullable=False, default=False),
        Column("extension_reason", Text),
        Column("identity_verified", Boolean, nullable=False),
        Column("status", String(20), nullable=False),
        Column("closed_at", UtcDateTime()),
        Column("outcome", Text),
        schema=schema,
    )


# --- The registry: every table of the archive schema, and how each is created --------------


@dataclass(frozen=True)
class ProjectTables:
    """The project's tables in the archive schema: what the roles script creates and grants,
    and the names no archive table of the policy may take."""

    audit: Table
    holds: HoldTables
    suppression: Table
    locks: Table
    reconsent: Table

    def all(self) -> tuple[Table, ...]:
        return (self.audit, self.holds.holds, self.holds.items, self.suppression, self.locks, self.reconsent)


def project_tables(archive_schema: str, audit_name: str) -> ProjectTables:
    return ProjectTables(
        audit=audit_table(archive_schema, audit_name),
        holds=hold_tables(archive_schema),
        suppression=suppression_table(archive_schema),
        locks=locks_table(archive_schema),
        reconsent=reconsent_table(archive_schema),
    )


def table_exists(conn: Connection, table: Table) -> bool:
    return inspect(conn).has_table(table.name, schema=table.schema)


def ensure_table(conn: Connection, table: Table) -> bool:
    """Create ``table`` if it is missing (in the caller's transaction); True when it was.

    Two tasks may create it at the same moment (the re-consent campaign runs one task per
    category side by side). On PostgreSQL the slower CREATE waits for the other's commit, then
    fails on the catalog's unique index: it is tried in a savepoint, and a table that exists
    once the other committed is the one wanted. (SQLite's write lock serialises the two.)"""
    if table_exists(conn, table):
        return False
    if conn.dialect.name == "sqlite":
        table.create(conn)
        return True
    try:
        with conn.begin_nested():
            table.create(conn)
    except (IntegrityError, ProgrammingError):
        if not table_exists(conn, table):
            raise
        return False
    return True


def missing_columns(conn: Connection, table: Table) -> list[str]:
    """Columns of the project's layout that the existing ``table`` lacks (an older version's)."""
    present = {c["name"] for c in inspect(conn).get_columns(table.name, schema=table.schema)}
    return [c.name for c in table.columns if c.name not in present]
