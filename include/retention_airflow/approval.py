"""The human approval a run needs when its plan passes the category's deletion limit.

``DeletionApproval`` is Airflow's human-in-the-loop ``ApprovalOperator`` (Required Actions in
the UI) that asks only when it must: it reads the ``plan`` task's XCom and, when nothing
passes the limit, succeeds at once without asking anyone. In a preview (a dry run) it ends
*skipped*: nothing will change, so nobody is asked - and a preview is recognisable in the
DAG's grid without opening its conf (``archive`` runs after it all the same: its trigger rule
is ``none_failed``, and it logs what it would move). When it asks, the run waits in
``awaiting_input``:

- **Approve**: ``archive`` and ``purge`` run, allowed to remove up to the planned counts;
- **Reject**: the task fails (``fail_on_reject``), so neither runs and nothing changes;
- **no answer** within the policy's ``approval_timeout_hours``: it fails the same way
  (there is no default answer on purpose).

The engine checks the limit again before its first batch (``limits.check``), so a run
without this task, or one whose counts grew since the plan, is refused there too. Rows of a
retained dependant that a parent's run destroys (invoices in the customer run) are under the
stricter of both categories' limits: billing's approval is asked, and given, in that run.

When alerts are configured (``alerts.py``), the moment it starts waiting is told through
Airflow's notifiers (``notifiers=``): which limits the plan passes, and where to answer.

Its subject and body are in the policy's language (the ``airflow`` catalog): the approver reads them.

Who may answer is configuration: ``$RETENTION_APPROVERS`` (comma-separated user ids of the auth
manager - the user names of the simple auth manager) becomes the question's ``assigned_users``;
Airflow then refuses (403) an answer from anyone else, an admin included. Unset, anyone whose
role may edit the DAG's HITL details answers (see docs/how-to/dpo-role.md). A value that is not
a list of user ids is a configuration error of every target (``site_dags.config_error``): their
retention DAGs are not built rather than built with the restriction dropped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowSkipException
from airflow.sdk.execution_time.hitl import HITLUser

from include.retention.dates.words import day_words
from include.retention.language import translator
from include.retention.policy.model import RetentionPolicy
from include.retention.schedule.plan import CategoryPlan, TablePlan
from include.retention.settings import APPROVERS_ENV_VAR
from include.retention_airflow import alerts

PLAN_TASK = "plan"
_USER_ID = re.compile(r"[A-Za-z0-9_.@+-]{1,256}")


class ApproversConfigError(ValueError):
    """``$RETENTION_APPROVERS`` cannot be used: the message names the entry by position, never its value."""


def approvers(environ: Mapping[str, str] | None = None) -> list[HITLUser] | None:
    """The users ``$RETENTION_APPROVERS`` names (ids of the auth manager), or None: anyone allowed."""
    spec = (os.environ if environ is None else environ).get(APPROVERS_ENV_VAR, "").strip()
    if not spec:
        return None
    entries = [entry.strip() for entry in spec.split(",")]
    for position, entry in enumerate(entries, start=1):
        if not _USER_ID.fullmatch(entry):
            raise ApproversConfigError(
                f"{APPROVERS_ENV_VAR}: entry {position} is not a user id (letters, digits, _ . @ + -)"
            )
    return [HITLUser(id=entry, name=entry) for entry in dict.fromkeys(entries)]


class DeletionApproval(ApprovalOperator):
    """Ask a person to approve the run's removals, only when they pass the deletion limit."""

    def __init__(
        self, *, category: str, timeout_hours: int, lang: str, labels: Mapping[str, str], **kwargs: Any
    ) -> None:
        told = alerts.channels()
        _ = translator(lang, "airflow")
        super().__init__(
            notifiers=[alerts.ApprovalWaitingNotice(told, lang)] if told.configured else [],
            subject=approval_subject(f"retention_{category}", lang),
            body=_("(filled in from the plan when the task runs)"),
            fail_on_reject=True,
            response_timeout=timedelta(hours=timeout_hours),
            assigned_users=approvers(),
            **kwargs,
        )
        self.category = category
        self.lang = lang
        self.labels = dict(labels)  # every category's label in ``lang``: the body names them so

    def execute(self, context: Any) -> Any:
        planned = context["ti"].xcom_pull(task_ids=PLAN_TASK)
        plan = CategoryPlan.from_xcom(planned) if planned else None
        if plan is not None and plan.dry_run:
            # Skipped, not succeeded: the run's column in the grid shows which runs were previews.
            raise AirflowSkipException("Preview: nothing will be archived or destroyed, so nobody is asked")
        if plan is None or not plan.over_limit:
            self.log.info("No approval needed (within the deletion limit)")
            return {"needed": False}
        # The DAG id, not the category: with several targets (retention_prospection_paris,
        # retention_prospection_lyon) the approver must see which database the removals are on.
        self.subject = approval_subject(self.dag_id, self.lang)
        self.body = approval_body(plan, self.lang, self.labels)
        for excess in plan.over_limit:
            self.log.warning("Over the deletion limit: %s", excess)
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        answer = super().execute_complete(context, event)  # raises on Reject and on timeout
        user = answer.get("responded_by_user") or {}
        return {"needed": True, "approved": True, "approved_by": user.get("name") if isinstance(user, dict) else None}


