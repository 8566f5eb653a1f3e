"""Answers to re-consent notices, on both backends: a yes restarts the clock, a no is an
opposition (erased and suppressed), forged, unknown, expired and replayed tokens are refused
and audited without the token, a bounce marks the ask failed, and a "no" cut short between
the opposition and its mark completes once when the same token comes again.

The asks are register rows written here as the campaign writes them (``store.reconsent_table``,
``tokens.sign``), on the club schema of ``engine_helpers`` with a ``reconsent`` block."""

from __future__ import annotations

import copy
import json
import logging
from contextlib import nullcontext
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from engine_helpers import (
    CLUB_POLICY,
    archive_rows,
    create_club,
    create_rights_register,
    ids,
    run_category,
    with_rights_register,
)
from reconsent_crash_run import notice_tokens
from sqlalchemy import MetaData, Table, delete, insert, select, text

from include.retention.database import store
from include.retention.database.identity import Subject, SubjectKey, subject_hash
from include.retention.database.target import Target
from include.retention.errors import RetentionError
from include.retention.policy.load import parse_policy
from include.retention.policy.model import RetentionPolicy
from include.retention.reconsent import answers
from include.retention.reconsent.answers import (
    AnswerFile,
    answer_all,
    answer_token,
    read_answers_csv,
    report_bounce,
)
from include.retention.reconsent.campaign import run_campaign
from include.retention.reconsent.mailer import SmtpMailer
from include.retention.reconsent.tokens import new_token_id, sign
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.rights import requests
from include.retention.rights.erasure import erase
from include.retention_airflow import reconsent_tasks
from include.retention_airflow.targets import DEFAULT_SITE, Site
from scripts.mail_sink import MailSink

KEY = SubjectKey("reconsent-answers-test-key-" + "k" * 30, "test")
ANSWERED = date(2026, 11, 1)  # the day the answers arrive, before the notices' last day
EXPIRES = date(2026, 11, 25)  # the last day the tokens are accepted


def reconsent_policy() -> RetentionPolicy:
    """The club's members asked 30 days before their 3 years end; a no is an opposition."""
    data: dict[str, Any] = copy.deepcopy(CLUB_POLICY)
    data["categories"]["members"].update(
        deleted_on=["opposition"],
        reconsent={
            "address_column": "email",
            "notice_days": 30,
            "sender": "Secrétariat du club <rgpd@club.example.fr>",
            "answer_url": "https://club.example.fr/consentement",
        },
    )
    return parse_policy(with_rights_register(data), source="club-reconsent.yaml")


@pytest.fixture
def club(target: Target) -> RetentionPolicy:
    if not target.is_sqlite:  # as include/sql/least_privilege_roles.sql installs it
        with target.engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pgcrypto"))
    create_club(target)
    create_rights_register(target, "club")
    target.ensure_archive_schema()
    return reconsent_policy()


def ctx_on(day: date, run_id: str = "answers-1") -> RunContext:
    return RunContext(run_id=run_id, dag_id="reconsent_answer", as_of=day, policy_version="club-1")


def ask(
    target: Target,
    member: int,
    period_end: date,
    *,
    status: str = "sent",
    sent_on: date | None = None,
    expires_on: date = EXPIRES,
) -> str:
    """Record an ask of ``member`` as the campaign does; return its token id."""
    register = store.reconsent_table("archive")
    token_id = new_token_id()
    sent = sent_on or date(period_end.year, period_end.month, 1)
    with target.engine.begin() as conn:
        store.ensure_table(conn, register)
        conn.execute(
            insert(register).values(
                category="members",
                table_name="members",
                row_key=str(member),
                period_end=period_end,
                subject_hash=subject_hash(KEY, "email", f"member{member}@example.fr"),
                token_id=token_id,
                expires_on=expires_on,
                status=status,
                recorded_at=datetime(sent.year, sent.month, sent.day, 8, tzinfo=UTC),
                sent_at=datetime(sent.year, sent.month, sent.day, 9, tzinfo=UTC) if status == "sent" else None,
                run_id="campaign-1",
                policy_version="club-1",
            )
        )
    return token_id


def yes(token_id: str, expires_on: date = EXPIRES) -> str:
    return sign(KEY, token_id, "yes", expires_on)


