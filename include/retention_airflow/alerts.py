"""Who is told, and how, when the retention schedule needs a person: alerts through Airflow's notifiers.

Channels are configuration (read from the environment of every Airflow component):

- ``$RETENTION_ALERT_EMAILS`` (comma-separated addresses): mail through Airflow's ``SmtpNotifier``
  over the connection ``$RETENTION_ALERT_SMTP_CONN`` (default ``smtp_default``; its extra
  ``from_email`` is the sender) - the default channel;
- ``$RETENTION_ALERT_SLACK_CONN`` and ``$RETENTION_ALERT_SLACK_CHANNEL``: a message through the
  Slack provider's ``SlackNotifier`` (``apache-airflow-providers-slack``, installed by whoever
  wants it: it is imported only when configured).

Nothing configured: no notifier, and each DAG's documentation says alerts are off. A malformed
value fails the parse of every DAG with a message naming the variable (never the value: it
may be an address).

What is told (``Kind``): a task that finally fails (not a retry), with its own subject for a
failed data-quality gate, a failed audit verification, an overdue rights request and removals
not approved; a notice when a run waits for an approval; and a run of a schedule DAG still not
finished ``$RETENTION_APPROVAL_ALERT_HOURS`` after it was queued (a deadline alert the
triggerer sends). Each message says what happened and what to do, with the DAG id, run id,
task id, try, the exception's class and message (scrubbed again here) and, when Airflow's
``[api] base_url`` is set, a link. Never a person's data: the engine's messages carry none,
and the message is scrubbed of addresses and phone numbers once more before it leaves.

A channel that fails is logged (its error scrubbed) and the others are still tried; an alert
never fails the task it reports on, nor the approval it announces.

A person reads the messages: they are in the policy's language (``policy.language``, French by
default; the texts are written in English here and translated by the ``airflow`` catalog). The
exception's message inside stays as the engine wrote it (English, for the engineer).
"""

from __future__ import annotations

import enum
import html
import importlib
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import Context
from airflow.sdk.bases.notifier import BaseNotifier
from airflow.sdk.configuration import conf
from airflow.sdk.definitions.callback import AsyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference
from airflow.sdk.exceptions import AirflowFailException
from babel.numbers import format_decimal, format_percent

from include.retention.database.reflect import Side
from include.retention.dates.words import moment_words
from include.retention.errors import scrub
from include.retention.language import DEFAULT_LANGUAGE, N_, checked, translations, translator
from include.retention.schedule.plan import CategoryPlan, Excess
from include.retention.settings import (
    ALERT_EMAILS_ENV_VAR,
    ALERT_SLACK_CHANNEL_ENV_VAR,
    ALERT_SLACK_CONN_ENV_VAR,
    ALERT_SMTP_CONN_ENV_VAR,
    APPROVAL_ALERT_HOURS_ENV_VAR,
)
from include.retention_airflow.errors import known_secrets
from include.retention_airflow.targets import NAME_PATTERN

log = logging.getLogger(__name__)

DEFAULT_SMTP_CONN = "smtp_default"
SLACK_PACKAGE = "apache-airflow-providers-slack"
SLACK_MODULE = "airflow.providers.slack.notifications.slack"
SUBJECT_PREFIX = "[retention]"
MAX_MESSAGE_CHARS = 2000  # an exception's message in an alert: enough for a list of references
_ADDRESS = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+")
_CONN_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")
_SLACK_CHANNEL = re.compile(r"[#@]?[A-Za-z0-9_.-]{1,80}")
# A named target's DAG ids end in ``_<name>`` (targets.py); the default target's do not.
_SITE_SUFFIX = rf"(?:_{NAME_PATTERN.pattern})?"
_SCHEDULE_DAG = re.compile(r"retention_\w+")
_AUDIT_DAG = re.compile(rf"retention_audit_verify{_SITE_SUFFIX}")
_RIGHTS_DAG = re.compile(rf"retention_rights_deadlines{_SITE_SUFFIX}")
GATE_TASKS = {"preflight_checks", "postflight_checks"}
# The names of an alert's facts (translated where the alert is written).
DAG_FACT, RUN_FACT, TASK_FACT, TRY_FACT = N_("DAG"), N_("Run"), N_("Task"), N_("Try")
EXCEPTION_FACT, MESSAGE_FACT, ANSWER_WITHIN_FACT, STATE_FACT = (
    N_("Exception"),
    N_("Message"),
    N_("Answer within"),
    N_("State"),
)
NONE_GIVEN = N_("(none given)")
# A run's state as Airflow gives it (DagRunState's values), in words: a run, so feminine in French.
RUN_STATES = {
    "queued": N_("queued"),
    "running": N_("running"),
    "success": N_("succeeded"),
    "failed": N_("failed"),
}
APPROVAL_TASK = "approve_deletions"


