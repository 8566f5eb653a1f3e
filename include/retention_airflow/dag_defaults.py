"""What every DAG of the project declares, in one place: owner, tags, retries, one run at a time.

Retries: every DAG retries a failed task twice, ten minutes apart. A retry only ever follows
an error that may mend (a lost connection, a lock timeout): the engine's own refusals - a
wrong policy, a failed gate, a bad form, an overdue request - fail the task at once
(``errors.failing_fast``), and a person's answer (``approve_deletions``) is never retried
(the DAG sets ``retries=0`` on that task). A retry is safe where data changes:

- ``retention_<category>``: archive and purge work in batches, one transaction each, under
  the category's lease; a retried step starts again from what is still due.
- ``subject_request`` (was 0): the request is carried out in one transaction and the register
  records it once; a retry after a lost connection carries out what was not committed, and one
  after it completed is refused (a reference is handled once). A request whose identity check
  is pending is recorded and its task ends skipped, saying it waits: there is nothing to retry.
- ``legal_hold`` (was 0): adding or lifting a hold is one transaction; a retry after it
  committed is refused naming the reference, so a hold is never added or lifted twice.
- ``retention_rights_deadlines`` and ``retention_dpo_report`` (were 1): they only read (and
  write a report file); two retries, like the audit verification, so that a database restart
  at dawn does not cost the day's deadline check or the month's report.
- ``retention_reconsent``: the campaign is an outbox (every ask is recorded before its notice
  is sent); a retry after a lost SMTP or database connection sends what is still pending, with
  the same token and Message-ID, and records nothing twice.
- ``reconsent_answer``: an answered ask is never answered again (a replay is refused and
  audited); a retry after a crash between an opposition and its register row completes it once.

Alerts (``alerts.py``), when ``$RETENTION_ALERT_*`` configure a channel: every task tells it
when it fails for good (``on_failure_callback``; a retry is not told), and a schedule DAG's run
still not finished ``$RETENTION_APPROVAL_ALERT_HOURS`` after it was queued is told by a deadline
alert (it most likely waits for an approval). The documentation of every DAG says which
channels are on, or that alerts are off.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import pendulum

from include.retention.language import DEFAULT_LANGUAGE, translator
from include.retention.settings import RETRY_DELAY_ENV_VAR
from include.retention_airflow import alerts
from include.retention_airflow.targets import DEFAULT_SITE, Site

OWNER = "data-protection"
RETRIES = 2
RETRY_DELAY = pendulum.duration(minutes=10)
MAX_RETRY_DELAY_SECONDS = 86_400


def retry_delay() -> pendulum.Duration:
    """Ten minutes, or ``$RETENTION_RETRY_DELAY_SECONDS`` (a deployment whose database restarts
    faster, or a test that kills a worker and waits for the retry)."""
    chosen = os.environ.get(RETRY_DELAY_ENV_VAR, "").strip()
    if not chosen:
        return RETRY_DELAY
    # ASCII digits only, at most a day: str.isdigit() takes '²' and '１０', int() overflows timedelta.
    if not re.fullmatch(r"[0-9]{1,5}", chosen) or not 1 <= int(chosen) <= MAX_RETRY_DELAY_SECONDS:
        raise ValueError(
            f"{RETRY_DELAY_ENV_VAR} must be a whole number of seconds from 1 to {MAX_RETRY_DELAY_SECONDS}, got {chosen!r}"
        )
    return pendulum.duration(seconds=int(chosen))


TAGS = ("retention", "gdpr")
START_DATE = (2026, 1, 1)  # before any run: with catchup off, only its time zone matters


@dataclass(frozen=True, kw_only=True)
class DagDefaults:
    """The arguments a DAG of the project takes from here; what differs is said per DAG."""

    tag: str  # after "retention" and "gdpr": what the DAG is about
    on_demand: bool = False  # triggered by hand only: unpaused at creation (nothing runs by itself)
    # Tasks of one run at the same time. The schedule's DAGs are one chain (1); the campaign
    # runs one task per asking category.
    max_active_tasks: int = 1
    # A schedule DAG: its runs may wait this long for an approval (the policy's
    # approval_timeout_hours), and someone is told before (alerts.approval_alert_hours).
    approval_timeout_hours: int | None = None

    def arguments(
        self, *, doc_md: str | None, timezone: str, site: Site = DEFAULT_SITE, lang: str = DEFAULT_LANGUAGE
    ) -> dict[str, Any]:
        """``DAG(...)`` keyword arguments for the DAG on target ``site``; a DAG without
        documentation is refused, and so is a malformed alert variable (``AlertsConfigError``).
        ``lang``: the policy's language, that of the alerts a person reads."""
        if not doc_md or not doc_md.strip():
            raise ValueError(f"a DAG tagged {self.tag!r} needs its doc_md: what it does and when")
        told = alerts.channels()
        _ = translator(lang, "airflow")
        heading = _("Alerts")
        default_args: dict[str, Any] = {"owner": OWNER, "retries": RETRIES, "retry_delay": retry_delay()}
        arguments: dict[str, Any] = {
            "doc_md": f"{doc_md.rstrip()}\n\n#### {heading}\n\n{told.describe(lang)}\n",
            "start_date": pendulum.datetime(*START_DATE, tz=timezone),
            "catchup": False,
            "max_active_runs": 1,
            "max_active_tasks": self.max_active_tasks,
            "is_paused_upon_creation": not self.on_demand,
            "tags": [*TAGS, self.tag, *site.tags],
            "default_args": default_args,
        }
        alert_hours = alerts.approval_alert_hours(self.approval_timeout_hours) if self.approval_timeout_hours else None
        if told.configured:
            default_args["on_failure_callback"] = alerts.TaskFailureAlert(told, lang)
            if alert_hours is not None:
                arguments["deadline"] = alerts.run_deadline(alert_hours, lang, timezone)
        return arguments


AUDIT_VERIFY = DagDefaults(tag="audit")
DPO_REPORT = DagDefaults(tag="dpo")
RIGHTS_DEADLINES = DagDefaults(tag="rights")
SUBJECT_REQUEST = DagDefaults(tag="rights", on_demand=True)
LEGAL_HOLD = DagDefaults(tag="legal-hold", on_demand=True)
RECONSENT = DagDefaults(tag="reconsent", max_active_tasks=2)  # mails people: paused at creation, like the schedule
# Triggered by the website or the mailing tool through the REST API: a paused DAG would queue
# their answers unseen, so it is active at creation (it runs only when someone posts an answer).
RECONSENT_ANSWER = DagDefaults(tag="reconsent", on_demand=True)


def schedule_dag(category_key: str, approval_timeout_hours: int) -> DagDefaults:
    """A ``retention_<category>`` DAG: paused at creation, so nothing destructive runs on deploy;
    a run still not finished well before its approval times out is told (``alerts``)."""
    return DagDefaults(tag=category_key, approval_timeout_hours=approval_timeout_hours)
