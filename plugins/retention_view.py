"""The "Retention" view in the Airflow UI (Browse menu), for data engineers and the DPO.

Thin on purpose: the pages live in ``include/retention_airflow/ui.py``. Mounted under
``/retention`` in the API server; every route there requires an authenticated user.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.retention_airflow.ui import app


class RetentionViewPlugin(AirflowPlugin):
    name = "retention_view"
    fastapi_apps = [{"app": app, "url_prefix": "/retention", "name": "Retention"}]
    external_views = [
        {
            "name": "Retention",
            "href": "/retention/",
            "url_route": "retention",
            "destination": "nav",
            "category": "browse",
        },
        {"name": "Retention certificate", "href": "/retention/certificates/{RUN_ID}", "destination": "dag_run"},
    ]
