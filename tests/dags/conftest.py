"""Airflow fixtures: the DagBag (the metadata database fixture is in the root conftest)."""

from __future__ import annotations

import logging
import os

import pytest


@pytest.fixture(scope="session")
def dagbag():
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
