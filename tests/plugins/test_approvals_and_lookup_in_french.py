"""The pending approvals page and the "was X erased?" answer, in French by default: the DPO reads
the verdict, the kinds of record and the times on Paris clocks in French; approvals link into
Airflow's Required Actions."""

from __future__ import annotations

import pytest
from view_client import view_client


@pytest.fixture(scope="module")
def view(tmp_path_factory, airflow_db):
    with view_client(tmp_path_factory.mktemp("approvals")) as client:
        yield client


@pytest.fixture
def no_run_waiting():
    """Nothing awaiting an answer in Airflow's metadata: the session's database is shared, and
    runs of other tests (DAG runs past their deletion limit) may have left approvals unanswered."""
    from airflow.models.hitl import HITLDetail
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:
        session.execute(delete(HITLDetail).where(HITLDetail.responded_at.is_(None)))


def test_with_no_run_waiting_the_approvals_page_says_so_and_links_to_required_actions(view, no_run_waiting):
    page = view.get("/retention/approvals").text
    assert "Aucune exécution n&#x27;attend d&#x27;approbation." in page
    assert "<a class='required-action' target='_top' href='/required_actions'>" in page
    assert "No run is waiting for an approval." in view.get("/retention/approvals", params={"lang": "en"}).text


def test_the_lookup_answers_in_french(view):
    page = view.post("/retention/lookup", data={"kind": "email", "identifier": view.people["active"]}).text
    assert "id='lookup-verdict' class='ko'" in page
    assert "les données de la personne" in page and "enregistré (heure de Paris)" in page
    assert "Still in the active base" not in page and view.people["active"] not in page.lower()


@pytest.mark.parametrize("path", ["/retention/", "/retention/audit", "/retention/tonight", "/retention/approvals"])
def test_a_language_we_do_not_write_in_is_a_400_naming_lang(view, path):
    response = view.get(path, params={"lang": "de"})
    assert response.status_code == 400
    assert response.json()["detail"] == "bad parameter lang: language 'de' is not one we write in; use one of fr, en"


def test_every_page_has_the_tab_bar_with_the_current_page_marked_and_the_language_switch(view):
    for key, path in [
        ("overview", "/retention/"),
        ("tonight", "/retention/tonight"),
        ("audit", "/retention/audit"),
        ("reports", "/retention/reports"),
        ("holds", "/retention/holds"),
    ]:
        page = view.get(path).text
        assert f"<main id='retention-page' data-page='{key}'>" in page
        assert f"data-page='{key}' aria-current=page>" in page
        assert "<a id='language-switch' href='" in page and "hreflang='en'>EN</a>" in page
