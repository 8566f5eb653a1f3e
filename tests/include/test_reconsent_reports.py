"""What the DPO reads about the re-consent promise: the rows a run kept waiting for the ask (its
certificate and its summary), and each campaign in the DPO report - asked, delivered, failed,
not asked, yes, no, no answer, clock restarts, refused tokens - counts only, on both backends."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from html import unescape
from typing import Any

from engine_helpers import AS_OF, club_policy, create_club, create_rights_register, run_category, schema_metadata
from sqlalchemy import insert

from include.retention.database import store
from include.retention.database.identity import SubjectKey, subject_hash
from include.retention.policy.model import RetentionPolicy
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.reports import certificate, dpo_render, dpo_report
from include.retention.reports.summary import format_summary, summary_table
from include.retention.schedule.context import StepContext
from include.retention.schedule.summary import summarize_run

NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))
KEY = SubjectKey("reconsent-reports-test-key-" + "k" * 20, "test")
RECONSENT = {
    "address_column": "email",
    "notice_days": 30,
    "sender": "Club <rgpd@club.example>",
    "answer_url": "https://club.example/consentement",
}


def reconsent_policy() -> RetentionPolicy:
    return club_policy(reconsent=RECONSENT, deleted_on=["opposition"])


def _archive_schema(target) -> None:
    """The archive schema the project tables live in (created on PostgreSQL)."""
    schema_metadata(target, "archive")


def _instant(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _ask(member: int, status: str, recorded: datetime, **columns: Any) -> dict[str, Any]:
    """One register row for a club member, as the campaign records it."""
    return {
        "category": "members",
        "table_name": "members",
        "row_key": str(member),
        "period_end": date(2026, 12, 1),
        "subject_hash": subject_hash(KEY, "email", f"member{member}@example.fr"),
        "token_id": f"{member:032x}",
        "expires_on": date(2026, 11, 30),
        "status": status,
        "recorded_at": recorded,
        "sent_at": recorded if status == "sent" else None,
        "failure": None,
        "answer": None,
        "answered_on": None,
        "run_id": "scheduled__reconsent",
        "policy_version": "club-1",
        **columns,
    }


# November's asks, and where each stands on AS_OF (26 November 2026).
IN_NOVEMBER = [
    _ask(1, "sent", _instant(date(2026, 11, 2)), answer="yes", answered_on=date(2026, 11, 5)),
    _ask(2, "sent", _instant(date(2026, 11, 2)), answer="yes", answered_on=date(2026, 11, 6)),
    _ask(3, "sent", _instant(date(2026, 11, 2)), answer="no", answered_on=date(2026, 11, 7)),
    _ask(4, "sent", _instant(date(2026, 11, 2)), expires_on=date(2026, 11, 25)),  # expired yesterday: no answer
    _ask(5, "sent", _instant(date(2026, 11, 20)), expires_on=date(2026, 11, 26)),  # still valid today: awaiting
    _ask(6, "failed", _instant(date(2026, 11, 3)), failure="550 mailbox unavailable"),
    _ask(7, "no_address", _instant(date(2026, 11, 3))),
    _ask(8, "suppressed", _instant(date(2026, 11, 3))),
    _ask(9, "pending", _instant(date(2026, 11, 25))),
    # 31 October 23:30 UTC is 1 November 00:30 in Paris: a November ask.
    _ask(10, "sent", datetime(2026, 10, 31, 23, 30, tzinfo=UTC), expires_on=date(2026, 11, 20)),
]
# 31 October 22:30 UTC is still 31 October in Paris (23:30): not in November's report.
IN_OCTOBER = [_ask(11, "sent", datetime(2026, 10, 31, 22, 30, tzinfo=UTC), answer="yes")]


def _record_asks(target, rows: list[dict[str, Any]]) -> None:
    _archive_schema(target)
    register = store.reconsent_table(target.archive_schema)
    with target.engine.begin() as conn:
        store.ensure_table(conn, register)
        conn.execute(insert(register), rows)


def _refusals(target, policy: RetentionPolicy, refusals: list[tuple[str, dict[str, Any]]], day: date) -> None:
    """``reconsent_answer`` events as the answers DAG writes them: (event category, details)."""
    _archive_schema(target)
    trail = store.audit_table(target.archive_schema, policy.audit_table)
    ctx = RunContext("manual__answers", "reconsent_answer", day, policy.version)
    with target.engine.begin() as conn:
        store.ensure_audit_table(conn, trail)
        for category, details in refusals:
            audit.record(conn, trail, ctx, category=category, action="reconsent_answer", row_count=0, details=details)


def _campaign_rows(page: str, heading: str) -> list[list[str]]:
    """The cells of each row of the campaign table (the section under ``heading``)."""
    section = page.split(heading, 1)[1].split("<h2>", 1)[0]
    return [
        [
            unescape(re.sub(r"<[^>]+>", "", cell)).replace("\u202f", "")
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", section)
        if "<td" in row
    ]


def test_the_report_counts_each_campaign_from_the_register_and_the_audit(target):
    policy = reconsent_policy()
    create_club(target)
    create_rights_register(target, "club")
    _record_asks(target, IN_NOVEMBER + IN_OCTOBER)
    _refusals(
        target,
        policy,
        [
            ("reconsent", {"refused": "forged"}),  # names no ask: no category can be believed
            ("reconsent", {"refused": "forged"}),
            ("members", {"refused": "expired", "category": "members"}),
            ("members", {"refused": "replayed", "category": "members"}),
            ("members", {"refused": "replayed", "category": "members"}),
            ("members", {"refused": "answered", "bounce": True, "category": "members"}),  # a bounce ignored
            ("members", {"answer": "yes", "category": "members"}),  # an answer, not a refusal
        ],
        date(2026, 11, 10),
    )
    report = dpo_report.build(target, policy, *NOVEMBER, AS_OF)
    assert report.campaigns.started
    (members,) = report.campaigns.categories
    assert members == dpo_report.Campaign(
        "members",
        recorded=10,
        unsent=1,
        sent=6,
        failed=1,
        no_address=1,
        suppressed=1,
        yes=2,
        no=1,
        awaiting=1,
        no_answer=2,
        refused={"expired": 1, "replayed": 2},
    )
    assert (members.not_asked, members.clock_restarts) == (2, 2)
    assert report.campaigns.unattributed == {"forged": 2}

    october_too = dpo_report.build(target, policy, date(2026, 10, 1), NOVEMBER[1], AS_OF)
    assert (october_too.campaigns.categories[0].recorded, october_too.campaigns.categories[0].yes) == (11, 3)


def test_the_campaign_section_reads_in_french_and_english_and_holds_no_hash_or_address(target):
    policy = reconsent_policy()
    create_club(target)
    create_rights_register(target, "club")
    _record_asks(target, IN_NOVEMBER)
    _refusals(target, policy, [("reconsent", {"refused": "forged"}), ("members", {"refused": "expired"})], AS_OF)
    report = dpo_report.build(target, policy, *NOVEMBER, AS_OF)
    french, english = unescape(dpo_render.render(report)), unescape(dpo_render.render(report, "en"))

    expected = ["10", "1", "6", "1", "1", "1", "2", "1", "1", "2", "2"]
    assert _campaign_rows(french, "5. Campagnes de re-consentement") == [["Adhérents", *expected, "expiré 1"]]
    assert _campaign_rows(english, "5. Re-consent campaigns") == [["Members", *expected, "expired 1"]]
    assert "Demandes enregistrées" in french and "Délais redémarrés" in french and "Sans réponse" in french
    assert "Asks recorded" in english and "Clock restarts" in english and "No answer (links expired)" in english
    assert "falsifié 1" in french and "forged 1" in english  # the forged token, named under no category
    assert "6. Constats de qualité" in french and "7. Audit log integrity" in english
    for page in (french, english):
        for ask in IN_NOVEMBER:
            assert ask["subject_hash"] not in page and ask["token_id"] not in page
        # The failure text, not the digits "550", which a hash on the page may hold by chance.
        assert "@example.fr" not in page and "mailbox unavailable" not in page
        assert not re.search(r"(?<![0-9a-f])550(?![0-9a-f])", page)


def test_no_register_yet_means_no_campaign_yet_and_a_policy_without_reconsent_says_so(target):
    create_club(target)
    create_rights_register(target, "club")
    report = dpo_report.build(target, reconsent_policy(), *NOVEMBER, AS_OF)
    assert not report.campaigns.started and report.campaigns.categories == []
    assert "Aucune campagne n'a encore eu lieu" in unescape(dpo_render.render(report))
    assert "No campaign has run yet" in dpo_render.render(report, "en")

    without = dpo_report.build(target, club_policy(), *NOVEMBER, AS_OF)
    assert "No category of the policy asks for re-consent." in dpo_render.render(without, "en")
    assert "Aucune catégorie de la politique ne prévoit de re-consentement." in unescape(dpo_render.render(without))


def test_a_register_with_no_ask_in_the_period_shows_zeros(target):
    create_club(target)
    create_rights_register(target, "club")
    _record_asks(target, IN_OCTOBER)
    (members,) = dpo_report.build(target, reconsent_policy(), *NOVEMBER, AS_OF).campaigns.categories
    assert members == dpo_report.Campaign("members")


def _plan_events(target, policy: RetentionPolicy, ctx: RunContext, waiting: dict[str, int]) -> None:
    """A run's plan events as plan_category writes them, with its waiting counts, and its close."""
    _archive_schema(target)
    trail = store.audit_table(target.archive_schema, policy.audit_table)
    with target.engine.begin() as conn:
        store.ensure_audit_table(conn, trail)
        for table, rows in waiting.items():
            details = {"due_for_archive": 0, "missing_start": 0, "held_open": 0, "waiting_for_reconsent": rows}
            audit.record(
                conn, trail, ctx, category="members", action="plan", table_name=table, row_count=0, details=details
            )