class AlertsConfigError(ValueError):
    """An alert variable cannot be used: the message names the variable and what is wrong."""


class AlertNotSent(RuntimeError):
    """No channel delivered an alert (each channel's error is in the log, scrubbed)."""


# --- Channels ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Channels:
    """Where alerts go. Empty: alerts are off."""

    emails: tuple[str, ...] = ()
    smtp_conn_id: str = DEFAULT_SMTP_CONN
    slack_conn_id: str | None = None
    slack_channel: str | None = None
    # The Slack provider's SlackNotifier (its keyword arguments are not BaseNotifier's).
    slack_notifier: Callable[..., BaseNotifier] | None = field(default=None, compare=False)

    @property
    def configured(self) -> bool:
        return bool(self.emails) or self.slack_conn_id is not None

    def notifiers(self, alert: Alert) -> list[tuple[str, BaseNotifier]]:
        """One of Airflow's notifiers per channel, each named for the log, carrying ``alert``.
        The texts are given whole, so the notifiers render no template from them."""
        built: list[tuple[str, BaseNotifier]] = []
        if self.emails:
            mail = SmtpNotifier(
                to=list(self.emails), subject=alert.subject, html_content=alert.html(), smtp_conn_id=self.smtp_conn_id
            )
            built.append((f"mail over {self.smtp_conn_id}", mail))
        if self.slack_notifier is not None:
            slack = self.slack_notifier(slack_conn_id=self.slack_conn_id, channel=self.slack_channel, text=alert.text())
            built.append((f"Slack over {self.slack_conn_id}", slack))
        return built

    def describe(self, lang: str = DEFAULT_LANGUAGE) -> str:
        """The channels in words for the DAG documentation (counts and connection ids, no address)."""
        _ = translator(lang, "airflow")
        if not self.configured:
            return _(
                "Alerts are **off**: set `{emails}` (mail through the `{smtp}` connection, or `{smtp_var}`) or "
                "`{slack}` and `{channel}` to be told of failures and waiting approvals."
            ).format(
                emails=ALERT_EMAILS_ENV_VAR,
                smtp=DEFAULT_SMTP_CONN,
                smtp_var=ALERT_SMTP_CONN_ENV_VAR,
                slack=ALERT_SLACK_CONN_ENV_VAR,
                channel=ALERT_SLACK_CHANNEL_ENV_VAR,
            )
        parts = []
        if self.emails:
            parts.append(
                _("mailed to {count} recipient(s) over the connection `{conn}`").format(
                    count=len(self.emails), conn=self.smtp_conn_id
                )
            )
        if self.slack_conn_id is not None:
            parts.append(_("posted to Slack over the connection `{conn}`").format(conn=self.slack_conn_id))
        return _("Alerts (a task that fails after its retries, a waiting approval) are {channels}.").format(
            channels=_(" and ").join(parts)
        )


