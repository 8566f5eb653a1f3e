"""The Retention view, over HTTP through Airflow's own API server app (plugin loading, auth
manager and all): every route needs a logged-in user, and the read-only DPO sees everything."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from ui_target import RUNS, SECRET, bearer, seeded_target

from include.retention.database import store
from include.retention.database.identity import SubjectKey, subject_hash
from include.retention.settings import KEY_ENV_VAR

# Written by the root conftest before Airflow starts: known passwords for admin and dpo.
ROUTES = [
    ("get", "/retention/"),
    ("get", "/retention/audit"),
    ("get", "/retention/certificates"),
    ("get", f"/retention/certificates/retention_prospection/{RUNS['prospection']}"),
    ("get", "/retention/schedule"),
    ("get", "/retention/holds"),
    ("get", "/retention/chain"),
    ("get", "/retention/api/chain"),
    ("get", "/retention/lookup"),
    ("post", "/retention/lookup"),
]


@pytest.fixture(scope="module")
def ui(tmp_path_factory, airflow_db):
    """Airflow's API app with the plugin mounted, over the seeded target."""
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    home = tmp_path_factory.mktemp("ui")
    connection, people = seeded_target(home / "target.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_RETENTION_TARGET", connection)
        patch.setenv("RETENTION_REPORTS_DIR", str(home / "reports"))
        patch.setenv(KEY_ENV_VAR, SECRET)
        _certify_runs(f"sqlite:///{home / 'target.db'}")
        purge_cached_app()
        with TestClient(create_app("core")) as client:
            client.people = people
            yield client
        purge_cached_app()


def _certify_runs(url: str) -> None:
    """Each finished run's certificate in the reports folder, as tasks.summary writes it: the
    chain status expects one per run."""
    from include.retention.database.target import connect
    from include.retention.policy.load import load_policy
    from include.retention.reports import certificate

    policy, target = load_policy(), connect(url)
    table = store.audit_table("archive", policy.audit_table)
    try:
        with target.read() as conn:
            for run in certificate.latest_runs(conn, table):
                certificate.write(certificate.build(conn, table, policy, run["run_id"]))
    finally:
        target.dispose()


@pytest.mark.parametrize("method, path", ROUTES)
def test_every_route_refuses_an_anonymous_request(ui, method, path):
    response = getattr(ui, method)(
        path, **({"data": {"kind": "email", "identifier": "a@b.fr"}} if method == "post" else {})
    )
    assert response.status_code == 401


@pytest.mark.parametrize("method, path", [r for r in ROUTES if r[0] == "get"])
def test_the_read_only_dpo_sees_every_page(ui, method, path):
    assert ui.get(path, headers=bearer(ui)).status_code == 200


def test_the_airflow_ui_session_cookie_is_accepted_as_in_the_embedded_view(ui):
    token = bearer(ui)["Authorization"].removeprefix("Bearer ")
    ui.cookies.set("_token", token)
    try:
        assert ui.get("/retention/").status_code == 200
    finally:
        ui.cookies.clear()


def test_the_overview_shows_the_last_event_and_the_latest_runs_and_the_chain_page_verifies(ui):
    page = ui.get("/retention/", headers=bearer(ui)).text
    chain = ui.get("/retention/api/chain", headers=bearer(ui)).json()
    assert f"Dernier événement d&#x27;audit <b>#{chain['events']}</b>" in page  # French by default (issue 20)
    english = {"lang": "en"}
    assert "Audit log intact" in ui.get("/retention/", params=english, headers=bearer(ui)).text
    assert "Audit log intact" in ui.get("/retention/chain", params=english, headers=bearer(ui)).text
    assert RUNS["prospection"] in page and RUNS["web_forms"] in page


def test_a_target_connection_of_the_wrong_type_is_named_as_such_not_as_missing(ui, monkeypatch):
    """A connection that exists but cannot serve (a mysql one) must say what is wrong with it:
    "is not defined" would send the operator to create a connection that is already there."""
    monkeypatch.setenv("AIRFLOW_CONN_RETENTION_TARGET", json.dumps({"conn_type": "mysql", "host": "crm.example"}))
    with pytest.raises(ValueError, match="has type 'mysql'; use postgres or sqlite"):
        ui.get("/retention/", headers=bearer(ui))