def test_the_certificate_shows_the_rows_waiting_for_reconsent_and_how_long_the_promise_delays(target):
    policy = reconsent_policy()
    create_club(target)
    create_rights_register(target, "club")
    ctx = RunContext("scheduled__members", "retention_members", AS_OF, policy.version)
    _plan_events(target, policy, ctx, {"members": 3})
    summarize_run(StepContext.build(target, policy, "members", ctx), {}, {})
    trail = store.audit_table(target.archive_schema, policy.audit_table)
    with target.read() as conn:
        issued = certificate.build(conn, trail, policy, ctx.run_id)
        (summary,) = summary_table(conn, trail, [ctx.run_id])
    assert [(t.table, t.waiting_for_reconsent) for t in issued.tables] == [("members", 3)]
    assert issued.waiting_for_reconsent == 3 and issued.reconsent_notice_days == 30
    data = issued.to_dict()
    assert data["tables"][0]["waiting_for_reconsent"] == 3 and data["reconsent_notice_days"] == 30
    french, english = (unescape(certificate.render(issued, lang)) for lang in ("fr", "en"))
    assert "<th>en attente de re-consentement</th>" in french
    assert "3 en attente de re-consentement" in french and "d'au plus 30 jours" in french
    assert "<th>waiting for re-consent</th>" in english
    assert "3 waiting for re-consent" in english and "at most 30 days (notice_days)" in english
    # The run summary says the same count, and the table the demo prints shows it.
    assert summary.waiting_for_reconsent == 3
    assert "waiting for re-consent" in format_summary([summary]).splitlines()[0]
    assert format_summary([summary]).splitlines()[2].split()[-1] == "3"


