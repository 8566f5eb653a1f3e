"""Range-partitioned tables on a real PostgreSQL: whole partitions past the horizon go at once.

A page-views table partitioned by month on ``viewed_at`` (its start event), one view every
five days from 2022 to 2026. As of 26 November 2026 with a 13-month active period, views
before 27 October 2025 (Paris) are due: every month up to September 2025 is due whole;
October 2025 straddles the horizon and goes by batches; later months stay.
"""

from __future__ import annotations

import copy
import logging
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from engine_helpers import AS_OF, PARIS, audit_events, run_category
from sqlalchemy import text

from include.retention.database.target import Target, connect
from include.retention.errors import PolicyError
from include.retention.policy.load import parse_policy
from include.retention.records.audit import RunContext
from include.retention.records.holds import NewHold, add_hold
from include.retention.schedule.context import StepContext, open_step
from include.retention.schedule.postflight import post_run_gate
from include.retention.schedule.quality import pre_archive_gate
from scripts.throwaway_postgres import fresh_postgres_database

HORIZON = datetime(2025, 10, 27, tzinfo=PARIS)  # first start not due: 26 Nov 2026 - 13 months + 1 day
FIRST_DAY = datetime(2022, 1, 1, 12, tzinfo=PARIS)
VIEWS = {i: FIRST_DAY + timedelta(days=5 * i) for i in range(1, 355)}  # to 6 Nov 2026
DUE = {i for i, at in VIEWS.items() if at < HORIZON}
MONTHS = [date(2022 + m // 12, 1 + m % 12, 1) for m in range(60)]  # Jan 2022 .. Dec 2026
DUE_WHOLE = [m for m, nxt in pairwise(MONTHS) if datetime(nxt.year, nxt.month, 1, tzinfo=PARIS) <= HORIZON]

POLICY: dict[str, Any] = {
    "version": "views-1",
    "source_schema": "web",
    "archive_schema": "archive",
    "deletion_limit": {"rows": None, "fraction": 1.0},
    "categories": {
        "page_views": {
            "label": {"fr": "Pages vues", "en": "Page views"},
            "legal_basis": "Consentement",
            "schedule": "0 3 * * *",
            "active_period": "P13M",
            "end_action": "delete",
            "tables": [
                {
                    "table": "page_views",
                    "primary_key": ["view_id"],
                    "partitioned": True,
                    "start_event": {"column": "viewed_at", "when_missing": "defect"},
                    "archive_columns": ["page"],
                    "subject_identifiers": {"visitor_id": ["visitor_key"]},
                }
            ],
        }
    },
}


def views_policy(**changes: Any):
    data = copy.deepcopy(POLICY)
    data["categories"]["page_views"].update(changes)
    return parse_policy(data, source="views.yaml")


ARCHIVED = {"archive_period": "P1Y", "archive_purpose": "Preuve du consentement"}


@pytest.fixture
def pg(postgres_server: str):
    target = connect(fresh_postgres_database(postgres_server), "archive")
    yield target
    target.dispose()


def create_views(target: Target, partitioned_by: str = "viewed_at") -> None:
    with target.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA web"))
        conn.execute(
            text(
                f"CREATE TABLE web.page_views (view_id bigint NOT NULL, viewed_at timestamptz NOT NULL, "
                f"created_at timestamptz NOT NULL DEFAULT now(), page text, visitor_key text, "
                f"PRIMARY KEY (view_id, {partitioned_by})) PARTITION BY RANGE ({partitioned_by})"
            )
        )
        for month, nxt in zip(MONTHS, [*MONTHS[1:], date(2027, 1, 1)], strict=True):
            conn.execute(
                text(
                    f"CREATE TABLE web.page_views_{month:%Y_%m} PARTITION OF web.page_views "
                    f"FOR VALUES FROM ('{month} 00:00 Europe/Paris') TO ('{nxt} 00:00 Europe/Paris')"
                )
            )
        conn.execute(text("CREATE TABLE web.page_views_default PARTITION OF web.page_views DEFAULT"))
        conn.execute(
            text(
                "INSERT INTO web.page_views (view_id, viewed_at, page, visitor_key) VALUES (:id, :at, :page, :visitor)"
            ),
            [{"id": i, "at": at, "page": f"/offer/{i % 7}", "visitor": f"visitor-{i}"} for i, at in VIEWS.items()],
        )


def present(target: Target, table: str = "web.page_views") -> set[int]:
    with target.read() as conn:
        return set(conn.execute(text(f"SELECT view_id FROM {table}")).scalars())


def partitions(target: Target) -> set[str]:
    with target.read() as conn:
        return set(
            conn.execute(
                text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'web.page_views'::regclass"
                )
            ).scalars()
        )


def tables_in_web(target: Target) -> set[str]:
    with target.read() as conn:
        return set(conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'web'")).scalars())


def test_partitions_past_the_horizon_are_dropped_whole_and_the_straddling_month_goes_by_batches(pg):
    create_views(pg)
    result = run_category(pg, views_policy(), category="page_views", batch_size=7)
    assert present(pg) == set(VIEWS) - DUE
    gone = {f"page_views_{m:%Y_%m}" for m in DUE_WHOLE}
    assert len(gone) == 45 and not gone & tables_in_web(pg)  # detached and dropped, not left behind
    assert "page_views_2025_10" in partitions(pg)  # straddles 27 October: stays, emptied of its due rows
    events = audit_events(pg, views_policy(), action="delete")
    whole = [e for e in events if e["details"].get("partition")]
    assert sorted(e["details"]["partition"] for e in whole) == sorted(f"web.{name}" for name in gone)
    in_whole = sum(1 for i in DUE if VIEWS[i] < datetime(2025, 10, 1, tzinfo=PARIS))
    assert sum(e["row_count"] for e in whole) == in_whole
    assert sum(e["row_count"] for e in events) == len(DUE) == result.purged["deleted"]["page_views"]
    assert all(r.success for r in post_run_gate(step(pg, views_policy())))


def test_whole_partitions_move_to_the_archive_with_their_retention_dates(pg):
    create_views(pg)
    policy = views_policy(**ARCHIVED)
    assert all(r.success for r in pre_archive_gate(step(pg, policy)))
    result = run_category(pg, policy, category="page_views", batch_size=7)
    assert present(pg) == set(VIEWS) - DUE
    assert result.archived == {"page_views": len(DUE)}
    # 13 months + 1 year after their view, the oldest are destroyed in the same run
    kept = {i for i in DUE if _plus_months(VIEWS[i].date(), 25) > AS_OF}
    assert present(pg, "archive.page_views") == kept and len(kept) < len(DUE)
    with pg.read() as conn:
        rows = (
            conn.execute(text("SELECT view_id, page, retention_start, retention_until, run_id FROM archive.page_views"))
            .mappings()
            .all()
        )
        columns = set(
            conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = 'archive' AND table_name = 'page_views'"
                )
            ).scalars()
        )
    # The archive columns travel, and the declared identifier, as on the row path: a hold or an
    # erasure by visitor id must still find the archived views.
    assert columns == {
        "view_id",
        "page",
        "visitor_key",
        "retention_start",
        "retention_until",
        "archived_at",
        "policy_version",
        "run_id",
        "anonymized",
    }
    for row in rows:
        start = VIEWS[row["view_id"]].date()
        assert row["retention_start"] == start
        assert row["retention_until"] == _plus_months(start, 25)
        assert row["run_id"] == "run-1" and row["page"] == f"/offer/{row['view_id'] % 7}"
    moved = [e for e in audit_events(pg, policy, action="archive") if e["details"].get("partition")]
    assert len(moved) == len(DUE_WHOLE)
    assert not {f"page_views_{m:%Y_%m}" for m in DUE_WHOLE} & tables_in_web(pg)
    assert all(r.success for r in post_run_gate(step(pg, policy)))


