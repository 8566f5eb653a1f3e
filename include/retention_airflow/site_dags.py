"""Each target's DAGs built on their own, so that one target's mistake never takes another's DAGs.

A DAG file builds its DAGs once per target (``for_each_site(build)``). When a deployment serves
several targets (``$RETENTION_TARGETS``), a target whose configuration cannot be used - its
policy file unreadable or invalid, ``$RETENTION_APPROVAL_ALERT_HOURS`` at or past its
policy's ``approval_timeout_hours``, or ``$RETENTION_APPROVERS`` naming something that is not a
user id - gets none of its DAGs, and the other targets keep theirs.
In their place it gets ``retention_config_error_<name>`` (``dags/retention_config_error.py``):
active at creation, daily, one task that fails with the error - the file or variable to fix -
so the failure alert fires and the DAG list shows it failing.

The one default target keeps failing the parse of every DAG file (an import error), as before:
there is no other target to protect, and the import error is the loudest signal Airflow has.
A mistake outside a target's configuration (a bug in a DAG file) fails the file's parse too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from airflow.sdk import DAG, CronTriggerTimetable, task
from airflow.sdk.exceptions import AirflowFailException

from include.retention.errors import RetentionError, describe
from include.retention_airflow import alerts, approval, dag_defaults
from include.retention_airflow.targets import Site, sites

log = logging.getLogger(__name__)

CONFIG_ERROR_DAG = "retention_config_error"
SCHEDULE = "0 6 * * *"  # every morning, before the working day: the alert is read in business hours

CONFIG_ERROR_DOC = """
# Configuration error of a target

This deployment serves several databases (`$RETENTION_TARGETS`), and this one's configuration
cannot be used: none of its DAGs exists until it is fixed (the other targets keep theirs). The
task `report_error` fails every day with what is wrong - the policy file or the variable to
fix - so that the failure alert is sent. Once fixed, this DAG disappears and the target's DAGs
come back (paused, as at creation, if they never existed).
"""


def config_error(site: Site) -> str | None:
    """What makes ``site``'s configuration unusable for its DAGs (scrubbed, naming the file or
    the variable), or None: its policy loads and validates, the approval alert comes before
    its approval timeout, and the approvers are user ids. A bad approver list is an error, never
    ignored: its approval steps would otherwise be answerable by anyone."""
    try:
        policy = site.policy()
        alerts.approval_alert_hours(policy.approval_timeout_hours)
        approval.approvers()
    except (RetentionError, ValueError, OSError) as exc:
        return f"target {site.name!r} (policy {site.policy_path}): {describe(exc)}"
    return None


def for_each_site(build: Callable[[Site], Iterable[DAG]]) -> dict[str, DAG]:
    """The DAGs ``build`` gives for each served target, by id (for the DAG file's globals). A
    named target whose configuration is unusable is left out (logged): its error DAG stands for
    it. The default target is always built, so that its mistake stays an import error."""
    dags: dict[str, DAG] = {}
    for site in sites():
        if site.name is not None and (error := config_error(site)) is not None:
            log.error("DAGs of %s not built: %s", site.dag_id(CONFIG_ERROR_DAG), error)
            continue
        dags.update((dag.dag_id, dag) for dag in build(site))
    return dags


def config_error_dags() -> dict[str, DAG]:
    """``retention_config_error_<name>`` for each named target whose configuration is unusable."""
    dags: dict[str, DAG] = {}
    for site in sites():
        if site.name is not None and (error := config_error(site)) is not None:
            dag = config_error_dag(site, error)
            dags[dag.dag_id] = dag
    return dags


def config_error_dag(site: Site, error: str) -> DAG:
    """The DAG that fails daily with ``error`` in place of ``site``'s DAGs."""
    arguments = dag_defaults.DagDefaults(tag="config-error").arguments(
        doc_md=CONFIG_ERROR_DOC, timezone="UTC", site=site
    )
    # Active at creation (nothing else would run it) and not retried: the alert comes at once.
    arguments["is_paused_upon_creation"] = False
    arguments["default_args"]["retries"] = 0
    with DAG(
        dag_id=site.dag_id(CONFIG_ERROR_DAG),
        description=f"The configuration of target {site.name} is unusable: its DAGs are missing",
        # Daily; with catchup off, the scheduler runs the latest tick at once when the DAG appears.
        schedule=CronTriggerTimetable(SCHEDULE, timezone="UTC"),
        **arguments,
    ) as dag:

        @task
        def report_error() -> None:
            """Fail with what is wrong in the target's configuration."""
            raise AirflowFailException(error)

        report_error()
    return dag
