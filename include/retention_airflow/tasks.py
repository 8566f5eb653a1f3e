"""One function per DAG task; each resolves the run from Airflow, then calls the engine."""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy.engine import URL

from include.retention.database.identity import (
    IDENTIFIER_KINDS,
    KEY_ENV_VAR,
    KEY_VARIABLE,
    Subject,
    SubjectKey,
    configured_key,
    key_from,
    normalise,
)
from include.retention.database.store import audit_table
from include.retention.database.target import Target, connect
from include.retention.errors import CertificateNotWritten, RetentionError, describe, scrub, scrubbed
from include.retention.policy.load import load_policy
from include.retention.policy.model import RetentionPolicy
from include.retention.records.audit import RunContext, record
from include.retention.records.holds import NewHold, add_hold, lift_hold, list_holds, record_expiries
from include.retention.records.locks import category_step, release_lease
from include.retention.reports import certificate
from include.retention.reports import dpo_report as dpo
from include.retention.reports.summary import summarize_run
from include.retention.rights.requests import RequestRecord, ensure_register, handle, open_deadlines
from include.retention.schedule.archive import archive_category
from include.retention.schedule.context import StepContext
from include.retention.schedule.limits import approved_counts, excesses, record_approval
from include.retention.schedule.plan import plan_category
from include.retention.schedule.postflight import post_run_gate
from include.retention.schedule.purge import purge_category
from include.retention.schedule.quality import pre_archive_gate, results_as_dicts

TARGET_CONN_ID = "retention_target"
log = logging.getLogger(__name__)
Task = TypeVar("Task", bound=Callable[..., Any])

# Trigger-form fields whose values are personal data (or free text that may hold some): an
# error text that quotes one of them is scrubbed of it (``scrubbing``).
PERSONAL_PARAMS = (*IDENTIFIER_KINDS, "reason", "lift_reason", "extension_reason", "changes")


def scrubbing(task_function: Task) -> Task:
    """Every exception that leaves the task leaves it scrubbed of personal data and secrets.

    Airflow writes a failed task's exception - its message and its traceback, with every
    exception chained to it - to the task log, which operators read and ship elsewhere. A
    database error can quote row values (``DETAIL:  Key (email)=(...)``), and a message can
    quote what a user typed. So the exception is replaced: ``AirflowFailException`` by one with
    the scrubbed message (still no retry), anything else by ``ScrubbedError`` (still retried),
    raised outside the ``except`` block so that the original is neither the cause nor the
    context of the new one, and the traceback does not print it. Airflow's own control-flow
    exceptions (skip, defer, reschedule, timeout) pass unchanged: their text is Airflow's."""

    @functools.wraps(task_function)
    def run(*args: Any, **kwargs: Any) -> Any:
        from airflow.sdk.exceptions import AirflowException, AirflowFailException

        try:
            return task_function(*args, **kwargs)
        except AirflowFailException as exc:
            replacement: Exception = AirflowFailException(scrub(str(exc), known_secrets()))
        except AirflowException:
            raise
        except Exception as exc:  # noqa: BLE001 - replaced, not swallowed: raised below
            replacement = scrubbed(exc, known_secrets())
        raise replacement

    return run  # type: ignore[return-value]


def known_secrets() -> list[str]:
    """The values an error text must not show: the personal fields of the trigger form (as
    typed, and in their canonical form) and the subject key. Best effort: a value that cannot be
    read is skipped (the scrubber still removes e-mail addresses and phone numbers by shape)."""
    values: list[str] = []
    try:
        from airflow.sdk import get_current_context

        params = get_current_context()["params"]
    except Exception:  # noqa: BLE001 - outside a task (a test, a script): no form
        params = {}
    for name in PERSONAL_PARAMS:
        values.extend(_strings(params.get(name)))
    for kind in IDENTIFIER_KINDS:
        for value in _strings(params.get(kind)):
            try:
                values.append(normalise(kind, value))
            except Exception:  # noqa: BLE001 - a malformed identifier: the raw form is listed
                pass
    values.extend(v for v in (os.environ.get(KEY_ENV_VAR), _key_variable()) if v)
    return values


def _key_variable() -> str | None:
    try:
        from airflow.sdk import Variable

        return Variable.get(KEY_VARIABLE, default=None)
    except Exception:  # noqa: BLE001 - no Variable backend reachable: the environment's key is listed
        return None