def test_a_partition_holding_a_row_under_legal_hold_is_not_taken_whole(pg):
    create_views(pg)
    held = next(i for i in sorted(DUE) if VIEWS[i].date() >= date(2023, 5, 1))  # a view of May 2023
    policy = views_policy()
    add_hold(
        pg,
        policy,
        NewHold(
            reference="CASE-7",
            scope="rows",
            reason="litigation",
            created_by="legal",
            category="page_views",
            table="page_views",
            keys=[held],
        ),
        None,
        RunContext("hold", "legal_hold", AS_OF, policy.version),
        AS_OF,
    )
    run_category(pg, policy, category="page_views", batch_size=7)
    assert present(pg) == set(VIEWS) - DUE | {held}
    assert "page_views_2023_05" in partitions(pg)  # kept attached, with only the held row left
    dropped = {e["details"].get("partition") for e in audit_events(pg, policy, action="delete")}
    assert "web.page_views_2023_05" not in dropped and "web.page_views_2023_04" in dropped


def test_a_partition_whose_copy_fails_halfway_stays_attached_and_whole(pg):
    create_views(pg)
    policy = views_policy(**ARCHIVED)
    open_step(step(pg, policy), create_archive=True)
    failing = next(i for i in sorted(DUE) if VIEWS[i].date() >= date(2023, 5, 15))  # mid-May 2023
    refuse_writes(pg, "archive.page_views", "INSERT", f"NEW.view_id = {failing}")
    with pytest.raises(Exception, match="boom"):
        run_category(pg, policy, category="page_views", batch_size=7)
    may_2023 = {i for i, at in VIEWS.items() if (at.year, at.month) == (2023, 5)}
    assert "page_views_2023_05" in partitions(pg) and may_2023 <= present(pg)  # attached, every row in place
    moved = {e["details"]["partition"] for e in audit_events(pg, policy, action="archive")}
    assert moved == {f"web.page_views_{m:%Y_%m}" for m in DUE_WHOLE if m < date(2023, 5, 1)}  # those before
    archived = present(pg, "archive.page_views")
    assert not archived & present(pg) and archived | present(pg) == set(VIEWS)  # once each, nothing lost
    assert len(archived) == sum(e["row_count"] for e in audit_events(pg, policy, action="archive"))


