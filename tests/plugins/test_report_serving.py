"""The DPO reports are served from the target's reports folder (its dpo/ folder), by the exact
name the report DAG writes: nothing else of the folder, nor of the server, can be read through it."""

from __future__ import annotations

import pytest
from view_client import view_client

REPORT = "retention-dpo-report_2026-11-01_2026-11-30.fr.html"


@pytest.fixture(scope="module")
def view(tmp_path_factory, airflow_db):
    with view_client(tmp_path_factory.mktemp("reports")) as client:
        folder = client.home / "reports" / "dpo"
        folder.mkdir(parents=True)
        (folder / REPORT).write_text("<html><body>Rapport DPO de novembre</body></html>")
        (folder / "notes.html").write_text("<html>not a report</html>")
        (client.home / "secret.html").write_text("<html>outside the reports folder</html>")
        yield client


def test_the_reports_page_lists_the_reports_with_links(view):
    page = view.get("/retention/reports").text
    assert f"<a class='dpo-report' href='/retention/reports/{REPORT}'>{REPORT}</a>" in page
    assert "notes.html" not in page


def test_a_report_is_served_as_the_dag_wrote_it_and_may_run_no_script(view):
    response = view.get(f"/retention/reports/{REPORT}")
    assert response.status_code == 200 and "Rapport DPO de novembre" in response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    "path",
    [
        "/retention/reports/notes.html",  # in the folder, but not a report's name
        "/retention/reports/..%2Fsecret.html",
        "/retention/reports/..%2F..%2Fsecret.html",
        "/retention/reports/%2E%2E%2F%2E%2E%2Fsecret.html",
        "/retention/reports/retention-dpo-report_2026-12-01_2026-12-31.fr.html",  # the form, but not written
        "/retention/reports/retention-dpo-report_2026-11-01_2026-11-30.fr.html%00.txt",
    ],
)
def test_anything_else_is_not_found(view, path):
    response = view.get(path)
    assert response.status_code in (400, 404), response.text
    assert "outside the reports folder" not in response.text and "not a report" not in response.text
