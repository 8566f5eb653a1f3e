"""Evidence in object storage: ``$RETENTION_REPORTS_DIR`` and ``$RETENTION_EXPORTS_DIR`` may be
URLs that Airflow's ``ObjectStoragePath`` opens (``include/retention_airflow/storage.py``), so
that workers and the UI on other hosts share one place.

Certificates, daily anchors, the DPO report and exports written to a ``file://`` or
``local://`` URL (the local folder itself, never object storage) and through ``ObjectStoragePath``
in fsspec's in-memory store (``memory://``, standing for a bucket: the tests register their own
opener for it, since the Airflow layer refuses evidence kept in one process's memory) are the
files a plain path gets, and read back as the same verdict. The engine alone, without the
Airflow layer, refuses a URL naming the variable. A named target's folder that no evidence has
made yet is empty, not missing, while its root is there.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import uuid
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.io import attach
from crm_helpers import EMAIL, KEY
from engine_helpers import AS_OF, club_policy, create_club, run_category
from fsspec.implementations.memory import MemoryFileSystem

from include.retention import files
from include.retention.database.identity import Subject
from include.retention.database.store import audit_table
from include.retention.errors import RetentionError
from include.retention.policy.load import load_policy
from include.retention.records import anchors
from include.retention.records.audit import RunContext
from include.retention.records.holds import NewHold, add_hold
from include.retention.reports import certificate, dpo_render, dpo_report
from include.retention.rights.export import export_subject
from include.retention_airflow import storage  # registers ObjectStoragePath, as the Airflow layer does

AUDIT = audit_table("archive", "retention_audit")
ROOT = Path(__file__).resolve().parents[2]
KINDS = ["file_url", "local_url", "memory"]


@pytest.fixture
def target_url(tmp_path: Path) -> str:
    """SQLite only: where evidence goes does not depend on the database."""
    return f"sqlite:///{tmp_path / 'target.db'}"


@pytest.fixture
def memory_bucket() -> Iterator[str]:
    """A bucket of its own in fsspec's in-memory store, attached to Airflow's object storage as a
    provider would attach ``s3``, and opened by ``ObjectStoragePath`` itself (the Airflow layer's
    opener refuses ``memory://``: evidence there would die with the process); afterwards the
    Airflow layer's opener is back and the bucket emptied."""
    store = MemoryFileSystem()
    attach("memory", fs=store)
    bucket = f"evidence-{uuid.uuid4().hex[:12]}"
    files.register_opener(lambda url: ObjectStoragePath(url))
    try:
        yield f"memory://{bucket}"
    finally:
        files.register_opener(storage.open_location)
        if store.exists(f"/{bucket}"):
            store.rm(f"/{bucket}", recursive=True)


def _root(kind: str, tmp_path: Path, memory_bucket: str, name: str) -> str:
    """The value of ``$RETENTION_..._DIR`` for each kind of location."""
    folder = tmp_path / kind / name
    if kind == "file_url":
        return folder.as_uri()
    if kind == "local_url":  # fsspec's name of the local disk: the folder itself, as file://
        folder.mkdir(parents=True)
        return f"local://{folder}"
    return f"{memory_bucket}/{name}"


def _tree(folder: files.Location) -> dict[str, bytes]:
    """Every file under ``folder``, by its path relative to it, with the operations of both kinds."""
    found: dict[str, bytes] = {}
    for entry in folder.iterdir():
        if entry.is_dir():
            found.update({f"{entry.name}/{name}": content for name, content in _tree(entry).items()})
        else:
            found[entry.name] = entry.read_bytes()
    return found


ISSUED = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


def _comparable(tree: dict[str, bytes]) -> dict[str, object]:
    """The files, with the instant a certificate was issued set aside (it is not part of what it says)."""
    return {
        name: {**json.loads(content), "issued_at": None}
        if name.endswith(".certificate.json")
        else ISSUED.sub(b"<issued>", content)
        for name, content in tree.items()
    }


def _evidence(target, reports: Path | str, monkeypatch) -> files.Location:
    """What the DAGs write for one run, in ``reports``: its certificate, the daily anchor of the
    verified log, the DPO report; return the reports folder the engine resolved."""
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(reports))
    folder = files.reports_dir()
    with target.read() as conn:
        certificate.write(certificate.build(conn, AUDIT, club_policy(), "run-1"))
        verdict = certificate.chain_status(conn, AUDIT).to_dict()
    assert verdict["intact"], verdict["status"]
    anchored = anchors.write_verified(verdict)
    assert anchored is not None and anchored.exists()
    report = dpo_report.build(target, club_policy(), date(2026, 10, 1), date(2026, 11, 30), AS_OF)
    dpo_render.write(report, "en")
    return folder


