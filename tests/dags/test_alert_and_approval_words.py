"""What a person reads in an alert or an approval is in the policy's language throughout: the
moment a run was queued on the policy's clocks with its zone named (never UTC, never ISO), a run's
state in words, the category by its label, dates as a reader says them, each excess of the
deletion limit as a sentence of that language, the sample keys as plain text (no Python repr).
Fixed instants: 2026-11-30T23:30:05Z is 1 December 2026 at 00:30 in Paris."""

from __future__ import annotations

from datetime import date

import pytest

from include.retention.database.reflect import Side
from include.retention.schedule.plan import CategoryPlan, Excess, TablePlan
from include.retention_airflow import alerts
from include.retention_airflow.approval import approval_body, sample_keys_words

LATE_RUN = {
    "dag_id": "retention_customer_relationship",
    "dag_run_id": "scheduled__2026-11-30T23:30:00+00:00",
    "queued_at": "2026-11-30T23:30:05.123456Z",  # as the REST API gives it
    "state": "running",
}
LABELS = {
    "fr": {"customer_relationship": "Gestion de la relation client", "billing": "Facturation"},
    "en": {"customer_relationship": "Customer relationship management", "billing": "Billing"},
}
ACTIVE_EXCESS = Excess(table="customers", side=Side.ACTIVE, rows=12, base=40, limit_rows=None, limit_fraction=0.1)
ARCHIVE_EXCESS = Excess(
    table="customers", side=Side.ARCHIVE, rows=1500, base=3000, limit_rows=1000, limit_fraction=0.25
)


def _plan() -> CategoryPlan:
    table = TablePlan(
        table="customers",
        active_rows=40,
        due_for_archive=12,
        due_for_end_of_life=1500,
        missing_start=0,
        missing_start_means="defect",
        last_due_start=date(2023, 12, 2),
        sample_keys={"archive": [1, 2], "end_of_life": [[7, "A"]]},
        dependants_end_of_life={"invoices": {"rows": 3, "archive_rows": 40, "category": "billing"}},
    )
    return CategoryPlan(
        category="customer_relationship",
        as_of=date(2026, 12, 2),
        policy_version="2026-11",
        has_archive=True,
        end_action="delete",
        tables=[table],
        over_limit=(ACTIVE_EXCESS, ARCHIVE_EXCESS),
    )


def test_a_late_run_is_told_at_its_queue_time_in_paris_and_its_state_in_french():
    alert = alerts.run_not_finished(LATE_RUN, 1.5, "fr", "Europe/Paris")
    text, page = alert.text(), alert.html()
    assert (
        "L'exécution n'est pas terminée 1,5 heure(s) après sa mise en file, le 1er décembre 2026 à 00:30 "
        "(heure de Paris)." in text
    )
    assert "État: en cours" in text and "running" not in text.replace("scheduled__", "")
    assert "2026-11-30T23:30:05" not in text and "UTC" not in text and "Z" not in alert.happened
    assert "1er décembre 2026 à 00:30 (heure de Paris)" in page


def test_a_late_run_is_told_in_english_when_the_policy_says_en():
    alert = alerts.run_not_finished(LATE_RUN, 1.5, "en", "Europe/Paris")
    assert alert.happened == (
        "The run has not finished 1.5 hour(s) after it was queued on 1 December 2026 at 00:30 (Paris time)."
    )
    assert ("State", "running") in alert._facts()


@pytest.mark.parametrize(
    ("state", "fr", "en"),
    [("queued", "en file d'attente", "queued"), ("success", "réussie", "succeeded"), ("failed", "échouée", "failed")],
)
def test_every_run_state_is_said_in_words(state, fr, en):
    for lang, words in (("fr", fr), ("en", en)):
        alert = alerts.run_not_finished({**LATE_RUN, "state": state}, 2, lang, "Europe/Paris")
        assert dict(alert._facts())["État" if lang == "fr" else "State"] == words


