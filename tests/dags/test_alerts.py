"""Alerts through Airflow's notifiers (include/retention_airflow/alerts.py), delivered to a real
SMTP server (the suite's sink, aiosmtpd): a task that fails for good, a failed data-quality
gate, an overdue rights request - each one mail, with its own subject, and no person's data
although the seeded CRM is full of names and addresses - and the configuration's refusals.

The approval notice and the deadline alert (a schedule run still waiting for its approval,
told by the triggerer) are in ``test_approval_alerts_through_a_triggerer`` below, on Airflow as
deployed (``airflow_cluster.py`` with a triggerer).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from airflow_cluster import RUN_TIMEOUT, last_tick_an_hour_ago, running_airflow
from dag_helpers import (
    AS_OF,
    PER_PHASE,
    SUBJECT_SECRET,
    fail_erasures_on_an_application_trigger,
    policy_with_schedule,
)
from sqlalchemy import MetaData, Table, select, update

from include.demo.seed import PARIS, seed_demo
from include.retention.database.target import connect
from include.retention.policy.load import DEFAULT_POLICY_PATH
from include.retention_airflow import alerts
from scripts.mail_sink import MailSink
from scripts.throwaway_postgres import fresh_postgres_database

DAGS = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
ALERTS_CONN = "retention_alerts"
TEAM = ("dpo@example.fr", "ops@example.fr")


def _smtp_connection(sink) -> str:
    """Airflow's SMTP provider on the sink: no TLS on a local test server, one try, a sender."""
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": sink.host,
            "port": sink.port,
            "extra": {
                "disable_ssl": True,
                "disable_tls": True,
                "retry_limit": 0,
                "from_email": "airflow@example.fr",
            },
        }
    )


def _alerting(monkeypatch, sink) -> None:
    monkeypatch.setenv("RETENTION_ALERT_EMAILS", ", ".join(TEAM))
    monkeypatch.setenv("RETENTION_ALERT_SMTP_CONN", ALERTS_CONN)
    monkeypatch.setenv(f"AIRFLOW_CONN_{ALERTS_CONN.upper()}", _smtp_connection(sink))


def _bag(*files: str):
    """The DAGs of ``files``, parsed now (the alert variables are read at parse time)."""
    from airflow.dag_processing.dagbag import DagBag

    bags = [DagBag(dag_folder=str(DAGS / f)) for f in files]
    for bag in bags:
        assert bag.import_errors == {}, bag.import_errors
    return {dag_id: dag for bag in bags for dag_id, dag in bag.dags.items()}


def _people(target) -> list[str]:
    """Every name, e-mail and phone of the seeded CRM's people: none may appear in an alert."""
    values: set[str] = set()
    with target.read() as conn:
        for table in ("prospects", "customers"):
            t = Table(table, MetaData(), schema="crm", autoload_with=target.engine)
            for column in ("first_name", "last_name", "email", "phone"):
                if column in t.c:
                    values |= {v for (v,) in conn.execute(select(t.c[column])) if v and len(v.strip()) >= 4}
    assert len(values) > 20, "the seed has people"
    return sorted(values)


def _assert_no_personal_data(message, people: list[str]) -> None:
    whole = message.as_string().lower() + str(message["Subject"]).lower()
    body = message.get_body(("html", "plain")).get_content().lower()
    leaked = [v for v in people if v.lower() in whole or v.lower() in body]
    assert not leaked, f"personal data in an alert: {leaked}"


def _only_mail(sink):
    assert len(sink.messages) == 1, [m.message["Subject"] for m in sink.messages]
    (received,) = sink.messages
    assert set(received.recipients) == set(TEAM)
    return received.message


# --- Configuration ---------------------------------------------------------------------------


def test_nothing_configured_means_no_notifier_and_the_docs_say_alerts_are_off():
    assert alerts.channels({}) == alerts.Channels()
    assert not alerts.channels({}).configured
    assert "Alerts are **off**" in alerts.channels({}).describe("en")
    assert "Les alertes sont **désactivées**" in alerts.channels({}).describe("fr")  # the policy's default