def channels(environ: Mapping[str, str] | None = None) -> Channels:
    """The channels ``$RETENTION_ALERT_*`` configure; ``AlertsConfigError`` names a malformed one."""
    env = os.environ if environ is None else environ
    emails = _emails(env.get(ALERT_EMAILS_ENV_VAR, ""))
    smtp_conn_id = env.get(ALERT_SMTP_CONN_ENV_VAR, "").strip() or DEFAULT_SMTP_CONN
    if not _CONN_ID.fullmatch(smtp_conn_id):
        raise AlertsConfigError(f"{ALERT_SMTP_CONN_ENV_VAR} must be a connection id (letters, digits, _ . -)")
    slack_conn_id = env.get(ALERT_SLACK_CONN_ENV_VAR, "").strip() or None
    slack_channel = env.get(ALERT_SLACK_CHANNEL_ENV_VAR, "").strip() or None
    if slack_conn_id is None and slack_channel is not None:
        raise AlertsConfigError(f"{ALERT_SLACK_CHANNEL_ENV_VAR} is set without {ALERT_SLACK_CONN_ENV_VAR}")
    if slack_conn_id is None:
        return Channels(emails=emails, smtp_conn_id=smtp_conn_id)
    if not _CONN_ID.fullmatch(slack_conn_id):
        raise AlertsConfigError(f"{ALERT_SLACK_CONN_ENV_VAR} must be a connection id (letters, digits, _ . -)")
    if slack_channel is None or not _SLACK_CHANNEL.fullmatch(slack_channel):
        raise AlertsConfigError(
            f"{ALERT_SLACK_CONN_ENV_VAR} is set: {ALERT_SLACK_CHANNEL_ENV_VAR} must name the channel (e.g. #gdpr-alerts)"
        )
    return Channels(
        emails=emails,
        smtp_conn_id=smtp_conn_id,
        slack_conn_id=slack_conn_id,
        slack_channel=slack_channel,
        slack_notifier=_slack_notifier(),
    )


def _emails(spec: str) -> tuple[str, ...]:
    """The addresses of ``$RETENTION_ALERT_EMAILS``; a wrong one is named by its position only."""
    if not spec.strip():
        return ()
    entries = [e.strip() for e in spec.split(",")]
    for position, entry in enumerate(entries, start=1):
        if not _ADDRESS.fullmatch(entry):
            raise AlertsConfigError(f"{ALERT_EMAILS_ENV_VAR}: entry {position} is not an e-mail address")
    return tuple(dict.fromkeys(entries))


def _slack_notifier() -> Callable[..., BaseNotifier]:
    """The Slack provider's notifier, imported only when a deployment asks for Slack."""
    try:
        module = importlib.import_module(SLACK_MODULE)
    except ImportError as exc:
        raise AlertsConfigError(
            f"{ALERT_SLACK_CONN_ENV_VAR} is set, but the Slack provider is not installed: "
            f"add {SLACK_PACKAGE} to the image (requirements.txt)"
        ) from exc
    notifier: type[BaseNotifier] = module.SlackNotifier
    return notifier


# --- What is told ---------------------------------------------------------------------------------


class Kind(enum.Enum):
    """What an alert is about: its subject and what the reader should do (English, marked for
    the catalog: translated when the alert is written, in its language)."""

    TASK_FAILED = (
        N_("Task failed"),
        N_("The task failed after its retries."),
        N_(
            "Read the task's log; once the cause is fixed, clear the task to run it again (every step is safe to "
            "repeat)."
        ),
    )
    QUALITY_GATE = (
        N_("Data-quality gate failed"),
        N_("A data-quality gate of the schedule did not pass."),
        N_(
            "Read the task's log for the failing check. Before the run (preflight_checks): nothing was "
            "archived or destroyed; fix the data or the policy, then clear the task. After the run "
            "(postflight_checks): the run's changes are committed but the schedule does not hold as "
            "checked; find out why before the next run."
        ),
    )
    AUDIT_FAILED = (
        N_("Audit verification failed"),
        N_("The audit log's hash chain, a certificate or an anchor does not hold: nothing was anchored today."),
        N_(
            "Treat it as possible tampering: tell the DPO, read the task's log for the first event, "
            "certificate or anchor that does not hold, and run no destructive DAG on this target until "
            "it is explained."
        ),
    )
    RIGHTS_OVERDUE = (
        N_("Rights request overdue"),
        N_("A data-subject request is past its legal deadline (GDPR art. 12(3)); its reference is in the error below."),
        N_(
            "Carry out each listed request now (subject_request DAG) or record its extension; the check "
            "fails every morning until none is overdue."
        ),
    )
    NOT_APPROVED = (
        N_("Removals not approved"),
        N_(
            "The run's plan passed the deletion limit and its approval was rejected or not given in "
            "time: the run changed nothing."
        ),
        N_(
            "If the volumes were expected, trigger the DAG with the mode Execute and approve it; if not, "
            "find out why (a wrong clock, a shortened period) before the next scheduled run."
        ),
    )
    APPROVAL_WAITING = (
        N_("Approval needed"),
        N_(
            "A run's plan passes the category's deletion limit: it waits for a person before anything "
            "is archived or destroyed."
        ),
        N_(
            "Open the task (Required Actions) and approve if these volumes are expected, reject "
            "otherwise. Without an answer in time the run fails and changes nothing."
        ),
    )
    RUN_NOT_FINISHED = (
        N_("Run not finished"),
        N_("A run of the schedule has not finished long after it was queued."),
        N_(
            "It most likely waits for an approval: open the run, then Required Actions, and approve or "
            "reject approve_deletions before its timeout (after which the run fails unchanged). If "
            "nothing waits there, a task is stuck: look at the run's tasks and the workers."
        ),
    )

    def __init__(self, title: str, happened: str, to_do: str) -> None:
        self.title = title
        self.happened = happened
        self.to_do = to_do


