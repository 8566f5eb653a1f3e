"""The thin layer between Airflow and the engine.

The engine (``include.retention``) never imports Airflow. This package turns what
Airflow knows - the ``retention_target`` connection, the run's id, date and params -
into the engine's ``Target`` and ``RunContext``, and exposes one function per DAG task.
"""