def test_a_missing_target_connection_is_a_503_that_names_it(ui, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_RETENTION_TARGET")
    response = ui.get("/retention/", headers=bearer(ui))
    assert response.status_code == 503
    assert "the Airflow connection 'retention_target' is not defined" in response.text


def test_the_audit_browser_filters_by_category_and_action(ui):
    page = ui.get("/retention/audit", params={"category": "web_forms", "action": "archive"}, headers=bearer(ui)).text
    rows = [line for line in page.split("<tr>") if "<td" in line]
    # the category's label and the action's words, in French (issue 20), for the codes filtered on
    assert rows and all("Formulaires du site web" in r and ">archivage<" in r for r in rows)
    assert "prospection" not in "".join(rows)


def test_the_audit_browser_filters_by_run(ui):
    page = ui.get("/retention/audit", params={"run_id": RUNS["web_forms"]}, headers=bearer(ui)).text
    rows = [line for line in page.split("<tr>") if "<td" in line]
    assert rows and all(RUNS["web_forms"] in r for r in rows)


def test_the_audit_browser_filters_by_date_range(ui):
    today = datetime.now(ZoneInfo("Europe/Paris")).date()  # the days are the policy's (issue 20: never UTC)
    headers = bearer(ui)
    inside = ui.get("/retention/audit", params={"date_from": str(today), "date_to": str(today)}, headers=headers)
    before = ui.get("/retention/audit", params={"date_to": str(today - timedelta(days=1))}, headers=headers)
    assert inside.text.count("<tr>") > 10 and "Aucun événement ne correspond à ces filtres." in before.text


@pytest.mark.parametrize(
    "params, message",
    [
        ({"category": "marketing"}, "unknown category 'marketing'"),
        ({"action": "drop"}, "unknown action 'drop'"),
        ({"date_from": "2026-11-26", "date_to": "2026-11-01"}, "is before date_from"),
    ],
)
def test_a_bad_filter_is_refused_naming_the_value(ui, params, message):
    response = ui.get("/retention/audit", params=params, headers=bearer(ui))
    assert response.status_code == 400 and message in response.text


def test_a_run_certificate_is_served_as_html_and_json(ui):
    headers = bearer(ui)
    path = f"/retention/certificates/retention_prospection/{quote(RUNS['prospection'], safe='')}"
    page = ui.get(path, headers=headers).text
    data = ui.get(path, params={"format": "json"}, headers=headers).json()
    assert "Certificat de suppression" in page and data["category"] == "prospection"  # French by default
    assert "Deletion certificate" in ui.get(path, params={"lang": "en"}, headers=headers).text
    assert data["last_hash"] in page and {t["table"] for t in data["tables"]} >= {"prospects", "prospect_interactions"}
    assert ui.get("/retention/certificates/retention_prospection/nope", headers=headers).status_code == 404


def test_the_schedule_is_shown_in_french_by_default_and_in_english_on_request(ui):
    headers = bearer(ui)
    assert "Gestion et suivi de la prospection commerciale" in ui.get("/retention/schedule", headers=headers).text
    assert "Commercial prospection" in ui.get("/retention/schedule", params={"lang": "en"}, headers=headers).text


def test_the_lookup_says_a_destroyed_prospect_is_no_longer_held_and_shows_the_request(ui):
    email = ui.people["destroyed"]
    page = ui.post(  # the verdict is the engine's sentence, read here in English
        "/retention/lookup?lang=en", data={"kind": "email", "identifier": f"  {email.upper()} "}, headers=bearer(ui)
    ).text
    assert "No data about this person is held any more" in page
    assert "rights_request" in page and subject_hash(SubjectKey(SECRET, "t"), "email", email) in page
    assert email not in page.lower()  # the answer does not echo the identifier


def test_the_lookup_says_an_active_prospect_is_still_active(ui):
    page = ui.post(
        "/retention/lookup?lang=en", data={"kind": "email", "identifier": ui.people["active"]}, headers=bearer(ui)
    ).text
    assert "Still in the active base" in page and "the person&#x27;s data" in page


def test_the_lookup_says_an_erased_prospect_was_erased_and_the_request_record_is_kept_as_evidence(
    ui, tmp_path, monkeypatch
):
    """The demo's case: the prospect's rows are gone, the register entry about the request stays."""
    from datetime import date

    from include.retention.database.identity import Subject
    from include.retention.policy.load import load_policy
    from include.retention.records.audit import RunContext
    from include.retention.rights.requests import RequestRecord, handle

    email = ui.people["active"]
    target = _copy_of_the_target(tmp_path, monkeypatch)
    request = RequestRecord("DDP-UI-1", "erasure", date(2026, 11, 26), True, requester_email=email)
    handle(
        target,
        load_policy(),
        SubjectKey(SECRET, "t"),
        request,
        Subject.of({"email": email}),
        RunContext("manual__DDP-UI-1", "subject_request", date(2026, 11, 26), "test"),
        datetime.now(UTC),
    )
    target.dispose()
    page = ui.post("/retention/lookup?lang=en", data={"kind": "email", "identifier": email}, headers=bearer(ui)).text
    assert "Still in the active base" not in page and "class='ko'" not in page
    assert "Erased on " in page and "; the request record is kept as evidence until " in page
    assert "evidence of a request (register)" in page and email not in page.lower()


def test_the_lookup_explains_a_malformed_identifier(ui):
    page = ui.post("/retention/lookup", data={"kind": "email", "identifier": "not-an-email"}, headers=bearer(ui)).text
    assert "not of the form name@domain.tld" in page


def test_the_chain_status_is_served_for_machines(ui):
    data = ui.get("/retention/api/chain", headers=bearer(ui)).json()
    assert data["intact"] is True and data["events"] > 10


def test_the_plugin_adds_the_view_to_the_airflow_menu_and_to_each_dag_run(ui):
    plugins = ui.get("/api/v2/plugins", headers=bearer(ui)).json()["plugins"]
    (mine,) = [p for p in plugins if p["name"] == "retention_view"]
    views = {v["name"]: v for v in mine["external_views"]}
    assert views["Retention"]["href"] == "/retention/" and views["Retention"]["category"] == "browse"
    # Airflow 3.3 shows a plugin tab only with a url_route; the UI fills {DAG_ID} and {RUN_ID}.
    tab = views["Certificat"]
    assert tab["destination"] == "dag_run" and tab["url_route"] == "retention-certificate"
    assert tab["href"] == "/retention/run?dag_id={DAG_ID}&run_id={RUN_ID}"
    assert mine["fastapi_apps"][0]["url_prefix"] == "/retention"
    assert ui.get("/api/v2/plugins/importErrors", headers=bearer(ui)).json()["total_entries"] == 0


def test_the_subject_key_comes_from_the_airflow_variable_before_the_environment(monkeypatch):
    from include.retention_airflow.hooks import subject_key  # the key the view (and every task) uses

    monkeypatch.setenv(KEY_ENV_VAR, "e" * 40)
    assert subject_key().digest("x") == SubjectKey("e" * 40, "t").digest("x")
    # AIRFLOW_VAR_* is Airflow's environment secrets backend: what a Variable or Vault entry gives.
    monkeypatch.setenv("AIRFLOW_VAR_RETENTION_SUBJECT_SECRET", "v" * 40)
    assert subject_key().digest("x") == SubjectKey("v" * 40, "t").digest("x")


def test_a_lookup_logs_neither_the_identifier_nor_the_key(ui, caplog):
    email = ui.people["active"]
    with caplog.at_level("DEBUG"):
        ui.post("/retention/lookup", data={"kind": "email", "identifier": email}, headers=bearer(ui))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert email not in logged and SECRET not in logged


def test_the_legal_holds_page_lists_the_register_with_its_reasons(ui):
    page = ui.get("/retention/holds", headers=bearer(ui)).text
    assert "RG-UI-1" in page and "Enquete CNIL en cours" in page and "en vigueur" in page  # French by default
    assert "1 gel(s) en vigueur" in page


def _copy_of_the_target(tmp_path, monkeypatch):
    """A copy of the UI's target, the view pointed at it (tests that change it)."""
    import shutil

    from include.retention.database.target import connect

    source = Path(json.loads(os.environ["AIRFLOW_CONN_RETENTION_TARGET"])["host"])
    for name in ("target.db", "target.archive.db"):
        shutil.copy(source.with_name(name), tmp_path / name)
    monkeypatch.setenv(
        "AIRFLOW_CONN_RETENTION_TARGET", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "target.db")})
    )
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path / "reports"))
    return connect(f"sqlite:///{tmp_path / 'target.db'}")