def classify(dag_id: str, task_id: str, refused: bool) -> Kind:
    """The kind of a task's final failure, from its DAG and task (a named target's too).

    ``refused``: the engine refused (``AirflowFailException``: a gate that did not pass, a chain
    that does not hold, an overdue request). A lost connection in those tasks is a task failure
    like any other: its alert does not cry tampering or a missed deadline."""
    if _SCHEDULE_DAG.fullmatch(dag_id) and task_id == APPROVAL_TASK:
        return Kind.NOT_APPROVED
    if not refused:
        return Kind.TASK_FAILED
    if _AUDIT_DAG.fullmatch(dag_id):
        return Kind.AUDIT_FAILED
    if _RIGHTS_DAG.fullmatch(dag_id):
        return Kind.RIGHTS_OVERDUE
    if _SCHEDULE_DAG.fullmatch(dag_id) and task_id in GATE_TASKS:
        return Kind.QUALITY_GATE
    return Kind.TASK_FAILED


@dataclass(frozen=True)
class Alert:
    """One message: a subject, what happened and what to do, the facts, a link."""

    kind: Kind
    about: str  # the DAG (and task) in the subject
    facts: tuple[tuple[str, str], ...]
    details: tuple[str, ...] = ()  # extra lines (counts over the limit)
    link: str | None = None
    happened: str | None = None  # instead of the kind's sentence (already in ``lang``)
    lang: str = DEFAULT_LANGUAGE  # the language of what the reader reads (the policy's)

    @property
    def subject(self) -> str:
        _ = translator(self.lang, "airflow")
        return f"{SUBJECT_PREFIX} {_(self.kind.title)}: {self.about}"

    def _facts(self) -> list[tuple[str, str]]:
        """The facts with their names translated (the names are ``N_`` constants)."""
        _ = translator(self.lang, "airflow")
        return [(_(name), value) for name, value in self.facts]

    def text(self) -> str:
        """Plain text (Slack)."""
        _ = translator(self.lang, "airflow")
        lines = [
            self.subject,
            "",
            self.happened or _(self.kind.happened),
            *self.details,
            "",
            _("What to do: {to_do}").format(to_do=_(self.kind.to_do)),
            "",
        ]
        lines += [f"{name}: {value}" for name, value in self._facts()]
        if self.link:
            lines.append(_("Link: {link}").format(link=self.link))
        return "\n".join(lines)

    def html(self) -> str:
        """The mail's HTML body: every value escaped."""
        _ = translator(self.lang, "airflow")
        e = html.escape
        parts = [f"<p>{e(self.happened or _(self.kind.happened))}</p>"]
        if self.details:
            parts.append("<ul>" + "".join(f"<li>{e(d)}</li>" for d in self.details) + "</ul>")
        what_to_do = _("What to do:")
        parts.append(f"<p><b>{e(what_to_do)}</b> {e(_(self.kind.to_do))}</p>")
        parts.append(
            "<table>"
            + "".join(f"<tr><th align='left'>{e(n)}</th><td>{e(v)}</td></tr>" for n, v in self._facts())
            + "</table>"
        )
        if self.link:
            parts.append(f'<p><a href="{e(self.link, quote=True)}">{e(self.link)}</a></p>')
        return "\n".join(parts)


