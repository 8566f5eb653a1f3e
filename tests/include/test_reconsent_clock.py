"""The re-consent promise in the schedule, on both backends: a row of a category with a
``reconsent`` block waits for the ask before it leaves the active base (at most the notice
window past the end of its active period), and a yes restarts its clock.

The club schema (``engine_helpers``) with a reconsent block on its members: a schema the
engine has never heard of, so the policy alone drives the gate and the restart. Register rows
are written directly, as the campaign and the answers would leave them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import count as counter
from typing import Any

import pytest
from engine_helpers import PARIS, archive_rows, club_policy, create_club, ids, run_category
from sqlalchemy import MetaData, Table, exists, select, update

from include.retention.database import store
from include.retention.database.identity import SubjectKey
from include.retention.database.reflect import key_text, reflect_category
from include.retention.database.target import Target
from include.retention.dates.clock import local_date
from include.retention.dates.periods import Period
from include.retention.policy.model import RetentionPolicy
from include.retention.records.audit import RunContext
from include.retention.schedule.context import StepContext
from include.retention.schedule.postflight import post_run_gate
from include.retention.schedule.waiting import in_notice_window, period_end

RECONSENT = {
    "address_column": "email",
    "notice_days": 30,
    "sender": "Service données personnelles <rgpd@example.fr>",
    "answer_url": "https://www.example.fr/consentement",
}
NOTICE = timedelta(days=30)
AS_OF = date(2026, 11, 26)
# A member whose last contact was three years before AS_OF: its active period ends today.
ENDS_TODAY = date(2023, 11, 26)
THREE_YEARS = Period.parse("P3Y")  # the club's active period
_tokens = counter(1)


def reconsent_policy(**changes: Any) -> RetentionPolicy:
    """The club's members, asked before their active period ends (a 'no' is an opposition)."""
    return club_policy(reconsent=RECONSENT, deleted_on=["opposition"], **changes)


def asked(
    target: Target,
    member_id: int,
    period_end: date,
    status: str,
    *,
    sent_on: date | None = None,
    answer: str | None = None,
    answered_on: date | None = None,
) -> None:
    """One ask in the register, as the campaign (and the answers) would leave it."""
    register = store.reconsent_table(target.archive_schema)
    target.ensure_archive_schema()
    with target.engine.begin() as conn:
        store.ensure_table(conn, register)
        conn.execute(
            register.insert().values(
                category="members",
                table_name="members",
                row_key=str(member_id),
                period_end=period_end,
                subject_hash="0" * 64,
                token_id=f"{next(_tokens):032x}",
                expires_on=period_end + NOTICE - timedelta(days=1),
                status=status,
                recorded_at=_at(sent_on or period_end - NOTICE),
                sent_at=_at(sent_on) if sent_on else None,
                answer=answer,
                answered_at=_at(answered_on) if answered_on else None,
                answered_on=answered_on,
            )
        )


def _at(day: date) -> datetime:
    """10:00 in Paris on ``day``, as the aware UTC instant the register stores."""
    return datetime.combine(day, time(10), tzinfo=PARIS).astimezone(UTC)


def members_table(target: Target) -> Table:
    schema = "club" if target.capabilities.separate_schemas else None
    return Table("members", MetaData(), schema=schema, autoload_with=target.engine)


def set_email(target: Target, member_id: int, email: str | None) -> None:
    members = members_table(target)
    with target.engine.begin() as conn:
        conn.execute(update(members).where(members.c.member_id == member_id).values(email=email))


def active(target: Target) -> list[int]:
    return ids(target, "members")


def archived(target: Target) -> list[int]:
    return ids(target, "members", archive=True)


def test_a_prospect_at_the_end_of_its_active_period_who_was_not_asked_waits_for_reconsent(target: Target) -> None:
    create_club(target, {1: ENDS_TODAY, 2: ENDS_TODAY - timedelta(days=10), 3: date(2026, 1, 1)})
    result = run_category(target, reconsent_policy(), AS_OF)
    assert active(target) == [1, 2, 3]
    plan = result.plan.tables[0]
    assert (plan.waiting_for_reconsent, plan.due_for_archive, sum(plan.children.values())) == (2, 0, 0)
    assert result.archived == {}


