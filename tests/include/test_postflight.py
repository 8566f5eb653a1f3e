"""The post-run gate, on SQLite and PostgreSQL: it passes after a clean run, and each of its
checks fails on purpose-built bad data."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import MetaData, Table, delete, insert, update

from engine_helpers import AS_OF, PARIS, _members_table_policy, club_policy, create_club, run_category
from include.retention.audit import RunContext
from include.retention.postflight import post_run_gate
from include.retention.quality import QualityGateFailed
from include.retention.steps import StepContext


def post(target, policy, run_id="run-1", dry_run=False):
    ctx = RunContext(run_id=run_id, dag_id="retention_members", as_of=AS_OF, policy_version=policy.version,
                     dry_run=dry_run)
    return post_run_gate(StepContext.build(target, policy, "members", ctx))


def _archive(target, name="members"):
    return Table(name, MetaData(), schema="archive", autoload_with=target.engine)


def test_a_clean_run_passes_every_post_run_check(target):
    create_club(target)
    run_category(target, club_policy())  # member 4 is archived and destroyed in the same run
    results = post(target, club_policy())
    assert results and all(r.success for r in results)
    assert {r.expectation for r in results} == {"no_overdue_active_rows", "retention_until_matches_policy",
                                                "no_expired_archive_rows", "archive_counts_reconcile"}


def test_an_over_age_row_left_in_the_active_base_fails(target):
    tables = create_club(target)
    run_category(target, club_policy())
    with target.engine.begin() as conn:
        conn.execute(insert(tables["members"]).values(member_id=99, email="late@example.fr",
                                                      last_contact_at=datetime(2020, 5, 5, tzinfo=PARIS)))
    with pytest.raises(QualityGateFailed, match=r"no_overdue_active_rows on members: 1 row"):
        post(target, club_policy())


def test_a_retention_until_that_does_not_follow_the_policy_fails(target):
    create_club(target)
    run_category(target, club_policy())
    archive = _archive(target)
    with target.engine.begin() as conn:
        conn.execute(update(archive).where(archive.c.member_id == 1).values(retention_until=date(2040, 1, 1)))
    with pytest.raises(QualityGateFailed, match=r"retention_until_matches_policy on members: 1 row"):
        post(target, club_policy())


def test_an_archive_row_past_its_retention_until_fails(target):
    create_club(target)
    run_category(target, club_policy())
    archive = _archive(target)
    with target.engine.begin() as conn:
        conn.execute(update(archive).where(archive.c.member_id == 1)
                     .values(retention_start=date(2010, 1, 1), retention_until=date(2018, 1, 1)))
    with pytest.raises(QualityGateFailed, match=r"no_expired_archive_rows on members: 1 row") as info:
        post(target, club_policy())
    assert "retention_until_matches_policy" not in str(info.value)  # the dates agree with the policy


def test_an_archive_row_that_vanished_breaks_the_reconciliation(target):
    create_club(target)
    run_category(target, club_policy())
    archive = _archive(target, "member_event_files")
    with target.engine.begin() as conn:
        conn.execute(delete(archive).where(archive.c.file_id == 101))
    with pytest.raises(QualityGateFailed, match=r"archive_counts_reconcile on member_event_files: 1 row"):
        post(target, club_policy())


def test_a_broken_anonymisation_fails(target):
    create_club(target)
    policy = club_policy(end_action="anonymize", tables=[_members_table_policy(anonymized=True)])
    run_category(target, policy)
    assert all(r.success for r in post(target, policy))
    archive = _archive(target)
    with target.engine.begin() as conn:
        conn.execute(update(archive).where(archive.c.member_id == 4).values(email="back@example.fr",
                                                                          joined_on=date(2015, 5, 4)))
    with pytest.raises(QualityGateFailed, match=r"anonymised_columns_follow_rules on members: 1 row"):
        post(target, policy)


def test_a_dry_run_reports_overdue_rows_without_failing(target):
    create_club(target)
    run_category(target, club_policy(), dry_run=True)
    results = post(target, club_policy(), dry_run=True)
    overdue = next(r for r in results if r.expectation == "no_overdue_active_rows")
    assert (overdue.success, overdue.unexpected, overdue.blocking) == (False, 5, False)
