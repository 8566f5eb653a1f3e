"""A certificate's address names the DAG and the run, ``/certificates/<dag_id>/<run_id>``: run
ids are unique per DAG only, and a certificate of deletion is issued only for the runs of the
target's retention_<category> DAGs - never for a legal hold's or a rights request's run."""

from __future__ import annotations

import re

import pytest
from ui_target import RUNS
from view_client import log_event, view_client

SHARED = RUNS["prospection"]  # a run id the web_forms DAG uses too, below


@pytest.fixture(scope="module")
def view(tmp_path_factory, airflow_db):
    """The view over the UI target, where a run of retention_web_forms shares the prospection
    run's id; the target also logged a rights request (subject_request) and a legal hold."""
    with view_client(tmp_path_factory.mktemp("certificate-address")) as client:
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


def test_each_dag_s_run_has_its_own_certificate_at_its_own_address(view):
    prospection = view.get(f"/retention/certificates/retention_prospection/{SHARED}", params={"format": "json"})
    assert prospection.status_code == 200
    assert "web_form_submissions" not in {t["table"] for t in prospection.json()["tables"]}
    web_forms = view.get(f"/retention/certificates/retention_web_forms/{SHARED}", params={"format": "json"}).json()
    assert {t["table"] for t in web_forms["tables"]} == {"web_form_submissions"}


def test_the_old_address_without_the_dag_is_gone(view):
    assert view.get(f"/retention/certificates/{SHARED}", params={"format": "json"}).status_code == 404


@pytest.mark.parametrize("dag_id, run_id", [("subject_request", "manual__request"), ("legal_hold", "manual__hold")])
def test_a_run_of_a_dag_that_deletes_nothing_by_the_schedule_gets_no_certificate(view, dag_id, run_id):
    page = view.get(f"/retention/certificates/{dag_id}/{run_id}")
    assert page.status_code == 404 and "Certificat de suppression" not in page.text
    assert f"Le DAG {dag_id} n&#x27;applique pas le calendrier de conservation" in page.text
    assert view.get(f"/retention/certificates/{dag_id}/{run_id}", params={"format": "json"}).status_code == 404


@pytest.mark.parametrize("path", ["/retention/certificates", "/retention/"])
def test_every_link_to_a_certificate_names_its_dag(view, path):
    links = re.findall(r"href='/retention/certificates/([^'?]+)", view.get(path).text)
    assert links, "no certificate link on the page"
    assert {link.split("/")[0] for link in links} <= {"retention_prospection", "retention_web_forms"}
    for link in links:
        assert view.get(f"/retention/certificates/{link}").status_code == 200, link
