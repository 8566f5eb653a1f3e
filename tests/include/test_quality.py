"""The pre-archive gate: Great Expectations suites generated from the policy, on SQLite and
PostgreSQL. Each check is made to fail on purpose-built bad data, and a failing gate is
shown to leave every table exactly as it was."""

from __future__ import annotations

import copy
from datetime import datetime

import pytest
from engine_helpers import (
    AS_OF,
    CLUB_POLICY,
    PARIS,
    audit_events,
    club_policy,
    create_club,
    run_category,
    schema_metadata,
)
from sqlalchemy import Column, DateTime, Integer, String, Table, insert, update
from table_checksums import checksum

from include.retention.errors import PolicyError
from include.retention.policy.load import parse_policy
from include.retention.records.audit import RunContext
from include.retention.schedule.context import StepContext
from include.retention.schedule.quality import QualityGateFailed, pre_archive_gate


def gate(target, policy, category="members", run_id="gate-1"):
    ctx = RunContext(run_id=run_id, dag_id=f"retention_{category}", as_of=AS_OF, policy_version=policy.version)
    return pre_archive_gate(
        StepContext.build(target, policy, category, ctx), now=datetime(2026, 11, 26, 12, tzinfo=PARIS)
    )


def gated_run(target, policy, category="members"):
    """What the DAG does: the gate first; nothing else runs if it fails."""
    gate(target, policy, category)
    return run_category(target, policy, category=category)


def test_clean_data_passes_every_pre_archive_check(target):
    create_club(target)
    results = gate(target, club_policy())
    assert results and all(r.success for r in results)
    checked = {(r.table, r.expectation) for r in results}
    assert ("members", "expect_column_values_to_be_unique:member_id") in checked
    assert ("members", "no_future_last_contact_at") in checked
    assert ("member_event_files", "expect_column_to_exist:file_name") in checked


def test_a_future_start_date_stops_the_run_before_any_row_moves(target):
    tables = create_club(target)
    with target.engine.begin() as conn:
        conn.execute(
            update(tables["members"])
            .where(tables["members"].c.member_id == 8)
            .values(last_contact_at=datetime(2030, 1, 1, 10, tzinfo=PARIS))
        )
    before = checksum(target)
    with pytest.raises(QualityGateFailed, match=r"no_future_last_contact_at on members: 1 row\(s\)"):
        gated_run(target, club_policy())
    assert checksum(target) == before


def _legacy_policy() -> dict:
    data = copy.deepcopy(CLUB_POLICY)
    data["categories"]["members"]["tables"] = [
        {
            "table": "newsletter_contacts",
            "primary_key": "contact_id",
            "start_event": {"column": "last_contact_at", "when_missing": "defect"},
            "archive_columns": ["email"],
        }
    ]
    return data


def test_a_duplicate_primary_key_stops_the_run_before_any_row_moves(target):
    """A legacy table whose declared key has no constraint in the database."""
    md, _ = schema_metadata(target, "club")
    contacts = Table(
        "newsletter_contacts",
        md,
        Column("contact_id", Integer),
        Column("email", String(100)),
        Column("last_contact_at", DateTime(timezone=True)),
    )
    md.create_all(target.engine)
    old = datetime(2015, 1, 1, 10, tzinfo=PARIS)
    with target.engine.begin() as conn:
        conn.execute(
            insert(contacts),
            [
                {"contact_id": 1, "email": "a@example.fr", "last_contact_at": old},
                {"contact_id": 1, "email": "b@example.fr", "last_contact_at": old},
                {"contact_id": 2, "email": "c@example.fr", "last_contact_at": old},
            ],
        )
    policy = parse_policy(_legacy_policy())
    before = checksum(target)
    with pytest.raises(
        QualityGateFailed, match=r"expect_column_values_to_be_unique:contact_id on newsletter_contacts: 2 row"
    ):
        gated_run(target, policy)
    assert checksum(target) == before


def test_a_schema_that_does_not_match_the_policy_stops_the_gate_naming_the_key(target):
    create_club(target)
    data = copy.deepcopy(CLUB_POLICY)
    data["categories"]["members"]["tables"][0]["archive_columns"].append("birth_date")
    before = checksum(target)
    with pytest.raises(PolicyError, match=r"categories\.members\.tables\[0\]\.archive_columns: column 'birth_date'"):
        gated_run(target, parse_policy(data))
    assert checksum(target) == before


def test_missing_defective_start_is_a_finding_with_keys_in_the_plan_not_the_audit(target):
    create_club(target)
    assert all(r.success for r in gate(target, club_policy()))
    result = run_category(target, club_policy())
    (plan,) = result.plan.tables
    assert (plan.defective, plan.missing_start_sample) == (1, [6])
    events = audit_events(target, club_policy())
    finding = next(e for e in events if e["action"] == "quality_finding")
    assert finding["row_count"] == 1 and "6" not in repr(finding["details"])


def test_each_validation_is_audited_with_counts_and_check_names_only(target):
    create_club(target)
    results = gate(target, club_policy())
    logged = audit_events(target, club_policy(), action="validation")
    assert len(logged) == len(results)
    assert {e["details"]["expectation"] for e in logged} >= {
        "expect_column_to_exist:email",
        "expect_column_values_to_be_unique:member_id",
    }
    assert all(set(e["details"]) == {"suite", "expectation", "success", "blocking"} for e in logged)
    assert "example.fr" not in repr(logged)