@pytest.fixture
def certified_copy(ui, tmp_path, monkeypatch):
    """A copy of the UI's target whose runs have their certificates."""
    from include.retention.policy.load import load_policy
    from include.retention.reports import certificate

    target = _copy_of_the_target(tmp_path, monkeypatch)
    trail = store.audit_table("archive", load_policy().audit_table)
    with target.read() as conn:
        for run_id in RUNS.values():
            certificate.write(certificate.build(conn, trail, load_policy(), run_id))
    yield target, trail
    target.dispose()


def _rewrite_consistently(target, trail, event_id: int) -> None:
    """What an insider with DDL rights could do: alter one event and re-hash the whole chain."""
    from sqlalchemy import select, text

    from include.retention.records.audit import GENESIS, event_hash

    with target.engine.begin() as conn:
        for operation in ("update", "delete"):
            conn.execute(text(f'DROP TRIGGER "archive"."{trail.name}_no_{operation}"'))
        rows = [dict(r._mapping) for r in conn.execute(select(trail).order_by(trail.c.event_id))]
        conn.execute(trail.delete())
        previous = GENESIS
        for row in rows:
            row.update({"row_count": 4242} if row["event_id"] == event_id else {}, prev_hash=previous)
            row["event_hash"] = previous = event_hash(row)
            conn.execute(trail.insert().values(**row))


