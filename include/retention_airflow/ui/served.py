"""Which target a request is about, and the resources of that target every page reads.

The default target (connection ``retention_target``) when ``$RETENTION_TARGETS`` is unset. A
deployment that serves several targets names one on every page and API call with
``?target=<name>``: its policy, its connection and its folder of evidence under the reports
root. Without it, the overview lists the targets to choose from and every other route answers
400 naming them; a name not served answers 404.
"""

from __future__ import annotations

from functools import lru_cache

from fastapi import Depends, HTTPException, Query
from sqlalchemy import Table

from include.retention.database import store
from include.retention.database.target import Target, connect
from include.retention.policy.model import RetentionPolicy
from include.retention_airflow.hooks import connection_url, target_connection
from include.retention_airflow.targets import Site, TargetsError, sites


def served() -> list[Site]:
    """The targets this deployment serves; a mistake in ``$RETENTION_TARGETS`` is a 503 naming it."""
    try:
        return sites()
    except TargetsError as exc:
        raise HTTPException(503, str(exc)) from exc


def site_of(target: str | None = Query(None, max_length=40)) -> Site:
    """The target a request is about: ``?target=<name>`` among those served, or the default one
    when the deployment serves only it. 400 naming the served targets when one must be chosen,
    404 naming a target that is not served."""
    sites_served = served()
    names = [site.name for site in sites_served if site.name is not None]
    if target is None:
        if not names:
            return sites_served[0]
        raise HTTPException(
            400, f"bad parameter target: this deployment serves several targets, name one: {', '.join(names)}"
        )
    for site in sites_served:
        if site.name is not None and site.name == target:
            return site
    raise HTTPException(
        404,
        f"target {target!r} is not served here; " + (f"served: {', '.join(names)}" if names else "leave target out"),
    )


# The ``site`` parameter of every route but the overview (which also lists the targets) and the
# run tab (which finds the target from the DAG id).
SERVED_SITE = Depends(site_of)


@lru_cache(maxsize=4)
def _connect(url: str, archive_schema: str) -> Target:
    return connect(url, archive_schema)


def target_of(site: Site, policy: RetentionPolicy) -> Target:
    """The target's connection (``site.conn_id``), read by the API server (secrets backends, env, DB)."""
    try:
        conn = target_connection(site.conn_id)
    except Exception as exc:  # Airflow raises its own NotFound type, version-dependent
        raise HTTPException(503, f"the Airflow connection {site.conn_id!r} is not defined") from exc
    return _connect(connection_url(conn), policy.archive_schema)  # a wrong type says so (ValueError)


def audit_log(site: Site, policy: RetentionPolicy) -> tuple[Target, Table]:
    """The target and its audit table: what most pages read."""
    target = target_of(site, policy)
    return target, store.audit_table(target.archive_schema, policy.audit_table)
