"""What the Airflow deployment holds for the engine: the target database and the subject key.

One implementation for the tasks and the Retention view. Both read through the task SDK
(``airflow.sdk``): in a task it asks the Execution API; in the API server (which declares
itself a server process) it reads the secrets backends, the environment and the metadata
database - the same places, so a connection or a key set once serves both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow.sdk import Connection, Variable
from sqlalchemy.engine import URL

from include.retention.database.identity import KEY_VARIABLE, SubjectKey, configured_key, key_from
from include.retention.database.target import Target, connect
from include.retention.policy.model import RetentionPolicy

TARGET_CONN_ID = "retention_target"


def connection_url(conn: Any) -> str:
    """A SQLAlchemy URL from an Airflow connection (``postgres`` or ``sqlite``)."""
    if conn.conn_type == "sqlite":
        if not conn.host:
            raise ValueError(f"connection {conn.conn_id!r}: a sqlite connection needs the database file path as host")
        return f"sqlite:///{conn.host}"
    if conn.conn_type in ("postgres", "postgresql"):
        return URL.create(
            "postgresql+psycopg",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        ).render_as_string(hide_password=False)
    raise ValueError(f"connection {conn.conn_id!r} has type {conn.conn_type!r}; use postgres or sqlite")


def target_connection() -> Connection:
    """The ``retention_target`` connection (Airflow's not-found error when it is not defined)."""
    return Connection.get(TARGET_CONN_ID)


def target_url() -> str:
    """The ``retention_target`` connection's URL; a connection of another type is a ValueError
    that names it, apart from the connection not being defined at all."""
    return connection_url(target_connection())


@contextmanager
def open_target(policy: RetentionPolicy) -> Iterator[Target]:
    """The ``retention_target`` connection as the engine's target, closed when the block ends."""
    target = connect(target_url(), policy.archive_schema)
    try:
        yield target
    finally:
        target.dispose()


def key_variable() -> str | None:
    """The subject key as the Airflow Variable (or a secrets backend) gives it; None if unset."""
    value = Variable.get(KEY_VARIABLE, default=None)
    return None if value is None else str(value)


def subject_key() -> SubjectKey:
    """The HMAC key: Airflow Variable (or secrets backend) first, then the environment; never logged."""
    return key_from(key_variable())


def optional_subject_key() -> SubjectKey | None:
    """The HMAC key if one is configured: a step that may meet a legal hold on a person
    needs it then, and says so (``holds.py``); without such a hold it is not needed."""
    return configured_key(key_variable())
