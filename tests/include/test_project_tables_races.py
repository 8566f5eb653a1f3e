"""Two tasks that create the same project table at the same moment: the daily re-consent
campaign runs one task per category side by side, and the first campaign of each creates the
register (and the archive schema) it needs. On PostgreSQL the slower CREATE waits for the
faster one's commit, then fails on the catalog's unique index; it must find the table there
and go on, not fail the task (found by the clean-clone CI: a scheduled campaign's second task
failed with UniqueViolation and waited ten minutes for its retry)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import inspect

from include.retention.database import store
from include.retention.database.target import connect
from scripts.throwaway_postgres import fresh_postgres_database


@pytest.fixture
def pg_target(postgres_server):
    target = connect(fresh_postgres_database(postgres_server), "archive")
    yield target
    target.dispose()


def _race(create_first, create_second) -> list[BaseException]:
    """Run ``create_first`` in an open transaction, start ``create_second`` (it blocks on the
    catalog), then commit the first: what the second raised, if anything."""
    raised: list[BaseException] = []

    def second() -> None:
        try:
            create_second()
        except BaseException as exc:  # reported to the test
            raised.append(exc)

    create_first(threading.Thread(target=second))
    return raised


def test_two_campaigns_creating_the_register_at_once_both_go_on(pg_target):
    pg_target.ensure_archive_schema()
    register = store.reconsent_table(pg_target.archive_schema)
    created: list[bool] = []

    def first(other: threading.Thread) -> None:
        with pg_target.engine.begin() as conn:
            created.append(store.ensure_table(conn, register))
            other.start()
            other.join(timeout=2)  # still waiting for this transaction's catalog rows
        other.join(timeout=30)

    def second() -> None:
        with pg_target.engine.begin() as conn:
            created.append(store.ensure_table(conn, register))

    assert _race(first, second) == []
    assert sorted(created) == [False, True]
    with pg_target.read() as conn:
        assert store.table_exists(conn, register)


def test_two_tasks_creating_the_archive_schema_at_once_both_go_on(pg_target):
    def first(other: threading.Thread) -> None:
        with pg_target.engine.begin() as conn:
            conn.exec_driver_sql('CREATE SCHEMA "archive"')
            other.start()
            other.join(timeout=2)
        other.join(timeout=30)

    assert _race(first, pg_target.ensure_archive_schema) == []
    with pg_target.read() as conn:
        assert "archive" in inspect(conn).get_schema_names()
