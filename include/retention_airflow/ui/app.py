"""The Retention view's FastAPI app, which ``plugins/retention_view.py`` mounts under ``/retention``.

Every route requires an authenticated Airflow user: the dependency is set on the app itself, so
a route added later cannot forget it. Anonymous requests get 401; Airflow's read-only users (the
DPO) see everything, and nothing here changes data. A POST must come from this server's pages,
and a bad parameter answers 400 naming it (``guards``).
"""

from __future__ import annotations

from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError

from include.retention_airflow.ui import (
    approvals,
    audit_browser,
    certificates,
    chain,
    holds,
    lookup,
    overview,
    reports,
    schedule,
    tonight,
)
from include.retention_airflow.ui.guards import bad_parameter, same_origin

app = FastAPI(
    title="Retention",
    dependencies=[Depends(get_user), Depends(same_origin)],
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)
app.add_exception_handler(RequestValidationError, bad_parameter)
for page in (overview, tonight, audit_browser, certificates, reports, approvals, schedule, holds, chain, lookup):
    app.include_router(page.router)
