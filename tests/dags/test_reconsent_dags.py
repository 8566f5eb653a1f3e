"""The re-consent campaign through Airflow as deployed, on PostgreSQL, against a real SMTP server.

Airflow runs in processes of its own (``airflow_cluster.py``: scheduler, dag-processor,
Execution API, LocalExecutor); the SMTP server is the test suite's sink (``scripts/mail_sink.py``,
aiosmtpd), which ``smtp_default`` points at. The production path, end to end:

1. ``retention_reconsent`` is unpaused, as a user does once the SMTP connection is set: with
   ``catchup=False`` the scheduler starts one *scheduled* run for its latest tick (09:00 Paris),
   with default params - so it sends, through ``SmtpHook``;
2. ``reconsent_answer`` is triggered with a yes token and a no token read from the links of
   received messages, as the website does;
3. ``retention_prospection`` (its cron, in this copy of the policy, an hour ago) is unpaused:
   its scheduled run honours both answers - the yes restarted the clock (the row is neither due
   nor waiting), the no erased the prospect and suppressed the address.

The target is seeded for the campaign's day: the seed's edge prospects end their active period
on that day and the next, inside the 30-day notice window.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from airflow_cluster import Cluster, last_tick_an_hour_ago, running_airflow
from dag_helpers import PER_PHASE, SUBJECT_SECRET, policy_with_schedule, policy_without_deletion_limit
from sqlalchemy import MetaData, Table, select

from include.demo.seed import PARIS, seed_demo
from include.retention.database.identity import key_from, subject_hash
from include.retention.database.store import audit_table, reconsent_table, suppression_table
from include.retention.database.target import Target, connect
from include.retention.policy.load import load_policy
from include.retention.reconsent import tokens
from include.retention.records.audit import events
from scripts.mail_sink import MailSink, Received
from scripts.throwaway_postgres import fresh_postgres_database

CAMPAIGN, ANSWER, PROSPECTION = "retention_reconsent", "reconsent_answer", "retention_prospection"
CAMPAIGN_HOUR = 9  # retention_reconsent's cron: 0 9 * * * in Paris
ACTIVE_YEARS, NOTICE_DAYS = 3, 30  # web forms and prospection in the shipped policy
ASKED = {"prospects": "prospect_id", "web_form_submissions": "submission_id"}
# Seed order (include/demo/seed.py): 3 phases x PER_PHASE, 2 missing dates, 2 leap days, then these two.
ON_BOUNDARY, DAY_AFTER_BOUNDARY = 3 * PER_PHASE + 5, 3 * PER_PHASE + 6


@dataclass
class Scene:
    cluster: Cluster
    target: Target
    sink: MailSink
    policy_path: Path


def _campaign_day() -> date:
    """The Paris day of the campaign cron's latest tick (09:00 today, or yesterday before 09:00)."""
    now = datetime.now(UTC).astimezone(PARIS)
    return now.date() if now.hour >= CAMPAIGN_HOUR else now.date() - timedelta(days=1)


