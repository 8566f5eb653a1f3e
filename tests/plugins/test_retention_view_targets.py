"""The Retention view of a deployment that serves several targets (``$RETENTION_TARGETS``):
``?target=<name>`` chooses the policy, the connection and the folder of evidence; without it the
view says which targets there are; a name not served is a 404."""

from __future__ import annotations

import re

import pytest
from ui_target import SECRET, bearer, seeded_target

from include.retention.database import store
from include.retention.files import site_folder
from include.retention.settings import KEY_ENV_VAR

SHIPPED = "include/policy/retention_policy.yaml"


def _certify_runs(url: str, folder: str) -> int:
    """Each finished run's certificate in the target's folder, as tasks.summary writes it there."""
    from include.retention.database.target import connect
    from include.retention.policy.load import load_policy
    from include.retention.reports import certificate

    policy, target = load_policy(), connect(url)
    table = store.audit_table("archive", policy.audit_table)
    try:
        with target.read() as conn, site_folder(folder):
            runs = certificate.latest_runs(conn, table)
            for run in runs:
                certificate.write(certificate.build(conn, table, policy, run["run_id"]))
    finally:
        target.dispose()
    return len(runs)


@pytest.fixture(scope="module")
def two(tmp_path_factory, airflow_db):
    """Airflow's API app with the plugin, serving paris (its runs certified in reports/paris) and
    lyon (another database, whose certificates were never written)."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    home = tmp_path_factory.mktemp("two")
    for name in ("paris", "lyon"):
        (home / name).mkdir()
    paris, _ = seeded_target(home / "paris" / "target.db")
    lyon, _ = seeded_target(home / "lyon" / "target.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RETENTION_TARGETS", f"paris={SHIPPED},lyon={SHIPPED}")
        patch.setenv("AIRFLOW_CONN_RETENTION_TARGET_PARIS", paris)
        patch.setenv("AIRFLOW_CONN_RETENTION_TARGET_LYON", lyon)
        patch.delenv("AIRFLOW_CONN_RETENTION_TARGET", raising=False)
        patch.setenv("RETENTION_REPORTS_DIR", str(home / "reports"))
        patch.setenv(KEY_ENV_VAR, SECRET)
        certified = _certify_runs(f"sqlite:///{home / 'paris' / 'target.db'}", "paris")
        purge_cached_app()
        with TestClient(create_app("core")) as client:
            client.certified = certified
            client.headers.update(bearer(client))
            yield client
        purge_cached_app()


def test_each_target_is_checked_against_its_own_database_and_folder(two):
    paris = two.get("/retention/api/chain?target=paris")
    assert paris.status_code == 200, paris.text
    assert paris.json()["intact"] is True and paris.json()["certificates"] == two.certified > 0
    lyon = two.get("/retention/api/chain?target=lyon").json()  # its runs' certificates are not in reports/lyon
    assert lyon["intact"] is False and lyon["certificates"] == 0


@pytest.mark.parametrize("path", ["/retention/api/chain", "/retention/audit", "/retention/chain", "/retention/holds"])
def test_without_a_target_the_answer_names_the_served_ones(two, path):
    response = two.get(path)
    assert response.status_code == 400
    assert (
        response.json()["detail"]
        == "bad parameter target: this deployment serves several targets, name one: paris, lyon"
    )


def test_the_overview_without_a_target_lets_the_dpo_choose_one(two):
    page = two.get("/retention/")
    assert page.status_code == 200
    assert "href='/retention/?target=paris'" in page.text and "href='/retention/?target=lyon'" in page.text


def test_a_target_not_served_is_a_404_naming_it(two):
    response = two.get("/retention/api/chain?target=nantes")
    assert response.status_code == 404
    assert response.json()["detail"] == "target 'nantes' is not served here; served: paris, lyon"


def test_the_pages_links_keep_the_target(two):
    page = two.get("/retention/?target=paris&lang=en")
    assert page.status_code == 200, page.text
    links = re.findall(r"href='([^']*)'", page.text)
    assert links and all("target=paris" in link for link in links), links
    assert "Audit log intact" in page.text
    audit = two.get("/retention/audit?target=lyon").text
    assert "<input type='hidden' name='target' value='lyon'>" in audit
    schedule = two.get("/retention/schedule?target=lyon").text  # the language switch keeps it too
    assert "href='/retention/schedule?target=lyon&amp;lang=en'" in schedule