@pytest.mark.parametrize("kind", KINDS)
def test_certificates_anchors_and_reports_in_object_storage_are_the_files_of_a_plain_path(
    kind, target, tmp_path, memory_bucket, monkeypatch
):
    create_club(target)
    run_category(target, club_policy())
    plain = _tree(_evidence(target, tmp_path / "plain", monkeypatch))
    folder = _evidence(target, _root(kind, tmp_path, memory_bucket, "reports"), monkeypatch)
    stored = _tree(folder)
    assert isinstance(folder, Path) == (kind != "memory")  # file:// and local:// keep a local disk's writes
    assert {n.split("/")[0] for n in stored} == {"retention_members", "audit_anchors", "dpo"}
    anchor_names = {n for n in stored if n.startswith("audit_anchors/")}
    assert len(anchor_names) == 1 and len({n for n in plain if n.startswith("audit_anchors/")}) == 1
    # The anchor's name and content hold the instant it was written: the rest is identical.
    assert _comparable({n: c for n, c in stored.items() if n not in anchor_names}) == _comparable(
        {n: c for n, c in plain.items() if not n.startswith("audit_anchors/")}
    )
    (anchor,) = (json.loads(stored[n]) for n in anchor_names)
    assert anchor["audit_log"] == certificate.normal_identity(anchor["audit_log"]) and anchor["last_event"] > 0
    with target.read() as conn:  # read back from the store: the certificate and the anchor are compared
        status = certificate.chain_status(conn, AUDIT)
    assert status.intact and (status.certificates, status.daily_anchors) == (1, 1)
    assert status.reports == str(folder) and not status.reports_missing


def test_a_certificate_issued_again_in_object_storage_keeps_its_object(target, memory_bucket, monkeypatch):
    """Evidence is never replaced there either: issued again unchanged, the object already there
    is kept; rebuilt with other content, it goes to a new name beside it."""
    monkeypatch.setenv("RETENTION_REPORTS_DIR", f"{memory_bucket}/reports")
    create_club(target)
    run_category(target, club_policy())
    with target.read() as conn:
        first = certificate.write(certificate.build(conn, AUDIT, club_policy(), "run-1"))
        before = first[0].read_bytes()
        again = certificate.write(certificate.build(conn, AUDIT, club_policy(), "run-1"))
    assert again == first and first[0].read_bytes() == before
    assert str(first[0]).startswith(f"{memory_bucket}/reports/retention_members/run-1~")
    assert not files.write_new(first[0], b"{}") and first[0].read_bytes() == before
    files.write_whole(first[1], b"<p>again</p>")  # what a report made again does
    assert first[1].read_bytes() == b"<p>again</p>"


def test_a_served_target_keeps_its_evidence_in_its_own_folder_of_the_bucket(memory_bucket, monkeypatch):
    monkeypatch.setenv("RETENTION_REPORTS_DIR", f"{memory_bucket}/reports")
    monkeypatch.setenv("RETENTION_EXPORTS_DIR", f"{memory_bucket}/exports")
    from include.retention.rights.export import export_path, exports_dir

    with files.site_folder("paris"):
        assert str(files.reports_dir()) == f"{memory_bucket}/reports/paris"
        assert str(exports_dir()) == f"{memory_bucket}/exports/paris"
        assert str(export_path("DDP-1", "access")).startswith(f"{memory_bucket}/exports/paris/DDP-1~")
    assert str(files.reports_dir()) == f"{memory_bucket}/reports"


def test_an_empty_prefix_with_a_log_that_has_events_is_not_verified(target, memory_bucket, monkeypatch):
    """A prefix of a bucket exists only through what is written under it: a wrong or empty one
    reads as a missing reports folder, and a log with events is NOT VERIFIED (fail closed)."""
    monkeypatch.setenv("RETENTION_REPORTS_DIR", f"{memory_bucket}/nothing-here")
    create_club(target)
    run_category(target, club_policy())
    with target.read() as conn:
        status = certificate.chain_status(conn, AUDIT)
    assert status.reports_missing and not status.intact and "NOT VERIFIED" in status.sentence()
    with pytest.raises(RetentionError, match="is missing: no anchor written"):
        anchors.write("sqlite:////t.db archive.retention_audit", 3, "a" * 64, files.reports_dir())


def _zip(content: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name).decode("utf-8") for name in archive.namelist()}


