"""The "Retention" view in the Airflow UI, for data engineers and the DPO.

Thin on purpose: the pages live in ``include/retention_airflow/ui/``. Mounted under
``/retention`` in the API server; every route there requires an authenticated user.

Two external views, both with a ``url_route`` - Airflow 3.3 shows a plugin's page inside its
own UI (an iframe) only then: Browse → Retention, and a "Certificat" tab on every DAG run. The
UI fills ``{DAG_ID}`` and ``{RUN_ID}`` in the tab's ``href`` (URL-encoded), so the tab asks for
the run by its DAG and run ids; the page says so when the DAG is not one of the schedule's.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.retention_airflow.ui.app import app


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
        {
            "name": "Certificat",
            "href": "/retention/run?dag_id={DAG_ID}&run_id={RUN_ID}",
            "url_route": "retention-certificate",
            "destination": "dag_run",
        },
    ]