def test_the_post_run_gate_does_not_count_a_waiting_row_as_overdue(target: Target) -> None:
    create_club(target, {1: ENDS_TODAY, 2: ENDS_TODAY - NOTICE})
    policy = reconsent_policy()
    run_category(target, policy, AS_OF)
    assert (active(target), archived(target)) == ([1], [2])
    ctx = RunContext(run_id="run-1", dag_id="retention_members", as_of=AS_OF, policy_version=policy.version)
    key = SubjectKey("k" * 40, "test")  # the opposition check compares keyed hashes
    checks = post_run_gate(StepContext.build(target, policy, "members", ctx, key))  # a failing check raises
    assert [c.unexpected for c in checks if c.expectation == "no_overdue_active_rows"] == [0]


def test_the_plan_carries_the_waiting_count_through_its_xcom(target: Target) -> None:
    create_club(target, {1: ENDS_TODAY})
    plan = run_category(target, reconsent_policy(), AS_OF, dry_run=True).plan
    again = type(plan).from_xcom(plan.to_xcom())
    assert again.tables[0].waiting_for_reconsent == 1
    assert again == plan


def test_a_prospect_asked_30_days_ago_moves_to_archive(target: Target) -> None:
    # Both were due today and asked; only the one asked at least the notice window ago goes.
    create_club(target, {1: ENDS_TODAY, 2: ENDS_TODAY})
    asked(target, 1, AS_OF, "sent", sent_on=AS_OF - NOTICE)
    asked(target, 2, AS_OF, "sent", sent_on=AS_OF - NOTICE + timedelta(days=1))
    result = run_category(target, reconsent_policy(), AS_OF)
    assert (active(target), archived(target)) == ([2], [1])
    assert result.plan.tables[0].waiting_for_reconsent == 1


def test_a_prospect_whose_ask_permanently_failed_moves_to_archive(target: Target) -> None:
    create_club(target, {1: ENDS_TODAY, 2: ENDS_TODAY, 3: ENDS_TODAY, 4: ENDS_TODAY})
    asked(target, 1, AS_OF, "failed")  # a 550, or a bounce reported later
    asked(target, 2, AS_OF, "pending")  # a 4xx: retried next run, the promise still open
    asked(target, 3, AS_OF, "sending")
    asked(target, 4, AS_OF, "suppressed")  # on the suppression list: never asked
    run_category(target, reconsent_policy(), AS_OF)
    assert (active(target), archived(target)) == ([2, 3], [1, 4])


def test_a_prospect_with_no_address_moves_to_archive(target: Target) -> None:
    create_club(target, {1: ENDS_TODAY, 2: ENDS_TODAY, 3: ENDS_TODAY, 4: ENDS_TODAY})
    set_email(target, 1, None)
    set_email(target, 2, "   ")
    asked(target, 3, AS_OF, "no_address")  # an address Python's check refused
    result = run_category(target, reconsent_policy(), AS_OF)
    assert (active(target), archived(target)) == ([4], [1, 2, 3])
    assert result.plan.tables[0].waiting_for_reconsent == 1


def test_a_prospect_never_waits_longer_than_the_notice_window(target: Target) -> None:
    # Never asked (no campaign ran, the register does not exist): the row whose period ended
    # notice_days ago goes; the one a day short of that still waits.
    create_club(target, {1: ENDS_TODAY - NOTICE, 2: ENDS_TODAY - NOTICE + timedelta(days=1)})
    result = run_category(target, reconsent_policy(), AS_OF)
    assert (active(target), archived(target)) == ([2], [1])
    assert result.plan.tables[0].waiting_for_reconsent == 1
    run_category(target, reconsent_policy(), AS_OF + timedelta(days=1), run_id="run-2")
    assert (active(target), archived(target)) == ([], [1, 2])