def test_the_addresses_and_connection_are_read_and_a_wrong_entry_is_named_by_position_only():
    told = alerts.channels({"RETENTION_ALERT_EMAILS": " dpo@example.fr,ops@example.fr ,dpo@example.fr"})
    assert told.emails == TEAM and told.smtp_conn_id == "smtp_default" and told.configured
    assert "2 recipient(s)" in told.describe("en") and "dpo@" not in told.describe("en")
    assert "2 destinataire(s)" in told.describe() and "dpo@" not in told.describe()
    with pytest.raises(alerts.AlertsConfigError, match="RETENTION_ALERT_EMAILS: entry 2 is not") as refused:
        alerts.channels({"RETENTION_ALERT_EMAILS": "dpo@example.fr, jeanne.martin at example.fr"})
    assert "jeanne" not in str(refused.value)
    with pytest.raises(alerts.AlertsConfigError, match="RETENTION_ALERT_SMTP_CONN"):
        alerts.channels({"RETENTION_ALERT_EMAILS": "dpo@example.fr", "RETENTION_ALERT_SMTP_CONN": "smtp default"})


def test_slack_needs_its_channel_and_its_provider_named_in_the_message():
    with pytest.raises(alerts.AlertsConfigError, match="RETENTION_ALERT_SLACK_CHANNEL must name the channel"):
        alerts.channels({"RETENTION_ALERT_SLACK_CONN": "slack_api_default"})
    with pytest.raises(alerts.AlertsConfigError, match="RETENTION_ALERT_SLACK_CHANNEL is set without"):
        alerts.channels({"RETENTION_ALERT_SLACK_CHANNEL": "#gdpr"})
    # The Slack provider is not installed here: the message says which variable asked for it and what to add.
    with pytest.raises(
        alerts.AlertsConfigError, match="RETENTION_ALERT_SLACK_CONN is set, but .* apache-airflow-providers-slack"
    ):
        alerts.channels({"RETENTION_ALERT_SLACK_CONN": "slack_api_default", "RETENTION_ALERT_SLACK_CHANNEL": "#gdpr"})


def test_the_approval_alert_comes_at_half_the_timeout_or_when_said_but_before_the_timeout():
    assert alerts.approval_alert_hours(24, {}) == 12
    assert alerts.approval_alert_hours(24, {"RETENTION_APPROVAL_ALERT_HOURS": "0.01"}) == 0.01
    assert alerts.approval_alert_hours(24, {"RETENTION_APPROVAL_ALERT_HOURS": "20"}) == 20
    for wrong in ("24", "36", "0", "-1", "nan", "inf", "twelve"):
        with pytest.raises(alerts.AlertsConfigError, match="RETENTION_APPROVAL_ALERT_HOURS"):
            alerts.approval_alert_hours(24, {"RETENTION_APPROVAL_ALERT_HOURS": wrong})


def test_failures_are_classified_by_dag_and_task_for_a_named_target_too():
    kind = alerts.classify
    assert kind("retention_prospection", "preflight_checks", refused=True) is alerts.Kind.QUALITY_GATE
    assert kind("retention_web_forms_paris", "postflight_checks", refused=True) is alerts.Kind.QUALITY_GATE
    assert kind("retention_prospection", "preflight_checks", refused=False) is alerts.Kind.TASK_FAILED
    assert kind("retention_audit_verify_lyon", "verify_chain", refused=True) is alerts.Kind.AUDIT_FAILED
    assert kind("retention_rights_deadlines", "check_deadlines", refused=True) is alerts.Kind.RIGHTS_OVERDUE
    assert kind("retention_prospection", "approve_deletions", refused=False) is alerts.Kind.NOT_APPROVED
    assert kind("retention_prospection", "archive", refused=True) is alerts.Kind.TASK_FAILED
    assert kind("subject_request", "handle_request", refused=True) is alerts.Kind.TASK_FAILED