@pytest.fixture(scope="module")
def scene(postgres_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    work = tmp_path_factory.mktemp("reconsent-dags")
    tick = last_tick_an_hour_ago()
    policy = policy_with_schedule(
        work, policy_without_deletion_limit(work), "prospection", f"{tick.minute} {tick.hour} * * *"
    )
    target_url = fresh_postgres_database(postgres_server)
    target = connect(target_url)
    with target.engine.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION pgcrypto")  # as include/sql/least_privilege_roles.sql does
    seed_demo(target.engine, "crm", _campaign_day(), per_phase=PER_PHASE)
    with MailSink() as sink:
        settings = {
            "RETENTION_POLICY": str(policy),
            "RETENTION_REPORTS_DIR": str(work / "reports"),
            "AIRFLOW_CONN_RETENTION_TARGET": target_url.replace("postgresql+psycopg://", "postgresql://"),
            "AIRFLOW_VAR_RETENTION_SUBJECT_SECRET": SUBJECT_SECRET,
            # Airflow's SMTP provider, on the sink: no TLS on a local test server; one try per message.
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(
                {
                    "conn_type": "smtp",
                    "host": sink.host,
                    "port": sink.port,
                    "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0},
                }
            ),
        }
        try:
            with running_airflow(postgres_server, work, settings) as cluster:
                for dag_id in (CAMPAIGN, PROSPECTION, ANSWER):
                    cluster.wait_until_parsed(dag_id)
                yield Scene(cluster, target, sink, policy)
        finally:
            target.dispose()


@pytest.fixture(scope="module")
def campaign_run(scene: Scene) -> dict[str, Any]:
    """Unpause the campaign and wait for the run the scheduler starts."""
    scene.cluster.airflow("dags", "unpause", CAMPAIGN)
    return scene.cluster.finished_run(CAMPAIGN, "scheduled")


@pytest.fixture(scope="module")
def answered(scene: Scene, campaign_run: dict[str, Any]) -> dict[str, Any]:
    """The website posts a yes for the prospect due on the campaign's day and a no for the one
    due the day after, with the tokens of the links they received."""
    emails = _emails(scene.target, "prospects")
    yes_to, no_to = emails[ON_BOUNDARY], emails[DAY_AFTER_BOUNDARY]
    chosen = {"yes": _token(scene.sink, yes_to, "yes"), "no": _token(scene.sink, no_to, "no")}
    conf = json.dumps({"tokens": list(chosen.values())})
    scene.cluster.airflow("dags", "trigger", ANSWER, "--run-id", "website-answers", "--conf", conf)
    run = scene.cluster.finished_run(ANSWER, "manual", "website-answers")
    return {**run, "yes_to": yes_to, "no_to": no_to, "tokens": chosen}


@pytest.fixture(scope="module")
def prospection_run(scene: Scene, answered: dict[str, Any]) -> dict[str, Any]:
    """The next scheduled prospection run, after the answers."""
    scene.cluster.airflow("dags", "unpause", PROSPECTION)
    return scene.cluster.finished_run(PROSPECTION, "scheduled")


def _paris_day(run: dict[str, Any]) -> date:
    return run["logical_date"].astimezone(PARIS).date()


def _plus_years(day: date, years: int) -> date:
    """Calendar years, as the spec says: 29 February lands on 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _live(target: Target, table: str) -> dict[int, tuple[str | None, datetime | None]]:
    """The active rows of an asked table: key -> (address, start)."""
    t = Table(table, MetaData(), schema="crm", autoload_with=target.engine)
    with target.read() as conn:
        rows = conn.execute(select(t.c[ASKED[table]], t.c.email, t.c.last_inbound_contact_at))
        return {key: (email, start) for key, email, start in rows}


def _emails(target: Target, table: str) -> dict[int, str]:
    return {key: email for key, (email, _) in _live(target, table).items() if email}


def _period_end(start: datetime) -> date:
    """D: the start's Paris day plus the active period (the spec, not the engine)."""
    return _plus_years(start.astimezone(PARIS).date(), ACTIVE_YEARS)


def _in_window(start: datetime | None, as_of: date) -> bool:
    if start is None:
        return False
    end = _period_end(start)
    return end - timedelta(days=NOTICE_DAYS) <= as_of < end + timedelta(days=NOTICE_DAYS)


def _links(received: Received) -> list[str]:
    """The answer links of a message, from its HTML body (what Airflow's SMTP provider sends)."""
    body = received.message.get_body(("html", "plain"))
    assert body is not None, "a message without a body"
    return re.findall(r'href="([^"]+)"', body.get_content())


def _token(sink: MailSink, address: str, answer: str) -> str:
    (received,) = sink.to(address)
    for link in _links(received):
        token = parse_qs(urlparse(link.replace("&amp;", "&")).query)["token"][0]
        if tokens.read(key_from(SUBJECT_SECRET), token).answer == answer:
            return token
    raise AssertionError(f"no {answer} link in the message")


def _register(target: Target) -> list[dict[str, Any]]:
    with target.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(reconsent_table("archive")))]


def _events(target: Target, run_id: str) -> list[dict[str, Any]]:
    with target.read() as conn:
        return events(conn, audit_table("archive", "retention_audit"), run_id=run_id)


