"""The Dolibarr example policy (examples/dolibarr/retention_policy.yaml) on a synthetic database in
Dolibarr's real schema (tests/include/dolibarr_world.py): one whole run of every category for
2026-11-26, through the steps the DAG tasks call (both gates included), on SQLite and on the
throwaway PostgreSQL; then every row must be exactly where the hand-written schedule says
(``EXPECTED``, one test per row and backend), and a second run must change nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dolibarr_world import (
    AS_OF,
    CATEGORIES,
    DEFECTS,
    EXPECTED,
    RETENTION,
    UNDATED_IN_ARCHIVE,
    actual_states,
    dolibarr_policy,
    expected_state,
    seed,
)
from engine_helpers import archive_rows, run_whole
from table_checksums import checksum

from include.retention.database.identity import SubjectKey
from include.retention.database.store import audit_table
from include.retention.database.target import connect
from include.retention.records.audit import events
from scripts.throwaway_postgres import fresh_postgres_database

KEY = SubjectKey("k" * 40, "test")
BOOKKEEPING = {"plan", "validation", "quality_finding", "run_summary"}

# Rows on which the engine disagrees with the schedule: (table, key) -> why. Each is a
# strict xfail, so the day the engine is fixed the test says so.
ENGINE_DISAGREES: dict[tuple[str, Any], str] = {}


def _run_all(target, policy, label: str) -> list[str]:
    run_ids = []
    for key in CATEGORIES:
        run_whole(target, policy, key, AS_OF, f"{label}-{key}", KEY)
        run_ids.append(f"{label}-{key}")
    return run_ids


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def dolibarr_run(request, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """One Dolibarr database per backend, after one run of every category in the crons' order;
    the state of every row is read at once, before any test can run the engine again."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('dolibarr') / 'dolibarr.db'}"
    else:
        url = fresh_postgres_database(request.getfixturevalue("postgres_server"))
    target = connect(url, "archive")
    try:
        seed(target)
        policy = dolibarr_policy()
        run_ids = _run_all(target, policy, "first")
        yield {
            "backend": request.param,
            "target": target,
            "policy": policy,
            "run_ids": run_ids,
            "states": actual_states(target),
        }
    finally:
        target.dispose()


def _row_id(key: tuple[str, Any]) -> str:
    table, row = key
    return f"{table}[{','.join(map(str, row)) if isinstance(row, tuple) else row}]"


ROWS = [
    pytest.param(
        key,
        id=_row_id(key),
        marks=[pytest.mark.xfail(strict=True, reason=ENGINE_DISAGREES[key])] if key in ENGINE_DISAGREES else [],
    )
    for key in EXPECTED
]


@pytest.mark.parametrize("row", ROWS)
def test_every_dolibarr_row_is_where_the_schedule_says(dolibarr_run, row):
    assert dolibarr_run["states"][row] == expected_state(row), f"{row} on {dolibarr_run['backend']}"


def test_archived_dolibarr_rows_keep_the_retention_dates_of_the_schedule(dolibarr_run):
    target = dolibarr_run["target"]
    found = {}
    for archive in {a for a, _ in RETENTION}:
        for r in archive_rows(target, archive):
            key = r.get("rowid")
            found[(archive, key)] = (r["retention_start"], r["retention_until"])
    assert {k: found.get(k) for k in RETENTION} == RETENTION


def test_dolibarr_rows_without_a_start_date_are_reported(dolibarr_run):
    target, policy = dolibarr_run["target"], dolibarr_run["policy"]
    with target.read() as conn:
        logged = [
            e
            for run_id in dolibarr_run["run_ids"]
            for e in events(conn, audit_table("archive", policy.audit_table), run_id=run_id)
        ]
    found = {(e["category"], e["table_name"]): e["row_count"] for e in logged if e["action"] == "quality_finding"}
    assert found == DEFECTS
    undated = {
        (e["category"], e["table_name"]): e["row_count"]
        for e in logged
        if e["action"] == "validation"
        and e["details"]["expectation"] == "archive_rows_have_a_start_date"
        and not e["details"]["success"]
    }
    assert undated == UNDATED_IN_ARCHIVE


def test_a_second_dolibarr_run_changes_nothing(dolibarr_run):
    target, policy = dolibarr_run["target"], dolibarr_run["policy"]
    before = checksum(target)
    run_ids = _run_all(target, policy, "again")
    assert checksum(target) == before
    with target.read() as conn:
        logged = [
            e for run_id in run_ids for e in events(conn, audit_table("archive", policy.audit_table), run_id=run_id)
        ]
    assert {e["action"] for e in logged} <= BOOKKEEPING
    assert [(e["table_name"], e["row_count"]) for e in logged if e["action"] == "plan" and e["row_count"]] == []


def test_the_dolibarr_example_names_its_sources():
    readme = (Path(__file__).resolve().parents[2] / "examples" / "dolibarr" / "README.md").read_text()
    for table in (
        "llx_societe",
        "llx_socpeople",
        "llx_contrat",
        "llx_contratdet",
        "llx_facture",
        "llx_facturedet",
        "llx_actioncomm",
        "llx_categorie_societe",
        "llx_societe_commerciaux",
    ):
        assert f"htdocs/install/mysql/tables/{table}.sql" in readme, table
