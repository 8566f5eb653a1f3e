"""A small schema the engine has never heard of - a club's members, their events and the
files attached to them - and the helpers to run the engine's steps on it.

Using a schema that is not the demo's proves that a policy file alone drives the engine.
"""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    insert,
    select,
    text,
)

from include.retention.database.identity import SubjectKey
from include.retention.database.store import audit_table, ensure_table, register_table
from include.retention.database.target import Target
from include.retention.policy.load import parse_policy
from include.retention.policy.model import RetentionPolicy
from include.retention.records.audit import RunContext, events
from include.retention.schedule.plan import CategoryPlan
from include.retention.schedule.run import RunResult
from include.retention.schedule.run import run_category as run_steps

PARIS = ZoneInfo("Europe/Paris")
AS_OF = date(2026, 11, 26)

CLUB_POLICY: dict[str, Any] = {
    "version": "club-1",
    "source_schema": "club",
    "archive_schema": "archive",
    "categories": {
        "members": {
            "label": {"fr": "Adhérents", "en": "Members"},
            "legal_basis": "Contrat",
            "archive_purpose": "Probatoire",
            "schedule": "0 1 * * *",
            "active_period": "P3Y",
            "archive_period": "P5Y",
            "end_action": "delete",
            "tables": [
                {
                    "table": "members",
                    "primary_key": "member_id",
                    "start_event": {"column": "last_contact_at", "when_missing": "defect"},
                    "archive_columns": ["email", "full_name", "postcode", "spend", "joined_on"],
                    "subject_identifiers": {"email": ["email"]},
                    "children": [
                        {
                            "table": "member_events",
                            "primary_key": "event_id",
                            "foreign_key": "member_id",
                            "archive_columns": ["happened_at"],
                            "children": [
                                {
                                    "table": "member_event_files",
                                    "primary_key": "file_id",
                                    "foreign_key": "event_id",
                                    "archive_columns": ["file_name"],
                                }
                            ],
                        }
                    ],
                }
            ],
        },
    },
}

# member_id -> last contact day (10:00 in Paris); None is a defect.
CONTACTS: dict[int, date | None] = {
    1: date(2023, 11, 26),  # exactly 3 years: due today
    2: date(2023, 11, 27),  # one day short: stays active
    3: date(2023, 11, 25),  # one day past: due
    4: date(2018, 11, 26),  # exactly 3 + 5 years: archived and destroyed in the same run
    5: date(2018, 11, 27),  # one day short of 8 years: archived, kept one more day
    6: None,  # missing date: a defect, never moved, reported
    7: date(2020, 2, 29),  # leap day: retention_until 2028-02-28
    8: date(2026, 1, 1),  # recent: active
}


# The category that keeps the register of data-subject requests (``rights_requests``): a policy
# that asks for re-consent must name a register, since a "no" is recorded there as an opposition.
REQUESTS_CATEGORY: dict[str, Any] = {
    "label": {"fr": "Demandes de droits", "en": "Rights requests"},
    "legal_basis": "Obligation légale",
    "archive_purpose": "Preuve",
    "schedule": "0 3 * * *",
    "active_period": "P0D",
    "archive_period": "P5Y",
    "end_action": "delete",
    "on_erasure": "keep",
    "tables": [
        {
            "table": "rights_requests",
            "primary_key": "request_id",
            "start_event": {"column": "closed_at", "when_missing": "ongoing"},
            "archive_columns": ["reference", "request_type", "received_at", "closed_at", "outcome"],
            "subject_identifiers": {"email": ["requester_email"]},
        }
    ],
}