def ui_base_url() -> str | None:
    """Airflow's ``[api] base_url``, when the deployment sets it (links point nowhere otherwise)."""
    base = conf.get("api", "base_url", fallback=None)
    return base.rstrip("/") if base else None


def task_failure(context: Mapping[str, Any], lang: str = DEFAULT_LANGUAGE) -> Alert:
    """The alert for a task's final failure, in ``lang``."""
    _ = translator(lang, "airflow")
    ti = context["ti"]
    exception = context.get("exception")
    facts = (
        *_run_facts(ti.dag_id, ti.run_id),
        (TASK_FACT, ti.task_id),
        (TRY_FACT, str(ti.try_number)),
        (EXCEPTION_FACT, type(exception).__name__ if exception is not None else _(NONE_GIVEN)),
        (MESSAGE_FACT, _message(exception) if exception is not None else _(NONE_GIVEN)),
    )
    kind = classify(ti.dag_id, ti.task_id, refused=isinstance(exception, AirflowFailException))
    about = (
        ti.dag_id
        if kind in (Kind.AUDIT_FAILED, Kind.RIGHTS_OVERDUE, Kind.NOT_APPROVED)
        else f"{ti.dag_id}.{ti.task_id}"
    )
    return Alert(kind=kind, about=about, facts=facts, link=ti.log_url if ui_base_url() else None, lang=lang)


def approval_waiting(context: Mapping[str, Any], lang: str = DEFAULT_LANGUAGE) -> Alert:
    """The notice that a run waits for an approval: which limits its plan passes (counts only)."""
    _ = translator(lang, "airflow")
    ti = context["ti"]
    task = context["task"]
    planned = ti.xcom_pull(task_ids="plan")
    excesses = tuple(excess_words(e, lang) for e in CategoryPlan.from_xcom(planned).over_limit) if planned else ()
    timeout = getattr(task, "response_timeout", None)
    facts = (*_run_facts(ti.dag_id, ti.run_id), (TASK_FACT, ti.task_id))
    if timeout:
        hours = number_words(timeout.total_seconds() / 3600, lang)
        facts += ((ANSWER_WITHIN_FACT, _("{hours} hour(s)").format(hours=hours)),)
    return Alert(
        kind=Kind.APPROVAL_WAITING,
        about=ti.dag_id,
        facts=facts,
        details=excesses,
        link=ti.log_url if ui_base_url() else None,
        lang=lang,
    )


def run_not_finished(dag_run: Mapping[str, Any], hours: float, lang: str, timezone: str) -> Alert:
    """The alert for a schedule run still not finished ``hours`` after it was queued; the
    moment it was queued on the policy's clocks (``timezone``), its state in words."""
    _ = translator(lang, "airflow")
    dag_id, run_id = str(dag_run.get("dag_id")), str(dag_run.get("dag_run_id"))
    base = ui_base_url()
    queued_at, late = _instant(dag_run.get("queued_at")), number_words(hours, lang)
    happened = (
        _("The run has not finished {hours} hour(s) after it was queued on {queued_at}.").format(
            hours=late, queued_at=moment_words(queued_at, lang, ZoneInfo(timezone))
        )
        if queued_at is not None
        else _("The run has not finished {hours} hour(s) after it was queued.").format(hours=late)
    )
    state = str(dag_run.get("state"))
    return Alert(
        kind=Kind.RUN_NOT_FINISHED,
        about=dag_id,
        happened=happened,
        facts=(*_run_facts(dag_id, run_id), (STATE_FACT, _(RUN_STATES[state]) if state in RUN_STATES else state)),
        link=f"{base}/dags/{dag_id}/runs/{run_id}" if base else None,
        lang=lang,
    )


def _instant(value: object) -> datetime | None:
    """The run's ``queued_at`` as an aware datetime: the REST API's ISO text (``...Z``), or a
    datetime; None when absent or not a time (the alert then says no moment)."""
    if isinstance(value, datetime):
        instant = value
    elif isinstance(value, str):
        try:
            instant = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return instant if instant.tzinfo is not None and instant.utcoffset() is not None else None