def _strings(value: Any) -> list[str]:
    """The text leaves of a form value (a string, or the nested ``changes`` object)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return [] if value is None or isinstance(value, bool) else [str(value)]


def connection_url(conn: Any) -> str:
    """A SQLAlchemy URL from an Airflow connection (``postgres`` or ``sqlite``)."""
    if conn.conn_type == "sqlite":
        if not conn.host:
            raise ValueError(f"connection {conn.conn_id!r}: a sqlite connection needs the database file path as host")
        return f"sqlite:///{conn.host}"
    if conn.conn_type in ("postgres", "postgresql"):
        return URL.create(
            "postgresql+psycopg",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
        ).render_as_string(hide_password=False)
    raise ValueError(f"connection {conn.conn_id!r} has type {conn.conn_type!r}; use postgres or sqlite")


def resolve_as_of(context: dict[str, Any], policy: RetentionPolicy) -> date:
    """``params.as_of`` if given, else the run's date in the company's time zone.

    A run triggered from the UI has no logical date in Airflow 3: ``run_after`` is used.
    """
    chosen = context["params"].get("as_of")
    return date.fromisoformat(chosen) if chosen else run_day(context, policy)


def run_day(context: dict[str, Any], policy: RetentionPolicy) -> date:
    """The run's date in the company's time zone (``run_after`` for a run triggered by hand)."""
    moment = context.get("logical_date") or context["dag_run"].run_after
    return moment.astimezone(policy.zone).date()


# Whether a run that leaves ``params.dry_run`` empty is a dry run, per Airflow run type
# (the ``DagRunType`` values of Airflow 3.3; see ``resolve_dry_run``). Only the DAG's own
# schedule executes unattended: whoever starts a run must say ``dry_run: false`` to change data.
DRY_RUN_DEFAULTS: dict[str, bool] = {
    "scheduled": False,
    "asset_triggered": False,
    "manual": True,
    "backfill": True,
    "operator_triggered": True,
    "asset_materialization": True,
}


def run_type_value(run_type: Any) -> str | None:
    """The run type as its plain value (``"scheduled"``...), whatever form it arrives in.

    The task runtime hands ``context["dag_run"].run_type`` as the task SDK's ``DagRunType``, a
    ``str`` enum without Airflow core's ``__str__``: ``str()`` of it is ``'DagRunType.SCHEDULED'``,
    not ``'scheduled'`` (issue 14: every nightly run was a dry run). So the enum's ``.value`` is
    read; a plain string is taken as it is."""
    value = getattr(run_type, "value", run_type)
    return value if isinstance(value, str) else None


def resolve_dry_run(context: dict[str, Any]) -> bool:
    """``params.dry_run`` when it is set; otherwise the default of the run's type.

    =====================  ==========  ============================================================
    run type               default     why
    =====================  ==========  ============================================================
    scheduled              executes    the nightly run of the schedule: nobody is there to say so
    asset_triggered        executes    the DAG's own (data-driven) schedule, unattended like a cron
    manual                 dry run     started by a person: changing data takes ``dry_run: false``
    backfill               dry run     started by a person, over past dates; never needed to catch
                                       up (the next run, as of its own day, does everything due),
                                       so a backfill that changes data must say so explicitly
    operator_triggered     dry run     started by another DAG: its author passes ``dry_run: false``
    asset_materialization  dry run     a person clicked "materialize"
    anything else          dry run     unknown: fail safe, and say so in the task log
    =====================  ==========  ============================================================
    """
    chosen = context["params"].get("dry_run")
    if chosen is not None:
        return bool(chosen)
    run_type = getattr(context.get("dag_run"), "run_type", None)
    default = DRY_RUN_DEFAULTS.get(run_type_value(run_type) or "")
    if default is None:
        log.warning("Unknown run type %r: a dry run (set dry_run: false to execute)", run_type)
        return True
    return default


@contextmanager
def _failing_fast(*also: type[Exception]) -> Iterator[None]:
    """A wrong policy, a failed data-quality gate, a batch that did not add up, a bad request
    will not mend itself by retrying: those fail the task at once (no retry), with the
    engine's message. Anything else - a lost connection, a lock timeout - is retried by Airflow."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except (RetentionError, *also) as exc:
        raise AirflowFailException(str(exc)) from exc


