"""Shared fixtures: a throwaway PostgreSQL server, fresh targets on both backends.

Airflow reads its configuration when first imported, so the environment for the DAG
tests is set here, before any test module can import it: a private AIRFLOW_HOME (never
the demo's), the project's dags and plugins folders, no example DAGs.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from scripts.airflow_env import airflow_settings  # imports no Airflow: set before it is read

os.environ.update(airflow_settings(Path(tempfile.mkdtemp(prefix="retention-test-airflow-"))))
os.environ.pop("RETENTION_POLICY", None)
# Known passwords for the two UI users (an admin, and the DPO as a read-only viewer).
UI_PASSWORDS = {"admin": "admin-test-password", "dpo": "dpo-test-password"}
_passwords_file = Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json"
_passwords_file.write_text(json.dumps(UI_PASSWORDS))
os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(_passwords_file)
os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = secrets.token_hex(64)

from include.retention.database.target import Target, connect  # noqa: E402
from scripts.mail_sink import MailSink  # noqa: E402
from scripts.throwaway_postgres import fresh_postgres_database, throwaway_postgres  # noqa: E402

BACKENDS = ["sqlite", "postgresql"]


@event.listens_for(Pool, "checkout")
def _sqlite_without_fsync(dbapi_conn, _record, _proxy) -> None:  # noqa: ANN001 - DB-API objects
    """Every SQLite file this test process opens (targets, their attached archive, Airflow's
    metadata) commits without waiting for the disk (``synchronous = OFF``): the files are
    thrown away, and SQLite's fsyncs were a third of the SQLite tests' time. What a
    connection reads and the locks writers take are unchanged; subprocesses keep the default.
    Set at checkout, after the engine's own ``connect`` hook has attached the archive (SQLite
    refuses the change inside a transaction, which a checkout from a single-connection pool can be)."""
    if isinstance(dbapi_conn, sqlite3.Connection) and not dbapi_conn.in_transaction:
        cursor = dbapi_conn.cursor()
        for _, schema, _ in cursor.execute("PRAGMA database_list").fetchall():
            cursor.execute(f'PRAGMA "{schema}".synchronous = OFF')
        cursor.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """One real PostgreSQL server for the whole session."""
    with throwaway_postgres() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty target database, on SQLite then on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'target.db'}"
    return fresh_postgres_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def target(target_url: str) -> Iterator[Target]:
    t = connect(target_url, "archive")
    yield t
    t.dispose()


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Migrate the (temporary, SQLite) Airflow metadata database once per session."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
    )


@pytest.fixture
def mail_sink() -> Iterator[MailSink]:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it receives, stopped after the test."""
    with MailSink() as sink:
        yield sink
