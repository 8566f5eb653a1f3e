"""The tasks that read the evidence: the audit log's daily verification and the DPO report.

Both only read their target (the ``targets.Site`` their DAG serves), and write in its folder
of evidence; they fail naming what does not hold.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException

from include.retention.database.store import audit_table
from include.retention.records import anchors
from include.retention.reports import certificate, dpo_render
from include.retention.reports import dpo_report as dpo
from include.retention_airflow.context import run_day
from include.retention_airflow.errors import failing_fast, scrubbing
from include.retention_airflow.hooks import in_site_folder, open_target, optional_subject_key
from include.retention_airflow.targets import Site

log = logging.getLogger(__name__)


@scrubbing
@in_site_folder
def verify_and_anchor(site: Site) -> dict[str, Any]:
    """The chain status (``verify_audit_chain``), then the daily anchor of the log it verified
    (never that of a failed one), in the target's folder of evidence."""
    verdict = verify_audit_chain(site)
    anchored = anchors.write_verified(verdict)
    return {**verdict, "anchor": str(anchored) if anchored else None}


@scrubbing
@in_site_folder
def verify_audit_chain(site: Site) -> dict[str, Any]:
    """The audit log's chain status (``certificate.chain_status``: the hash chain recomputed,
    then compared with the hashes this log's run certificates hold outside the database) -
    the same verdict the Retention view and the demo show; fail naming the first thing that
    does not hold."""
    policy = site.policy()
    with open_target(policy, site.conn_id) as target, target.read() as conn:
        table = audit_table(target.archive_schema, policy.audit_table)
        status = certificate.chain_status(conn, table)
    if not status.chain_holds:
        raise AirflowFailException(
            f"audit log {table.schema}.{table.name} was tampered with: event "
            f"{status.broken_at} {status.reason} ({status.events} events read)"
        )
    if status.mismatches:
        raise AirflowFailException(
            f"audit log {table.schema}.{table.name} does not match the run certificates "
            f"(it was rewritten): {status.mismatches[0]} ({len(status.mismatches)} mismatch(es))"
        )
    if not status.intact:  # NOT VERIFIED: every certificate names another log, none was compared
        raise AirflowFailException(f"audit log {table.schema}.{table.name} {status.sentence()}")
    log.info(
        "Audit log %s %s; %d certificate(s) of other logs left aside",
        status.audit_log,
        status.sentence(),
        status.other_logs,
    )
    return status.to_dict()


@scrubbing
@in_site_folder
def dpo_report(site: Site) -> dict[str, Any]:
    """Write the DPO report for ``params.period_start``..``period_end`` (default: the month
    before the run) in ``params.language``; compliance is counted at the time of the run."""
    context = get_current_context()
    params = context["params"]
    with failing_fast(ValueError):
        policy = site.policy()
        default_start, default_end = dpo.previous_month(run_day(context, policy))
        start = date.fromisoformat(params["period_start"]) if params.get("period_start") else default_start
        end = date.fromisoformat(params["period_end"]) if params.get("period_end") else default_end
        with open_target(policy, site.conn_id) as target:
            report = dpo.build(target, policy, start, end, datetime.now(policy.zone).date(), optional_subject_key())
        path = dpo_render.write(report, params.get("language") or "fr")
    failing = [f"{c.category}.{c.table}" for c in report.compliance if not c.compliant]
    if failing:
        log.warning("Not compliant today: %s", ", ".join(failing))
    if not report.chain.intact:
        log.error("Audit log chain broken at event %s: %s", report.chain.broken_at, report.chain.reason)
    log.info("DPO report for %s to %s: %s", start, end, path)
    return {
        "report": str(path),
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "not_compliant": failing,
        "chain_intact": report.chain.intact,
    }
