"""The tasks of the re-consent DAGs: the daily campaign per category, and the answers posted back.

The campaign sends its notices through Airflow's SMTP provider (``HookMailer``: the connection
the category's ``reconsent.connection`` names, ``smtp_default`` by default), so the mail server,
its credentials and TLS are configured where Airflow keeps every other connection. The answers
come from the company's website or mailing tool, which triggers ``reconsent_answer`` through the
REST API with the tokens, or drops a CSV where Airflow's object storage reads it
(``ObjectStoragePath``: ``file://``, ``s3://``... a question of configuration, not of code).

Each task serves the target its DAG closes over (``targets.Site``): that target's policy, its
connection and its folder of evidence; the register and the audit log are in its database.

A token is a credential and an address is personal data: the task log shows counts only, and a
failed task's error is scrubbed of the form's tokens (``forms.PERSONAL_PARAMS``, ``errors.py``).
"""

from __future__ import annotations

import logging
from email.utils import formataddr, parseaddr
from types import TracebackType
from typing import Any

from airflow.providers.smtp.hooks.smtp import SmtpHook
from airflow.sdk import ObjectStoragePath, get_current_context

from include.retention.dates.instants import utc_now
from include.retention.errors import RetentionError
from include.retention.reconsent.answers import AnswersResult, answer_all, read_answers_csv
from include.retention.reconsent.campaign import run_campaign
from include.retention.reconsent.notice import Notice
from include.retention_airflow.context import resolve_dry_run, run_context
from include.retention_airflow.errors import failing_fast, scrubbing
from include.retention_airflow.hooks import in_site_folder, open_target, subject_key
from include.retention_airflow.targets import Site

log = logging.getLogger(__name__)


class HookMailer:
    """The engine's ``Mailer`` through Airflow's ``SmtpHook``, used as a context manager: an SMTP
    session is opened at the first notice and closed after ``batch_size`` notices (the next one
    opens another) or when the ``with`` block ends - one session per batch, none for a run that
    sends nothing (a dry run, a day nobody is due).

    What the hook can send: an HTML body (``send_email_smtp`` builds the MIME message itself and
    takes no plain-text part), with the notice's Message-ID and language as headers: a notice
    sent again after a crash is the same message to the person's mail client. The sender's display
    name is encoded here (RFC 2047): the hook would otherwise encode the whole ``Name <address>``
    as one word and hide the address. The recipient goes as a list of one (a string would be
    split on ``,`` and ``;``).

    Every exception propagates as smtplib raised it: the campaign tells a permanent refusal
    (5xx: recorded ``failed``) from a temporary one (4xx: tried again next run) and from a
    broken connection (the task fails and retries). The hook itself tries each message again
    ``retry_limit`` times (its connection's extra, 5 by default) whatever the error, on the same
    session: set ``"retry_limit": 0`` in the connection's extra so that a refused address is
    not asked six times - the campaign's outbox already tries again on the next run.
    """

    def __init__(self, conn_id: str, batch_size: int) -> None:
        self.conn_id = conn_id
        self.batch_size = batch_size
        self._hook: SmtpHook | None = None
        self._handed = 0  # notices handed to the open session

    def __enter__(self) -> HookMailer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close()

    def send(self, notice: Notice) -> None:
        """Hand one notice to the mail server, on the batch's session."""
        if self._hook is None:
            self._hook = SmtpHook(smtp_conn_id=self.conn_id).get_conn()
            self._handed = 0
        try:
            self._hook.send_email_smtp(
                to=[notice.to],
                from_email=encoded_sender(notice.sender),
                subject=notice.subject,
                html_content=notice.html,
                mime_subtype="alternative",
                custom_headers={"Message-ID": notice.message_id, "Content-Language": notice.language},
            )
        finally:
            self._handed += 1
            if self._handed >= self.batch_size:
                self._close()

    def _close(self) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            hook.__exit__(None, None, None)


def encoded_sender(sender: str) -> str:
    """``Name <address>`` with the name RFC 2047-encoded when it is not ASCII, the address bare."""
    name, address = parseaddr(sender)
    return formataddr((name, address), charset="utf-8")


@scrubbing
@in_site_folder
def campaign(site: Site, category: str) -> dict[str, Any]:
    """Ask the category's people whose active period ends within the notice window: record each
    ask, then send its notice. A run started by hand is a preview unless it says
    ``mode: execute`` (``resolve_dry_run``); the daily scheduled run sends."""
    context = get_current_context()
    with failing_fast():
        policy = site.policy()
        ctx = run_context(context, policy, dry_run=resolve_dry_run(context))
        block = policy.category(category).reconsent
        if block is None:
            raise RetentionError(f"category {category!r} has no reconsent block (any more): nobody is asked")
        with open_target(policy, site.conn_id) as target, HookMailer(block.connection, block.batch_size) as mailer:
            result = run_campaign(target, policy, category, subject_key(), ctx, mailer, dry_run=ctx.dry_run)
    mode = "PREVIEW - nothing recorded or sent" if ctx.dry_run else f"through connection {block.connection!r}"
    log.info("Re-consent campaign for %s as of %s (%s): %s", category, ctx.as_of, mode, result.to_dict())
    return result.to_dict()


@scrubbing
@in_site_folder
def answers(site: Site) -> dict[str, Any]:
    """Record the answers the form gives: ``tokens`` (yes/no links followed), ``bounces``
    (notices the mailing tool could not deliver) and the CSV at ``csv_uri``. Each token is
    checked and recorded on its own; a refused one is counted and audited, not raised.

    An answer is taken on the company's real day (the wall clock in its zone), never on the
    run's logical date: whoever triggers this DAG through the REST API chooses that one, and a
    back-dated run would accept an expired token and back-date the clock's restart."""
    context = get_current_context()
    params = context["params"]
    with failing_fast():
        policy = site.policy()
        tokens, bounces = list(params.get("tokens") or []), list(params.get("bounces") or [])
        if params.get("csv_uri"):
            dropped = read_answers_csv(ObjectStoragePath(params["csv_uri"]).read_text(encoding="utf-8"))
            tokens, bounces = tokens + dropped.tokens, bounces + dropped.bounces
        today = utc_now().astimezone(policy.zone).date()
        ctx = run_context(context, policy, as_of=today)
        with open_target(policy, site.conn_id) as target:
            result: AnswersResult = answer_all(target, policy, subject_key(), ctx, tokens, bounces, today)
    log.info("Re-consent answers as of %s: %s", ctx.as_of, result.to_dict())
    return result.to_dict()