@pytest.mark.parametrize("kind", KINDS)
def test_an_export_in_object_storage_is_the_zip_of_a_plain_path(kind, crm, tmp_path, memory_bucket, monkeypatch):
    def export(exports: Path | str) -> files.Location:
        monkeypatch.setenv("RETENTION_EXPORTS_DIR", str(exports))
        with crm.read() as conn:
            path, counts = export_subject(
                conn, crm, load_policy(), Subject.of({"email": EMAIL}), "DDP-2026-0900", "access"
            )
        assert counts
        return path

    plain = export(tmp_path / "plain")
    stored = export(_root(kind, tmp_path, memory_bucket, "exports"))
    assert stored.name == plain.name and str(stored).endswith(f"/exports/{plain.name}")
    zipped, expected = _zip(stored.read_bytes()), _zip(plain.read_bytes())
    assert zipped.keys() == expected.keys() and EMAIL in zipped["prospection/prospects.active.csv"]
    for name in expected:
        if name != "subject.json":  # it says when it was generated
            assert zipped[name] == expected[name]
    assert json.loads(zipped["subject.json"])["data"] == json.loads(expected["subject.json"])["data"]
    if kind != "memory":  # a local disk, named by URL: still readable by its owner only
        assert isinstance(stored, Path) and oct(stored.stat().st_mode & 0o777) == "0o600"
    assert sorted(_tree(stored.parent)) == [plain.name]  # no partial object left beside it


def test_a_file_url_without_an_absolute_path_is_refused():
    with pytest.raises(RetentionError, match=r"\$RETENTION_REPORTS_DIR is a file:// URL without an absolute path"):
        files.location("file://reports", "RETENTION_REPORTS_DIR")
    assert files.location("file:///srv/evidence%20store", "RETENTION_REPORTS_DIR") == Path("/srv/evidence store")
    assert files.location("reports/here", "RETENTION_REPORTS_DIR") == Path("reports/here")


@pytest.mark.parametrize(
    ("variable", "call"),
    [
        ("RETENTION_REPORTS_DIR", "from include.retention.files import reports_dir; reports_dir()"),
        ("RETENTION_EXPORTS_DIR", "from include.retention.rights.export import exports_dir; exports_dir()"),
    ],
)
def test_the_engine_alone_refuses_a_url_naming_the_variable(variable, call):
    """Outside Airflow nothing opens object storage: the URL is refused naming the variable (not
    repeating the URL, which may name a connection), and the engine imported no Airflow."""
    script = (
        "import sys\n"
        "from include.retention.errors import RetentionError\n"
        "try:\n"
        f"    {call}\n"
        "except RetentionError as exc:\n"
        "    print(exc)\n"
        "print('airflow imported' if 'airflow' in sys.modules else 'no airflow')\n"
    )
    environment = {**os.environ, variable: "s3://evidence_conn@private-bucket/reports"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    )
    said = done.stdout
    assert f"${variable} is a s3:// URL, which only Airflow's ObjectStoragePath opens" in said
    assert "evidence_conn" not in said and "private-bucket" not in said
    assert said.rstrip().endswith("no airflow")


def test_the_opener_is_airflows_object_storage_path():
    s3 = files.location("s3://evidence_conn@bucket/reports", "RETENTION_REPORTS_DIR")
    assert isinstance(s3, ObjectStoragePath) and s3.conn_id == "evidence_conn"
    assert str(s3) == "s3://evidence_conn@bucket/reports"  # what a verdict carries to the anchoring task


def test_an_anchor_written_by_the_daily_verification_lands_in_the_bucket_it_read(memory_bucket):
    """``write_verified`` takes the reports folder from the verdict (XCom: a string): a URL is
    opened again through the same opener."""
    reports = ObjectStoragePath(f"{memory_bucket}/reports")
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "dpo").mkdir(parents=True, exist_ok=True)
    (reports / "dpo" / "placeholder.html").write_bytes(b"")  # a prefix exists through what it holds
    verdict = {
        "intact": True,
        "audit_log": "sqlite:////t.db archive.retention_audit",
        "head_event": 7,
        "head_hash": "b" * 64,
        "reports": str(reports),
    }
    anchored = anchors.write_verified(verdict)
    assert anchored is not None and str(anchored).startswith(f"{memory_bucket}/reports/audit_anchors/")
    (read,) = anchors.read(reports)
    assert (read.last_event, read.last_hash, read.file) == (7, "b" * 64, anchored.name)
    at = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
    first = anchors.write("sqlite:////t.db archive.retention_audit", 8, "c" * 64, reports, at)
    second = anchors.write("sqlite:////t.db archive.retention_audit", 8, "c" * 64, reports, at)
    assert first != second and second.name.endswith("-1.anchor.json")  # a name taken gets a counter