def number_words(value: float, lang: str) -> str:
    """A number as a reader of ``lang`` writes it: ``0,5`` / ``0.5``, ``1 000`` / ``1,000``."""
    return format_decimal(value, locale=checked(lang, "number"))


def excess_words(excess: Excess, lang: str) -> str:
    """One table side past the deletion limit, as a sentence in ``lang`` built from its fields
    (the engine's ``str(excess)`` is English, for the task log)."""
    _ = translator(lang, "airflow")
    ngettext = translations(checked(lang, "excess"), "airflow").ngettext
    # To a tenth of a percent, as the reader's language writes it: 30 %, 12,3 % / 30%, 12.3%.
    share = (
        format_percent(round(excess.rows / excess.base, 3), locale=lang, decimal_quantization=False)
        if excess.base
        else _("all of them")
    )
    limits = []
    if excess.limit_rows is not None:
        limits.append(
            ngettext("{count} row", "{count} rows", excess.limit_rows).format(
                count=number_words(excess.limit_rows, lang)
            )
        )
    if excess.limit_fraction is not None:
        limits.append(format_percent(excess.limit_fraction, locale=lang))
    fields = {
        "rows": number_words(excess.rows, lang),
        "base": number_words(excess.base, lang),
        "table": excess.table,
        "share": share,
        "limit": _(" and ").join(limits),
    }
    if excess.side == Side.ARCHIVE:
        return _("{rows} of {base} rows of {table} ({share}) would leave the archive; the limit is {limit}").format(
            **fields
        )
    return _("{rows} of {base} rows of {table} ({share}) would leave the active base; the limit is {limit}").format(
        **fields
    )


def _run_facts(dag_id: str, run_id: str) -> tuple[tuple[str, str], ...]:
    """DAG and run ids; the run id scrubbed like a message: whoever triggers a run through the
    REST API chooses it (the website posting re-consent answers), so it may hold an address."""
    return ((DAG_FACT, dag_id), (RUN_FACT, scrub(run_id, known_secrets())))


def _message(exception: BaseException | str) -> str:
    """The exception's message, scrubbed once more (addresses, phones, the form's values), cut short."""
    text = scrub(str(exception), known_secrets())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + " [...]"


# --- Sending ---------------------------------------------------------------------------------


def send(alert: Alert, to: Channels, context: Mapping[str, Any]) -> int:
    """Send ``alert`` through every channel; the number that delivered it. Never raises."""
    delivered = 0
    for name, notifier in to.notifiers(alert):
        try:
            notifier.notify(cast(Context, context))
        except Exception as exc:  # noqa: BLE001 - an alert never fails the task it reports on
            _not_sent(alert, name, exc)
        else:
            delivered += 1
    return delivered


async def send_async(alert: Alert, to: Channels, context: Mapping[str, Any]) -> int:
    """``send`` in the triggerer (the notifiers' ``async_notify``)."""
    delivered = 0
    for name, notifier in to.notifiers(alert):
        try:
            await notifier.async_notify(cast(Context, context))
        except Exception as exc:  # noqa: BLE001 - the other channels are still tried
            _not_sent(alert, name, exc)
        else:
            delivered += 1
    return delivered


def _not_sent(alert: Alert, channel: str, exc: BaseException) -> None:
    """Log a channel's failure without what its error may quote (a refused recipient's address)."""
    log.error("Alert %r not sent by %s: %s: %s", alert.subject, channel, type(exc).__name__, scrub(str(exc)))


class _AlertNotifier(BaseNotifier):
    """An Airflow notifier that composes the project's alert from the context and sends it
    through the configured channels. No template fields: the texts are composed, not rendered."""

    template_fields = ()

    def __init__(self, to: Channels, lang: str = DEFAULT_LANGUAGE) -> None:
        super().__init__()
        self.to = to
        self.lang = lang  # the policy's: the language of the message

    def compose(self, context: Mapping[str, Any]) -> Alert | None:
        raise NotImplementedError

    def notify(self, context: Any) -> None:
        try:
            alert = self.compose(context)
        except Exception as exc:  # noqa: BLE001 - a broken alert must not fail the task
            log.error("Alert not composed: %s: %s", type(exc).__name__, scrub(str(exc)))
            return
        if alert is not None and send(alert, self.to, context):
            log.info("Alert sent: %s", alert.subject)