def test_a_log_that_agrees_with_its_certificates_is_intact_on_every_page(ui, certified_copy):
    headers = bearer(ui)
    assert ui.get("/retention/api/chain", headers=headers).json()["certificates"] == len(RUNS)
    for path in ("/retention/", "/retention/chain"):
        assert "Audit log intact" in ui.get(path, params={"lang": "en"}, headers=headers).text


def test_a_log_rewritten_consistently_is_not_intact_on_any_page(ui, certified_copy):
    from include.retention.records.audit import verify_chain

    target, trail = certified_copy
    _rewrite_consistently(target, trail, 3)
    with target.read() as conn:
        assert verify_chain(conn, trail).intact  # the chain alone is fooled
    headers = bearer(ui)
    data = ui.get("/retention/api/chain", headers=headers).json()
    assert data["intact"] is False and data["mismatches"] and data["status"].startswith("REWRITTEN")
    for path in ("/retention/", "/retention/chain"):
        page = ui.get(path, params={"lang": "en"}, headers=headers).text
        assert "Audit log REWRITTEN" in page and "intact" not in page


def test_the_lookup_names_every_kind_of_record_the_answer_can_hold():
    """A kind the page cannot name (a customer's retained invoices) would fail the whole lookup."""
    from include.retention.rights.erased import RECORD_KINDS
    from include.retention_airflow.ui.lookup import RECORD_KINDS_SHOWN

    assert set(RECORD_KINDS_SHOWN) == set(RECORD_KINDS)


# --- Bad parameters: 400 naming the parameter, never a 500 ---------------------------------------


@pytest.mark.parametrize(
    "params, parameter",
    [
        ({"page": "99999999999999999999"}, "page"),
        ({"page": "-1"}, "page"),
        ({"page": "two"}, "page"),
        ({"date_from": "2026-13-01"}, "date_from"),
        ({"date_to": "yesterday"}, "date_to"),
        ({"run_id": "r" * 251}, "run_id"),
        ({"run_id": "scheduled__x\x00"}, "run_id"),
        ({"category": "c" * 300}, "category"),
    ],
)
def test_a_bad_audit_parameter_answers_400_naming_it(ui, params, parameter):
    response = ui.get("/retention/audit", params=params, headers=bearer(ui))
    assert response.status_code == 400, response.text
    assert parameter in response.json()["detail"]