@pytest.mark.parametrize("scheme", ["memory", "MEMORY", "simplecache"])
def test_the_airflow_layer_refuses_evidence_kept_in_one_processs_memory(scheme):
    """Certificates and anchors in ``memory://`` would be lost with the worker that wrote them,
    and neither the UI nor the other workers would see them: refused, naming the scheme, never
    the bucket."""
    with pytest.raises(RetentionError, match=r"evidence cannot be kept in \w+://") as refused:
        files.location(f"{scheme}://secret-bucket/reports", "RETENTION_REPORTS_DIR")
    assert "secret-bucket" not in str(refused.value)


def test_a_local_url_is_the_local_folder_itself(tmp_path):
    """``local://`` is fsspec's name of the local disk: opened as a ``pathlib.Path`` like
    ``file://``, never through object storage (which would export 0644 files and check a name
    before writing it, letting two writers of one certificate both write)."""
    assert files.location(f"local://{tmp_path}", "RETENTION_EXPORTS_DIR") == tmp_path
    assert files.location("LOCAL:///srv/evidence%20store", "RETENTION_REPORTS_DIR") == Path("/srv/evidence store")
    with pytest.raises(RetentionError, match=r"\$RETENTION_REPORTS_DIR is a local:// URL without an absolute path"):
        files.location("local://reports", "RETENTION_REPORTS_DIR")


def _race(where: files.Location, contents: tuple[bytes, bytes]) -> list[bool]:
    """``write_new`` of ``where`` by two threads released at the same instant: what each returned."""
    start = threading.Barrier(len(contents))
    outcomes: list[bool] = []

    def write(content: bytes) -> None:
        start.wait()
        outcomes.append(files.write_new(where, content))

    writers = [threading.Thread(target=write, args=(content,)) for content in contents]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    return outcomes


def test_two_writers_of_one_new_file_under_a_local_url_never_both_write(tmp_path):
    """``write_new`` on a ``local://`` folder links a flushed file to its name: of two writers of
    one name at the same instant, exactly one writes, every time."""
    folder = files.location(f"local://{tmp_path}", "RETENTION_REPORTS_DIR")
    for attempt in range(100):
        where = folder / f"certificate-{attempt}.json"
        assert sorted(_race(where, (b"first", b"second"))) == [False, True]
        assert where.read_bytes() in (b"first", b"second")


def _one_hold_event(target) -> None:
    """A new target's first audit event: a legal hold on member 1 (no run, so no certificate)."""
    create_club(target)
    hold = NewHold("RG-2026-001", "rows", "Litige en cours", "dpo@example.fr", table="members", keys=[1])
    add_hold(target, club_policy(), hold, KEY, RunContext("manual__hold-1", "legal_hold", AS_OF, "club-1"), AS_OF)


@pytest.mark.parametrize("kind", ["folder", "memory"])
def test_a_new_named_target_with_one_hold_event_verifies_intact_and_gets_its_anchor(
    kind, target, tmp_path, memory_bucket, monkeypatch
):
    """``<root>/paris/`` appears with Paris's first certificate or export: before that, its daily
    verification finds the folder empty (on a local disk, created; in object storage, where a
    prefix exists through what it holds, taken as empty) - intact, and anchored - not missing."""
    _one_hold_event(target)
    root = tmp_path / "reports"
    if kind == "folder":
        root.mkdir()
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(root) if kind == "folder" else f"{memory_bucket}/reports")
    with files.site_folder("paris"):
        with target.read() as conn:
            status = certificate.chain_status(conn, AUDIT)
        assert status.intact and not status.reports_missing and status.events == 1, status.sentence()
        anchored = anchors.write_verified(status.to_dict())
        assert anchored is not None and str(anchored.parent) == f"{files.reports_dir()}/audit_anchors"
        with target.read() as conn:
            again = certificate.chain_status(conn, AUDIT)
    assert again.intact and again.daily_anchors == 1
    if kind == "folder":
        assert sorted(p.name for p in root.iterdir()) == ["paris"]


def test_a_named_target_whose_reports_root_is_missing_still_fails_closed(target, tmp_path, monkeypatch):
    _one_hold_event(target)
    root = tmp_path / "unmounted"
    monkeypatch.setenv("RETENTION_REPORTS_DIR", str(root))
    with files.site_folder("paris"):
        with target.read() as conn:
            status = certificate.chain_status(conn, AUDIT)
        assert status.reports_missing and not status.intact and "NOT VERIFIED" in status.sentence()
        with pytest.raises(RetentionError, match="is missing: no anchor written"):
            anchors.write("sqlite:////t.db archive.retention_audit", 1, "a" * 64, files.reports_dir())
    assert not root.exists()