def test_without_an_archive_period_a_waiting_row_is_not_destroyed(target: Target) -> None:
    create_club(target, {1: ENDS_TODAY, 2: ENDS_TODAY - NOTICE})
    policy = reconsent_policy(archive_period=None)
    result = run_category(target, policy, AS_OF)
    assert active(target) == [1]
    plan = result.plan.tables[0]
    assert (plan.waiting_for_reconsent, plan.due_for_end_of_life) == (1, 1)
    assert result.purged["deleted"]["members"] == 1


def test_an_ask_for_an_earlier_period_does_not_release_the_row(target: Target) -> None:
    # A failed ask three years ago was for another period end: this period's promise is open.
    create_club(target, {1: ENDS_TODAY})
    asked(target, 1, date(2023, 11, 26), "failed")
    run_category(target, reconsent_policy(), AS_OF)
    assert active(target) == [1]


def test_a_yes_restarts_the_clock(target: Target) -> None:
    create_club(target, {1: ENDS_TODAY, 2: ENDS_TODAY, 3: ENDS_TODAY, 4: ENDS_TODAY})
    yes_day = AS_OF - timedelta(days=10)
    asked(target, 1, AS_OF, "sent", sent_on=AS_OF - NOTICE, answer="yes", answered_on=yes_day)
    asked(target, 2, AS_OF, "sent", sent_on=AS_OF - NOTICE, answer="no", answered_on=yes_day)
    # A yes older than the start (an earlier period's) never pulls the clock back.
    asked(target, 3, date(2020, 11, 26), "sent", sent_on=date(2020, 11, 1), answer="yes", answered_on=date(2020, 11, 2))
    asked(target, 3, AS_OF, "sent", sent_on=AS_OF - NOTICE)
    asked(target, 4, AS_OF, "sent", sent_on=AS_OF - NOTICE)
    result = run_category(target, reconsent_policy(), AS_OF)
    # The yes: active for another active period from the day of the answer, not waiting, not due.
    assert (active(target), archived(target)) == ([1], [2, 3, 4])
    plan = result.plan.tables[0]
    assert (plan.waiting_for_reconsent, plan.due_for_archive) == (0, 3)
    assert _clock_days(target, reconsent_policy(), AS_OF)[1] == (yes_day, THREE_YEARS.add_to(yes_day))
    # Three years after the yes, the row is due again (and waits for this period's ask).
    again = run_category(target, reconsent_policy(), date(2029, 11, 16), run_id="run-2")
    assert (again.plan.tables[0].waiting_for_reconsent, active(target)) == (1, [1])


def test_retention_until_is_counted_from_the_yes_day(target: Target) -> None:
    create_club(target, {1: ENDS_TODAY})
    yes_day = date(2026, 11, 16)
    asked(target, 1, AS_OF, "sent", sent_on=AS_OF - NOTICE, answer="yes", answered_on=yes_day)
    new_end = THREE_YEARS.add_to(yes_day)
    # Not asked again for the new period: it leaves when the window past its new end closes.
    run_category(target, reconsent_policy(), new_end + NOTICE - timedelta(days=1))
    assert archived(target) == []
    run_category(target, reconsent_policy(), new_end + NOTICE, run_id="run-2")
    (row,) = archive_rows(target, "members")
    assert (row["retention_start"], row["retention_until"]) == (yes_day, date(2034, 11, 16))


def test_a_second_run_the_same_day_changes_nothing(target: Target) -> None:
    create_club(target, {1: ENDS_TODAY, 2: ENDS_TODAY, 3: ENDS_TODAY - NOTICE})
    asked(target, 1, AS_OF, "failed")
    first = run_category(target, reconsent_policy(), AS_OF)
    second = run_category(target, reconsent_policy(), AS_OF, run_id="run-2")
    assert (active(target), archived(target)) == ([2], [1, 3])
    assert first.archived == {"members": 2, "member_events": 4, "member_event_files": 4}
    assert second.archived == {}
    assert [t.waiting_for_reconsent for t in (first.plan.tables[0], second.plan.tables[0])] == [1, 1]