def no(token_id: str, expires_on: date = EXPIRES) -> str:
    return sign(KEY, token_id, "no", expires_on)


def register_row(target: Target, token_id: str) -> dict[str, Any]:
    register = store.reconsent_table("archive")
    with target.read() as conn:
        return dict(conn.execute(select(register).where(register.c.token_id == token_id)).one()._mapping)


def answer_events(target: Target, policy: RetentionPolicy) -> list[dict[str, Any]]:
    with target.read() as conn:
        return audit.events(conn, store.audit_table("archive", policy.audit_table), action="reconsent_answer")


def suppressed_hashes(target: Target) -> set[str]:
    with target.read() as conn:
        table = store.suppression_table("archive")
        return set(conn.execute(select(table.c.subject_hash)).scalars()) if store.table_exists(conn, table) else set()


def rights_requests(target: Target, policy: RetentionPolicy) -> list[dict[str, Any]]:
    register = requests.ensure_register(target, policy)
    with target.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(register))]


def whole_audit_text(target: Target, policy: RetentionPolicy) -> str:
    trail = Table(policy.audit_table, MetaData(), schema="archive", autoload_with=target.engine)
    with target.read() as conn:
        return json.dumps([list(r) for r in conn.execute(select(trail))], default=str)


# --- Yes ----------------------------------------------------------------------------------------


def test_a_yes_restarts_the_clock_from_the_day_of_the_answer(target: Target, club: RetentionPolicy) -> None:
    asked = ask(target, 1, date(2026, 11, 26), sent_on=date(2026, 10, 27))  # ends 2026-11-26, the run day
    ask(target, 3, date(2026, 11, 25), sent_on=date(2026, 10, 26))  # no answer: the schedule goes on

    outcome = answer_token(target, club, KEY, ctx_on(ANSWERED), yes(asked), ANSWERED)

    assert (outcome.answer, outcome.refused, outcome.category) == ("yes", None, "members")
    row = register_row(target, asked)
    assert (row["answer"], row["answered_on"], row["status"]) == ("yes", ANSWERED, "sent")
    [event] = answer_events(target, club)
    assert event["subject_hash"] == subject_hash(KEY, "email", "member1@example.fr")
    assert event["details"] == {"answer": "yes", "category": "members"}
    assert (event["category"], event["table_name"], event["row_count"]) == ("members", "members", 1)

    run_category(target, club, date(2026, 11, 26), run_id="run-after-yes")
    assert 1 in ids(target, "members") and 1 not in ids(target, "members", archive=True)
    assert 3 in ids(target, "members", archive=True)  # asked, no answer: archived on its day
    run_category(target, club, date(2029, 10, 31), run_id="run-2029-10-31")
    assert 1 in ids(target, "members")  # three years from the yes are not over yet
    # The new period ended 2029-11-01; nobody asked for it, so the row waited the 30 days' window.
    run_category(target, club, date(2029, 12, 1), run_id="run-2029-12-01")
    [archived] = [r for r in archive_rows(target, "members") if r["member_id"] == 1]
    assert (archived["retention_start"], archived["retention_until"]) == (ANSWERED, date(2034, 11, 1))


def test_the_links_a_campaign_mails_are_answered_through_the_register_it_wrote(
    target: Target, club: RetentionPolicy, mail_sink: MailSink
) -> None:
    """End to end: the campaign mails members 1 to 3 (their three years end within 30 days of
    1 November) through a real SMTP server; the yes and no links read from the messages answer."""
    ctx = RunContext("campaign-1", "retention_reconsent", ANSWERED, club.version)
    with SmtpMailer(mail_sink.host, mail_sink.port) as mailer:
        assert run_campaign(target, club, "members", KEY, ctx, mailer).sent == 3
    links = {received.recipients[0]: notice_tokens(received, KEY) for received in mail_sink.messages}

    said_yes = answer_token(target, club, KEY, ctx_on(ANSWERED), links["member1@example.fr"]["yes"], ANSWERED)
    said_no = answer_token(target, club, KEY, ctx_on(ANSWERED), links["member2@example.fr"]["no"], ANSWERED)

    assert (said_yes.answer, said_no.answer) == ("yes", "no")
    asks = {row["row_key"]: row for row in _all_asks(target)}
    assert {key: row["answer"] for key, row in asks.items()} == {"1": "yes", "2": "no", "3": None}
    assert asks["1"]["answered_on"] == ANSWERED
    assert 2 not in ids(target, "members") and 1 in ids(target, "members")
    assert subject_hash(KEY, "email", "member2@example.fr") in suppressed_hashes(target)


