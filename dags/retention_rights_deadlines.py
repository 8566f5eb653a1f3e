"""
# Rights-request deadlines

Every morning, list the open data-subject requests that are due within 7 days, and fail
if one is overdue (GDPR art. 12(3): one month from receipt, three when extended). Reads
the register named by the policy key `rights_register`; changes nothing (on SQLite it
first gives the register's timestamps written by earlier versions their '+00:00').

Days are calendar days in the company's time zone: the run's day is its logical date in
that zone, and a request is overdue from the day after its due date. A closed request is
never listed, however recently it was closed (its `closed_at` is an instant stored with
its zone, see include/retention/dates/instants.py).
"""

from __future__ import annotations

from airflow.sdk import DAG, CronTriggerTimetable, task

from include.retention_airflow import dag_defaults, rights_tasks
from include.retention_airflow.site_dags import for_each_site
from include.retention_airflow.targets import Site


def build_dag(site: Site) -> DAG:
    """``retention_rights_deadlines`` of one target: the register in its database."""
    policy = site.policy()
    with DAG(
        dag_id=site.dag_id("retention_rights_deadlines"),
        description="Fail on overdue data-subject requests; list those due within 7 days",
        schedule=CronTriggerTimetable("0 7 * * *", timezone=policy.timezone),
        **dag_defaults.RIGHTS_DEADLINES.arguments(
            doc_md=__doc__, timezone=policy.timezone, site=site, lang=policy.language
        ),
    ) as dag:

        @task
        def check_deadlines() -> list:
            """Overdue requests fail the run; those due within 7 days are listed in the log."""
            return rights_tasks.rights_deadlines(site)

        check_deadlines()
    return dag


# Each target on its own: one target's unusable configuration leaves the others' DAGs (site_dags).
globals().update(for_each_site(lambda site: [build_dag(site)]))
