"""The Retention view in the Airflow UI: the DPO's window on the audit trail and the schedule.

A FastAPI app (``app.py``) that the plugin in ``plugins/retention_view.py`` mounts under
``/retention`` in Airflow's API server, shown inside Airflow's UI (Browse → Retention, and a
"Certificat" tab on each DAG run). One module per page, plus what they share: the request
guards, the target served, the reader (language and links) and the page layout.
"""
