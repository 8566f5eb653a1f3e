"""Daily anchors: copies of the audit log's head kept outside the database.

The hash chain (``audit.verify_chain``) shows an event altered, removed or reordered - unless
whoever did it recomputed every later hash, or removed the last events, leaving a shorter log
that is consistent in itself. Only a hash copied somewhere else when it was written can
show that. Run certificates copy their run's first and last hashes; and since each hash
covers every event before it, a certificate pins down the whole log up to its run. The
events written after the last run - erasures, rights requests, legal holds - are in no
certificate: the daily verification (``retention_audit_verify``) pins them down by writing,
once it has verified the log, the last event it read (id and hash) to an anchor file.

Anchors are kept with the certificates, under ``<reports>/audit_anchors/``: the reports
folder every worker shares (``$RETENTION_REPORTS_DIR``: a folder, or a place in object
storage, ``files.Location``). Each names its log (database and
table, never credentials), so that several targets may share the folder. They hold
counts, ids and hashes: no personal data.

Anchors are only files. Whoever can rewrite both the database and the reports folder can
rewrite the log and its anchors together: copy the folder elsewhere (a write-once bucket,
backups) to keep the anchors out of one person's reach.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from include.retention.errors import RetentionError
from include.retention.files import Location, folder_missing, location, write_new
from include.retention.settings import REPORTS_ENV_VAR

FOLDER = "audit_anchors"
SUFFIX = ".anchor.json"
_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Anchor:
    """One anchor read back: the log it names and the event whose hash it copied."""

    audit_log: str
    last_event: int
    last_hash: str
    file: str


def folder(reports: Location) -> Location:
    return reports / FOLDER


def write(audit_log: str, last_event: int, last_hash: str, reports: Location, now: datetime | None = None) -> Location:
    """Write a new anchor of ``audit_log``: its event ``last_event`` has hash ``last_hash``.

    Never replaces a file: the name holds the instant, the event and a digest of the log's
    name (two logs anchored in the same microsecond get two files), and a name already taken
    gets a counter - an anchor is evidence, like a certificate (``files.write_new``: on a
    local disk, flushed, so that it outlives a crash of the worker right after).
    """
    if last_event < 1 or not _HASH.match(last_hash):
        raise ValueError(f"an anchor needs an event id (>= 1) and its SHA-256 hash, not {last_event!r}, {last_hash!r}")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    content = (
        json.dumps(
            {
                "kind": "retention audit anchor",
                "audit_log": audit_log,
                "last_event": last_event,
                "last_hash": last_hash,
                "events": last_event,
                "anchored_at": moment.isoformat(),
            },
            indent=2,
        )
        + "\n"
    )
    log_digest = hashlib.sha256(audit_log.encode("utf-8")).hexdigest()[:12]
    stem = f"{moment:%Y%m%dT%H%M%S%fZ}-event-{last_event}-{log_digest}"
    if folder_missing(reports):  # unmounted, or $RETENTION_REPORTS_DIR wrong: never create a root elsewhere
        raise RetentionError(
            f"the reports folder {reports} is missing: no anchor written (mount it, or set "
            "$RETENTION_REPORTS_DIR to the folder every worker shares)"
        )
    directory = folder(reports)
    directory.mkdir(exist_ok=True)
    for attempt in range(1000):
        path = directory / f"{stem}{f'-{attempt}' if attempt else ''}{SUFFIX}"
        if write_new(path, content.encode("utf-8")):
            return path
    raise RetentionError(f"{directory}: 1000 anchors named {stem}: clean the folder of copies")


def write_verified(verdict: Mapping[str, Any]) -> Location | None:
    """Anchor the head of a log the daily verification found intact (``ChainStatus.to_dict()``),
    in the reports folder it read (a path or a URL, ``files.location``); None for a log
    without events (nothing to anchor).

    A verdict that is not intact is refused: a tampered log is never anchored.
    """
    if verdict.get("intact") is not True:
        raise RetentionError(
            f"the audit log {verdict.get('audit_log')} is not intact: it is not anchored ({verdict.get('status')})"
        )
    if not verdict.get("head_event"):
        return None
    reports = location(str(verdict["reports"]), REPORTS_ENV_VAR)
    return write(str(verdict["audit_log"]), int(verdict["head_event"]), str(verdict["head_hash"]), reports)


def read(reports: Location) -> list[Anchor]:
    """Every anchor under ``reports``, oldest first; one that cannot be read is named."""
    found = []
    if folder(reports).exists() and not folder(reports).is_dir():
        raise RetentionError(
            f"{folder(reports)} is not a folder: the daily anchors cannot be read; restore the folder from a backup"
        )
    for path in sorted(folder(reports).glob(f"*{SUFFIX}"), key=lambda found: found.name):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            anchor = Anchor(data["audit_log"], data["last_event"], data["last_hash"], path.name)
            if not (
                isinstance(anchor.audit_log, str)
                and type(anchor.last_event) is int
                and anchor.last_event >= 1
                and isinstance(anchor.last_hash, str)
                and _HASH.match(anchor.last_hash)
            ):
                raise ValueError("audit_log, last_event (>= 1) or last_hash (64 hex digits) is wrong")
        except (ValueError, KeyError, TypeError) as exc:
            raise RetentionError(
                f"{path} is not an audit anchor that can be read ({exc!r}): restore it from a "
                "backup, or move it out of the reports folder if it is not one"
            ) from exc
        found.append(anchor)
    return found