def test_the_scheduled_campaign_sends_through_airflows_smtp_provider_to_everyone_in_the_notice_window(
    scene, campaign_run
):
    cluster, target, sink = scene.cluster, scene.target, scene.sink
    assert (campaign_run["run_type"], campaign_run["state"]) == ("scheduled", "success"), cluster.diagnostics()
    as_of = _paris_day(campaign_run)
    assert campaign_run["logical_date"].astimezone(PARIS).hour == CAMPAIGN_HOUR

    expected = {
        email for table in ASKED for email, start in _live(target, table).values() if email and _in_window(start, as_of)
    }
    emails = _emails(target, "prospects")
    assert {emails[ON_BOUNDARY], emails[DAY_AFTER_BOUNDARY]} <= expected, "the seed's edge prospects are asked"
    received = sink.messages
    assert sorted(a for r in received for a in r.recipients) == sorted(expected), "each person once, nobody else"

    policy = load_policy(scene.policy_path)
    block = policy.category("prospection").reconsent
    assert block is not None
    key = key_from(SUBJECT_SECRET)
    for message in received:
        assert message.sender == "rgpd@example.fr" and message.message["From"].addresses[0].display_name == (
            "Service données personnelles"
        )
        assert message.message["Subject"] == "Souhaitez-vous continuer à recevoir nos sollicitations commerciales ?"
        assert re.fullmatch(r"<reconsent-[0-9a-f]{32}@example\.fr>", message.message["Message-ID"])
        html = message.message.get_body(("html",)).get_content()
        assert "Bonjour" in html and "sollicitations commerciales" in html
        links = _links(message)
        assert [link.split("?")[0] for link in links] == [block.answer_url] * 2
        signed = [tokens.read(key, parse_qs(urlparse(link.replace("&amp;", "&")).query)["token"][0]) for link in links]
        assert sorted(t.answer for t in signed) == ["no", "yes"] and len({t.token_id for t in signed}) == 1

    register = _register(target)
    assert sorted(r["status"] for r in register) == ["sent"] * len(expected)
    logged = [e for e in _events(target, campaign_run["run_id"]) if e["action"] == "reconsent_campaign"]
    assert sorted(e["category"] for e in logged) == ["prospection", "web_forms"]
    assert not any(e["dry_run"] for e in logged), "the scheduled run, with default params, was a dry run"
    assert sum(e["row_count"] for e in logged) == len(expected)


def test_the_answer_dag_records_the_yes_and_the_no_the_website_posts(scene, answered):
    assert answered["state"] == "success", scene.cluster.diagnostics()
    hashes = {
        subject_hash(key_from(SUBJECT_SECRET), "email", answered[to]): answer
        for to, answer in (("yes_to", "yes"), ("no_to", "no"))
    }
    recorded = {r["subject_hash"]: r["answer"] for r in _register(scene.target) if r["answer"]}
    assert recorded == hashes
    logged = [e for e in _events(scene.target, answered["run_id"]) if e["action"] == "reconsent_answer"]
    assert sorted(e["details"]["answer"] for e in logged) == ["no", "yes"]
    assert {e["subject_hash"] for e in logged} == set(hashes)


def test_the_next_scheduled_prospection_run_honours_both_answers(scene, answered, prospection_run):
    target = scene.target
    assert (prospection_run["run_type"], prospection_run["state"]) == ("scheduled", "success"), (
        scene.cluster.diagnostics()
    )
    as_of = _paris_day(prospection_run)
    live = _live(target, "prospects")

    # Yes: the prospect stays active, its clock restarted from the answer - neither due nor waiting.
    assert ON_BOUNDARY in live and _period_end(live[ON_BOUNDARY][1]) <= as_of, "due by its old clock"
    # No: erased (active and archive) and the address suppressed.
    assert DAY_AFTER_BOUNDARY not in live
    archived = Table("prospects", MetaData(), schema="archive", autoload_with=target.engine)
    with target.read() as conn:
        assert DAY_AFTER_BOUNDARY not in set(conn.scalars(select(archived.c.prospect_id)))
        suppressed = set(conn.scalars(select(suppression_table("archive").c.subject_hash)))
    assert subject_hash(key_from(SUBJECT_SECRET), "email", answered["no_to"]) in suppressed

    # Everyone else asked and due is waiting for the window; the yes is not among them.
    waiting = {
        key
        for key, (email, start) in live.items()
        if key != ON_BOUNDARY and email and start and _period_end(start) <= as_of < _period_end(start) + timedelta(30)
    }
    plan = next(
        e
        for e in _events(target, prospection_run["run_id"])
        if e["action"] == "plan" and e["table_name"] == "prospects"
    )
    assert plan["details"]["waiting_for_reconsent"] == len(waiting)
    assert not any(e["dry_run"] for e in _events(target, prospection_run["run_id"]))


