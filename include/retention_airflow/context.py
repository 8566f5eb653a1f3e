"""The engine's ``RunContext`` from the Airflow context: which run, as of which day, preview or not.

Built in one place for every DAG. The day is the run's date in the company's time zone; a
run of the schedule may set it (``params.as_of``) and may be a preview (a dry run), by the
``mode`` its trigger chose or by its run type (``resolve_dry_run``). A request or a legal hold
always acts on the run's day and is never a preview.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from airflow.sdk import Context, Param

from include.retention.errors import RetentionError
from include.retention.language import translator
from include.retention.policy.model import RetentionPolicy
from include.retention.records.audit import RunContext

log = logging.getLogger(__name__)

PREVIEW, EXECUTE = "preview", "execute"
MODES = (PREVIEW, EXECUTE)  # the ``mode`` param of the schedule and re-consent DAGs

# Whether a run whose conf names no ``mode`` is a dry run (a preview), per Airflow run type
# (the ``DagRunType`` values of Airflow 3.3; see ``resolve_dry_run``). Only the DAG's own
# schedule executes unattended: whoever starts a run must say ``mode: execute`` to change data.
DRY_RUN_DEFAULTS: dict[str, bool] = {
    "scheduled": False,
    "asset_triggered": False,
    "manual": True,
    "backfill": True,
    "operator_triggered": True,
    "asset_materialization": True,
}


def mode_param(lang: str, description: str) -> Param:
    """The form's choice between a preview and a run that changes data: an enum whose labels say
    what each does, ``preview`` by default, so a run started from the form changes nothing
    unless the person picks ``execute`` (the form sends it in the conf: ``resolve_dry_run``)."""
    _ = translator(lang, "airflow")
    return Param(
        PREVIEW,
        enum=list(MODES),
        values_display={PREVIEW: _("Preview (nothing changes)"), EXECUTE: _("Execute")},
        title=_("Mode"),
        description=description,
    )


def run_context(
    context: Context, policy: RetentionPolicy, *, as_of: date | None = None, dry_run: bool = False
) -> RunContext:
    """The run as the engine records it: run and DAG ids, the day (the run's own by default),
    the policy version, and whether it is a dry run."""
    return RunContext(
        run_id=context["run_id"],
        dag_id=context["dag"].dag_id,
        as_of=as_of or run_day(context, policy),
        policy_version=policy.version,
        dry_run=dry_run,
    )


def schedule_run_context(context: Context, policy: RetentionPolicy) -> RunContext:
    """A run of a ``retention_<category>`` DAG: its ``as_of`` param and its mode resolved."""
    return run_context(context, policy, as_of=resolve_as_of(context, policy), dry_run=resolve_dry_run(context))


def resolve_as_of(context: Context, policy: RetentionPolicy) -> date:
    """``params.as_of`` if given, else the run's date in the company's time zone.

    A run triggered from the UI has no logical date in Airflow 3: ``run_after`` is used.
    """
    chosen = context["params"].get("as_of")
    return date.fromisoformat(chosen) if chosen else run_day(context, policy)


def run_day(context: Context, policy: RetentionPolicy) -> date:
    """The run's date in the company's time zone (``run_after`` for a run triggered by hand)."""
    moment = context.get("logical_date") or context["dag_run"].run_after
    return moment.astimezone(policy.zone).date()


def run_type_value(run_type: Any) -> str | None:
    """The run type as its plain value (``"scheduled"``...), whatever form it arrives in.

    The task runtime hands ``context["dag_run"].run_type`` as the task SDK's ``DagRunType``, a
    ``str`` enum without Airflow core's ``__str__``: ``str()`` of it is ``'DagRunType.SCHEDULED'``,
    not ``'scheduled'`` (issue 14: every nightly run was a dry run). So the enum's ``.value`` is
    read; a plain string is taken as it is."""
    value = getattr(run_type, "value", run_type)
    return value if isinstance(value, str) else None


def resolve_dry_run(context: Context) -> bool:
    """Whether the run is a preview: the ``mode`` its trigger put in ``dag_run.conf``, else the
    default of its run type.

    The conf, not ``params``: ``params.mode`` always holds a value (the form's default,
    ``preview``), also in a scheduled run that nobody chose anything for. The conf holds what
    was sent: the trigger form sends every param (so a run started from the form with its
    defaults previews), REST, CLI and ``TriggerDagRunOperator`` send what they set, and the
    scheduler sends nothing (``{}``). A conf with the old ``dry_run`` key, or a ``mode`` that is
    not ``preview``/``execute``, fails the run at once: never guess whether to change data.

    =====================  ==========  ============================================================
    run type, no ``mode``  default     why
    =====================  ==========  ============================================================
    scheduled              executes    the nightly run of the schedule: nobody is there to say so
    asset_triggered        executes    the DAG's own (data-driven) schedule, unattended like a cron
    manual                 preview     started by a person: changing data takes ``mode: execute``
    backfill               preview     started by a person, over past dates; never needed to catch
                                       up (the next run, as of its own day, does everything due),
                                       so a backfill that changes data must say so explicitly
    operator_triggered     preview     started by another DAG: its author passes ``mode: execute``
    asset_materialization  preview     a person clicked "materialize"
    anything else          preview     unknown: fail safe, and say so in the task log
    =====================  ==========  ============================================================
    """
    dag_run = context.get("dag_run")
    conf = getattr(dag_run, "conf", None) or {}
    if "dry_run" in conf:
        raise RetentionError(
            "the run's conf has 'dry_run', which became 'mode': preview (nothing changes) or execute; "
            "trigger again with mode"
        )
    chosen = conf.get("mode")
    if chosen is not None:
        if chosen not in MODES:
            raise RetentionError(f"mode {chosen!r} is not one of {', '.join(MODES)}")
        return chosen == PREVIEW
    run_type = getattr(dag_run, "run_type", None)
    default = DRY_RUN_DEFAULTS.get(run_type_value(run_type) or "")
    if default is None:
        log.warning("Unknown run type %r: a preview (set mode: execute to change data)", run_type)
        return True
    return default
