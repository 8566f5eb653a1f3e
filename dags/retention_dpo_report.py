"""
# DPO report

Every month (on the 1st, 06:00 Europe/Paris) write the Data Protection Officer's report for
the previous month under `reports/dpo/`; trigger it by hand for any period and in English.

It shows the retention schedule as configured (laid out like the charter's table); the
records handled per category, table and month by the executed runs dated in the period
(from the audit log), each counted once - archived and kept, archived then destroyed or
anonymised by the same run, destroyed or anonymised from the archive (archived by an
earlier run), destroyed directly in the active base (categories without an archive) -, as
charts of non-overlapping segments and a table; the compliance status counted now in the
`retention_target` database (oldest active record against the allowed age, overdue rows,
rows without a start date); the findings of the period and the state of the audit log's
hash chain. Read-only: it changes nothing.

The period is given in words: a single day reads "le 1er décembre 2026", a calendar month
"novembre 2026", anything else "du ... au ...". An absurd period is refused, naming the
bound: one starting before 2000, longer than 10 years (the charter's longest retention),
or ending more than a year after today.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronTriggerTimetable, Param, task

from include.retention.language import LANGUAGES, translator
from include.retention_airflow import dag_defaults, evidence_tasks
from include.retention_airflow.site_dags import for_each_site
from include.retention_airflow.targets import Site

PERIOD_DAY = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$"


def build_dag(site: Site) -> DAG:
    """``retention_dpo_report`` of one target: its policy, its database, its reports folder."""
    policy = site.policy()
    _ = translator(policy.language, "airflow")
    with DAG(
        dag_id=site.dag_id("retention_dpo_report"),
        description="Monthly retention report for the DPO (FR/EN, self-contained HTML)",
        schedule=CronTriggerTimetable("0 6 1 * *", timezone=policy.timezone),
        **dag_defaults.DPO_REPORT.arguments(doc_md=__doc__, timezone=policy.timezone, site=site, lang=policy.language),
        params={
            # The form refuses a year outside 2000-2099; the task refuses the rest of an absurd period
            # (over 10 years, ending more than a year after today), naming the bound.
            "period_start": Param(
                None,
                type=["null", "string"],
                format="date",
                pattern=PERIOD_DAY,
                title=_("First day"),
                description=_(
                    "First day reported (YYYY-MM-DD, from 2000); empty: the month before the run. "
                    "A period covers at most 10 years."
                ),
            ),
            "period_end": Param(
                None,
                type=["null", "string"],
                format="date",
                pattern=PERIOD_DAY,
                title=_("Last day"),
                description=_(
                    "Last day reported (YYYY-MM-DD, at most a year after today); empty: the month before the run."
                ),
            ),
            "language": Param(
                policy.language,
                enum=list(LANGUAGES),
                values_display={"fr": "Français", "en": "English"},
                title=_("Language"),
                description=_("Language of the report; by default the policy's."),
            ),
        },
    ) as dag:

        @task
        def write_report() -> dict:
            """Gather the period's volumes and today's compliance; write the HTML report."""
            return evidence_tasks.dpo_report(site)

        write_report()
    return dag


# Each target on its own: one target's unusable configuration leaves the others' DAGs (site_dags).
globals().update(for_each_site(lambda site: [build_dag(site)]))
