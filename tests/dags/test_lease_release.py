"""A run whose certificate cannot be written still gives its category back (issue 15, item 9).

The summary wrote the certificate, then released the category's lease: when the write
failed (a run id too long for a file name, a read-only or missing folder), the lease stayed,
and the next run of the category was refused as ``CategoryBusy``. Here the reports folder
is a path under a regular file, so that writing any certificate fails; the run must fail
loudly, its audit log must say the certificate was not written, and the next run must start.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from dag_helpers import AS_OF
from sqlalchemy import select

from include.retention.database.store import audit_table, locks_table
from include.retention.records.audit import events

DAG_ID = "retention_prospection"


@pytest.fixture(scope="module")
def bag():
    """A DagBag of this module's own, whose tasks do not retry (``dag.test`` would wait out the
    10-minute retry delay of the failed summary)."""
    from airflow.dag_processing.dagbag import DagBag

    dagbag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    for task in dagbag.dags[DAG_ID].tasks:
        task.retries = 0
    return dagbag


def _run(bag):
    return bag.dags[DAG_ID].test(
        logical_date=datetime.now(UTC), run_conf={"as_of": AS_OF.isoformat(), "mode": "execute"}
    )


def test_a_run_whose_certificate_cannot_be_written_releases_its_category_and_says_so(
    bag, seeded_postgres, tmp_path, monkeypatch, capfd
):
    target = seeded_postgres
    not_a_folder = tmp_path / "reports-is-a-file"
    not_a_folder.write_text("")
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(not_a_folder / "reports"))
    capfd.readouterr()

    failed = _run(bag)

    output = "".join(capfd.readouterr())
    states = {ti.task_id: ti.state for ti in failed.get_task_instances()}
    assert failed.state == "failed" and states["summary"] == "failed" and states["archive"] == "success"
    assert "deletion certificate" in output and "was not written" in output
    with target.read() as conn:
        assert conn.execute(select(locks_table("archive"))).all() == []  # the lease was given back
        logged = events(conn, audit_table("archive", "retention_audit"), run_id=failed.run_id)
    (missing,) = [e for e in logged if e["action"] == "validation" and e["details"].get("suite") == "certificate"]
    assert missing["details"]["expectation"] == "deletion_certificate_written"
    assert missing["details"]["success"] is False and missing["details"]["outcome"] == "NotADirectoryError"

    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path / "reports"))
    again = _run(bag)

    assert again.state == "success", "the next run of the category must not be refused as busy"
    assert "CategoryBusy" not in "".join(capfd.readouterr())
