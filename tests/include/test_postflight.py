"""The post-run gate, on SQLite and PostgreSQL: it passes after a clean run, and each of its
checks fails on purpose-built bad data."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from engine_helpers import AS_OF, PARIS, _members_table_policy, club_policy, create_club, run_category
from sqlalchemy import MetaData, Table, delete, insert, update

from include.retention.records.audit import RunContext
from include.retention.schedule.context import StepContext
from include.retention.schedule.postflight import post_run_gate
from include.retention.schedule.quality import QualityGateFailed


def post(target, policy, run_id="run-1", dry_run=False):
    ctx = RunContext(
        run_id=run_id, dag_id="retention_members", as_of=AS_OF, policy_version=policy.version, dry_run=dry_run
    )
    return post_run_gate(StepContext.build(target, policy, "members", ctx))


def _archive(target, name="members"):
    return Table(name, MetaData(), schema="archive", autoload_with=target.engine)


def test_a_clean_run_passes_every_post_run_check(target):
    create_club(target)
    run_category(target, club_policy())  # member 4 is archived and destroyed in the same run
    results = post(target, club_policy())
    assert results and all(r.success for r in results)
    assert {r.expectation for r in results} == {
        "no_overdue_active_rows",
        "retention_until_matches_policy",
        "no_expired_archive_rows",
        "archive_counts_reconcile",
        "archive_rows_have_a_start_date",
        "child_rows_without_a_governed_parent",
    }


def test_an_over_age_row_left_in_the_active_base_fails(target):
    tables = create_club(target)
    run_category(target, club_policy())
    with target.engine.begin() as conn:
        conn.execute(
            insert(tables["members"]).values(
                member_id=99, email="late@example.fr", last_contact_at=datetime(2020, 5, 5, tzinfo=PARIS)
            )
        )
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
        conn.execute(
            update(archive)
            .where(archive.c.member_id == 1)
            .values(retention_start=date(2010, 1, 1), retention_until=date(2018, 1, 1))
        )
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
        conn.execute(
            update(archive).where(archive.c.member_id == 4).values(email="back@example.fr", joined_on=date(2015, 5, 4))
        )
    with pytest.raises(QualityGateFailed, match=r"anonymised_columns_follow_rules on members: 1 row"):
        post(target, policy)


def test_a_dry_run_reports_overdue_rows_without_failing(target):
    create_club(target)
    run_category(target, club_policy(), dry_run=True)
    results = post(target, club_policy(), dry_run=True)
    overdue = next(r for r in results if r.expectation == "no_overdue_active_rows")
    assert (overdue.success, overdue.unexpected, overdue.blocking) == (False, 5, False)


# --- Retained dependants (archived_with): the gate covers what the category touched -----------


def _erp_step(target, run_id="customers-1"):
    from test_real_schemas import ERP_POLICY

    from include.retention.policy.load import parse_policy

    policy = parse_policy(ERP_POLICY)
    ctx = RunContext(
        run_id=run_id, dag_id="retention_customer_relationship", as_of=AS_OF, policy_version=policy.version
    )
    return StepContext.build(target, policy, "customer_relationship", ctx)


def _validations(target, step):
    from engine_helpers import audit_events

    return {
        (e["table_name"], e["details"]["expectation"]): e["row_count"]
        for e in audit_events(target, step.policy, run_id=step.ctx.run_id, action="validation")
    }


def test_a_customer_run_checks_the_invoices_it_moved_and_keeps(target):
    from test_real_schemas import create_erp

    create_erp(target)
    step = _erp_step(target)
    run_category(target, step.policy, category="customer_relationship", run_id=step.ctx.run_id)
    results = post_run_gate(step)
    assert all(r.success for r in results)
    checked = {(r.table, r.expectation) for r in results}
    assert {("invoices", "no_expired_archive_rows"), ("invoices", "no_overdue_active_rows")} <= checked


def test_an_invoice_past_its_horizon_left_in_the_archive_fails_the_customer_gate(target):
    """The customer run archived invoice 81 (kept until 2026-06-30) with customer 8; if it is
    still in the archive after the run, the customer run's gate fails, naming the table and
    the count - no key, no name, no e-mail."""
    from test_real_schemas import create_erp

    from include.retention.schedule.archive import archive_category
    from include.retention.schedule.limits import approved_counts
    from include.retention.schedule.plan import plan_category

    create_erp(target)
    step = _erp_step(target)
    archive_category(step, None, approved_counts(plan_category(step)))  # and no purge
    with pytest.raises(QualityGateFailed, match=r"no_expired_archive_rows on invoices: 1 row\(s\)") as info:
        post_run_gate(step)
    message = str(info.value)
    assert "81" not in message and "@" not in message and "Partenaire" not in message
    assert _validations(target, step)[("invoices", "no_expired_archive_rows")] == 1


def test_an_invoice_left_in_the_active_base_after_its_customer_left_fails_the_customer_gate(target):
    from test_real_schemas import create_erp

    create_erp(target)
    step = _erp_step(target)
    run_category(target, step.policy, category="customer_relationship", run_id=step.ctx.run_id)
    invoices = Table("invoices", MetaData(), schema=None if target.is_sqlite else "erp", autoload_with=target.engine)
    # An application whose database does not enforce the link (the policy declares it) writes
    # an invoice for customer 6, who is in the archive: that invoice should be there too.
    if target.is_sqlite:
        raw = target.engine.raw_connection()
        try:  # SQLite enforces foreign keys per connection; outside any transaction
            raw.driver_connection.execute("PRAGMA foreign_keys = OFF")
            raw.driver_connection.execute(
                "INSERT INTO invoices (invoice_id, partner_id, number, invoice_date) "
                "VALUES (69, 6, 'F-69', '2022-01-01')"
            )
            raw.driver_connection.execute("PRAGMA foreign_keys = ON")
        finally:
            raw.close()
    else:
        with target.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE erp.invoices DROP CONSTRAINT invoices_partner_id_fkey")
            conn.execute(
                insert(invoices).values(invoice_id=69, partner_id=6, number="F-69", invoice_date=date(2022, 1, 1))
            )
    with pytest.raises(QualityGateFailed, match=r"no_overdue_active_rows on invoices: 1 row\(s\)"):
        post_run_gate(step)


def test_a_held_invoice_past_its_horizon_keeps_its_customer_and_passes_the_gate(target):
    from test_real_schemas import create_erp

    from include.retention.database.identity import SubjectKey
    from include.retention.records.holds import NewHold, add_hold

    create_erp(target)
    step = _erp_step(target)
    run_category(target, step.policy, category="customer_relationship", run_id="before")
    assert 82 in [r for r in _archive_ids(target, "invoices")]
    add_hold(
        target,
        step.policy,
        NewHold(reference="LIT-82", scope="rows", reason="litige", created_by="juriste", table="invoices", keys=[82]),
        SubjectKey("k" * 40, "test"),
        step.ctx,
        date.today(),
    )
    later = _erp_step(target, run_id="customers-2029")
    later = StepContext.build(
        target,
        later.policy,
        "customer_relationship",
        RunContext("customers-2029", "retention_customer_relationship", date(2029, 6, 1), later.policy.version),
    )
    run_category(
        target, later.policy, as_of=date(2029, 6, 1), category="customer_relationship", run_id="customers-2029"
    )
    assert all(r.success for r in post_run_gate(later))
    assert 82 in _archive_ids(target, "invoices") and 8 in _archive_ids(target, "customer_partners")


def _archive_ids(target, name):
    table = _archive(target, name)
    (pk,) = table.primary_key.columns
    with target.read() as conn:
        return [k for (k,) in conn.execute(pk.table.select().with_only_columns(pk))]


@pytest.mark.parametrize("category", ["customer_relationship", "billing"])
def test_an_invoice_past_its_horizon_under_a_held_customer_passes_the_gate(target, category):
    """A hold on customer 8 (its person, by e-mail) keeps invoice 82 past its horizon: neither
    the customer run's gate nor billing's counts it as an expired archive row."""
    from test_real_schemas import _erp_with_identifiers, create_erp

    from include.retention.database.identity import Subject, SubjectKey
    from include.retention.policy.load import parse_policy
    from include.retention.records.holds import NewHold, add_hold

    key = SubjectKey("k" * 40, "test")
    create_erp(target)
    if not target.is_sqlite:  # keyed hashes in SQL (a hold on a person) use pgcrypto there
        with target.engine.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pgcrypto")
    policy = parse_policy(_erp_with_identifiers())
    run_category(target, policy, category="customer_relationship", run_id="before", subject_key=key)
    add_hold(
        target,
        policy,
        NewHold(
            reference="LIT-8",
            scope="subject",
            reason="litige",
            created_by="juriste",
            subject=Subject.of({"email": "p8@example.fr"}),
        ),
        key,
        RunContext("manual__hold", "legal_hold", AS_OF, policy.version),
        date.today(),
    )
    step = StepContext.build(
        target,
        policy,
        category,
        RunContext(f"{category}-2029", f"retention_{category}", date(2029, 6, 1), policy.version),
        key,
    )
    results = post_run_gate(step)  # before any purge: the invoice is still there, and rightly so
    assert all(r.success for r in results), [r for r in results if not r.success]
    assert ("invoices", "no_expired_archive_rows") in {(r.table, r.expectation) for r in results}
    assert 82 in _archive_ids(target, "invoices")


def test_an_undated_invoice_leaves_with_its_customer_keeps_it_and_is_reported_not_failed(target):
    """Invoice 82 has no date (a defect): it leaves the active base with customer 8, undated,
    and keeps the customer in the archive - it cannot be aged, so it is never destroyed
    silently nor kept silently: both gates pass, and billing's reports the undated row."""
    from test_real_schemas import create_erp

    create_erp(target)
    invoices = Table("invoices", MetaData(), schema=None if target.is_sqlite else "erp", autoload_with=target.engine)
    with target.engine.begin() as conn:
        conn.execute(update(invoices).where(invoices.c.invoice_id == 82).values(invoice_date=None))
    step = _erp_step(target)
    run_category(target, step.policy, category="customer_relationship", run_id=step.ctx.run_id)
    assert all(r.success for r in post_run_gate(step))
    assert 82 in _archive_ids(target, "invoices") and 8 in _archive_ids(target, "customer_partners")
    billing = StepContext.build(
        target, step.policy, "billing", RunContext("billing-1", "retention_billing", AS_OF, step.policy.version)
    )
    run_category(target, step.policy, category="billing", run_id="billing-1")
    results = {(r.table, r.expectation): r for r in post_run_gate(billing)}
    undated = results[("invoices", "archive_rows_have_a_start_date")]
    assert (undated.success, undated.blocking, undated.unexpected) == (False, False, 1)
    assert 82 in _archive_ids(target, "invoices") and 8 in _archive_ids(target, "customer_partners")