def test_the_last_day_of_the_calendar_as_date_to_shows_every_event(ui):
    headers = bearer(ui)
    everything = ui.get("/retention/audit", headers=headers)
    until_the_end = ui.get("/retention/audit", params={"date_to": "9999-12-31"}, headers=headers)
    assert until_the_end.status_code == 200
    assert until_the_end.text.count("<tr>") == everything.text.count("<tr>") > 10
    from_the_end = ui.get("/retention/audit", params={"date_from": "9999-12-31"}, headers=headers)
    assert from_the_end.status_code == 200 and "Aucun événement ne correspond à ces filtres." in from_the_end.text


@pytest.mark.parametrize(
    "path, params, parameter",
    [
        (f"/retention/certificates/retention_prospection/{RUNS['prospection']}", {"format": "xml"}, "format"),
        ("/retention/certificates/retention_prospection/" + "r" * 251, {}, "run_id"),
        ("/retention/certificates/" + "d" * 251 + "/run", {}, "dag_id"),
        ("/retention/certificates/retention_prospection/run%00id", {}, "run_id"),
        ("/retention/schedule", {"lang": "de"}, "lang"),
    ],
)
def test_a_bad_page_parameter_answers_400_naming_it(ui, path, params, parameter):
    response = ui.get(path, params=params, headers=bearer(ui))
    assert response.status_code == 400, response.text
    assert parameter in response.json()["detail"]


@pytest.mark.parametrize(
    "data, parameter",
    [
        ({"kind": "email"}, "identifier"),
        ({"identifier": "a@b.fr"}, "kind"),
        ({"kind": "passport", "identifier": "a@b.fr"}, "kind"),
        ({"kind": "email", "identifier": "a" * 400 + "@example.fr"}, "identifier"),
    ],
)
def test_a_bad_lookup_field_answers_400_naming_it_without_echoing_the_identifier(ui, data, parameter):
    response = ui.post("/retention/lookup", data=data, headers=bearer(ui))
    assert response.status_code == 400, response.text
    assert parameter in response.text and "a" * 400 not in response.text


def test_a_malformed_identifier_answers_400_with_the_form_again(ui):
    response = ui.post("/retention/lookup", data={"kind": "email", "identifier": "not-an-email"}, headers=bearer(ui))
    assert response.status_code == 400
    assert "identifier: the e-mail address given is not of the form name@domain.tld" in response.text
    assert "<form method='post'" in response.text and "not-an-email" not in response.text


# --- Cross-origin POSTs: the session cookie alone is not enough -----------------------------------


@pytest.fixture
def session_cookie(ui):
    """The browser's case: the Airflow UI's session cookie, no Authorization header."""
    ui.cookies.set("_token", bearer(ui)["Authorization"].removeprefix("Bearer "))
    yield
    ui.cookies.clear()


LOOKUP = {"kind": "email", "identifier": "someone@example.fr"}


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver.evil.example"},
        {"Referer": "https://evil.example/page"},
        {},
    ],
)
def test_a_cross_origin_lookup_with_the_session_cookie_is_refused(ui, session_cookie, headers):
    response = ui.post("/retention/lookup", data=LOOKUP, headers=headers)
    assert response.status_code == 403, response.text
    assert "cross-origin" in response.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://testserver"},
        {"Referer": "http://testserver/retention/lookup"},
        {"Origin": "http://TestServer:80"},
    ],
)
def test_a_same_origin_lookup_with_the_session_cookie_is_answered(ui, session_cookie, headers):
    response = ui.post("/retention/lookup", data=LOOKUP, headers=headers)
    assert response.status_code == 200 and "Empreinte à clé de l&#x27;identifiant (email)" in response.text


def test_an_explicit_bearer_token_needs_no_origin_but_a_foreign_origin_is_still_refused(ui):
    headers = bearer(ui)
    assert ui.post("/retention/lookup", data=LOOKUP, headers=headers).status_code == 200
    assert (
        ui.post("/retention/lookup", data=LOOKUP, headers={**headers, "Origin": "https://evil.example"}).status_code
        == 403
    )


def test_the_configured_base_url_is_this_server_s_origin_behind_a_proxy(ui, session_cookie, monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    proxied = ui.post("/retention/lookup", data=LOOKUP, headers={"Origin": "https://airflow.example.com"})
    assert proxied.status_code == 200
    assert ui.post("/retention/lookup", data=LOOKUP, headers={"Origin": "https://other.example.com"}).status_code == 403
