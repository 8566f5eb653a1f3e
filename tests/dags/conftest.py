"""Airflow fixtures: a migrated metadata database in the test AIRFLOW_HOME, and the DagBag."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Migrate the (temporary, SQLite) Airflow metadata database once per session."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True,
                   env=os.environ.copy())


@pytest.fixture(scope="session")
def dagbag():
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
