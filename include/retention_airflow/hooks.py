"""What the Airflow deployment holds for the engine: the target databases and the subject key.

One implementation for the tasks and the Retention view. Both read through the task SDK
(``airflow.sdk``): in a task it asks the Execution API; in the API server (which declares
itself a server process) it reads the secrets backends, the environment and the metadata
database - the same places, so a connection or a key set once serves both.

A deployment may serve several target databases (``targets.py``): each has its connection,
passed here by id, and its folder of evidence (``in_site_folder``). The subject key is one for
the deployment: the Variable ``retention_subject_secret`` keys the hashes of every target.
Importing this module lets the evidence folders be URLs of object storage (``storage``): every
task module and the Retention view import it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

from airflow.sdk import Connection, Variable
from sqlalchemy.engine import URL

from include.retention.database.identity import KEY_VARIABLE, SubjectKey, configured_key, key_from
from include.retention.database.target import Target, connect
from include.retention.files import site_folder
from include.retention.policy.model import RetentionPolicy
from include.retention_airflow import storage  # noqa: F401 - evidence folders may be object-storage URLs
from include.retention_airflow.targets import Site

Params = ParamSpec("Params")
Result = TypeVar("Result")


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


def target_connection(conn_id: str) -> Connection:
    """A target's connection (``Site.conn_id``; Airflow's not-found error when it is not defined)."""
    return Connection.get(conn_id)


@contextmanager
def open_target(policy: RetentionPolicy, conn_id: str) -> Iterator[Target]:
    """The connection ``conn_id`` as the engine's target, closed when the block ends; a
    connection of another type is a ValueError that names it, apart from the connection not
    being defined at all."""
    target = connect(connection_url(target_connection(conn_id)), policy.archive_schema)
    try:
        yield target
    finally:
        target.dispose()


def in_site_folder(
    task_function: Callable[Concatenate[Site, Params], Result],
) -> Callable[Concatenate[Site, Params], Result]:
    """The task helper, given its target first, runs inside that target's folder of evidence
    (``files.site_folder``): the certificates, reports, anchors and exports of a named target
    go under ``<root>/<name>/``, beside no other target's - each is compared with its own
    audit log only. The default target keeps the root."""

    @functools.wraps(task_function)
    def run(site: Site, /, *args: Params.args, **kwargs: Params.kwargs) -> Result:
        with site_folder(site.reports_folder):
            return task_function(site, *args, **kwargs)

    return run


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