@contextmanager
def _target(policy: RetentionPolicy) -> Iterator[Target]:
    """The ``retention_target`` connection as the engine's target, closed when the block ends."""
    from airflow.sdk import Connection

    target = connect(connection_url(Connection.get(TARGET_CONN_ID)), policy.archive_schema)
    try:
        yield target
    finally:
        target.dispose()


@contextmanager
def _opened(category: str) -> Iterator[StepContext]:
    """The engine's view of the running task; the target is closed when the task ends."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    with _failing_fast():
        policy = load_policy()
        ctx = RunContext(
            run_id=context["run_id"],
            dag_id=context["dag"].dag_id,
            as_of=resolve_as_of(context, policy),
            policy_version=policy.version,
            dry_run=resolve_dry_run(context),
        )
        key = subject_key() if "opposition" in policy.category(category).deleted_on else optional_subject_key()
        with _target(policy) as target, category_step(target, category, ctx.run_id, ctx.dag_id):
            yield StepContext.build(target, policy, category, ctx, key)


def _batch_size() -> int | None:
    from airflow.sdk import get_current_context

    return get_current_context()["params"].get("batch_size")


@scrubbing
def preflight_checks(category: str) -> list[dict[str, Any]]:
    with _opened(category) as step:
        return results_as_dicts(pre_archive_gate(step))


@scrubbing
def plan(category: str) -> dict[str, Any]:
    """The plan (counts, horizon dates, sample keys) in the task log and XCom, with the
    deletion limits it passes: ``approve_deletions`` asks a person about those."""
    with _opened(category) as step:
        planned = plan_category(step)
        over = excesses(planned, step.policy)  # retained dependants: the stricter of both categories' limits
    result = {
        **planned.to_dict(),
        "dry_run": step.ctx.dry_run,
        "over_limit": [{**e.to_dict(), "text": str(e)} for e in over],
    }
    mode = "DRY RUN - nothing will change" if step.ctx.dry_run else "executing"
    log.info("Plan for %s as of %s (%s):\n%s", category, step.ctx.as_of, mode, json.dumps(result["tables"], indent=2))
    for e in over:
        log.warning("Over the deletion limit: %s%s", e, "" if step.ctx.dry_run else " - the run waits for approval")
    return result


def _approved() -> dict[str, int] | None:
    """The removals a person approved (the plan's counts), or None when no approval was given."""
    from airflow.sdk import get_current_context

    ti = get_current_context()["ti"]
    approval = ti.xcom_pull(task_ids="approve_deletions")
    if not approval or not approval.get("approved"):
        return None
    log.info("Removals approved by %s, up to the planned counts", approval.get("approved_by") or "a user")
    return approved_counts(ti.xcom_pull(task_ids="plan"))


@scrubbing
def archive(category: str) -> dict[str, int]:
    with _opened(category) as step:
        approved = _approved()
        if approved is not None and not step.ctx.dry_run:
            record_approval(step, approved)  # in the audit log and on the certificate
        return archive_category(step, _batch_size(), approved)


@scrubbing
def purge(category: str) -> dict[str, dict[str, int]]:
    with _opened(category) as step:
        return purge_category(step, _batch_size(), _approved())


@scrubbing
def postflight_checks(category: str) -> list[dict[str, Any]]:
    with _opened(category) as step:
        return results_as_dicts(post_run_gate(step))


@scrubbing
def summary(
    category: str,
    archived: dict[str, int] | None,
    purged: dict[str, dict[str, int]] | None,
    verified: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """Summarise the run and issue its deletion certificate - also when an earlier task
    failed, and then fail too, so that the run is not shown as a success."""
    from airflow.sdk.exceptions import AirflowFailException

    missing = [
        name
        for name, value in (("archive", archived), ("purge", purged), ("postflight_checks", verified))
        if value is None
    ]
    with _opened(category) as step:
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


def _issue_certificate(step: StepContext) -> tuple[Any, Any]:
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


@scrubbing
def verify_audit_chain() -> dict[str, Any]:
    """The audit log's chain status (``certificate.chain_status``: the hash chain recomputed,
    then compared with the hashes this log's run certificates hold outside the database) -
    the same verdict the Retention view and the demo show; fail naming the first thing that
    does not hold."""
    from airflow.sdk.exceptions import AirflowFailException

    policy = load_policy()
    with _target(policy) as target, target.read() as conn:
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
def dpo_report() -> dict[str, Any]:
    """Write the DPO report for ``params.period_start``..``period_end`` (default: the month
    before the run) in ``params.language``; compliance is counted at the time of the run."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    params = context["params"]
    with _failing_fast(ValueError):
        policy = load_policy()
        default_start, default_end = dpo.previous_month(run_day(context, policy))
        start = date.fromisoformat(params["period_start"]) if params.get("period_start") else default_start
        end = date.fromisoformat(params["period_end"]) if params.get("period_end") else default_end
        with _target(policy) as target:
            report = dpo.build(target, policy, start, end, datetime.now(policy.zone).date(), optional_subject_key())
        path = dpo.write(report, params.get("language") or "fr")
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


def subject_key() -> SubjectKey:
    """The HMAC key: Airflow Variable (or secrets backend) first, then the environment."""
    from airflow.sdk import Variable

    return key_from(Variable.get(KEY_VARIABLE, default=None))


def optional_subject_key() -> SubjectKey | None:
    """The HMAC key if one is configured: a step that may meet a legal hold on a person
    needs it then, and says so (``holds.py``); without such a hold it is not needed."""
    from airflow.sdk import Variable

    return configured_key(Variable.get(KEY_VARIABLE, default=None))


@scrubbing
def subject_request() -> dict[str, Any]:
    """Record a data-subject request from the trigger form, then carry it out if the identity is
    verified. Identifiers are validated before anything is written; none is logged."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    params = context["params"]
    with _failing_fast():
        policy = load_policy()
        subject = Subject.of({kind: params[kind] for kind in IDENTIFIER_KINDS if params.get(kind)})
        request = RequestRecord(
            params["reference"],
            params["request_type"],
            date.fromisoformat(params["received"]),
            params["identity"] == "verified",
            requester_email=params.get("email"),
            extension_reason=params.get("extension_reason") or None,
        )
        ctx = RunContext(
            run_id=context["run_id"],
            dag_id=context["dag"].dag_id,
            as_of=run_day(context, policy),
            policy_version=policy.version,
        )
        received_at = datetime.combine(request.received, datetime.min.time(), policy.zone)
        with _target(policy) as target:
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
def rights_deadlines() -> list[dict[str, Any]]:
    """Fail if a request is overdue; list those due within 7 days (references and dates only)."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    policy = load_policy()
    today = run_day(get_current_context(), policy)
    with _failing_fast(), _target(policy) as target:
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
def legal_hold() -> dict[str, Any]:
    """Add, list or lift a legal hold from the trigger form; every change is audited.

    The hold's creator is the user who triggered the run (or ``params.requested_by``). The
    task log shows references, scopes and counts - never an identifier or a reason.
    """
    from airflow.sdk import get_current_context

    context = get_current_context()
    params = context["params"]
    action = params["action"]
    with _failing_fast():
        policy = load_policy()
        today = run_day(context, policy)
        ctx = RunContext(
            run_id=context["run_id"], dag_id=context["dag"].dag_id, as_of=today, policy_version=policy.version
        )
        who = params.get("requested_by") or getattr(context["dag_run"], "triggering_user_name", None)
        with _target(policy) as target:
            if action == "add":
                changed = add_hold(target, policy, _new_hold(params, who), optional_subject_key(), ctx, today)
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


def _new_hold(params: dict[str, Any], who: str | None) -> NewHold:
    """The hold the form describes; identifiers are normalised (and checked) before anything is written."""
    identifiers = {kind: params[kind] for kind in IDENTIFIER_KINDS if params.get(kind)}
    if not who:
        raise RetentionError("say who asks for the hold: requested_by (the run was not triggered by a named user)")
    return NewHold(
        reference=params.get("reference") or "",
        scope=params.get("scope") or "",
        reason=params.get("reason") or "",
        created_by=who,
        expires_on=date.fromisoformat(params["expires_on"]) if params.get("expires_on") else None,
        category=params.get("category"),
        table=params.get("table"),
        keys=list(params.get("keys") or []),
        subject=Subject.of(identifiers) if params.get("scope") == "subject" else None,
    )
