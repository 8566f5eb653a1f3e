"""The re-consent campaign against a real SMTP server (aiosmtpd, ``mail_sink``), on SQLite and
PostgreSQL: who is asked, what arrives, what the register and the audit trail keep, and the
outbox's at-least-once guarantee when the campaign is killed (SIGKILL) between recording and
sending, and between sending and marking.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import smtplib
import subprocess
import sys
import time
import traceback
from datetime import date, timedelta
from pathlib import Path

import pytest
from engine_helpers import audit_events, run_category, with_rights_register
from reconsent_crash_run import (
    AS_OF,
    KEY,
    PROSPECT_POLICY,
    campaign,
    contact_for,
    create_prospects,
    notice_tokens,
    prospect_policy,
    window_rows,
)
from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, insert, select, text

from include.retention.database import store
from include.retention.database.identity import Subject
from include.retention.errors import RetentionError
from include.retention.policy.load import parse_policy
from include.retention.reconsent import tokens
from include.retention.reconsent.campaign import run_campaign
from include.retention.reconsent.mailer import SmtpMailer, classify
from include.retention.reconsent.notice import compose, usable_address
from include.retention.records.audit import RunContext
from include.retention.records.holds import NewHold, add_hold
from include.retention.records.locks import CategoryBusy, category_step
from include.retention.records.suppression import suppress
from scripts.mail_sink import MailSink

CRASH_RUN = Path(__file__).with_name("reconsent_crash_run.py")


def _register(target) -> list[dict]:
    table = store.reconsent_table(target.archive_schema)
    with target.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(table).order_by(table.c.ask_id))]


def _by_row(target) -> dict[str, dict]:
    return {r["row_key"]: r for r in _register(target)}


def test_notices_arrive_in_french_to_each_person_with_signed_links_that_verify(target, mail_sink):
    create_prospects(target, window_rows(4))

    result = campaign(target, mail_sink.port)

    assert (result.recorded, result.sent, result.failed, result.deferred) == (4, 4, 0, 0)
    assert sorted(r.recipients for r in mail_sink.messages) == [(f"prospect{i}@example.org",) for i in range(1, 5)]
    asks = _by_row(target)
    for received in mail_sink.messages:
        pid = received.recipients[0].removeprefix("prospect").split("@")[0]
        ask = asks[pid]
        message = received.message
        text = message.get_body(("plain",)).get_content()
        assert message["From"] == "Service données personnelles <rgpd@example.fr>"
        assert message["To"] == received.recipients[0]
        assert message["Subject"] == "Souhaitez-vous continuer à recevoir nos sollicitations commerciales ?"
        assert message["Message-ID"] == f"<reconsent-{ask['token_id']}@example.fr>"
        assert "« Prospection commerciale »" in text and "archivées" in text and "détruites" in text
        assert f"jusqu'au {ask['expires_on'].day} décembre 2026 inclus" in text
        links = notice_tokens(received)
        assert set(links) == {"yes", "no"}
        for answer, token in links.items():
            read = tokens.read(KEY, token)
            assert (read.token_id, read.answer, read.expires_on) == (ask["token_id"], answer, ask["expires_on"])
        assert links["yes"] in message.get_body(("html",)).get_content()
        assert ask["status"] == "sent" and ask["sent_at"] is not None
        # Awaited 30 days from today, never past the notice window: D + 30 days.
        assert ask["expires_on"] == min(AS_OF + timedelta(days=30), ask["period_end"] + timedelta(days=30)) - timedelta(
            days=1
        )
    (event,) = audit_events(target, prospect_policy(), action="reconsent_campaign")
    assert event["row_count"] == 4 and event["table_name"] == "prospects"


def test_a_second_run_the_same_day_sends_nothing_new(target, mail_sink):
    create_prospects(target, window_rows(5))
    campaign(target, mail_sink.port)

    again = campaign(target, mail_sink.port, run_id="campaign-2")

    assert (again.recorded, again.sent, again.resent) == (0, 0, 0)
    assert len(mail_sink.messages) == 5 and len(_register(target)) == 5


def test_only_rows_whose_period_ends_within_the_notice_window_are_asked(target, mail_sink):
    create_prospects(
        target,
        {
            1: ("in30@example.org", AS_OF + timedelta(days=30)),  # D - 30 = today: asked
            2: ("in31@example.org", AS_OF + timedelta(days=31)),  # tomorrow
            3: ("past29@example.org", AS_OF - timedelta(days=29)),  # ended, still in the window
            4: ("past30@example.org", AS_OF - timedelta(days=30)),  # the window has closed
        },
    )

    campaign(target, mail_sink.port)

    assert sorted(r.recipients[0] for r in mail_sink.messages) == ["in30@example.org", "past29@example.org"]


def test_a_held_or_suppressed_person_is_never_mailed(target, mail_sink):
    create_prospects(target, window_rows(4))
    policy = prospect_policy()
    ctx = RunContext("manual__hold", "legal_hold", AS_OF, policy.version)
    hold = NewHold("RG-1", "rows", "Litige en cours", "dpo@example.fr", table="prospects", keys=[2])
    add_hold(target, policy, hold, KEY, ctx, AS_OF)
    with target.engine.begin() as conn:
        suppression = store.suppression_table(target.archive_schema)
        suppress(conn, suppression, Subject.of({"email": "Prospect3@Example.org"}), KEY, AS_OF, None)

    result = campaign(target, mail_sink.port)

    assert sorted(r.recipients[0] for r in mail_sink.messages) == ["prospect1@example.org", "prospect4@example.org"]
    asks = _by_row(target)
    assert "2" not in asks  # held: not even recorded
    assert asks["3"]["status"] == "suppressed" and asks["3"]["sent_at"] is None
    assert (result.recorded, result.suppressed, result.sent) == (3, 1, 2)


def test_a_person_suppressed_after_a_deferred_notice_is_not_mailed_on_the_retry(target, mail_sink):
    create_prospects(target, window_rows(2))
    mail_sink.defer("prospect1@example.org")
    campaign(target, mail_sink.port)
    with target.engine.begin() as conn:
        suppression = store.suppression_table(target.archive_schema)
        suppress(conn, suppression, Subject.of({"email": "prospect1@example.org"}), KEY, AS_OF, None)
    mail_sink.accept("prospect1@example.org")

    retry = campaign(target, mail_sink.port, run_id="campaign-2", as_of=AS_OF + timedelta(days=1))

    assert [r.recipients[0] for r in mail_sink.messages] == ["prospect2@example.org"]
    assert _by_row(target)["1"]["status"] == "suppressed" and retry.suppressed == 1


def test_a_null_blank_or_malformed_address_is_recorded_no_address_and_never_mailed(target, mail_sink):
    create_prospects(
        target,
        {
            1: (None, AS_OF),
            2: ("   ", AS_OF),
            3: ("not an address", AS_OF),
            4: ("two@example.org, three@example.org", AS_OF),
            5: ("ok@example.org", AS_OF),
        },
    )

    result = campaign(target, mail_sink.port)

    assert [r.recipients[0] for r in mail_sink.messages] == ["ok@example.org"]
    asks = _by_row(target)
    assert [asks[k]["status"] for k in "1234"] == ["no_address"] * 4
    assert all(asks[k]["subject_hash"] is None for k in "1234")
    assert (result.recorded, result.no_address, result.sent) == (5, 4, 1)


def test_a_permanent_refusal_is_recorded_failed_without_the_address_anywhere(target, mail_sink, caplog):
    create_prospects(target, window_rows(3))
    mail_sink.refuse("prospect2@example.org")

    with caplog.at_level(logging.DEBUG):
        result = campaign(target, mail_sink.port)

    assert (result.sent, result.failed) == (2, 1)
    failed = _by_row(target)["2"]
    assert failed["status"] == "failed" and failed["failure"].startswith("550 ")
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("include."))  # not the sink's
    everything = repr(_register(target)) + repr(audit_events(target, prospect_policy())) + ours
    assert "prospect2" not in everything and "example.org" not in everything


def test_a_temporary_refusal_is_retried_on_the_next_run_with_the_same_token(target, mail_sink):
    create_prospects(target, window_rows(2))
    mail_sink.defer("prospect1@example.org")

    first = campaign(target, mail_sink.port)
    deferred = _by_row(target)["1"]
    mail_sink.accept("prospect1@example.org")
    second = campaign(target, mail_sink.port, run_id="campaign-2", as_of=AS_OF + timedelta(days=1))

    assert (first.sent, first.deferred) == (1, 1)
    assert deferred["status"] == "pending" and deferred["failure"].startswith("451 ")
    assert (second.recorded, second.sent, second.resent) == (0, 1, 1)
    (retried,) = mail_sink.to("prospect1@example.org")
    assert retried.message["Message-ID"] == f"<reconsent-{deferred['token_id']}@example.fr>"
    assert _by_row(target)["1"]["status"] == "sent"


def test_a_notice_left_sending_by_a_crash_and_already_answered_is_not_sent_again(target, mail_sink):
    create_prospects(target, window_rows(1))
    campaign(target, mail_sink.port)
    register = store.reconsent_table(target.archive_schema)
    with target.engine.begin() as conn:  # killed after the hand-over; the person answered meanwhile
        conn.execute(register.update().values(status="sending", answer="yes", answered_on=AS_OF))

    again = campaign(target, mail_sink.port, run_id="campaign-2", as_of=AS_OF + timedelta(days=1))

    assert (again.recorded, again.sent, again.resent) == (0, 0, 0)
    assert len(mail_sink.messages) == 1


def test_a_dry_run_counts_and_records_sends_and_audits_nothing(target, mail_sink):
    create_prospects(target, {**window_rows(4), 5: (None, AS_OF)})
    policy = prospect_policy()
    ctx = RunContext("dry", "retention_reconsent", AS_OF, policy.version, dry_run=True)

    with SmtpMailer("127.0.0.1", mail_sink.port) as smtp:
        result = run_campaign(target, policy, "prospection", KEY, ctx, smtp, dry_run=True)

    assert (result.recorded, result.sent, result.no_address, result.dry_run) == (5, 4, 1, True)
    assert mail_sink.messages == []
    with target.read() as conn:
        assert not store.table_exists(conn, store.reconsent_table(target.archive_schema))


def test_two_campaigns_of_one_category_never_run_at_once(target, mail_sink):
    create_prospects(target, window_rows(2))
    with (
        category_step(target, "reconsent:prospection", "other-run", "retention_reconsent"),
        pytest.raises(CategoryBusy),
    ):
        campaign(target, mail_sink.port)
    assert mail_sink.messages == []


def test_a_lost_connection_fails_the_campaign_and_the_ask_is_sent_by_the_retry(target, mail_sink):
    create_prospects(target, window_rows(2))

    class Disconnects:
        def send(self, notice):
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")

    with pytest.raises(Exception, match="SMTPServerDisconnected") as raised:
        campaign(target, mail_sink.port, mailer=Disconnects())
    assert not isinstance(raised.value, RetentionError)  # a RetentionError fails the task for good: no retry
    assert [a["status"] for a in _register(target)] == ["sending", "pending"]

    retry = campaign(target, mail_sink.port)  # the same run, retried by Airflow

    assert (retry.sent, retry.resent) == (2, 2) and len(mail_sink.messages) == 2


# --- SIGKILL in the outbox ------------------------------------------------------------------------


def _kill_at(url: str, port: int, point: str, n: int, tmp_path: Path) -> None:
    """Start a campaign in another process, wait until it reaches ``point`` at the n-th notice,
    SIGKILL it."""
    marker = tmp_path / f"at-{point}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, str(CRASH_RUN), url, str(port), point, str(n), str(marker)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(f"the campaign ended before {point} {n}: {child.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, f"the campaign never reached {point} {n}"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    child.stderr.close()


def test_killed_between_recording_and_sending_each_person_gets_exactly_one_notice(
    target, target_url, mail_sink, tmp_path
):
    create_prospects(target, window_rows(5))
    _kill_at(target_url, mail_sink.port, "before_send", 2, tmp_path)
    assert len(mail_sink.messages) == 1
    assert [a["status"] for a in _register(target)] == ["sent", "sending", "pending"]  # the first batch of 3

    rerun = campaign(target, mail_sink.port, run_id="crashing-campaign")  # Airflow's retry of the run

    assert sorted(r.recipients[0] for r in mail_sink.messages) == [f"prospect{i}@example.org" for i in range(1, 6)]
    assert (rerun.resent, rerun.sent, rerun.recorded) == (2, 4, 2)
    assert [a["status"] for a in _register(target)] == ["sent"] * 5


def test_killed_between_sending_and_marking_the_same_message_may_arrive_twice_under_one_ask(
    target, target_url, mail_sink, tmp_path
):
    create_prospects(target, window_rows(4))
    _kill_at(target_url, mail_sink.port, "after_send", 2, tmp_path)
    assert len(mail_sink.messages) == 2
    assert _by_row(target)["2"]["status"] == "sending"

    campaign(target, mail_sink.port, run_id="crashing-campaign")

    first, again = mail_sink.to("prospect2@example.org")
    assert first.message["Message-ID"] == again.message["Message-ID"]
    assert notice_tokens(first) == notice_tokens(again)
    assert first.message.get_body(("plain",)).get_content() == again.message.get_body(("plain",)).get_content()
    assert [len(mail_sink.to(f"prospect{i}@example.org")) for i in (1, 3, 4)] == [1, 1, 1]
    asks = [a for a in _register(target) if a["row_key"] == "2"]
    assert len(asks) == 1 and asks[0]["status"] == "sent"
    assert asks[0]["token_id"] in first.message["Message-ID"]


# --- the parts, without a database --------------------------------------------------------------


def _category(**reconsent):
    data = {**PROSPECT_POLICY, "categories": {"prospection": dict(PROSPECT_POLICY["categories"]["prospection"])}}
    data["categories"]["prospection"]["reconsent"] = {**data["categories"]["prospection"]["reconsent"], **reconsent}
    return parse_policy(with_rights_register(data), source="prospects.yaml").category("prospection")


def _compose(category, to="jeanne@example.org"):
    return compose(
        category, to=to, token_id="0" * 32, key=KEY, period_end=date(2026, 12, 1), expires_on=date(2026, 12, 31)
    )


def test_the_notice_speaks_english_on_request_and_says_its_dates_in_words():
    notice = _compose(_category(language="en"))
    assert notice.subject == "Do you wish to keep receiving our commercial messages?"
    assert "from 1 December 2026" in notice.text and "until 31 December 2026 inclusive" in notice.text
    french = _compose(_category())
    assert "à partir du 1er décembre 2026" in french.text and "jusqu'au 31 décembre 2026" in french.text


def test_a_policy_template_is_filled_and_everything_inserted_in_the_html_is_escaped():
    category = _category(
        subject="{label} : votre avis avant le {period_end}",
        body="Bonjour <cher client>,\n\n{label}\nOui : {yes_url}\nNon : {no_url}\nAvant le {expires_on}.",
    )
    notice = _compose(category)
    assert notice.subject == "Prospection commerciale : votre avis avant le 1er décembre 2026"
    assert notice.text.startswith("Bonjour <cher client>,")
    assert "&lt;cher client&gt;" in notice.html and "<cher client>" not in notice.html
    yes = re.search(r"Oui : (\S+)", notice.text)[1]
    assert f'<a href="{yes}">' in notice.html and "token=" in yes


def test_a_token_altered_in_any_part_is_refused_as_forged():
    token = tokens.sign(KEY, "a" * 32, "yes", date(2026, 12, 31))
    token_id, answer, expires, signature = token.split(".")
    for altered in (
        f"{token_id}.n.{expires}.{signature}",
        f"{token_id}.{answer}.20270131.{signature}",
        f"{'b' * 32}.{answer}.{expires}.{signature}",
        token[:-1],
        "",
    ):
        with pytest.raises(tokens.TokenRefused) as refused:
            tokens.read(KEY, altered)
        assert refused.value.reason == "forged" and (not altered or altered not in str(refused.value))


def test_an_smtp_refusal_is_classified_by_its_code_and_quotes_no_address():
    refused = smtplib.SMTPRecipientsRefused({"jeanne@example.org": (550, b"5.1.1 <jeanne@example.org> unknown")})
    permanent = classify(refused, "jeanne@example.org")
    assert permanent.permanent and str(permanent).startswith("550 ") and "jeanne" not in str(permanent)
    later = classify(smtplib.SMTPRecipientsRefused({"j@example.org": (451, b"try later")}), "j@example.org")
    assert not later.permanent
    with pytest.raises(smtplib.SMTPSenderRefused):
        classify(smtplib.SMTPSenderRefused(553, b"sender refused", "rgpd@example.fr"))


@pytest.mark.parametrize(
    ("address", "usable"),
    [
        ("jeanne@example.org", True),
        ("  jeanne@example.org ", True),
        (None, False),
        ("", False),
        ("jeanne", False),
        ("Jeanne <jeanne@example.org>", False),
        ("a@example.org, b@example.org", False),
        ("jeanne@example.org\r\nBcc: x@example.org", False),
        ("jeanne@localhost", False),
        ("typo@example.c", False),
        ('"a"@example.fr', False),
        ("a@[1.2.3.4]", False),
        ("a@-x.fr", False),
    ],
)
def test_only_one_bare_address_is_usable(address, usable):
    assert usable_address(address) is usable


# --- Faults of one person never block the others; a server-wide fault is not theirs ----------------


def test_an_address_that_cannot_be_hashed_is_recorded_no_address_and_the_others_are_asked(target, mail_sink):
    odd = ["typo@example.c", '"a"@example.fr', "a@[1.2.3.4]", "a@-x.fr"]
    create_prospects(target, {**{i: (a, AS_OF) for i, a in enumerate(odd, 1)}, 5: ("ok@example.org", AS_OF)})

    first = campaign(target, mail_sink.port)
    again = campaign(target, mail_sink.port, run_id="campaign-2", as_of=AS_OF + timedelta(days=1))

    assert [r.recipients[0] for r in mail_sink.messages] == ["ok@example.org"]
    asks = _by_row(target)
    assert [asks[k]["status"] for k in "1234"] == ["no_address"] * 4
    assert (first.no_address, first.sent, again.recorded, again.sent) == (4, 1, 0, 0)


def test_a_message_refused_at_data_fails_that_ask_alone_and_never_blocks_a_later_run(target, mail_sink):
    create_prospects(target, window_rows(4))
    mail_sink.refuse_content("prospect1@example.org")

    first = campaign(target, mail_sink.port)
    second = campaign(target, mail_sink.port, run_id="campaign-2", as_of=AS_OF + timedelta(days=1))

    assert (first.sent, first.failed, second.sent, second.failed) == (3, 1, 0, 0)
    refused = _by_row(target)["1"]
    assert refused["status"] == "failed" and refused["failure"].startswith("554 ")
    assert sorted(r.recipients[0] for r in mail_sink.messages) == [f"prospect{i}@example.org" for i in (2, 3, 4)]


def test_a_relay_refusing_everyone_is_a_server_fault_the_asks_stay_pending_and_nobody_is_released(target, mail_sink):
    create_prospects(target, {i: (f"prospect{i}@example.org", AS_OF - timedelta(days=i)) for i in range(1, 7)})
    mail_sink.deny_relay()

    with pytest.raises(Exception, match=r"554 5\.7\.1") as raised:
        campaign(target, mail_sink.port)

    assert not isinstance(raised.value, RetentionError)  # fails the task, which Airflow retries
    assert "example.org" not in str(raised.value) and "prospect1" not in str(raised.value)
    asks = _register(target)
    assert {a["status"] for a in asks} == {"pending"} and all(a["failure"].startswith("554 ") for a in asks)
    night = run_category(target, prospect_policy(), AS_OF, category="prospection")
    assert night.summary["archived"] == 0 and night.summary["waiting_for_reconsent"] == 6

    mail_sink.deny_relay(False)  # the relay is mended: the retry asks everyone
    retry = campaign(target, mail_sink.port, run_id="campaign-2")
    assert (retry.sent, retry.resent, retry.failed) == (6, 3, 0)


def test_every_ask_of_a_small_run_refused_with_one_code_is_a_server_fault_too(target, mail_sink):
    create_prospects(target, window_rows(2))
    mail_sink.deny_relay()

    with pytest.raises(Exception, match="554"):
        campaign(target, mail_sink.port)

    assert [a["status"] for a in _register(target)] == ["pending", "pending"]


def _prospects_without_a_key(target, period_end: date) -> None:
    """``prospects`` without a primary key, its policy key column NULL on one row (``nullkey``)."""
    schema = None if target.is_sqlite else "shop"
    create_prospects(target, {})
    with target.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {'shop.' if schema else ''}prospects"))
    prospects = Table(
        "prospects",
        MetaData(schema=schema),
        Column("prospect_id", Integer, nullable=True),
        Column("email", String(200)),
        Column("last_inbound_contact_at", DateTime(timezone=True)),
    )
    prospects.create(target.engine)
    contact = contact_for(period_end)
    with target.engine.begin() as conn:
        conn.execute(
            insert(prospects),
            [
                {"prospect_id": None, "email": "nullkey@example.org", "last_inbound_contact_at": contact},
                {"prospect_id": 2, "email": "p2@example.org", "last_inbound_contact_at": contact},
            ],
        )


def test_a_row_whose_key_is_null_is_not_asked_and_the_others_are(target, mail_sink):
    _prospects_without_a_key(target, AS_OF)

    result = campaign(target, mail_sink.port)

    assert [r.recipients[0] for r in mail_sink.messages] == ["p2@example.org"]
    assert [a["row_key"] for a in _register(target)] == ["2"] and result.recorded == 1


def test_a_due_row_whose_key_is_null_does_not_wait_for_an_ask_nobody_can_make(target):
    _prospects_without_a_key(target, AS_OF - timedelta(days=1))

    night = run_category(target, prospect_policy(), AS_OF, category="prospection", dry_run=True)

    assert night.summary["waiting_for_reconsent"] == 1  # prospect 2 alone


def test_a_database_error_in_the_campaign_shows_no_register_value(target, mail_sink):
    create_prospects(target, window_rows(1))
    register = store.reconsent_table(target.archive_schema)

    class WritesABrokenRow:  # PostgreSQL quotes a refused row's values ("Failing row contains (...)")
        def send(self, notice):
            with target.engine.begin() as conn:
                ask = conn.execute(select(register)).one()._mapping
                conn.execute(insert(register).values({**ask, "ask_id": ask["ask_id"] + 1, "row_key": None}))

    with pytest.raises(Exception) as raised:
        campaign(target, mail_sink.port, mailer=WritesABrokenRow())

    (ask,) = _register(target)
    shown = "".join(traceback.format_exception(raised.value))
    assert "IntegrityError" in shown
    assert ask["token_id"] not in shown and ask["subject_hash"] not in shown


def test_a_left_over_ask_is_not_sent_to_a_changed_address(target, mail_sink):
    prospects = create_prospects(target, window_rows(1))
    mail_sink.defer("prospect1@example.org")
    campaign(target, mail_sink.port)
    with target.engine.begin() as conn:
        conn.execute(prospects.update().values(email="new@example.org"))

    later = campaign(target, mail_sink.port, run_id="campaign-2", as_of=AS_OF + timedelta(days=1))

    assert mail_sink.messages == [] and (later.sent, later.no_address) == (0, 1)
    (ask,) = _register(target)
    assert (ask["status"], ask["failure"]) == ("no_address", "address changed")


def test_an_ask_deferred_until_its_links_expired_is_settled_failed(target, mail_sink):
    create_prospects(target, window_rows(1))
    mail_sink.defer("prospect1@example.org")
    campaign(target, mail_sink.port)
    (ask,) = _register(target)

    on_expiry = campaign(target, mail_sink.port, run_id="campaign-2", as_of=ask["expires_on"])
    after = campaign(target, mail_sink.port, run_id="campaign-3", as_of=ask["expires_on"] + timedelta(days=1))

    assert (on_expiry.deferred, on_expiry.failed, after.failed) == (1, 0, 1)
    (settled,) = _register(target)
    assert (settled["status"], settled["failure"]) == ("failed", "deferred until expiry")


def test_an_address_the_server_cannot_take_fails_that_ask_alone(target):
    create_prospects(target, {1: ("jerome@exemplé.fr", AS_OF), 2: ("ok@example.org", AS_OF)})

    with MailSink(smtputf8=False) as ascii_only:
        first = campaign(target, ascii_only.port)
        again = campaign(target, ascii_only.port, run_id="campaign-2", as_of=AS_OF + timedelta(days=1))
        received = [r.recipients[0] for r in ascii_only.messages]

    assert received == ["ok@example.org"] and (first.sent, first.failed, again.sent) == (1, 1, 0)
    refused = _by_row(target)["1"]
    assert refused["status"] == "failed" and refused["failure"].startswith("553 ")


def test_a_non_ascii_address_through_plain_sendmail_fails_that_ask_alone(target):
    create_prospects(target, {1: ("jerome@exemplé.fr", AS_OF), 2: ("ok@example.org", AS_OF)})

    class Sendmail:  # smtplib.sendmail, as the Airflow SMTP provider sends: it encodes RCPT as ASCII
        def __init__(self, port):
            self.port = port

        def send(self, notice):
            with smtplib.SMTP("127.0.0.1", self.port) as client:
                client.sendmail("rgpd@example.fr", [notice.to], f"Message-ID: {notice.message_id}\r\n\r\nx".encode())

    with MailSink(smtputf8=False) as ascii_only:
        result = campaign(target, ascii_only.port, mailer=Sendmail(ascii_only.port))
        received = [r.recipients[0] for r in ascii_only.messages]

    assert received == ["ok@example.org"] and (result.sent, result.failed) == (1, 1)
    assert _by_row(target)["1"]["failure"].startswith("553 ")


def test_the_sink_does_not_log_recipients():
    assert logging.getLogger("mail.log").getEffectiveLevel() >= logging.WARNING