def test_a_malformed_variable_fails_every_dag_parse_naming_it(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("RETENTION_ALERT_EMAILS", "dpo@example.fr;ops@example.fr")
    bag = DagBag(dag_folder=str(DAGS))
    errors = list(bag.import_errors.values())
    # Every file that builds a DAG here: retention_config_error.py builds one only for a named
    # target whose configuration is unusable, and with the one default target there is none.
    building = [f for f in DAGS.glob("*.py") if f.name != "retention_config_error.py"]
    assert errors and len(errors) == len(building)
    assert all("RETENTION_ALERT_EMAILS: entry 1 is not an e-mail address" in e for e in errors)
    assert not any("example.fr" in e for e in errors)


def test_configured_alerts_are_wired_into_every_dag(monkeypatch, mail_sink):
    _alerting(monkeypatch, mail_sink)
    monkeypatch.setenv("RETENTION_APPROVAL_ALERT_HOURS", "2.5")
    dags = _bag(*(f.name for f in DAGS.glob("*.py")))
    for dag_id, dag in dags.items():
        # the shipped policy's language: French
        assert "2 destinataire(s) par la connexion `retention_alerts`" in dag.doc_md, dag_id
        for task in dag.tasks:
            assert [type(c) for c in task.on_failure_callback] == [alerts.TaskFailureAlert], (dag_id, task.task_id)
            assert not task.on_retry_callback
    schedule = [dag for dag_id, dag in dags.items() if dag.has_task("approve_deletions")]
    assert len(schedule) == 7
    for dag in schedule:
        (deadline,) = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
        assert deadline.interval == timedelta(hours=2.5)
        assert deadline.callback.path == "include.retention_airflow.alerts.notify_run_not_finished"
        # no address stored with the deadline; the alert in the policy's language and zone
        assert deadline.callback.kwargs == {"hours": 2.5, "lang": "fr", "timezone": "Europe/Paris"}
        (notice,) = dag.get_task("approve_deletions").notifiers
        assert isinstance(notice, alerts.ApprovalWaitingNotice)
    assert all(not dag.deadline for dag in dags.values() if dag not in schedule)


def test_without_alerts_no_dag_has_a_callback_or_a_deadline(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert "Les alertes sont **désactivées**" in dag.doc_md, dag_id
        assert not dag.deadline, dag_id
        assert all(not t.on_failure_callback for t in dag.tasks), dag_id


# --- Alerts delivered (dag.test runs the task callbacks in the task runner) ------------------


def test_a_task_that_fails_for_good_sends_one_mail_after_its_retries_without_personal_data(
    seeded_postgres, mail_sink, monkeypatch
):
    _alerting(monkeypatch, mail_sink)
    monkeypatch.setenv("RETENTION_RETRY_DELAY_SECONDS", "1")  # the DAG's two retries, a second apart
    dag = _bag("subject_request.py")["subject_request"]
    people = _people(seeded_postgres)
    prospects = Table("prospects", MetaData(), schema="crm", autoload_with=seeded_postgres.engine)
    with seeded_postgres.read() as conn:
        prospect_id, email = conn.execute(
            select(prospects.c.prospect_id, prospects.c.email).where(prospects.c.email.is_not(None)).limit(1)
        ).one()
    fail_erasures_on_an_application_trigger(seeded_postgres, prospect_id)
    conf = {"request_type": "erasure", "reference": "DDP-ALERT-1", "received": "2026-11-20", "identity": "verified"}
    run = dag.test(logical_date=datetime.now(UTC), run_conf={**conf, "email": email})
    assert run.state == "failed"
    (failed,) = [ti for ti in run.get_task_instances() if ti.state == "failed"]
    assert failed.try_number == 3, "retried twice before failing for good"

    message = _only_mail(mail_sink)  # not one per try: a retry is not told
    assert message["Subject"] == f"[retention] Tâche en échec: subject_request.{failed.task_id}"
    body = message.get_body(("html",)).get_content()
    for fact in ("subject_request", run.run_id, failed.task_id, "ScrubbedError", "UniqueViolation", "Que faire"):
        assert fact in body, fact
    assert "<th align='left'>Tentative</th><td>3</td>" in body
    _assert_no_personal_data(message, [*people, SUBJECT_SECRET])


def test_a_failed_quality_gate_has_its_own_subject_and_one_mail(seeded_postgres, mail_sink, monkeypatch):
    _alerting(monkeypatch, mail_sink)
    dag = _bag("retention_dags.py")["retention_prospection"]
    prospects = Table("prospects", MetaData(), schema="crm", autoload_with=seeded_postgres.engine)
    with seeded_postgres.engine.begin() as conn:
        conn.execute(
            update(prospects)
            .where(prospects.c.prospect_id == 1)
            .values(last_inbound_contact_at=datetime(2031, 1, 1, tzinfo=PARIS))
        )
    run = dag.test(logical_date=datetime.now(UTC), run_conf={"as_of": AS_OF.isoformat(), "mode": "execute"})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["preflight_checks"] == "failed" and states["summary"] == "failed"

    message = _only_mail(mail_sink)  # the summary's failure only repeats it: not told again
    assert (
        message["Subject"]
        == "[retention] Contrôle de qualité des données en échec: retention_prospection.preflight_checks"
    )
    body = message.get_body(("html",)).get_content()
    assert "AirflowFailException" in body and "no_future_last_inbound_contact_at" in body
    assert "rien n&#x27;a été archivé ni détruit" in body
    _assert_no_personal_data(message, _people(seeded_postgres))


def test_an_overdue_rights_request_is_told_with_its_reference_only(seeded_postgres, mail_sink, monkeypatch):
    _alerting(monkeypatch, mail_sink)
    dags = _bag("subject_request.py", "retention_rights_deadlines.py")
    late = {
        "request_type": "erasure",
        "reference": "DDP-LATE",
        "received": "2026-09-01",
        "identity": "pending",
        "email": "late.person@example.fr",
    }
    assert dags["subject_request"].test(logical_date=datetime.now(UTC), run_conf=late).state == "success"
    assert mail_sink.messages == []
    run = dags["retention_rights_deadlines"].test(logical_date=datetime(2026, 11, 27, 6, tzinfo=UTC))
    assert run.state == "failed"

    message = _only_mail(mail_sink)
    assert message["Subject"] == "[retention] Demande de droits en retard: retention_rights_deadlines"
    body = message.get_body(("html",)).get_content()
    assert "1 rights request(s) overdue: DDP-LATE" in body and "RGPD art. 12(3)" in body
    _assert_no_personal_data(message, [*_people(seeded_postgres), "late.person@example.fr"])


# --- The approval: a notice when it starts waiting, a deadline alert from the triggerer ---------


def _waiting_for(sink, subject: str, cluster) -> object:
    def arrived():
        return next((r.message for r in sink.messages if r.message["Subject"] == subject), None)

    return cluster.wait_for(f"the mail {subject!r}", arrived, RUN_TIMEOUT)


def test_approval_alerts_through_a_triggerer(postgres_server, tmp_path):
    """Airflow as deployed, with a triggerer: the nightly prospection run (its cron an hour ago,
    under the shipped deletion limit, which this small seed passes) waits for its approval. The
    notice is mailed when it starts waiting; 0.01 hour (36 s) after the run was queued, the
    scheduler finds its deadline missed and the triggerer mails the alert."""
    tick = last_tick_an_hour_ago()
    policy = policy_with_schedule(tmp_path, DEFAULT_POLICY_PATH, "prospection", f"{tick.minute} {tick.hour} * * *")
    target_url = fresh_postgres_database(postgres_server)
    target = connect(target_url)
    with target.engine.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION pgcrypto")
    seed_demo(target.engine, "crm", tick.date(), per_phase=PER_PHASE)
    people = _people(target)
    try:
        with MailSink() as sink:
            settings = {
                "RETENTION_POLICY": str(policy),
                "RETENTION_REPORTS_DIR": str(tmp_path / "reports"),
                "AIRFLOW_CONN_RETENTION_TARGET": target_url.replace("postgresql+psycopg://", "postgresql://"),
                "AIRFLOW_VAR_RETENTION_SUBJECT_SECRET": SUBJECT_SECRET,
                "RETENTION_ALERT_EMAILS": ",".join(TEAM),
                "RETENTION_ALERT_SMTP_CONN": ALERTS_CONN,
                f"AIRFLOW_CONN_{ALERTS_CONN.upper()}": _smtp_connection(sink),
                "RETENTION_APPROVAL_ALERT_HOURS": "0.01",
                "AIRFLOW__API__BASE_URL": "http://airflow.example.test:8080",
                # A task lost to a busy machine (an Execution API timeout) is retried at once.
                "RETENTION_RETRY_DELAY_SECONDS": "5",
            }
            with running_airflow(postgres_server, tmp_path, settings, triggerer=True) as cluster:
                cluster.wait_until_parsed("retention_prospection")
                cluster.airflow("dags", "unpause", "retention_prospection")
                notice = _waiting_for(sink, "[retention] Approbation requise: retention_prospection", cluster)
                late = _waiting_for(sink, "[retention] Exécution non terminée: retention_prospection", cluster)
                (run,) = cluster.runs("retention_prospection")
                assert run["run_type"] == "scheduled" and run["state"] == "running", run
    finally:
        target.dispose()

    body = notice.get_body(("html",)).get_content()
    assert run["run_id"] in body and "approve_deletions" in body and "Répondre sous" in body
    assert " de prospects (" in body and "quitteraient la base active" in body  # the excess in French
    assert "http://airflow.example.test:8080/dags/retention_prospection/runs/" in body
    body = late.get_body(("html",)).get_content()
    assert (
        run["run_id"] in body
        and "0,01 heure(s) après sa mise en file, le " in body
        and "(heure de Paris)" in body
        and "Required Actions" in body
    )
    assert f"http://airflow.example.test:8080/dags/retention_prospection/runs/{run['run_id']}" in body
    assert len(sink.messages) == 2, [m.message["Subject"] for m in sink.messages]
    for message in (notice, late):
        _assert_no_personal_data(message, people)
