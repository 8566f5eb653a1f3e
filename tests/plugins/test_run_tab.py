"""The certificate tab Airflow shows on every DAG run: the run looked up by its DAG and run ids
together (run ids are unique per DAG only), in French by default, and a page - not a 404 - for
a run of another DAG or a run that has logged nothing yet."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from ui_target import RUNS
from view_client import log_event, view_client

SHARED = RUNS["prospection"]  # a run id the web_forms DAG uses too, below


@pytest.fixture(scope="module")
def view(tmp_path_factory, airflow_db):
    """The view over the UI target, where a run of retention_web_forms shares the prospection run's id."""
    with view_client(tmp_path_factory.mktemp("run-tab")) as client:
        log_event(
            client.home,
            SHARED,
            "retention_web_forms",
            "web_forms",
            action="plan",
            row_count=0,
            table_name="web_form_submissions",
        )
        yield client


def tab(view, dag_id: str, run_id: str, **params: str):
    """The tab's page as Airflow's UI asks for it: both ids URL-encoded into the href."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return view.get(
        f"/retention/run?dag_id={quote(dag_id, safe='')}&run_id={quote(run_id, safe='')}"
        + (f"&{query}" if query else "")
    )


def test_the_tab_shows_the_run_s_certificate_in_french_and_in_english_on_request(view):
    french = tab(view, "retention_prospection", SHARED)
    assert french.status_code == 200 and "Certificat de suppression" in french.text
    assert '<html lang="fr"' in french.text
    english = tab(view, "retention_prospection", SHARED, lang="en")
    assert "Deletion certificate" in english.text


def test_a_run_id_two_dags_share_gives_each_dag_its_own_certificate(view):
    """Without the DAG id the certificate mixed both DAGs' events (the first event's category won)."""
    prospection = view.get(f"/retention/certificates/retention_prospection/{SHARED}", params={"format": "json"}).json()
    web_forms = view.get(f"/retention/certificates/retention_web_forms/{SHARED}", params={"format": "json"}).json()
    assert prospection["category"] == "prospection" and prospection["dag_id"] == "retention_prospection"
    assert "web_form_submissions" not in {t["table"] for t in prospection["tables"]}
    assert web_forms["category"] == "web_forms" and web_forms["dry_run"] is True
    assert {t["table"] for t in web_forms["tables"]} == {"web_form_submissions"}
    assert "Gestion et suivi de la prospection commerciale" in tab(view, "retention_prospection", SHARED).text
    assert "Formulaires du site web" in tab(view, "retention_web_forms", SHARED).text


def test_a_run_of_a_dag_that_is_not_the_schedule_s_says_so_in_french(view):
    page = tab(view, "example_dag", "manual__2026-12-01T10:00:00+00:00")
    assert page.status_code == 200
    assert "id='run-certificate-missing'" in page.text
    assert "Le DAG example_dag n&#x27;applique pas le calendrier de conservation" in page.text
    english = tab(view, "example_dag", "x", lang="en")
    assert "The DAG example_dag does not apply the retention schedule" in english.text


def test_a_run_that_logged_nothing_yet_says_its_certificate_comes_later(view):
    page = tab(view, "retention_suppliers", "scheduled__2026-12-01T02:50:00+00:00")
    assert page.status_code == 200 and "Pas encore de certificat" in page.text
    assert "n&#x27;a encore rien inscrit au journal d&#x27;audit" in page.text


def test_the_tab_refuses_a_bad_parameter_naming_it(view):
    for params, name in [({"dag_id": "retention_prospection"}, "run_id"), ({"run_id": "x"}, "dag_id")]:
        response = view.get("/retention/run", params=params)
        assert response.status_code == 400 and name in response.json()["detail"]
    bad = view.get("/retention/run", params={"dag_id": "retention_prospection", "run_id": "x\x01"})
    assert bad.status_code == 400 and "run_id" in bad.json()["detail"]
    language = tab(view, "retention_prospection", SHARED, lang="de")
    assert language.status_code == 400 and "lang" in language.json()["detail"]


@pytest.mark.parametrize(
    "path", ["/retention/run?dag_id=a&run_id=b", "/retention/tonight", "/retention/reports", "/retention/approvals"]
)
def test_the_new_pages_refuse_an_anonymous_request(view, path):
    assert view.get(path, headers={"Authorization": ""}).status_code == 401
