"""
# Re-consent campaign

The charter's promise: before a person's data leaves the active base, they are asked whether
they still want to receive commercial messages. Every category of the policy with a
`reconsent` block (in the shipped policy: `web_forms` and `prospection`) has one task here,
`ask_<category>`, run every day at 09:00 (Europe/Paris: mail arrives in business hours).

Each task selects the rows whose active period ends within the notice window (`notice_days`
before it, and up to `notice_days` after) that were not asked for this period, and are not on
hold; a suppressed address is recorded, not mailed, and so is a row with no usable address.
Each ask is recorded in the register `retention_reconsent` (keyed hash, row key, period end,
token) **before** its notice is sent through the category's SMTP connection (`smtp_default`
unless the block names another): an outbox. A run that died is completed by the next one,
which sends what is still pending with the same links and Message-ID - **at least once**: a
notice may arrive twice (identical) after a crash, never zero times, and answering either
counts once. A permanent refusal (5xx) is recorded as *could not be asked*; a temporary one
(4xx) is tried again the next day.

The archive step of the category waits for the ask, at most `notice_days` past the end of the
active period. Answers come back through the `reconsent_answer` DAG.

#### Preview or send

The trigger form's `mode`: `preview` (the default) counts who would be asked, and records and
sends nothing; `execute` records the asks and sends the notices. The **scheduled** daily run
**sends**. A run started through the CLI or the REST API without `mode`, a backfill, or a run
triggered by another DAG is a preview; to send that way, pass `mode: execute`.

See docs/how-to/reconsent.md: connecting your SMTP server, and how your website posts answers.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronTriggerTimetable, Param, task

from include.retention.language import translator
from include.retention.policy.model import Category, RetentionPolicy
from include.retention.reconsent.answers import MAX_ANSWERS
from include.retention_airflow import dag_defaults, reconsent_tasks
from include.retention_airflow.context import mode_param
from include.retention_airflow.site_dags import for_each_site
from include.retention_airflow.targets import Site

SCHEDULE = "0 9 * * *"  # every day at 09:00 in the company's time zone: mail read in business hours

ANSWER_DOC = """
# Re-consent answers

Triggered by the company's website (the page the notice's links open) or its mailing tool,
through Airflow's REST API (`POST /api/v2/dags/reconsent_answer/dagRuns`) - no endpoint is
opened on Airflow itself. Each token is checked against its signature (HMAC with the project's
key), its last day and the register:

- **yes**: recorded, audited under the person's keyed hash; the category's clock restarts from
  the day of the answer;
- **no**: an opposition, exactly as `subject_request` carries one out (reference
  `RECONSENT-<ask id>`): the person's rows in the categories an opposition erases deleted,
  and the address suppressed;
- a **bounce** (a notice the mailing tool could not deliver): the person could not be asked;
- a **forged, expired or replayed** token, or one naming no ask, is refused and audited; the
  others in the same run are recorded all the same.

Params: `tokens` (the tokens of the links followed), `bounces` (a token of each notice that
bounced), `csv_uri` (a CSV the mailing tool dropped: a `token` column and an optional `event`
column, `answer` or `bounce`; read through Airflow's object storage, `file://...` or
`s3://<connection>@bucket/key`). Every run acts: there is no dry run of an answer. The task log
shows counts only - a token is a credential.

See docs/how-to/reconsent.md for an example request.
"""


def build_campaign_dag(site: Site, policy: RetentionPolicy) -> DAG:
    """``retention_reconsent`` of one target: one task per category that asks (``ask_<category>``), daily."""
    _ = translator(policy.language, "airflow")
    with DAG(
        dag_id=site.dag_id("retention_reconsent"),
        description="Ask people before their active period ends whether they still want commercial messages",
        schedule=CronTriggerTimetable(SCHEDULE, timezone=policy.timezone),
        **dag_defaults.RECONSENT.arguments(doc_md=__doc__, timezone=policy.timezone, site=site, lang=policy.language),
        params={
            "mode": mode_param(
                policy.language,
                _(
                    "Preview: count who would be asked, record and send nothing. Execute: record the asks and "
                    "send the notices. The daily scheduled run sends by itself, whatever this form says."
                ),
            ),
        },
    ) as dag:
        for category in policy.categories.values():
            if category.reconsent is not None:
                ask_task(site, category)
    return dag


def ask_task(site: Site, category: Category) -> None:
    """The task ``ask_<category>`` of the campaign DAG being built. It records asks in the
    register and mails people; it moves and erases nothing: the default pool, not the target's."""

    @task(
        task_id=f"ask_{category.key}",
        doc_md=f"Ask the people of {category.label.en!r} whose active period ends within the notice window: "
        "record each ask, then send its notice.",
    )
    def ask() -> dict:
        return reconsent_tasks.campaign(site, category.key)

    ask()


def build_answer_dag(site: Site, policy: RetentionPolicy) -> DAG:
    """``reconsent_answer`` of one target: triggered with the answers, never scheduled."""
    _ = translator(policy.language, "airflow")
    with DAG(
        dag_id=site.dag_id("reconsent_answer"),
        description="Record the answers to re-consent notices (yes, no, bounce) posted by the website",
        schedule=None,
        **dag_defaults.RECONSENT_ANSWER.arguments(
            doc_md=ANSWER_DOC.replace("/dags/reconsent_answer/", f"/dags/{site.dag_id('reconsent_answer')}/"),
            timezone=policy.timezone,
            site=site,
            lang=policy.language,
        ),
        params={
            "tokens": Param(
                [],
                type="array",
                items={"type": "string", "maxLength": 200},
                maxItems=MAX_ANSWERS,
                title=_("Answer tokens"),
                description=_("The tokens of the answer links people followed (yes or no is in the token)."),
            ),
            "bounces": Param(
                [],
                type="array",
                items={"type": "string", "maxLength": 200},
                maxItems=MAX_ANSWERS,
                title=_("Bounced notices"),
                description=_("A token of each notice the mailing tool reports as bounced."),
            ),
            "csv_uri": Param(
                None,
                type=["null", "string"],
                maxLength=1000,
                title=_("CSV of answers"),
                description=_(
                    "A CSV of answers to import (columns token, and optionally event: answer or bounce), "
                    "e.g. file:///data/answers.csv or s3://aws_default@bucket/answers.csv."
                ),
            ),
        },
    ) as dag:
        # A "no" erases the person's rows (an opposition): a slot of the target's pool.
        @task(pool=site.pool)
        def record_answers() -> dict:
            """Check each token (signature, last day, register) and record the answer, bounce or refusal."""
            return reconsent_tasks.answers(site)

        record_answers()
    return dag


def build_dags(site: Site) -> list[DAG]:
    """The campaign and answer DAGs of ``site``: only when its policy asks anybody (a category
    with a reconsent block)."""
    policy = site.policy()
    if not any(category.reconsent is not None for category in policy.categories.values()):
        return []
    return [build_campaign_dag(site, policy), build_answer_dag(site, policy)]


# Each target on its own: one target's unusable configuration leaves the others' DAGs (site_dags).
globals().update(for_each_site(build_dags))
