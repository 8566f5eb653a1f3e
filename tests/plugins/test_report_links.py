"""A link in the reports' dpo/ folder is never followed: whoever may put a link there could
otherwise have the view serve any file the webserver may read. Reports kept in object storage
(which has no links) are served as before."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.io import attach
from fsspec.implementations.memory import MemoryFileSystem
from view_client import view_client

from include.retention import files
from include.retention_airflow import storage

REPORT = "retention-dpo-report_2026-11-01_2026-11-30.fr.html"
LINKED = "retention-dpo-report_2026-10-01_2026-10-31.fr.html"


@pytest.fixture(scope="module")
def view(tmp_path_factory, airflow_db):
    """The view whose dpo/ folder holds one report and a link, named like a report, to a secret."""
    with view_client(tmp_path_factory.mktemp("report-links")) as client:
        secret = client.home / "secret.txt"
        secret.write_text("TOP SECRET OUTSIDE")
        folder = client.home / "reports" / "dpo"
        folder.mkdir(parents=True)
        (folder / REPORT).write_text("<html><body>Rapport DPO de novembre</body></html>")
        os.symlink(secret, folder / LINKED)
        yield client


def test_a_link_named_like_a_report_is_neither_listed_nor_served(view):
    assert LINKED not in view.get("/retention/reports").text
    response = view.get(f"/retention/reports/{LINKED}")
    assert response.status_code == 404 and "TOP SECRET" not in response.text
    assert "Rapport DPO de novembre" in view.get(f"/retention/reports/{REPORT}").text


def test_a_dpo_folder_that_is_itself_a_link_is_not_read(view, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / REPORT).write_text("<html>TOP SECRET OUTSIDE</html>")
    reports = tmp_path / "reports"
    reports.mkdir()
    os.symlink(elsewhere, reports / "dpo")
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(reports))
    assert REPORT not in view.get("/retention/reports").text
    response = view.get(f"/retention/reports/{REPORT}")
    assert response.status_code == 404 and "TOP SECRET" not in response.text


@pytest.fixture
def memory_bucket() -> Iterator[str]:
    """A bucket of fsspec's in-memory store opened by ``ObjectStoragePath`` (the Airflow layer's
    opener refuses ``memory://``); afterwards the Airflow layer's opener is back."""
    store = MemoryFileSystem()
    attach("memory", fs=store)
    bucket = f"reports-{uuid.uuid4().hex[:12]}"
    files.register_opener(lambda url: ObjectStoragePath(url))
    try:
        yield f"memory://{bucket}"
    finally:
        files.register_opener(storage.open_location)
        if store.exists(f"/{bucket}"):
            store.rm(f"/{bucket}", recursive=True)


def test_a_report_in_object_storage_is_listed_and_served(view, memory_bucket, monkeypatch):
    folder = ObjectStoragePath(f"{memory_bucket}/reports/dpo")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / REPORT).write_bytes(b"<html><body>Rapport DPO du seau</body></html>")
    monkeypatch.setenv("RETENTION_REPORTS_DIR", f"{memory_bucket}/reports")
    assert REPORT in view.get("/retention/reports").text
    response = view.get(f"/retention/reports/{REPORT}")
    assert response.status_code == 200 and "Rapport DPO du seau" in response.text
