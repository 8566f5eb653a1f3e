"""Two DAGs on the same cron get the same ``scheduled__...`` run id: each run's certificate
is its own DAG's, never a mix of both (issue 20, review R1)."""

from __future__ import annotations

import json

from engine_helpers import AS_OF, club_policy, create_club, run_category

from include.retention.database import store
from include.retention.records import audit
from include.retention.records.audit import RunContext
from include.retention.reports import certificate
from include.retention.schedule.context import StepContext

RUN = "scheduled__2026-11-26T01:00:00+00:00"


def test_two_dags_sharing_a_run_id_each_get_a_certificate_of_their_own_events_only(target, tmp_path, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(tmp_path))
    create_club(target)
    policy = club_policy()
    run_category(target, policy, run_id=RUN)
    # Another category whose schedule is the same cron: its run has the very same run id.
    other = RunContext(run_id=RUN, dag_id="retention_requests", as_of=AS_OF, policy_version=policy.version)
    with target.engine.begin() as conn:
        trail = store.audit_table(target.archive_schema, policy.audit_table)
        audit.record(conn, trail, other, category="requests", action="plan", row_count=7, table_name="rights_requests")
        audit.record(
            conn, trail, other, category="requests", action="archive", row_count=7, table_name="rights_requests"
        )
    ctx = RunContext(run_id=RUN, dag_id="retention_members", as_of=AS_OF, policy_version=policy.version)
    json_path, _ = certificate.issue(StepContext.build(target, policy, "members", ctx))
    data = json.loads(json_path.read_text())
    assert (data["dag_id"], data["category"]) == ("retention_members", "members")
    assert {t["table"] for t in data["tables"]} == {"members", "member_events", "member_event_files"}
    with target.read() as conn:
        own = audit.events(conn, trail, run_id=RUN, dag_id="retention_members")
    assert (data["first_event"], data["last_event"]) == (own[0]["event_id"], own[-1]["event_id"])
