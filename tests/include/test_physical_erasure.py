"""What an erasure leaves on disk: docs/explanation/security.md, "What an erasure removes physically".

An erasure is a committed DELETE; the bytes of the rows can outlive it in the database
files. These tests pin down the two claims that page makes: SQLite targets overwrite
deleted content (``PRAGMA secure_delete``), and on PostgreSQL ``VACUUM FULL`` of a touched
table rewrites it into a file without the erased values.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from crm_helpers import AS_OF, KEY
from crm_helpers import crm_table as _table
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from include.retention.database.identity import Subject
from include.retention.database.target import sqlite_archive_path
from include.retention.policy.load import load_policy
from include.retention.records.audit import RunContext
from include.retention.rights.erasure import erase

# A value found nowhere else in the CRM: the only place its bytes can come from is the row.
ERASED = "remanence.probe.4711@example.fr"
CTX = RunContext("manual__remanence-1", "subject_request", AS_OF, "test")


def _add_prospect(target) -> None:
    prospects = _table(target, "prospects")  # reflected before the write transaction takes the lock
    with target.engine.begin() as conn:
        conn.execute(
            insert(prospects).values(
                prospect_id=990_001,
                first_name="Probe",
                last_name="Remanence",
                email=ERASED,
                created_at=datetime(2026, 11, 20, 10, 0),
                last_inbound_contact_at=datetime(2026, 11, 20, 10, 0),
            )
        )


def _erase(target) -> None:
    result = erase(target, load_policy(), Subject.of({"email": ERASED}), KEY, CTX)
    assert result.erased >= 1


@pytest.mark.parametrize("target_url", ["sqlite"], indirect=True)
def test_an_erased_prospect_leaves_no_bytes_in_the_sqlite_files(crm):
    _add_prospect(crm)
    database = Path(make_url(str(crm.engine.url)).database)
    crm.dispose()  # the row reaches the file before we look at it
    assert ERASED.encode() in database.read_bytes()
    _erase(crm)
    crm.dispose()
    for path in (database, sqlite_archive_path(str(database))):
        assert ERASED.encode() not in path.read_bytes(), path.name
    with crm.read() as conn:  # set by the target, not left to how SQLite was compiled
        assert [
            conn.exec_driver_sql(f'PRAGMA "{schema}".secure_delete').scalar_one() for schema in ("main", "archive")
        ] == [1, 1]


def _heap_bytes(conn, table: str) -> bytes:
    data = Path(conn.execute(text("SHOW data_directory")).scalar_one())
    relation = conn.execute(text("SELECT pg_relation_filepath(CAST(:t AS regclass))"), {"t": table}).scalar_one()
    return b"".join(
        p.read_bytes()
        for p in sorted(data.glob(relation + "*"))
        if p.name.split(".")[-1].isdigit() or p.name == Path(relation).name
    )


@pytest.mark.parametrize("target_url", ["postgresql"], indirect=True)
def test_vacuum_full_of_the_touched_table_removes_the_erased_bytes_from_its_postgresql_file(crm):
    _add_prospect(crm)
    _erase(crm)
    with crm.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("CHECKPOINT"))
        conn.execute(text("VACUUM FULL crm.prospects"))
        conn.execute(text("CHECKPOINT"))
        assert ERASED.encode() not in _heap_bytes(conn, "crm.prospects")
