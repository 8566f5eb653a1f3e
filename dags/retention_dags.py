"""
# Retention schedule DAGs

One DAG per category of `include/policy/retention_policy.yaml` (or `$RETENTION_POLICY`),
named `retention_<category>`. Each runs on its category's cron in Europe/Paris and
wires its tasks to the engine in `include/retention`: `preflight_checks` → `plan` →
`approve_deletions` → `archive` → `purge` → `postflight_checks` → `summary`. The DAGs are
paused at creation: nothing destructive runs on deploy.

Whether a run changes data: the `mode` its trigger sends (`preview`: plan only, nothing
changes; `execute`: archive and destroy what is due). The trigger form sends its `mode`,
`preview` unless the person picks `execute`. A run whose conf has no `mode` follows its run
type: only the DAG's own schedule executes - a *scheduled* run (the nightly cron, conf `{}`)
or an *asset-triggered* one; a manual trigger through the CLI or REST without `mode`, a
backfill, a run triggered by another DAG, an asset materialisation or an unknown run type is
a preview (see `resolve_dry_run` in `include/retention_airflow/context.py`).

A run whose plan passes the category's deletion limit waits in `approve_deletions`
for a person (Required Actions); a rejection, or no answer in time, fails it unchanged.

A deployment that serves several databases (`$RETENTION_TARGETS`, see
`include/retention_airflow/targets.py`) has these DAGs once per target, from its own policy,
named `retention_<category>_<target>`. `archive` and `purge` take the policy's
`batch_workers` slots of the target's pool (named like its connection): the batch
transactions open on one database stay within what its pool allows.

Parsing reads the policy files only; the database is touched when a task runs.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronTriggerTimetable, Param, TriggerRule, XComArg, chain, task

from include.retention.language import translator
from include.retention.policy.model import Category, RetentionPolicy
from include.retention.reports.describe import category_doc
from include.retention.schedule.run import RUN_ORDER
from include.retention.settings import MAX_BATCH_SIZE, MIN_BATCH_SIZE
from include.retention_airflow import dag_defaults, schedule_tasks
from include.retention_airflow.approval import DeletionApproval, category_labels
from include.retention_airflow.context import mode_param
from include.retention_airflow.site_dags import for_each_site
from include.retention_airflow.targets import Site


def run_type_rule(lang: str) -> str:
    """The DAG page's paragraph on previews, in the policy's language."""
    _ = translator(lang, "airflow")
    return "\n\n#### {title}\n\n{rule}\n".format(
        title=_("Preview or execute"),
        rule=_(
            "The trigger form's **Mode** says it: **Preview** (the default) plans and changes nothing; "
            "**Execute** archives and destroys what is due. The **scheduled** run (and an asset-triggered "
            "one) executes. A run started through the CLI or the REST API without `mode`, a backfill, or a "
            "run triggered by another DAG is a preview; to change data that way, send `mode: execute`. In the "
            "grid, a preview shows its `approve_deletions` task *skipped*: nobody is asked, nothing changes."
        ),
    )


def build_dag(site: Site, policy: RetentionPolicy, category: Category) -> DAG:
    """The DAG that enforces one category of ``site``'s schedule (``policy``) on its database."""
    with DAG(
        dag_id=site.dag_id(f"retention_{category.key}"),
        description=f"{category.label.en}: retention schedule",
        schedule=CronTriggerTimetable(category.schedule, timezone=policy.timezone),
        **dag_defaults.schedule_dag(category.key, policy.approval_timeout_hours).arguments(
            doc_md=category_doc(policy, category) + run_type_rule(policy.language),
            timezone=policy.timezone,
            site=site,
            lang=policy.language,
        ),
        params=schedule_params(policy, category),
    ) as dag:

        @task
        def preflight_checks() -> list:
            """Data-quality gate (Great Expectations): a failing blocking check stops the run before any row moves."""
            return schedule_tasks.preflight_checks(site, category.key)

        @task
        def plan() -> dict:
            """Count rows due for the archive and for end of life; changes nothing."""
            return schedule_tasks.plan(site, category.key)

        approve_deletions = DeletionApproval(
            task_id="approve_deletions",
            category=category.key,
            timeout_hours=policy.approval_timeout_hours,
            lang=policy.language,
            labels=category_labels(policy, policy.language),
            retries=0,
        )

        # The target's pool bounds the batch transactions open on its database at once. After an
        # approval that succeeded or was skipped (a preview: nobody is asked); never after a rejection.
        @task(pool=site.pool, pool_slots=policy.batch_workers, trigger_rule=TriggerRule.NONE_FAILED)
        def archive() -> dict:
            """Move due rows and their children to the archive, one transaction per batch."""
            return schedule_tasks.archive(site, category.key)

        @task(pool=site.pool, pool_slots=policy.batch_workers)
        def purge() -> dict:
            """Delete or anonymise rows whose retention has ended."""
            return schedule_tasks.purge(site, category.key)

        @task
        def postflight_checks() -> list:
            """Prove the schedule holds now: nothing overdue, retention dates right, counts reconciled."""
            return schedule_tasks.postflight_checks(site, category.key)

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def summary(archived: dict | None, purged: dict | None, verified: list | None) -> dict:
            """Record what the run did - even a failed one - and issue its deletion certificate under reports/."""
            return schedule_tasks.summary(site, category.key, archived, purged, verified)

        archived, purged, verified = archive(), purge(), postflight_checks()
        steps: list[XComArg | DeletionApproval] = [
            preflight_checks(),
            plan(),
            approve_deletions,
            archived,
            purged,
            verified,
        ]
        steps.append(summary(archived, purged, verified))  # type: ignore[arg-type]  # XComArgs: Airflow passes their values at run time
        by_task_id = {s.roots[0].task_id: s for s in steps}  # a TaskFlow call's (and an operator's) root is its task
        # The order of a run is the engine's (RUN_ORDER, whose values are these task ids).
        chain(*(by_task_id[stage.value] for stage in RUN_ORDER))
    return dag


def schedule_params(policy: RetentionPolicy, category: Category) -> dict[str, Param]:
    """The trigger form of a ``retention_<category>`` DAG, in the policy's language."""
    _ = translator(policy.language, "airflow")
    return {
        "mode": mode_param(
            policy.language,
            _(
                "Preview: count what is due and change nothing. Execute: archive and destroy what is due. "
                "The nightly scheduled run executes by itself, whatever this form says."
            ),
        ),
        "as_of": Param(
            None,
            type=["null", "string"],
            format="date",
            title=_("As of"),
            description=_("Enforce the schedule as of this date (YYYY-MM-DD) instead of the run's date."),
        ),
        "batch_size": Param(
            policy.batch_size_for(category),
            type="integer",
            minimum=MIN_BATCH_SIZE,
            maximum=MAX_BATCH_SIZE,
            title=_("Rows per transaction"),
            description=_("Rows per transaction when moving or destroying data."),
        ),
    }


def build_dags(site: Site) -> list[DAG]:
    """The DAG of each category of ``site``'s policy."""
    policy = site.policy()
    return [build_dag(site, policy, category) for category in policy.categories.values()]


# Each target on its own: one target's unusable configuration leaves the others' DAGs (site_dags).
globals().update(for_each_site(build_dags))
