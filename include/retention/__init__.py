"""Retention engine: turns a personal-data retention schedule into set-based SQL.

Data flows one way: ``policy`` (what the charter says) -> ``plan`` (what is due) ->
``archive`` / ``purge`` (what is done, batch by batch) -> ``audit`` (what the DPO sees).
Nothing in this package imports Airflow: the DAGs in ``dags/`` only wire tasks to it.
"""