def test_29_february(target: Target) -> None:
    # A contact on 29 February 2024: three years later the period ends on 28 February 2027
    # (Period.add_to's clamping), the day the campaign records as the period end.
    create_club(target, {1: date(2024, 2, 29), 2: date(2024, 2, 29), 3: date(2024, 2, 29)})
    end = date(2027, 2, 28)
    asked(target, 1, end, "failed")
    asked(target, 3, date(2027, 3, 1), "failed")  # not this period's end: does not release it
    policy = reconsent_policy()
    assert {k: v[1] for k, v in _clock_days(target, policy, end).items()} == {1: end, 2: end, 3: end}
    assert _in_window(target, policy, end - NOTICE) == [1, 2, 3]
    assert _in_window(target, policy, end - NOTICE - timedelta(days=1)) == []
    run_category(target, policy, end)
    assert (active(target), archived(target)) == ([2, 3], [1])
    run_category(target, policy, end + NOTICE, run_id="run-2")
    assert archived(target) == [1, 2, 3]


def test_a_yes_on_29_february_restarts_the_clock_from_that_day(target: Target) -> None:
    create_club(target, {1: date(2021, 2, 28)})
    asked(target, 1, date(2024, 2, 28), "sent", sent_on=date(2024, 1, 29), answer="yes", answered_on=date(2024, 2, 29))
    assert _clock_days(target, reconsent_policy(), date(2024, 3, 1))[1] == (date(2024, 2, 29), date(2027, 2, 28))


def test_the_restarted_clock_reads_the_same_inside_a_query_on_the_register(target: Target) -> None:
    # The campaign looks for "no ask for this row and its period end" with an EXISTS on the
    # register: the clock inside it still reads this row's own yes, not every row's.
    create_club(target, {1: ENDS_TODAY, 2: ENDS_TODAY})
    yes_day = AS_OF - timedelta(days=10)
    asked(target, 1, AS_OF, "sent", sent_on=AS_OF - NOTICE, answer="yes", answered_on=yes_day)
    asked(target, 2, AS_OF, "sent", sent_on=AS_OF - NOTICE)
    policy = reconsent_policy()
    (root,) = _roots(target, policy)
    register = store.reconsent_table(target.archive_schema)
    end = period_end(root, policy.category("members"), target.dialect, policy.zones)
    already = exists().where(
        register.c.row_key == key_text(root.source, root.key_columns), register.c.period_end == end
    )
    with target.read() as conn:
        rows = conn.execute(select(root.source.c.member_id, already).order_by(root.source.c.member_id)).all()
    assert [tuple(r) for r in rows] == [(1, False), (2, True)]  # 1's period now ends in 2029


def _roots(target: Target, policy: RetentionPolicy) -> Any:
    with target.engine.connect() as conn:
        return reflect_category(conn, policy, policy.category("members"), target.source_schema, target.archive_schema)


def _clock_days(target: Target, policy: RetentionPolicy, as_of: date) -> dict[int, tuple[date, date]]:
    """Each member's clock as the engine reads it: (start day, period end D)."""
    (root,) = _roots(target, policy)
    category, zones = policy.category("members"), policy.zones
    query = select(
        root.source.c.member_id,
        local_date(root.start, target.dialect, zones),
        period_end(root, category, target.dialect, zones),
    )
    with target.read() as conn:
        return {m: (_day(s), _day(d)) for m, s, d in conn.execute(query)}


def _in_window(target: Target, policy: RetentionPolicy, as_of: date) -> list[int]:
    (root,) = _roots(target, policy)
    window = in_notice_window(root, policy.category("members"), as_of, policy.zones)
    with target.read() as conn:
        return sorted(conn.execute(select(root.source.c.member_id).where(window)).scalars())


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


@pytest.mark.parametrize("notice_days", [1, 365])
def test_the_window_follows_notice_days(target: Target, notice_days: int) -> None:
    create_club(target, {1: ENDS_TODAY - timedelta(days=notice_days - 1), 2: ENDS_TODAY - timedelta(days=notice_days)})
    policy = club_policy(reconsent={**RECONSENT, "notice_days": notice_days}, deleted_on=["opposition"])
    run_category(target, policy, AS_OF)
    assert (active(target), archived(target)) == ([1], [2])
