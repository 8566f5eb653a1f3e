""" "Ce soir": per category, what the next scheduled run will do (the forecast of
schedule.tonight), for the day of the DAG's next run in Airflow's metadata, in Paris time; a
paused DAG says nothing will run; a category that cannot be counted shows its problem and the
others are still counted."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape

import pytest
from sqlalchemy import text
from view_client import copy_of_the_target, view_client

from include.retention.database.target import connect
from include.retention.dates.words import day_words
from include.retention.policy.load import load_policy
from include.retention.schedule.tonight import forecast
from include.retention_airflow.ui import tonight
from include.retention_airflow.ui.next_runs import NextRun


@pytest.fixture(scope="module")
def view(tmp_path_factory, airflow_db):
    with view_client(tmp_path_factory.mktemp("tonight")) as client:
        yield client


def rows(page: str) -> dict[str, list[str]]:
    """category -> its cells' text."""
    section = page.split("<section id='tonight'>", 1)[1].split("</section>", 1)[0]
    found = {}
    for category, row in re.findall(r"<tr data-category='([^']+)'[^>]*>(.*?)</tr>", section, re.S):
        found[category] = [
            unescape(re.sub(r"<[^>]+>", " ", cell)).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
    return found


NEXT = datetime(2026, 12, 2, 1, 30, tzinfo=UTC)  # 02:30 in Paris


@pytest.fixture
def scheduled(monkeypatch):
    """Airflow's metadata as the scheduler leaves it: prospection next runs on 2 December at
    02:30 Paris time, suppliers is paused, the others are not parsed."""

    def next_runs(session, dag_ids):
        runs = {dag_id: NextRun(dag_id, False) for dag_id in dag_ids}
        runs["retention_prospection"] = NextRun("retention_prospection", True, False, NEXT)
        runs["retention_suppliers"] = NextRun("retention_suppliers", True, True, NEXT)
        return runs

    monkeypatch.setattr(tonight, "next_runs", next_runs)


def test_each_category_shows_what_its_next_run_will_do_counted_as_the_plan_counts(view, scheduled):
    page = view.get("/retention/tonight").text
    found = rows(page)
    policy = load_policy()
    assert set(found) == set(policy.categories)
    target = connect(f"sqlite:///{view.home / 'target.db'}")
    try:
        expected = forecast(target, policy, "customer_relationship", datetime.now(policy.zone).date())
    finally:
        target.dispose()
    customers = found["customer_relationship"]
    assert customers[3] == str(expected.due_for_archive) and customers[4].startswith(str(expected.due_for_end_of_life))
    assert customers[6].startswith("oui : customers dépasse(nt) la limite de suppression")
    assert "pas encore dans Airflow" in customers[1]
    assert re.search(r"Compté en \d+,\d s\.", page)


def test_the_next_run_is_shown_on_paris_clocks_and_counted_for_its_day(view, scheduled):
    found = rows(view.get("/retention/tonight").text)
    assert found["prospection"][1] == "2 décembre 2026 à 02:30 (heure de Paris)"
    assert found["prospection"][2] == "2 décembre 2026"
    english = rows(view.get("/retention/tonight", params={"lang": "en"}).text)
    assert english["prospection"][1] == "2 December 2026 at 02:30 (Paris time)"


def test_a_paused_dag_says_nothing_will_run(view, scheduled):
    found = rows(view.get("/retention/tonight").text)
    assert found["suppliers"][1] == "en pause : rien ne tournera"
    assert (
        rows(view.get("/retention/tonight", params={"lang": "en"}).text)["suppliers"][1] == "paused: nothing will run"
    )


def test_a_category_that_cannot_be_counted_shows_its_problem_and_the_others_are_counted(view, tmp_path, monkeypatch):
    target = copy_of_the_target(tmp_path, monkeypatch)
    with target.engine.begin() as conn:
        conn.execute(text("DROP TABLE web_form_submissions"))
    target.dispose()
    page = view.get("/retention/tonight").text
    assert "data-category='web_forms' data-problem=yes" in page
    found = rows(page)
    assert (
        found["web_forms"][3].startswith("Impossible à compter :") and "web_form_submissions" in found["web_forms"][3]
    )
    assert found["customer_relationship"][3].isdigit()


def test_without_a_parsed_dag_the_forecast_is_for_today(view, monkeypatch):
    """A DAG Airflow has not parsed: each category says so, counted as of today. Airflow's
    metadata says it (``next_runs``, tested in test_next_runs.py against the real database);
    here it is set, since the session's metadata database holds the DAGs other tests parsed."""
    monkeypatch.setattr(tonight, "next_runs", lambda session, dag_ids: {d: NextRun(d, False) for d in dag_ids})
    found = rows(view.get("/retention/tonight").text)
    today = datetime.now(load_policy().zone).date()
    assert all("pas encore dans Airflow" in cells[1] for cells in found.values())
    assert all(cells[2] == day_words(today, "fr") for cells in found.values())
