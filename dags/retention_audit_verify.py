"""
# Audit trail verification and daily anchor

Every day, the audit log's chain status (`certificate.chain_status`, the same verdict the
Retention view, the DPO report and `make demo` show): recompute the hash chain of the
retention audit log (`<archive_schema>.<audit_table>` in the `retention_target` database),
then compare it with every copy of its hashes kept outside the database under
`$RETENTION_REPORTS_DIR`: the first and last hash of each run certificate, and each daily
anchor (those of other logs are left aside). The run fails, naming the first event,
certificate or anchor that does not hold, if any event was altered, removed, reordered or
forged, if the log was rewritten with recomputed hashes or shortened, or if it is missing
or empty while certificates or anchors name it. It fails closed, too: if the reports folder
is missing (not mounted, `$RETENTION_REPORTS_DIR` wrong) while the log has events, if every
certificate and anchor there names another log, or if a finished run has neither its
certificate there nor a recorded failure to write it (CERTIFICATES MISSING).

Once the log is found intact, the task writes a daily anchor: the last event it verified
(id and hash, which covers every event before it) in
`$RETENTION_REPORTS_DIR/audit_anchors/` (created inside an existing reports folder, never
the folder itself). So events no run certificate names - erasures,
rights requests, legal holds - are pinned down outside the database within a day. A log
that fails is never anchored. The database is only read.

Keep this DAG unpaused: while it does not run, events written after the last run
certificate are anchored nowhere.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronTriggerTimetable, task

from include.retention_airflow import dag_defaults, evidence_tasks
from include.retention_airflow.site_dags import for_each_site
from include.retention_airflow.targets import Site


def build_dag(site: Site) -> DAG:
    """``retention_audit_verify`` of one target: its audit log, its certificates and anchors."""
    policy = site.policy()
    with DAG(
        dag_id=site.dag_id("retention_audit_verify"),
        description="Verify the retention audit log and anchor its head outside the database",
        schedule=CronTriggerTimetable("0 5 * * *", timezone=policy.timezone),
        **dag_defaults.AUDIT_VERIFY.arguments(
            doc_md=__doc__, timezone=policy.timezone, site=site, lang=policy.language
        ),
    ) as dag:

        @task
        def verify_chain() -> dict:
            """The chain status - hash chain, certificates and anchors; fail on the first that does
            not hold - then anchor the head of the log it verified (never that of a failed one)."""
            return evidence_tasks.verify_and_anchor(site)

        verify_chain()
    return dag


# Each target on its own: one target's unusable configuration leaves the others' DAGs (site_dags).
globals().update(for_each_site(lambda site: [build_dag(site)]))