def test_a_csv_the_mailing_tool_drops_is_read_through_object_storage(scene, answered, prospection_run, tmp_path):
    """A replayed yes and a bounce for a web form's notice, in a CSV at a ``file://`` address:
    the replay is refused and audited, the bounce recorded - the person could not be asked."""
    web_forms = _emails(scene.target, "web_form_submissions")
    bounced_to = next(email for email in web_forms.values() if scene.sink.to(email))
    bounce = _token(scene.sink, bounced_to, "no")
    dropped = tmp_path / "answers.csv"
    dropped.write_text(f"token,event\r\n{answered['tokens']['yes']},answer\r\n{bounce},bounce\r\n", encoding="utf-8")
    conf = json.dumps({"csv_uri": dropped.as_uri()})
    scene.cluster.airflow("dags", "trigger", ANSWER, "--run-id", "mailing-tool-csv", "--conf", conf)
    run = scene.cluster.finished_run(ANSWER, "manual", "mailing-tool-csv")

    assert run["state"] == "success", scene.cluster.diagnostics()
    logged = [e for e in _events(scene.target, run["run_id"]) if e["action"] == "reconsent_answer"]
    outcomes = sorted((e["details"].get("refused") or "bounce", e["category"]) for e in logged)
    assert outcomes == [("bounce", "web_forms"), ("replayed", "prospection")], logged
    assert [e["details"].get("bounce") for e in logged if e["category"] == "web_forms"] == [True]
    bounced_hash = subject_hash(key_from(SUBJECT_SECRET), "email", bounced_to)
    ask = next(r for r in _register(scene.target) if r["subject_hash"] == bounced_hash)
    assert (ask["status"], ask["failure"], ask["answer"]) == ("failed", "bounce", None)
    for token in (*answered["tokens"].values(), bounce):
        assert token not in _tail_of_task_logs(scene.cluster), "a token is a credential: never logged"


def _tail_of_task_logs(cluster: Cluster) -> str:
    return "".join(p.read_text(errors="replace") for p in (cluster.home / "logs").rglob("*.log"))


def test_hook_mailer_sends_through_the_smtp_provider_and_lets_a_refusal_through(mail_sink, monkeypatch):
    """The SMTP provider as the campaign uses it, on a real server: the sender's accented name
    kept apart from its address, the Message-ID set, one session per batch of notices; a 550
    propagates as smtplib raised it, for the campaign to record the ask as failed."""
    import smtplib

    from airflow.providers.smtp.hooks.smtp import SmtpHook

    from include.retention.reconsent.mailer import classify
    from include.retention.reconsent.notice import Notice
    from include.retention_airflow import reconsent_tasks
    from include.retention_airflow.reconsent_tasks import HookMailer

    sessions: list[SmtpHook] = []

    class CountedSmtpHook(SmtpHook):
        def get_conn(self) -> SmtpHook:
            sessions.append(self)
            return super().get_conn()

    monkeypatch.setattr(reconsent_tasks, "SmtpHook", CountedSmtpHook)

    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_DEFAULT",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": mail_sink.host,
                "port": mail_sink.port,
                "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0},
            }
        ),
    )
    notice = Notice(
        to="jeanne@example.org",
        sender="Service données personnelles <rgpd@example.fr>",
        subject="Souhaitez-vous continuer à recevoir nos sollicitations commerciales ?",
        text="Bonjour",
        html="<p>Bonjour, à bientôt</p>",
        message_id="<reconsent-0123456789abcdef0123456789abcdef@example.fr>",
        language="fr",
    )
    with HookMailer("smtp_default", batch_size=2) as mailer:
        for _ in range(3):
            mailer.send(notice)
        mail_sink.refuse("jeanne@example.org")
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            mailer.send(notice)
    assert classify(refused.value, notice.to).permanent
    assert len(sessions) == 2, "four notices in batches of two"

    received = mail_sink.messages
    assert len(received) == 3
    first = received[0]
    assert (first.sender, first.recipients) == ("rgpd@example.fr", ("jeanne@example.org",))
    (sender,) = first.message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Service données personnelles", "rgpd@example.fr")
    assert first.message["Subject"] == notice.subject
    assert (first.message["Message-ID"], first.message["Content-Language"]) == (notice.message_id, "fr")
    assert first.message.get_body(("html",)).get_content().strip() == notice.html