def test_a_run_that_kept_nobody_waiting_has_the_certificate_it_always_had(target):
    """No re-consent key in its JSON (a certificate issued again compares equal to the one
    written before), no column, no sentence."""
    policy = reconsent_policy()
    create_club(target)
    create_rights_register(target, "club")
    ctx = RunContext("scheduled__members", "retention_members", AS_OF, policy.version)
    _plan_events(target, policy, ctx, {"members": 0})
    with target.read() as conn:
        issued = certificate.build(
            conn, store.audit_table(target.archive_schema, policy.audit_table), policy, ctx.run_id
        )
    data = issued.to_dict()
    assert "reconsent_notice_days" not in data and "waiting_for_reconsent" not in data["tables"][0]
    assert "re-consent" not in certificate.render(issued)


def test_a_run_counts_the_due_rows_that_wait_for_the_ask_on_its_certificate_and_summary(target):
    """Members 1 and 3 reached the end of their 3 years within the last 30 days and have an
    address: before any campaign, the run keeps them waiting for the ask, and says so."""
    policy = reconsent_policy()
    create_club(target)
    create_rights_register(target, "club")
    run_category(target, policy, run_id="run-waits")
    trail = store.audit_table(target.archive_schema, policy.audit_table)
    with target.read() as conn:
        issued = certificate.build(conn, trail, policy, "run-waits")
        (summary,) = summary_table(conn, trail, ["run-waits"])
    members = next(t for t in issued.tables if t.table == "members")
    assert members.waiting_for_reconsent == summary.waiting_for_reconsent == 2
    assert "2 waiting for re-consent" in certificate.render(issued, "en")
