"""The tasks of the rights DAGs: a data-subject request, the requests' deadlines, legal holds.

Each reads its trigger form (``forms.py``), acts on the run's day on its target (the
``targets.Site`` its DAG serves: policy, connection, folder of exports), and logs references,
scopes and counts - never an identifier or a reason.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from airflow.sdk import get_current_context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from include.retention.records.holds import add_hold, lift_hold, list_holds, record_expiries
from include.retention.rights.requests import ensure_register, handle, open_deadlines
from include.retention_airflow.context import run_context, run_day
from include.retention_airflow.errors import failing_fast, scrubbing
from include.retention_airflow.forms import new_hold, request_record, subject_of
from include.retention_airflow.hooks import in_site_folder, open_target, optional_subject_key, subject_key
from include.retention_airflow.targets import Site

log = logging.getLogger(__name__)


@scrubbing
@in_site_folder
def subject_request(site: Site) -> dict[str, Any]:
    """Record a data-subject request from the trigger form, then carry it out if the identity is
    verified. Identifiers are validated before anything is written; none is logged.

    A pending identity ends the task *skipped*, with a message saying the request waits for the
    verification: a run that did not carry the request out must not look like one that did."""
    context = get_current_context()
    params = context["params"]
    with failing_fast():
        policy = site.policy()
        subject = subject_of(params)
        request = request_record(params)
        ctx = run_context(context, policy)
        received_at = datetime.combine(request.received, datetime.min.time(), policy.zone)
        with open_target(policy, site.conn_id) as target:
            handled = handle(
                target,
                policy,
                subject_key(),
                request,
                subject,
                ctx,
                received_at,
                params.get("changes"),
                bool(params.get("correct_start_date")),
            )
    outcome = handled.outcome
    log.info("Request %s (%s): %s, due %s", request.reference, request.request_type, handled.status, request.due)
    for table in outcome.get("tables", []):  # counts and reasons only: never a value
        log.info("  %s", {k: v for k, v in table.items() if k != "columns"})
    if "export" in outcome:
        log.info("  export written: %s (%d rows)", outcome["export"], sum(outcome["rows"].values()))
    if handled.status == "pending_identity":
        raise AirflowSkipException(
            f"request {request.reference} recorded, waiting for the identity verification (due {request.due}): "
            "nothing is carried out until then; trigger it again with the same reference, type and receipt "
            "date and identity 'verified'"
        )
    return {
        "request_id": handled.request_id,
        "reference": request.reference,
        "status": handled.status,
        "due": request.due.isoformat(),
        "no_data_held": outcome.get("no_data_held"),
        "erased": outcome.get("erased", 0),
        "kept": outcome.get("kept", 0),
    }


@scrubbing
@in_site_folder
def rights_deadlines(site: Site) -> list[dict[str, Any]]:
    """Fail if a request is overdue; list those due within 7 days (references and dates only)."""
    policy = site.policy()
    today = run_day(get_current_context(), policy)
    with failing_fast(), open_target(policy, site.conn_id) as target:
        register = ensure_register(target, policy)
        with target.read() as conn:
            deadlines = open_deadlines(conn, register, today)
    for d in deadlines:
        log.warning(
            "Request %s (%s) due %s: %s",
            d.reference,
            d.request_type,
            d.due,
            f"OVERDUE by {-d.days_left} day(s)" if d.days_left < 0 else f"{d.days_left} day(s) left",
        )
    overdue = [d.reference for d in deadlines if d.days_left < 0]
    if overdue:
        raise AirflowFailException(f"{len(overdue)} rights request(s) overdue: {', '.join(overdue)}")
    return [
        {"reference": d.reference, "request_type": d.request_type, "due": d.due.isoformat(), "days_left": d.days_left}
        for d in deadlines
    ]


@scrubbing
@in_site_folder
def legal_hold(site: Site) -> dict[str, Any]:
    """Add, list or lift a legal hold from the trigger form; every change is audited.

    The hold's creator is the user who triggered the run (or ``params.requested_by``). The
    task log shows references, scopes and counts - never an identifier or a reason.
    """
    context = get_current_context()
    params = context["params"]
    action = params["action"]
    with failing_fast():
        policy = site.policy()
        ctx = run_context(context, policy)
        today = ctx.as_of
        who = params.get("requested_by") or getattr(context["dag_run"], "triggering_user_name", None)
        with open_target(policy, site.conn_id) as target:
            if action == "add":
                changed = add_hold(target, policy, new_hold(params, who), optional_subject_key(), ctx, today)
            elif action == "lift":
                changed = lift_hold(
                    target, policy, params["reference"], who or "", params.get("lift_reason") or "", ctx, today
                )
            with target.engine.begin() as conn:
                expired = record_expiries(conn, target, policy, ctx, today)
                registered = list_holds(conn, target.archive_schema, today)
    if action != "list":
        log.info(
            "Legal hold %s %s: scope %s, %d item(s), expires %s",
            changed.reference,
            changed.status,
            changed.scope,
            changed.items,
            changed.expires_on or "when lifted",
        )
    if expired:
        log.info("%d hold(s) expired since the last check (audited)", expired)
    for hold in registered:
        log.info(
            "  %-24s %-9s %-8s %-28s %5d item(s)  expires %s",
            hold.reference,
            hold.status,
            hold.scope,
            hold.category or hold.table or "",
            hold.items,
            hold.expires_on or "-",
        )
    return {"action": action, "holds": [{k: v for k, v in h.to_dict().items() if k != "reason"} for h in registered]}
