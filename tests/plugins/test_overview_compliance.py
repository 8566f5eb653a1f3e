"""The overview says, per category, whether the schedule is kept today (conforme / non conforme
and why, the DPO report's own counting), links to the latest DPO report, and shows times on the
policy's clocks - in French by default, in English on request."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text
from view_client import copy_of_the_target, view_client

from include.retention.database import store
from include.retention.policy.load import load_policy
from include.retention.records import audit
from include.retention.records.audit import RunContext


@pytest.fixture(scope="module")
def view(tmp_path_factory, airflow_db):
    with view_client(tmp_path_factory.mktemp("overview")) as client:
        yield client


def compliance_rows(page: str) -> dict[str, tuple[str, str]]:
    """category -> (data-compliant, the row's text)."""
    section = page.split("<section id='compliance'>", 1)[1].split("</section>", 1)[0]
    return {
        key: (compliant, re.sub(r"<[^>]+>", " ", row))
        for key, compliant, row in re.findall(
            r"<tr data-category='([^']+)' data-compliant='(yes|no)'[^>]*>(.*?)</tr>", section
        )
    }


def test_each_category_is_conforme_or_non_conforme_with_the_reason(view):
    rows = compliance_rows(view.get("/retention/").text)
    assert set(rows) == set(load_policy().categories)
    # The two categories the UI target ran are kept; customers never ran, so rows are overdue.
    assert rows["prospection"][0] == "yes" and "conforme" in rows["prospection"][1]
    assert rows["customer_relationship"][0] == "no" and "non conforme" in rows["customer_relationship"][1]
    assert re.search(
        r"customers : \d+ ligne\(s\) en retard, la plus ancienne devait quitter la base active le \d+(er)? \w+ \d{4}",
        rows["customer_relationship"][1],
    )


def test_the_compliance_table_reads_in_english_on_request(view):
    page = view.get("/retention/", params={"lang": "en"}).text
    rows = compliance_rows(page)
    assert "not compliant" in rows["customer_relationship"][1] and "row(s) overdue" in rows["customer_relationship"][1]
    assert "Customer relationship management" in page or "relationship" in rows["customer_relationship"][1].lower()
    assert "<html lang='en'>" in page


def test_without_a_report_the_overview_says_which_dag_writes_one(view):
    page = view.get("/retention/").text
    assert "Aucun rapport DPO n&#x27;a encore été écrit : le DAG retention_dpo_report en écrit un chaque mois." in page
    assert "id='dpo-report-link'" not in page


def test_the_overview_links_to_the_latest_report_in_the_reader_s_language(view):
    folder = view.home / "reports" / "dpo"
    folder.mkdir(parents=True, exist_ok=True)
    for name in (
        "retention-dpo-report_2026-10-01_2026-10-31.fr.html",
        "retention-dpo-report_2026-11-01_2026-11-30.fr.html",
        "retention-dpo-report_2026-11-01_2026-11-30.en.html",
    ):
        (folder / name).write_text(f"<html><body>{name}</body></html>")
    try:
        french = view.get("/retention/").text
        assert (
            "id='dpo-report-link' href='/retention/reports/retention-dpo-report_2026-11-01_2026-11-30.fr.html'"
            in french
        )
        english = view.get("/retention/", params={"lang": "en"}).text
        assert "href='/retention/reports/retention-dpo-report_2026-11-01_2026-11-30.en.html?lang=en'" in english
    finally:
        for path in folder.iterdir():
            path.unlink()


@pytest.mark.parametrize(
    "instant, french, english",
    [
        # Winter: UTC+1 - the day after in Paris.
        (
            datetime(2026, 11, 30, 23, 12, tzinfo=UTC),
            "1er décembre 2026 à 00:12 (heure de Paris)",
            "1 December 2026 at 00:12 (Paris time)",
        ),
        # Summer: UTC+2.
        (
            datetime(2026, 7, 1, 22, 30, tzinfo=UTC),
            "2 juillet 2026 à 00:30 (heure de Paris)",
            "2 July 2026 at 00:30 (Paris time)",
        ),
    ],
)
def test_the_last_event_is_dated_on_paris_clocks_never_in_utc(view, tmp_path, monkeypatch, instant, french, english):
    target = copy_of_the_target(tmp_path, monkeypatch)
    policy = load_policy()
    monkeypatch.setattr(audit.instants, "utc_now", lambda: instant)
    with target.engine.begin() as conn:
        audit.record(
            conn,
            store.audit_table("archive", policy.audit_table),
            RunContext("manual__fixed", "legal_hold", date(2026, 12, 1), policy.version),
            category="suppliers",
            action="legal_hold",
            row_count=0,
        )
    target.dispose()
    page = view.get("/retention/").text
    assert re.search(r"Dernier événement d&#x27;audit <b>#\d+</b>, enregistré le " + re.escape(french), page)
    assert english in view.get("/retention/", params={"lang": "en"}).text
    assert "UTC" not in re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    short = instant.astimezone(policy.zone).strftime("%d/%m/%Y %H:%M")
    audit_page = view.get("/retention/audit", params={"run_id": "manual__fixed"}).text
    assert f"<td>{short}</td>" in audit_page and "enregistré (heure de Paris)" in audit_page


def test_a_database_that_does_not_match_the_policy_leaves_the_rest_of_the_overview(view, tmp_path, monkeypatch):
    target = copy_of_the_target(tmp_path, monkeypatch)
    with target.engine.begin() as conn:
        conn.execute(text("DROP TABLE web_form_submissions"))
    target.dispose()
    response = view.get("/retention/")
    assert response.status_code == 200
    section = response.text.split("<section id='compliance'>", 1)[1].split("</section>", 1)[0]
    assert "La conformité n&#x27;a pas pu être comptée :" in section and "web_form_submissions" in section
    assert "id='chain-status'" in response.text and "id='latest-runs'" in response.text
