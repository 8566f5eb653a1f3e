"""The tasks of a ``retention_<category>`` DAG: gate, plan, archive, purge, gate, summary.

Each task gets its target (``targets.Site``, which the DAG closes over) and its category's
KEY, not the category object: Airflow runs every task in a process of its own, which parses
the DAG file again, so what a task is given must be plain data. The task opens the step (the
target's policy and connection, run context, lease) itself, in the target's folder of
evidence, then calls the engine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException

from include.retention.errors import CertificateNotWritten, describe
from include.retention.files import Location
from include.retention.records.audit import record
from include.retention.records.locks import category_step, release_lease
from include.retention.reports import certificate
from include.retention.schedule.archive import archive_category
from include.retention.schedule.context import StepContext
from include.retention.schedule.limits import approved_counts, flag_excesses, record_approval
from include.retention.schedule.plan import CategoryPlan, plan_category
from include.retention.schedule.postflight import post_run_gate
from include.retention.schedule.purge import purge_category
from include.retention.schedule.quality import pre_archive_gate, results_as_dicts
from include.retention.schedule.summary import summarize_run
from include.retention_airflow.context import schedule_run_context
from include.retention_airflow.errors import failing_fast, scrubbing
from include.retention_airflow.hooks import in_site_folder, open_target, optional_subject_key, subject_key
from include.retention_airflow.targets import Site

log = logging.getLogger(__name__)


@contextmanager
def _opened(site: Site, category: str) -> Iterator[StepContext]:
    """The engine's view of the running task on ``site``; the target is closed when the task ends."""
    with failing_fast():
        policy = site.policy()
        ctx = schedule_run_context(get_current_context(), policy)
        key = subject_key() if "opposition" in policy.category(category).deleted_on else optional_subject_key()
        with open_target(policy, site.conn_id) as target, category_step(target, category, ctx.run_id, ctx.dag_id):
            yield StepContext.build(target, policy, category, ctx, key)


def _batch_size() -> int | None:
    """The form's rows per transaction (None: the policy's)."""
    return get_current_context()["params"].get("batch_size")


@scrubbing
@in_site_folder
def preflight_checks(site: Site, category: str) -> list[dict[str, Any]]:
    with _opened(site, category) as step:
        return results_as_dicts(pre_archive_gate(step))


@scrubbing
@in_site_folder
def plan(site: Site, category: str) -> dict[str, Any]:
    """The plan (counts, horizon dates, sample keys) in the task log and XCom, with the
    deletion limits it passes: ``approve_deletions`` asks a person about those."""
    with _opened(site, category) as step:
        # Retained dependants: the stricter of both categories' limits.
        planned = flag_excesses(plan_category(step), step.policy)
    result = planned.to_xcom()
    mode = "DRY RUN - nothing will change" if step.ctx.dry_run else "executing"
    log.info("Plan for %s as of %s (%s):\n%s", category, step.ctx.as_of, mode, json.dumps(result["tables"], indent=2))
    for e in planned.over_limit:
        log.warning("Over the deletion limit: %s%s", e, "" if step.ctx.dry_run else " - the run waits for approval")
    return result


def _approved() -> dict[str, int] | None:
    """The removals a person approved (the plan's counts), or None when no approval was given."""
    ti = get_current_context()["ti"]
    approval = ti.xcom_pull(task_ids="approve_deletions")
    if not approval or not approval.get("approved"):
        return None
    log.info("Removals approved by %s, up to the planned counts", approval.get("approved_by") or "a user")
    return approved_counts(CategoryPlan.from_xcom(ti.xcom_pull(task_ids="plan")))


@scrubbing
@in_site_folder
def archive(site: Site, category: str) -> dict[str, int]:
    with _opened(site, category) as step:
        approved = _approved()
        if approved is not None and not step.ctx.dry_run:
            record_approval(step, approved)  # in the audit log and on the certificate
        return archive_category(step, _batch_size(), approved)


@scrubbing
@in_site_folder
def purge(site: Site, category: str) -> dict[str, dict[str, int]]:
    with _opened(site, category) as step:
        return purge_category(step, _batch_size(), _approved())


@scrubbing
@in_site_folder
def postflight_checks(site: Site, category: str) -> list[dict[str, Any]]:
    with _opened(site, category) as step:
        return results_as_dicts(post_run_gate(step))


@scrubbing
@in_site_folder
def summary(
    site: Site,
    category: str,
    archived: dict[str, int] | None,
    purged: dict[str, dict[str, int]] | None,
    verified: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """Summarise the run and issue its deletion certificate - also when an earlier task
    failed, and then fail too, so that the run is not shown as a success."""
    missing = [
        name
        for name, value in (("archive", archived), ("purge", purged), ("postflight_checks", verified))
        if value is None
    ]
    with _opened(site, category) as step:
        try:
            result = summarize_run(step, archived or {}, purged or {}, incomplete=bool(missing))
            json_path, html_path = _issue_certificate(step)
        finally:  # the run is over, certificate or not: the next one may start
            release_lease(step.target, category, step.ctx.run_id)
    log.info("Run summary for %s as of %s: %s", category, step.ctx.as_of, json.dumps(result))
    log.info("Deletion certificate: %s (and %s)", html_path, json_path.name)
    if missing:
        raise AirflowFailException(
            f"the run did not complete ({', '.join(missing)} did not succeed); "
            f"summary written to the audit log, certificate at {html_path}"
        )
    return {**result, "certificate": str(json_path)}


def _issue_certificate(step: StepContext) -> tuple[Location, Location]:
    """Write the run's certificate; if it cannot be written, say so in the audit log (a failed
    blocking check of the run's evidence) and fail the task naming why."""
    try:
        return certificate.issue(step)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {describe(exc)}"
        with step.target.engine.begin() as conn:  # the audit log takes names and numbers only, not the text
            record(
                conn,
                step.audit_table,
                step.ctx,
                category=step.category.key,
                action="validation",
                row_count=0,
                details={
                    "suite": "certificate",
                    "expectation": "deletion_certificate_written",
                    "success": False,
                    "blocking": True,
                    "outcome": type(exc).__name__,
                    "errno": getattr(exc, "errno", None),
                },
            )
        raise CertificateNotWritten(
            f"the deletion certificate of run {step.ctx.run_id!r} was not written ({reason}); "
            "the run's events are in the audit log, which records that the certificate is "
            f"missing; category {step.category.key!r} was released"
        ) from exc
