"""What the Retention view cannot find it says in the reader's words, and never hangs on it: a
certificate's address naming a run the log does not know is a French (or ``?lang=en``) page
with a 404; a FIFO named like a DPO report is refused, not opened for ever."""

from __future__ import annotations

import os
import threading

import pytest
from fastapi import HTTPException
from view_client import view_client

from include.retention.language import translator
from include.retention_airflow.ui import reports
from include.retention_airflow.ui.audit_browser import ACTION_WORDS

REPORT = "retention-dpo-report_2026-11-01_2026-11-30.fr.html"
UNKNOWN = "/retention/certificates/retention_prospection/manual__never-ran"


@pytest.fixture(scope="module")
def view(tmp_path_factory, airflow_db):
    with view_client(tmp_path_factory.mktemp("not-found")) as client:
        yield client


def test_a_certificate_address_of_an_unknown_run_is_a_french_page_with_a_404(view):
    page = view.get(UNKNOWN)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Le journal d&#x27;audit ne contient aucun événement pour l&#x27;exécution manual__never-ran" in page.text
    english = view.get(UNKNOWN, params={"lang": "en"})
    assert english.status_code == 404 and "The audit log holds no event for the run manual__never-ran" in english.text
    assert view.get(UNKNOWN, params={"format": "json"}).status_code == 404


def test_a_fifo_named_like_a_report_is_not_served_and_does_not_block(tmp_path):
    os.mkfifo(tmp_path / REPORT)
    outcome: list[object] = []

    def read() -> None:
        try:
            outcome.append(reports._read(tmp_path, REPORT))
        except HTTPException as exc:
            outcome.append(exc.status_code)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    if reader.is_alive():  # the old code blocks in open(): a writer releases it before failing
        os.close(os.open(tmp_path / REPORT, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=10)
        pytest.fail("opening a FIFO named like a report blocked the worker")
    assert outcome == [404]


def test_a_validation_event_is_a_data_quality_check_before_or_after_the_run():
    assert translator("fr", "ui")(ACTION_WORDS["validation"]) == "contrôle de qualité des données"
    assert translator("en", "ui")(ACTION_WORDS["validation"]) == "data-quality check"