def approval_subject(dag_id: str, lang: str) -> str:
    """The question in Required Actions: which DAG (so which database) asks."""
    _ = translator(lang, "airflow")
    return _("Approve the removals of {dag_id}: past the deletion limit").format(dag_id=dag_id)


def category_labels(policy: RetentionPolicy, lang: str) -> dict[str, str]:
    """Every category's label in ``lang`` (the charter's words), by key: what the approver reads."""
    return {key: getattr(category.label, lang) for key, category in policy.categories.items()}


def approval_body(plan: CategoryPlan, lang: str, labels: Mapping[str, str]) -> str:
    """What the approver reads: which limits pass, the counts and horizons, a few keys - in
    words of ``lang`` (categories by their label, dates as a reader says them)."""
    _ = translator(lang, "airflow")
    lines = [
        _("Category **{category}**, as of {as_of}, policy {version}.").format(
            category=labels.get(plan.category, plan.category),
            as_of=day_words(plan.as_of, lang),
            version=plan.policy_version,
        ),
        "",
        _("Over the limit:"),
    ]
    lines += [f"- {alerts.excess_words(excess, lang)}" for excess in plan.over_limit]
    lines += ["", _("Planned, per table:")]
    for t in plan.tables:
        lines.append("- " + _table_line(t, lang))
        # Rows of another category this run destroys (an invoice past its horizon, with its
        # customer): that category's limit applies too, so they may be why the run asks.
        for table, d in t.dependants_end_of_life.items():
            category = d.get("category")
            lines.append(
                "  - "
                + _(
                    "and {rows} {table} of category {category} past their own horizon, destroyed with them "
                    "(that category's deletion limit applies too)"
                ).format(
                    rows=alerts.number_words(d["rows"], lang),
                    table=table,
                    category=labels.get(category, category) if category else "?",
                )
            )
    lines += [
        "",
        _(
            "Approve only if these volumes are expected (a first run on a backlog, a deliberate "
            "policy change). A wrong clock or a shortened period looks exactly like this."
        ),
    ]
    return "\n".join(lines)


def _table_line(t: TablePlan, lang: str) -> str:
    """One table's planned counts, its horizon and a few keys to check by hand."""
    _ = translator(lang, "airflow")
    number = alerts.number_words
    return _(
        "{table}: {archive} to the archive (started on or before {last_due_start}), {end_of_life} at end "
        "of life, {held} kept by a legal hold; sample keys {keys}"
    ).format(
        table=t.table,
        archive=number(t.due_for_archive, lang),
        last_due_start=day_words(t.last_due_start, lang),
        end_of_life=number(t.due_for_end_of_life, lang),
        held=number(t.legal_hold_due + t.legal_hold_end_of_life, lang),
        keys=sample_keys_words(t.sample_keys, lang),
    )


def sample_keys_words(sample: Mapping[str, list[Any]], lang: str) -> str:
    """The sample's keys as plain text: ``to archive: 1, 2; at end of life: 7``. They are
    primary-key values (plan.py samples the policy's ``primary_key`` columns), never a
    person's data; a composite key reads ``(1, A)``."""
    _ = translator(lang, "airflow")
    where = {"archive": _("to archive"), "end_of_life": _("at end of life")}
    parts = [
        _("{where}: {keys}").format(where=where.get(side, side), keys=", ".join(_key_words(k) for k in keys))
        for side, keys in sample.items()
        if keys
    ]
    return _("; ").join(parts) if parts else _("none")  # French sets the semicolon apart: " ; "


def _key_words(key: Any) -> str:
    return "(" + ", ".join(str(part) for part in key) + ")" if isinstance(key, list) else str(key)