def test_a_partition_whose_audit_event_cannot_be_written_is_not_dropped(pg):
    create_views(pg)
    policy = views_policy()
    open_step(step(pg, policy), create_archive=False)  # creates the audit table
    refuse_writes(pg, "archive.retention_audit", "INSERT", "NEW.details LIKE '%page_views_2023_05%'")
    with pytest.raises(Exception, match="boom"):
        run_category(pg, policy, category="page_views", batch_size=7)
    may_2023 = {i for i, at in VIEWS.items() if (at.year, at.month) == (2023, 5)}
    assert "page_views_2023_05" in partitions(pg) and may_2023 <= present(pg)
    dropped = {e["details"]["partition"] for e in audit_events(pg, policy, action="delete")}
    assert dropped == {f"web.page_views_{m:%Y_%m}" for m in DUE_WHOLE if m < date(2023, 5, 1)}
    assert present(pg) == set(VIEWS) - {i for i in DUE if VIEWS[i] < datetime(2023, 5, 1, tzinfo=PARIS)}


def refuse_writes(target: Target, table: str, operation: str, when: str) -> None:
    """A trigger that fails the statement half-way, on the row matching ``when``."""
    row = "NEW" if operation == "INSERT" else "OLD"
    with target.engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE FUNCTION web.refuse() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN IF {when} THEN RAISE EXCEPTION 'boom'; END IF; RETURN {row}; END $$"
            )
        )
        conn.execute(
            text(f"CREATE TRIGGER refuse BEFORE {operation} ON {table} FOR EACH ROW EXECUTE FUNCTION web.refuse()")
        )


def test_a_dry_run_names_the_partitions_it_would_drop_and_changes_nothing(pg, caplog):
    create_views(pg)
    caplog.set_level(logging.INFO, logger="include.retention")
    run_category(pg, views_policy(), category="page_views", dry_run=True)
    assert present(pg) == set(VIEWS) and len(partitions(pg)) == 61
    assert "Would drop 45 partition(s) whole: web.page_views_2022_01" in caplog.text


def test_a_table_the_policy_calls_partitioned_must_be_partitioned_on_its_start_event(pg):
    with pg.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA web"))
        conn.execute(
            text(
                "CREATE TABLE web.page_views (view_id bigint PRIMARY KEY, viewed_at timestamptz, "
                "page text, visitor_key text)"
            )
        )
    with pytest.raises(PolicyError, match=r"tables\[0\]\.partitioned: table web\.page_views is not partitioned"):
        run_category(pg, views_policy(), category="page_views")


def test_a_table_partitioned_on_another_column_is_refused(pg):
    create_views(pg, partitioned_by="created_at")
    with pytest.raises(PolicyError, match=r"partitioned by RANGE \(created_at\), not by RANGE \(viewed_at\)"):
        run_category(pg, views_policy(), category="page_views")


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"scope": {"column": "page", "equals": "/x"}}, "no scope"),
        (
            {
                "start_event": {
                    "latest": {"column": "at", "path": [{"table": "visits", "foreign_key": "view_id"}]},
                    "when_missing": "defect",
                }
            },
            "start_event.column",
        ),
        ({"children": [{"table": "clicks", "primary_key": "click_id", "foreign_key": "view_id"}]}, "no children"),
    ],
)
def test_a_partitioned_table_whose_horizon_cannot_be_read_from_its_bounds_is_refused(change, reason):
    data = copy.deepcopy(POLICY)
    data["categories"]["page_views"]["tables"][0].update(change)
    with pytest.raises(PolicyError, match=reason):
        parse_policy(data, source="views.yaml")


def test_on_sqlite_a_partitioned_table_goes_by_batches(tmp_path):
    target = connect(f"sqlite:///{tmp_path / 'views.db'}", "archive")
    with target.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE page_views (view_id INTEGER PRIMARY KEY, viewed_at TIMESTAMP, page TEXT, "
                "visitor_key TEXT)"
            )
        )
        conn.execute(
            text("INSERT INTO page_views VALUES (:id, :at, '/p', 'v')"),
            [{"id": i, "at": at.strftime("%Y-%m-%d %H:%M:%S")} for i, at in VIEWS.items()],
        )
    policy = views_policy()
    run_category(target, policy, category="page_views", batch_size=50)
    with target.read() as conn:
        assert set(conn.execute(text("SELECT view_id FROM page_views")).scalars()) == set(VIEWS) - DUE
    target.dispose()


def step(target: Target, policy) -> StepContext:
    ctx = RunContext(run_id="run-1", dag_id="retention_page_views", as_of=AS_OF, policy_version=policy.version)
    return StepContext.build(target, policy, "page_views", ctx)


def _plus_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError(day)