class TaskFailureAlert(_AlertNotifier):
    """``on_failure_callback`` of every task: runs once the task has failed for good (a retry
    calls ``on_retry_callback``, which is not set). A task that runs after a failure to record
    it (trigger rule ``all_done``: the schedule's ``summary``) and fails because an upstream
    task did not succeed is not told again: that task's alert said it."""

    def compose(self, context: Mapping[str, Any]) -> Alert | None:
        if _follows_a_failure(context):
            return None
        return task_failure(context, self.lang)


class ApprovalWaitingNotice(_AlertNotifier):
    """``notifiers=`` of the approval: runs when ``approve_deletions`` starts waiting."""

    def compose(self, context: Mapping[str, Any]) -> Alert | None:
        return approval_waiting(context, self.lang)


def _follows_a_failure(context: Mapping[str, Any]) -> bool:
    task, ti = context["task"], context["ti"]
    if task.trigger_rule != "all_done":  # a str Enum: equal to its value
        return False
    return any(ti.xcom_pull(task_ids=upstream) is None for upstream in sorted(task.upstream_task_ids))


async def notify_run_not_finished(
    context: dict[str, Any], hours: float, lang: str = DEFAULT_LANGUAGE, timezone: str = "Europe/Paris"
) -> None:
    """The deadline alert's callback, run by the triggerer: ``context`` is what the scheduler
    gives (``dag_run``: the run as the REST API shows it; ``deadline``). The channels are read
    from the triggerer's own environment, so no address is stored with the deadline.

    ``lang`` and ``timezone`` have defaults (the policy's own) because a deadline stored by an
    earlier release carries ``hours`` only: its alert must still be sent after an upgrade."""
    alert = run_not_finished(context.get("dag_run") or {}, hours, lang, timezone)
    to = channels()
    if not await send_async(alert, to, context):
        raise AlertNotSent(f"{alert.subject}: no channel delivered it (see the triggerer's log)")
    log.info("Alert sent: %s", alert.subject)


# --- Configuration of the DAGs -------------------------------------------------------------


def approval_alert_hours(timeout_hours: int, environ: Mapping[str, str] | None = None) -> float:
    """Hours after a schedule run is queued before someone is told it has not finished:
    ``$RETENTION_APPROVAL_ALERT_HOURS`` (a fraction is allowed), else half the policy's
    ``approval_timeout_hours`` - so the alert leaves time to answer. Refused when it would
    come at or after the timeout (the run would already have failed)."""
    chosen = (os.environ if environ is None else environ).get(APPROVAL_ALERT_HOURS_ENV_VAR, "").strip()
    if not chosen:
        return timeout_hours / 2
    try:
        hours = float(chosen)
    except ValueError:
        raise AlertsConfigError(f"{APPROVAL_ALERT_HOURS_ENV_VAR} must be a number of hours, got {chosen!r}") from None
    if not math.isfinite(hours) or hours <= 0:
        raise AlertsConfigError(f"{APPROVAL_ALERT_HOURS_ENV_VAR} must be more than 0 hours, got {chosen!r}")
    if hours >= timeout_hours:
        raise AlertsConfigError(
            f"{APPROVAL_ALERT_HOURS_ENV_VAR} ({chosen}) must be less than the policy's approval_timeout_hours "
            f"({timeout_hours}): by then an unanswered approval has already failed the run"
        )
    return hours


def run_deadline(hours: float, lang: str, timezone: str) -> DeadlineAlert:
    """Airflow's deadline alert on a schedule DAG: told when a run is not finished ``hours``
    after it was queued (the triggerer runs the callback), in ``lang``, the moment it was
    queued on the clocks of ``timezone`` (the policy's)."""
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(hours=hours),
        callback=AsyncCallback(notify_run_not_finished, kwargs={"hours": hours, "lang": lang, "timezone": timezone}),
    )
