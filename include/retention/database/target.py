"""The target database: one SQLAlchemy engine, and where active and archive tables live.

PostgreSQL keeps active tables in ``policy.source_schema`` (or a table's own ``schema``)
and the archive in the schema ``policy.archive_schema``. SQLite has no schemas: active
tables are in the main database and the archive is a second database file ATTACHed
under the archive schema's name, so the archive can be handed to the DPO, or locked
down, as a file of its own. One transaction spans both files (rollback journal mode),
which is what keeps a batch's copy and delete atomic.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, ProgrammingError

from include.retention.database.capabilities import Capabilities, capabilities_of
from include.retention.database.identifiers import sqlite_canonical
from include.retention.dates.clock import register_sqlite_functions

_READ_ONLY = "retention_read_only"


@dataclass(frozen=True)
class Target:
    """An engine plus the schema naming rules of its dialect."""

    engine: Engine
    archive_schema: str

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def capabilities(self) -> Capabilities:
        """What this database can do: read this, not the dialect's name, to choose a path."""
        return capabilities_of(self.dialect)

    @property
    def is_sqlite(self) -> bool:
        """For SQL spelled differently on SQLite (test fixtures, text dates)."""
        return self.dialect == "sqlite"

    def source_schema(self, schema: str | None) -> str | None:
        """The schema to use for an active table (SQLite: always the main database)."""
        return schema if self.capabilities.separate_schemas else None

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading only. On SQLite its transaction is a plain (deferred)
        BEGIN, so counting rows never takes the write lock from the application."""
        with self.engine.connect() as conn:
            yield conn.execution_options(**{_READ_ONLY: True})

    def ensure_archive_schema(self) -> None:
        """Create the archive schema if it is missing. Looked up first: even CREATE SCHEMA IF
        NOT EXISTS needs CREATE on the database, which a least-privilege role lacks."""
        if not self.capabilities.separate_schemas:
            return
        try:
            with self.engine.begin() as conn:
                if self.archive_schema not in inspect(conn).get_schema_names():
                    conn.execute(text(f'CREATE SCHEMA "{self.archive_schema}"'))
        except (IntegrityError, ProgrammingError):
            # Another task created it at the same moment (its commit came first): it is there.
            with self.engine.connect() as conn:
                if self.archive_schema not in inspect(conn).get_schema_names():
                    raise

    def dispose(self) -> None:
        self.engine.dispose()


def sqlite_archive_path(database: str) -> Path:
    """``/data/crm.db`` -> ``/data/crm.archive.db``: the archive sits beside its source."""
    path = Path(database)
    return path.with_name(f"{path.stem}.archive{path.suffix or '.db'}")


def connect(url: str, archive_schema: str = "archive") -> Target:
    """Open the target database named by a SQLAlchemy URL.

    ``archive_schema`` must already be a validated identifier (it comes from the policy).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return Target(_sqlite_engine(url, archive_schema), archive_schema)
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    # hide_parameters: a failing statement's message (which reaches Airflow's task logs) names
    # the statement, never its bound values (an e-mail being erased, the subject key).
    return Target(create_engine(parsed, pool_pre_ping=True, hide_parameters=True), archive_schema)


def _hmac_sha256(key: str | None, message: str | None) -> str | None:
    if key is None or message is None:
        return None
    return hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()


def _sqlite_engine(url: str, archive_schema: str) -> Engine:
    parsed = make_url(url)
    if not parsed.database or parsed.database == ":memory:":
        raise ValueError("the SQLite target must be a file: the archive is attached beside it")
    archive_file = str(sqlite_archive_path(parsed.database))
    engine = create_engine(parsed, connect_args={"timeout": 30}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001 - DB-API objects
        # Hand transaction control to SQLAlchemy (pysqlite's implicit BEGIN only covers
        # DML, which would leave the batch's boundary query outside the transaction).
        dbapi_conn.isolation_level = None
        # Keyed hashes in SQL (identity.keyed_hash_sql), as pgcrypto's hmac() does on PostgreSQL.
        dbapi_conn.create_function("retention_hmac_sha256", 2, _hmac_sha256, deterministic=True)
        # The canonical identifier form (identifiers.canonical_sql): the very Python function that
        # reduces asked values, so SQLite's side is exactly Python's by construction.
        dbapi_conn.create_function("retention_canonical", 2, sqlite_canonical, deterministic=True)
        # Dates stored as text, dated in the company's time zone (clock.local_day_of_text).
        register_sqlite_functions(dbapi_conn)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f'ATTACH DATABASE ? AS "{archive_schema}"', (archive_file,))
        # Erased and purged rows are overwritten with zeros in both files, not left in free
        # pages (many SQLite builds default to this, not all). Without a schema name the pragma
        # applies to every attached database.
        cursor.execute("PRAGMA secure_delete = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        # Writers take the write lock up front (IMMEDIATE): a batch never fails half-way on
        # "database is locked" when upgrading a read lock. Readers (Target.read) do not.
        read_only = conn.get_execution_options().get(_READ_ONLY)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
