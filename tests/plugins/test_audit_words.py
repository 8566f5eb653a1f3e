"""The audit browser speaks the reader's language: actions and categories in words, true and
false as oui/non - while the filters' values stay the codes of the log, so that a link to a
filtered page is the same in French and in English."""

from __future__ import annotations

import re
from html import unescape

import pytest
from view_client import log_event, view_client

from include.retention.language import translator
from include.retention.records.audit import ACTIONS
from include.retention_airflow.ui.audit_browser import ACTION_WORDS

RUN = "manual__words"


@pytest.fixture(scope="module")
def view(tmp_path_factory, airflow_db):
    """The view over the UI target, with one event whose details hold booleans."""
    with view_client(tmp_path_factory.mktemp("audit-words")) as client:
        log_event(
            client.home,
            RUN,
            "retention_prospection",
            "prospection",
            action="validation",
            row_count=0,
            table_name="prospects",
            details={"passed": False, "checks": {"orphans": True}},
        )
        yield client


def cells(page: str) -> list[list[str]]:
    """The text of each cell of each event row."""
    events = page.split("id='audit-events'", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", events.split("<tbody>", 1)[1], re.S)
    return [
        [unescape(re.sub(r"<[^>]+>", " ", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)]
        for r in rows
    ]


def options(page: str, name: str) -> dict[str, str]:
    """A filter's options: value -> the text shown."""
    select = re.search(rf"<select name='{name}'>(.*?)</select>", page, re.S)
    assert select
    return {v: unescape(t) for v, t in re.findall(r"<option value='([^']*)'[^>]*>([^<]*)</option>", select.group(1))}


def test_every_action_of_the_log_has_words_in_both_languages():
    assert set(ACTION_WORDS) == set(ACTIONS)
    _ = translator("fr", "ui")
    french = {action: _(words) for action, words in ACTION_WORDS.items()}
    assert french["run_summary"] == "bilan de l'exécution" and french["legal_hold"] == "gel juridique"
    assert len(set(french.values())) == len(ACTIONS)  # no two actions read the same


def test_the_actions_and_categories_read_in_french_in_the_table_and_the_filters(view):
    page = view.get("/retention/audit").text
    rows = cells(page)
    shown_actions = {row[3] for row in rows}
    assert "planification" in shown_actions and "bilan de l'exécution" in shown_actions
    assert not shown_actions & set(ACTIONS) - {"rectification"}
    assert "Gestion et suivi de la prospection commerciale" in {row[2] for row in rows}
    assert not {row[2] for row in rows} & {"prospection", "web_forms"}
    action_filter, category_filter = options(page, "action"), options(page, "category")
    assert action_filter["run_summary"] == "bilan de l'exécution" and action_filter["plan"] == "planification"
    assert category_filter["prospection"] == "Gestion et suivi de la prospection commerciale"


def test_the_filters_keep_the_codes_as_values_in_english_too(view):
    page = view.get("/retention/audit", params={"lang": "en", "action": "run_summary"}).text
    assert options(page, "action")["run_summary"] == "run summary"
    assert "<option value='run_summary' selected>" in page
    assert {row[3] for row in cells(page)} == {"run summary"}


def test_true_and_false_in_the_details_read_oui_and_non(view):
    page = view.get("/retention/audit", params={"run_id": RUN}).text
    details = re.findall(r"<dl class='details'>.*?</dl>", page, re.S)
    assert len(details) == 1
    text = unescape(re.sub(r"<[^>]+>", " ", details[0]))
    assert "False" not in text and "True" not in text
    assert re.search(r"passed:\s+non", text) and re.search(r"checks\.orphans:\s+oui", text)
    english = view.get("/retention/audit", params={"run_id": RUN, "lang": "en"}).text
    assert re.search(r"passed:</dt><dd>no<", english)