def with_rights_register(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of policy ``data`` with the register ``rights_requests`` and the category keeping it."""
    changed = copy.deepcopy(data)
    changed["rights_register"] = "rights_requests"
    changed["categories"]["requests"] = copy.deepcopy(REQUESTS_CATEGORY)
    return changed


def create_rights_register(target: Target, schema: str) -> None:
    """The empty register ``with_rights_register`` names, in ``schema`` (which exists), as the
    first request would create it: the live check wants every table of the policy to exist."""
    with target.engine.begin() as conn:
        ensure_table(conn, register_table(target.source_schema(schema), "rights_requests"))


def club_policy(**category_changes: Any) -> RetentionPolicy:
    """The club's policy with the members' category changed; one that asks for re-consent gets
    the rights register every such policy needs."""
    data = copy.deepcopy(CLUB_POLICY)
    data["categories"]["members"].update(category_changes)
    if "reconsent" in category_changes:
        data = with_rights_register(data)
    return parse_policy(data, source="club.yaml")


def schema_metadata(target: Target, schema: str) -> tuple[MetaData, str]:
    """MetaData for a test schema (created on PostgreSQL; SQLite's main database otherwise),
    and the prefix its foreign keys need."""
    if not target.capabilities.separate_schemas:
        return MetaData(), ""
    with target.engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    return MetaData(schema=schema), f"{schema}."


def create_club(target: Target, contacts: dict[int, date | None] = CONTACTS) -> dict[str, Table]:
    """Create the club schema and fill it: two events per member, one file per event."""
    md, prefix = schema_metadata(target, "club")
    members = Table(
        "members",
        md,
        Column("member_id", Integer, primary_key=True),
        Column("email", String(200)),
        Column("full_name", String(100)),
        Column("postcode", String(10)),
        Column("notes", Text),
        Column("spend", Numeric(10, 2)),
        Column("joined_on", Date),
        Column("last_contact_at", DateTime(timezone=True)),
    )
    member_events = Table(
        "member_events",
        md,
        Column("event_id", Integer, primary_key=True),
        Column("member_id", Integer, ForeignKey(prefix + "members.member_id"), nullable=False),
        Column("happened_at", DateTime(timezone=True)),
        Column("detail", Text),
    )
    files = Table(
        "member_event_files",
        md,
        Column("file_id", Integer, primary_key=True),
        Column("event_id", Integer, ForeignKey(prefix + "member_events.event_id"), nullable=False),
        Column("file_name", String(100)),
    )
    md.create_all(target.engine)
    with target.engine.begin() as conn:
        conn.execute(
            insert(members),
            [
                {
                    "member_id": m,
                    "email": f"member{m}@example.fr",
                    "full_name": f"Adhérent Numéro{m}",
                    "postcode": "75011",
                    "notes": f"secret note {m}",
                    "spend": 1234.56,
                    "joined_on": date(2015, 5, 1) + timedelta(days=m - 1),
                    "last_contact_at": datetime(d.year, d.month, d.day, 10, tzinfo=PARIS) if d else None,
                }
                for m, d in contacts.items()
            ],
        )
        conn.execute(
            insert(member_events),
            [
                {
                    "event_id": m * 10 + k,
                    "member_id": m,
                    "happened_at": datetime(2015, 6, 17, 14, 5, tzinfo=PARIS),
                    "detail": f"detail {m}",
                }
                for m in contacts
                for k in (1, 2)
            ],
        )
        conn.execute(
            insert(files),
            [
                {"file_id": m * 100 + k, "event_id": m * 10 + k, "file_name": f"scan-{m}-{k}.pdf"}
                for m in contacts
                for k in (1, 2)
            ],
        )
    return {"members": members, "member_events": member_events, "member_event_files": files}


def run_category(
    target: Target,
    policy: RetentionPolicy,
    as_of: date = AS_OF,
    *,
    category: str = "members",
    dry_run: bool = False,
    batch_size: int | None = None,
    run_id: str = "run-1",
    subject_key: SubjectKey | None = None,
    approve: bool = True,
) -> RunResult:
    """Plan, approval, archive, purge and summary, in the run's order (``RUN_ORDER``), without
    the two data-quality gates.

    ``approve``: a person approves the plan, as ``approve_deletions`` asks when it passes the
    deletion limit (most fixtures move a large share of a small table); False: no approval."""
    ctx = RunContext(
        run_id=run_id, dag_id=f"retention_{category}", as_of=as_of, policy_version=policy.version, dry_run=dry_run
    )
    return run_steps(
        target,
        policy,
        category,
        ctx,
        subject_key=subject_key,
        batch_size=batch_size,
        approve=_approves if approve else None,
        gates=False,
    )


def _approves(plan: CategoryPlan) -> bool:
    return True


def ids(target: Target, table: str, *, archive: bool = False, schema: str = "club") -> list[int]:
    """Primary keys present in an active table or its archive twin."""
    owner = "archive" if archive else (schema if target.capabilities.separate_schemas else None)
    md = MetaData()
    t = Table(table, md, schema=owner, autoload_with=target.engine)
    pk = list(t.primary_key.columns)[0]
    with target.read() as conn:
        return sorted(conn.execute(select(pk)).scalars())


def count(target: Target, table: str, *, archive: bool = False, schema: str = "club") -> int:
    return len(ids(target, table, archive=archive, schema=schema))


def archive_rows(target: Target, table: str) -> list[dict[str, Any]]:
    t = Table(table, MetaData(), schema="archive", autoload_with=target.engine)
    with target.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(t).order_by(*t.primary_key.columns))]


def audit_events(target: Target, policy: RetentionPolicy, **filters: Any) -> list[dict[str, Any]]:
    with target.read() as conn:
        return events(conn, audit_table("archive", policy.audit_table), **filters)


def total_rows(target: Target, table: str) -> int:
    return count(target, table) + count(target, table, archive=True)


def _members_table_policy(anonymized: bool = False) -> dict[str, Any]:
    """The members table of the club policy; with ``anonymized``, with a rule per archived column."""
    table = copy.deepcopy(CLUB_POLICY["categories"]["members"]["tables"][0])
    if anonymized:
        table["anonymize"] = {
            "email": "null",
            "full_name": "null",
            "postcode": {"prefix": 2},
            "spend": {"round": 100},
            "joined_on": "year",
        }
        table["children"][0]["anonymize"] = {"happened_at": "month"}
        table["children"][0]["children"][0]["anonymize"] = {"file_name": "null"}
    return table


def run_whole(
    target: Target,
    policy: RetentionPolicy,
    category: str,
    as_of: date,
    run_id: str,
    subject_key: SubjectKey | None = None,
) -> dict[str, Any]:
    """One whole DAG run of ``category``, in the run's order (``RUN_ORDER``): pre-archive gate,
    plan, approval of the plan (a person approves), archive, purge, post-run gate, summary. A
    failing gate raises, as it fails the task."""
    ctx = RunContext(
        run_id=run_id, dag_id=f"retention_{category}", as_of=as_of, policy_version=policy.version, dry_run=False
    )
    return run_steps(target, policy, category, ctx, subject_key=subject_key, approve=_approves).summary
