"""
# Audit trail verification

Every day, the audit log's chain status (`certificate.chain_status`, the same verdict the
Retention view and `make demo` show): recompute the hash chain of the retention audit log
(`<archive_schema>.<audit_table>` in the `retention_target` database), then compare it with
the first and last hash of every run certificate of *this* log under `$RETENTION_REPORTS_DIR`
(certificates name their log; those of other logs are left aside). The run fails, naming
the first event or certificate that does not hold, if any event was altered, removed,
reordered or forged, or if the log was rewritten with recomputed hashes. Read-only: it
changes nothing.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable, task

from include.retention.policy import load_policy
from include.retention_airflow import tasks as engine

POLICY = load_policy()

with DAG(
    dag_id="retention_audit_verify",
    description="Verify the retention audit log's hash chain",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("0 5 * * *", timezone=POLICY.timezone),
    start_date=pendulum.datetime(2026, 1, 1, tz=POLICY.timezone),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=True,
    tags=["retention", "gdpr", "audit"],
    default_args={"owner": "data-protection", "retries": 2, "retry_delay": pendulum.duration(minutes=10)},
) as dag:

    @task
    def verify_chain() -> dict:
        """The chain status: hash chain and certificates; fail on the first that does not hold."""
        return engine.verify_audit_chain()

    verify_chain()