# --- No -----------------------------------------------------------------------------------------


def test_a_no_erases_the_person_and_suppresses_the_address(target: Target, club: RetentionPolicy) -> None:
    asked = ask(target, 2, date(2026, 11, 27))

    outcome = answer_token(target, club, KEY, ctx_on(ANSWERED), no(asked), ANSWERED)

    assert (outcome.answer, outcome.refused) == ("no", None)
    assert 2 not in ids(target, "members")
    assert [e for e in ids(target, "member_events") if e // 10 == 2] == []
    assert [f for f in ids(target, "member_event_files") if f // 100 == 2] == []
    assert ids(target, "members") == [1, 3, 4, 5, 6, 7, 8]  # nobody else
    assert subject_hash(KEY, "email", "member2@example.fr") in suppressed_hashes(target)
    row = register_row(target, asked)
    assert (row["answer"], row["answered_on"]) == ("no", ANSWERED)
    [request] = rights_requests(target, club)
    assert (request["reference"], request["request_type"], request["status"]) == (
        f"RECONSENT-{row['ask_id']}",
        "opposition",
        "completed",
    )
    [event] = answer_events(target, club)
    # The opposition put the address on the list already: the ask's hash (the same) adds nothing.
    assert event["details"] == {"answer": "no", "category": "members", "suppressed": 0}
    assert event["subject_hash"] == subject_hash(KEY, "email", "member2@example.fr")


def test_a_no_whose_row_is_gone_still_suppresses_the_asked_address(target: Target, club: RetentionPolicy) -> None:
    asked = ask(target, 2, date(2026, 11, 27))
    tables = create_tables(target)
    with target.engine.begin() as conn:  # erased meanwhile (another request)
        conn.execute(delete(tables["member_event_files"]).where(tables["member_event_files"].c.file_id // 100 == 2))
        conn.execute(delete(tables["member_events"]).where(tables["member_events"].c.member_id == 2))
        conn.execute(delete(tables["members"]).where(tables["members"].c.member_id == 2))

    outcome = answer_token(target, club, KEY, ctx_on(ANSWERED), no(asked), ANSWERED)

    assert outcome.answer == "no"
    assert subject_hash(KEY, "email", "member2@example.fr") in suppressed_hashes(target)
    assert rights_requests(target, club) == []  # no address left to find anything by
    [event] = answer_events(target, club)
    assert event["details"] == {"answer": "no", "category": "members", "suppressed": 1}


def test_a_no_whose_row_was_archived_meanwhile_erases_it_from_the_archive(
    target: Target, club: RetentionPolicy
) -> None:
    asked = ask(target, 5, date(2021, 11, 27))
    run_category(target, club, date(2026, 11, 26), run_id="archived-meanwhile")
    assert 5 in ids(target, "members", archive=True) and 5 not in ids(target, "members")

    outcome = answer_token(target, club, KEY, ctx_on(ANSWERED), no(asked), ANSWERED)

    assert outcome.answer == "no"
    assert 5 not in ids(target, "members", archive=True)  # the address was read from the archive twin
    assert [r["status"] for r in rights_requests(target, club)] == ["completed"]
    assert subject_hash(KEY, "email", "member5@example.fr") in suppressed_hashes(target)


def test_a_yes_whose_row_left_the_active_base_is_refused_as_closed_and_restarts_nothing(
    target: Target, club: RetentionPolicy
) -> None:
    """The notice bounced (or nobody answered in the window) and the row was archived: a yes
    that comes later would count a clock restart that never happened. Refused, audited."""
    asked = ask(target, 5, date(2021, 11, 27))
    run_category(target, club, date(2026, 11, 26), run_id="archived-meanwhile")
    assert 5 in ids(target, "members", archive=True) and 5 not in ids(target, "members")

    outcome = answer_token(target, club, KEY, ctx_on(ANSWERED), yes(asked), ANSWERED)

    assert (outcome.answer, outcome.refused, outcome.category) == (None, "closed", "members")
    assert register_row(target, asked)["answer"] is None
    [event] = answer_events(target, club)
    assert event["details"] == {"refused": "closed", "category": "members"}
    assert event["subject_hash"] == subject_hash(KEY, "email", "member5@example.fr")


def test_a_yes_does_not_outlive_the_erasure_of_its_row_nor_pass_to_a_new_row_given_its_key(
    target: Target, club: RetentionPolicy
) -> None:
    """Member 1 said yes, then had their data erased; a newcomer whose last contact is four
    years old is given the freed key. The yes was the erased person's: the newcomer's clock
    is their own, and their row is archived once the notice window is over."""
    asked = ask(target, 1, date(2026, 11, 26), sent_on=date(2026, 10, 27))
    assert answer_token(target, club, KEY, ctx_on(ANSWERED), yes(asked), ANSWERED).answer == "yes"
    erase(target, club, Subject.of({"email": "member1@example.fr"}), KEY, ctx_on(ANSWERED, "erasure-1"))
    assert 1 not in ids(target, "members")
    members = create_tables(target)["members"]
    with target.engine.begin() as conn:
        conn.execute(
            insert(members).values(
                member_id=1, email="newcomer@example.fr", last_contact_at=datetime(2022, 10, 1, 10, tzinfo=UTC)
            )
        )

    run_category(target, club, date(2026, 12, 27), run_id="after-the-window")

    assert 1 in ids(target, "members", archive=True) and 1 not in ids(target, "members")


def test_a_no_after_the_rows_address_changed_erases_nobody_and_suppresses_the_address_asked(
    target: Target, club: RetentionPolicy
) -> None:
    """The notice went to member2's address; the row now holds member4's (corrected since). The
    token proves only that its holder read member2's mail: member4 is neither erased nor suppressed."""
    asked = ask(target, 2, date(2026, 11, 27))
    members = create_tables(target)["members"]
    with target.engine.begin() as conn:
        conn.execute(members.update().where(members.c.member_id == 2).values(email="member4@example.fr"))

    outcome = answer_token(target, club, KEY, ctx_on(ANSWERED), no(asked), ANSWERED)

    assert outcome.answer == "no"
    assert ids(target, "members") == [1, 2, 3, 4, 5, 6, 7, 8]  # nobody erased
    assert rights_requests(target, club) == []
    assert suppressed_hashes(target) == {subject_hash(KEY, "email", "member2@example.fr")}
    assert register_row(target, asked)["answer"] == "no"
    [event] = answer_events(target, club)
    assert event["details"] == {
        "answer": "no",
        "category": "members",
        "suppressed": 1,
        "address_changed": True,
    }
    assert "member4" not in whole_audit_text(target, club)


def create_tables(target: Target) -> dict[str, Table]:
    schema = None if target.is_sqlite else "club"
    return {
        name: Table(name, MetaData(), schema=schema, autoload_with=target.engine)
        for name in ("members", "member_events", "member_event_files")
    }


# --- Refusals -------------------------------------------------------------------------------------


def _forged(target: Target) -> str:
    token = yes(ask(target, 1, date(2026, 11, 26)))
    return token[:-1] + ("0" if token[-1] != "0" else "1")


REFUSALS = {
    "forged signature": (_forged, "forged", None),
    "not a token": (lambda target: "token=abc", "forged", None),
    "unknown ask": (lambda target: yes(new_token_id()), "unknown", None),
    "expired": (lambda target: yes(ask(target, 1, date(2026, 11, 26), expires_on=date(2026, 10, 31))), "expired", 1),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_a_bad_token_is_refused_and_audited_without_the_token(
    target: Target, club: RetentionPolicy, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    make, reason, member = REFUSALS[case]
    token = make(target)

    with caplog.at_level(logging.DEBUG):
        outcome = answer_token(target, club, KEY, ctx_on(ANSWERED), token, ANSWERED)

    assert (outcome.answer, outcome.refused) == (None, reason)
    [event] = answer_events(target, club)
    assert event["details"]["refused"] == reason
    assert event["row_count"] == 0
    hashed = subject_hash(KEY, "email", f"member{member}@example.fr") if member else None
    assert event["subject_hash"] == hashed
    assert event["category"] == ("members" if member else answers.NO_ASK)
    token_id = token.split(".")[0]
    assert token_id not in whole_audit_text(target, club) and token_id not in caplog.text
    assert 1 in ids(target, "members")
    assert all(r["answer"] is None for r in _all_asks(target))


def test_a_yes_then_a_no_on_the_same_notice_the_no_is_replayed(target: Target, club: RetentionPolicy) -> None:
    asked = ask(target, 2, date(2026, 11, 27))
    assert answer_token(target, club, KEY, ctx_on(ANSWERED), yes(asked), ANSWERED).answer == "yes"

    again = answer_token(target, club, KEY, ctx_on(ANSWERED), yes(asked), ANSWERED)
    second = answer_token(target, club, KEY, ctx_on(ANSWERED), no(asked), date(2026, 11, 2))

    assert again.refused == second.refused == "replayed"
    assert register_row(target, asked)["answer"] == "yes"
    assert 2 in ids(target, "members")
    assert suppressed_hashes(target) == set()
    refusals = [e for e in answer_events(target, club) if "refused" in e["details"]]
    assert [e["details"] for e in refusals] == [{"refused": "replayed", "category": "members"}] * 2
    assert {e["subject_hash"] for e in refusals} == {subject_hash(KEY, "email", "member2@example.fr")}


def _all_asks(target: Target) -> list[dict[str, Any]]:
    register = store.reconsent_table("archive")
    with target.read() as conn:
        if not store.table_exists(conn, register):
            return []
        return [dict(r._mapping) for r in conn.execute(select(register))]


# --- A crash between the opposition and its mark ----------------------------------------------


def test_a_no_cut_short_after_the_opposition_completes_once_when_the_token_comes_again(
    target: Target, club: RetentionPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = ask(target, 2, date(2026, 11, 27))
    mark = answers._mark

    def dies_once(*args: Any) -> None:
        monkeypatch.setattr(answers, "_mark", mark)
        raise RuntimeError("worker lost after the opposition")

    monkeypatch.setattr(answers, "_mark", dies_once)
    with pytest.raises(RuntimeError):
        answer_token(target, club, KEY, ctx_on(ANSWERED), no(asked), ANSWERED)
    assert 2 not in ids(target, "members")  # the opposition committed
    assert register_row(target, asked)["answer"] is None  # the mark did not

    late = date(2026, 12, 3)  # past the token's last day: the answer was accepted in time
    outcome = answer_token(target, club, KEY, ctx_on(late, "answers-2"), no(asked), late)

    assert outcome.answer == "no"
    assert (register_row(target, asked)["answer"], register_row(target, asked)["answered_on"]) == ("no", late)
    [request] = rights_requests(target, club)
    assert request["status"] == "completed"
    with target.read() as conn:
        trail = store.audit_table("archive", club.audit_table)
        erasures = audit.events(conn, trail, action="erase")
        received = audit.events(conn, trail, action="rights_request")
    assert erasures and {e["run_id"] for e in erasures} == {"answers-1"}  # erased by the first run only
    assert [(e["details"]["outcome"], e["run_id"]) for e in received] == [
        ("in_progress", "answers-1"),
        ("completed", "answers-1"),
    ]  # received and completed once
    assert [e["details"].get("answer") for e in answer_events(target, club)] == ["no"]
    # A third time: replayed.
    assert answer_token(target, club, KEY, ctx_on(late), no(asked), late).refused == "replayed"


def test_a_no_cut_short_inside_the_opposition_resumes_it(
    target: Target, club: RetentionPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = ask(target, 2, date(2026, 11, 27))
    erase_in = requests.erase_in

    def dies_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(requests, "erase_in", erase_in)
        raise RuntimeError("worker lost while erasing")

    monkeypatch.setattr(requests, "erase_in", dies_once)
    with pytest.raises(RuntimeError):
        answer_token(target, club, KEY, ctx_on(ANSWERED), no(asked), ANSWERED)
    assert [r["status"] for r in rights_requests(target, club)] == ["in_progress"]
    assert 2 in ids(target, "members")  # the handling rolled back whole

    next_day = date(2026, 11, 2)
    outcome = answer_token(target, club, KEY, ctx_on(next_day, "answers-2"), no(asked), next_day)

    assert outcome.answer == "no"
    assert 2 not in ids(target, "members")
    assert [r["status"] for r in rights_requests(target, club)] == ["completed"]
    assert subject_hash(KEY, "email", "member2@example.fr") in suppressed_hashes(target)


# --- Bounces and batches ------------------------------------------------------------------------


def test_a_bounce_marks_the_ask_failed_and_a_bounce_after_an_answer_is_ignored(
    target: Target, club: RetentionPolicy
) -> None:
    bounced, answered = ask(target, 1, date(2026, 11, 26)), ask(target, 2, date(2026, 11, 27))
    answer_token(target, club, KEY, ctx_on(ANSWERED), yes(answered), ANSWERED)

    first = report_bounce(target, club, KEY, ctx_on(ANSWERED), no(bounced), ANSWERED)  # either token names it
    twice = report_bounce(target, club, KEY, ctx_on(ANSWERED), yes(bounced), ANSWERED)
    after_answer = report_bounce(target, club, KEY, ctx_on(ANSWERED), no(answered), ANSWERED)

    assert (first.answer, twice.refused, after_answer.refused) == ("bounce", "failed", "answered")
    row = register_row(target, bounced)
    assert (row["status"], row["failure"], row["answer"]) == ("failed", "bounce", None)
    assert register_row(target, answered)["status"] == "sent"
    details = [e["details"] for e in answer_events(target, club)][1:]
    assert details == [
        {"bounce": True, "category": "members"},
        {"bounce": True, "refused": "failed", "category": "members"},
        {"bounce": True, "refused": "answered", "category": "members"},
    ]


def test_a_batch_records_every_good_answer_and_refuses_the_forged_one(target: Target, club: RetentionPolicy) -> None:
    asks = {member: ask(target, member, date(2026, 11, 26)) for member in (1, 2, 3, 7)}
    forged = yes(asks[1])[:-4] + "beef"

    result = answer_all(
        target,
        club,
        KEY,
        ctx_on(ANSWERED),
        [yes(asks[1]), forged, no(asks[2]), yes(asks[3]), None],  # type: ignore[list-item] - a JSON null
        [yes(asks[7])],
        ANSWERED,
    )

    assert result.to_dict() == {"yes": 2, "no": 1, "bounced": 1, "refused": {"forged": 2}, "refused_total": 2}
    assert [register_row(target, asks[m])["answer"] for m in (1, 2, 3, 7)] == ["yes", "no", "yes", None]
    assert register_row(target, asks[7])["status"] == "failed"


def test_an_answer_that_fails_unexpectedly_loses_none_of_the_others_and_fails_the_batch_at_the_end(
    target: Target, club: RetentionPolicy
) -> None:
    """The rights register exists without the project's layout: the "no" cannot be recorded as
    an opposition. The yes before and after it are recorded all the same, then the batch raises."""
    asks = {member: ask(target, member, date(2026, 11, 26)) for member in (1, 2, 3)}
    register = f"{'' if target.is_sqlite else 'club.'}rights_requests"
    with target.engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {register}"))
        conn.execute(text(f"CREATE TABLE {register} (reference text)"))

    with pytest.raises(RetentionError, match=r"1 of the 3 answers and bounces failed.*2 others are recorded"):
        answer_all(target, club, KEY, ctx_on(ANSWERED), [yes(asks[1]), no(asks[2]), yes(asks[3])], [], ANSWERED)

    assert [register_row(target, asks[m])["answer"] for m in (1, 2, 3)] == ["yes", None, "yes"]
    assert [e["details"]["answer"] for e in answer_events(target, club)] == ["yes", "yes"]
    assert ids(target, "members") == [1, 2, 3, 4, 5, 6, 7, 8]


def test_a_batch_over_the_bound_is_refused_before_anything(target: Target, club: RetentionPolicy) -> None:
    with pytest.raises(RetentionError, match="at most 10,000"):
        answer_all(target, club, KEY, ctx_on(ANSWERED), ["x"] * 10_001, [], ANSWERED)
    assert not _audit_exists(target, club) or answer_events(target, club) == []


def _audit_exists(target: Target, policy: RetentionPolicy) -> bool:
    with target.read() as conn:
        return store.table_exists(conn, store.audit_table("archive", policy.audit_table))


# --- The CSV a mailing tool drops ---------------------------------------------------------------

TOKEN_A = "a" * 32 + ".y.20261125." + "1" * 64
TOKEN_B = "b" * 32 + ".n.20261125." + "2" * 64


def test_a_csv_with_bom_crlf_blank_lines_and_events_is_read() -> None:
    text = f"\ufeffEmail,Token,Event\r\n\r\nx@example.fr,{TOKEN_A},\r\n,,\r\ny@example.fr, {TOKEN_B} ,BOUNCE\r\n\r\n"
    assert read_answers_csv(text) == AnswerFile(tokens=[TOKEN_A], bounces=[TOKEN_B])
    assert read_answers_csv(f"token\n{TOKEN_A}\n{TOKEN_B}") == AnswerFile([TOKEN_A, TOKEN_B], [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{TOKEN_A}\n{TOKEN_B}\n", "no 'token' column"),  # no header: the first token is not echoed
        ("email,answer\nx@example.fr,yes\n", "no 'token' column"),
        ("", "no 'token' column"),
        (f"token,event\n{TOKEN_A},unsubscribe\n", "line 2: the event must be 'answer' or 'bounce'"),
        (f"token,event\n\n,bounce\n{TOKEN_A}\n", "line 3 has no token"),
        ("token\n" + "x" * 200_000 + "\n", "line 2 is not valid CSV"),  # over the csv module's field limit
    ],
)
def test_a_bad_csv_is_refused_whole_naming_the_problem_never_a_token(text: str, message: str) -> None:
    with pytest.raises(RetentionError, match=message) as refused:
        read_answers_csv(text)
    assert TOKEN_A[:32] not in str(refused.value) and TOKEN_B[:32] not in str(refused.value)


def test_a_csv_over_the_bounds_is_refused() -> None:
    with pytest.raises(RetentionError, match="characters, at most"):
        read_answers_csv("token\n" + "x" * answers.MAX_CSV_CHARACTERS)
    with pytest.raises(RetentionError, match="more than 10,000 lines"):
        read_answers_csv("token\n" + f"{TOKEN_A}\n" * 10_001)


def test_tokens_in_the_register_are_never_stored_whole(target: Target, club: RetentionPolicy) -> None:
    """The register keeps the token's id; the signature (what makes it a credential) is nowhere."""
    asked = ask(target, 1, date(2026, 11, 26))
    answer_token(target, club, KEY, ctx_on(ANSWERED), yes(asked), ANSWERED)
    signature = yes(asked).rsplit(".", 1)[1]
    assert signature not in json.dumps(_all_asks(target), default=str)
    assert signature not in whole_audit_text(target, club)


# --- The Airflow task -----------------------------------------------------------------------------


def test_the_answer_task_reads_the_real_day_not_the_logical_date_a_caller_chose(
    target: Target, club: RetentionPolicy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever triggers ``reconsent_answer`` through the REST API chooses its logical date. A
    back-dated one neither makes an expired token valid nor back-dates the clock's restart: an
    answer is taken on the company's real day, whatever the run says."""
    real_today = datetime.now(club.zone).date()
    expired = ask(target, 1, real_today + timedelta(days=20), expires_on=real_today - timedelta(days=1))
    on_time = ask(target, 3, real_today + timedelta(days=20), expires_on=real_today + timedelta(days=5))
    back_dated = datetime.combine(real_today - timedelta(days=30), time(12), UTC)
    context = {
        "params": {
            "tokens": [
                yes(expired, real_today - timedelta(days=1)),
                yes(on_time, real_today + timedelta(days=5)),
            ]
        },
        "logical_date": back_dated,
        "run_id": "manual__back-dated",
        "dag": SimpleNamespace(dag_id="reconsent_answer"),
        "dag_run": SimpleNamespace(run_after=back_dated),
    }
    monkeypatch.setattr(reconsent_tasks, "get_current_context", lambda: context)
    monkeypatch.setattr(Site, "policy", lambda site: club)
    monkeypatch.setattr(reconsent_tasks, "subject_key", lambda: KEY)
    monkeypatch.setattr(reconsent_tasks, "open_target", lambda policy, conn_id: nullcontext(target))

    result = reconsent_tasks.answers(DEFAULT_SITE)

    assert (result["yes"], result["refused"]) == (1, {"expired": 1})
    assert register_row(target, on_time)["answered_on"] == real_today
    assert register_row(target, expired)["answer"] is None