def test_a_run_without_its_queue_time_is_told_without_a_moment():
    alert = alerts.run_not_finished({**LATE_RUN, "queued_at": None}, 2, "fr", "Europe/Paris")
    assert alert.happened == "L'exécution n'est pas terminée 2 heure(s) après sa mise en file."


def test_each_excess_of_the_deletion_limit_is_a_sentence_of_the_readers_language():
    assert alerts.excess_words(ACTIVE_EXCESS, "fr") == (
        "12 lignes sur 40 de customers (30\xa0%) quitteraient la base active ; la limite est de 10\xa0%"
    )
    assert alerts.excess_words(ARCHIVE_EXCESS, "fr") == (
        "1\u202f500 lignes sur 3\u202f000 de customers (50\xa0%) quitteraient l'archive ; "
        "la limite est de 1\u202f000 lignes et 25\xa0%"
    )
    assert alerts.excess_words(ACTIVE_EXCESS, "en") == (
        "12 of 40 rows of customers (30%) would leave the active base; the limit is 10%"
    )
    assert alerts.excess_words(ARCHIVE_EXCESS, "en") == (
        "1,500 of 3,000 rows of customers (50%) would leave the archive; the limit is 1,000 rows and 25%"
    )


def test_the_approval_body_names_the_category_by_its_label_with_dates_in_words_in_french():
    body = approval_body(_plan(), "fr", LABELS["fr"])
    assert "Catégorie **Gestion de la relation client**, au 2 décembre 2026, politique 2026-11." in body
    assert "- 12 lignes sur 40 de customers (30\xa0%) quitteraient la base active ; la limite est de 10\xa0%" in body
    assert "(commencées le 2 décembre 2023 ou avant)" in body
    assert "clés d'exemple à archiver : 1, 2 ; en fin de vie : (7, A)" in body
    assert "de la catégorie Facturation au-delà" in body
    for machine in ("customer_relationship", "2026-12-02", "2023-12-02", "{'", "[1", "would leave", " rows of "):
        assert machine not in body, machine


def test_the_approval_body_in_english():
    body = approval_body(_plan(), "en", LABELS["en"])
    assert "Category **Customer relationship management**, as of 2 December 2026, policy 2026-11." in body
    assert "- 12 of 40 rows of customers (30%) would leave the active base; the limit is 10%" in body
    assert "(started on or before 2 December 2023)" in body
    assert "sample keys to archive: 1, 2; at end of life: (7, A)" in body
    assert "of category Billing past their own horizon" in body


def test_a_plan_without_sample_keys_says_none():
    assert sample_keys_words({"archive": []}, "fr") == "aucune"
    assert sample_keys_words({}, "en") == "none"


class _Ti:
    dag_id, run_id, task_id, log_url = "retention_customer_relationship", "manual__1", "approve_deletions", ""

    def xcom_pull(self, task_ids: str) -> dict:
        assert task_ids == "plan"
        return _plan().to_xcom()


class _Task:
    response_timeout = None


def test_the_approval_waiting_notice_quotes_each_excess_in_french():
    alert = alerts.approval_waiting({"ti": _Ti(), "task": _Task()}, "fr")
    assert alert.details == (
        alerts.excess_words(ACTIVE_EXCESS, "fr"),
        alerts.excess_words(ARCHIVE_EXCESS, "fr"),
    )
    assert "would leave" not in alert.text() and "quitteraient la base active" in alert.html()


def test_a_deadline_stored_by_an_earlier_release_with_hours_only_still_has_its_callback_called():
    """The triggerer calls the callback with the kwargs stored with the deadline: before the
    language and the zone were added, ``hours`` alone. The policy's defaults fill them in."""
    import inspect

    bound = inspect.signature(alerts.notify_run_not_finished).bind({"dag_run": LATE_RUN}, hours=1.5)
    bound.apply_defaults()
    assert (bound.arguments["lang"], bound.arguments["timezone"]) == ("fr", "Europe/Paris")
    alert = alerts.run_not_finished(LATE_RUN, 1.5, bound.arguments["lang"], bound.arguments["timezone"])
    assert "1er décembre 2026 à 00:30 (heure de Paris)" in alert.text()
