"""Access (GDPR art. 15) and portability (art. 20) exports: a person's data, in a zip.

The zip holds ``subject.json`` - the request, and for each category where the person was
found: its purpose, legal basis and retention periods as the policy states them (what
art. 15 requires besides the data), and the rows - plus one CSV per table side
(``<category>/<table>.active.csv``, ``.archive.csv``).

Portability covers only the data the person provided: the columns each table lists in
``provided_columns``, of its active rows (tables without that key are not part of a
portability export).

The export is personal data: it is written to ``$RETENTION_EXPORTS_DIR`` (default
``exports/``, not committed; a folder, or a URL of object storage that every worker sees), for
the DPO to send, under a name of its own per request (``export_path``). On a local disk it is
readable by its owner only; in object storage, by whom the bucket's policy lets read it.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from include.retention.database.identity import Subject
from include.retention.database.reflect import Side
from include.retention.database.target import Target
from include.retention.files import Location, served_folder, unique_name, write_whole
from include.retention.policy.model import Category, RetentionPolicy
from include.retention.rights.subjects import Found, locate
from include.retention.settings import EXPORTS_ENV_VAR

DEFAULT_EXPORTS_DIR = Path(__file__).resolve().parents[3] / "exports"


def exports_dir() -> Location:
    """``$RETENTION_EXPORTS_DIR`` (a folder or a URL; else ``exports/``), and the served
    target's folder under it."""
    return served_folder(EXPORTS_ENV_VAR, DEFAULT_EXPORTS_DIR)


def export_path(reference: str, request_type: str) -> Location:
    """Where the export of request ``reference`` goes: a name of its own per reference
    (``report.unique_name``: readable prefix and a hash of the exact reference), so that two
    requests never share a file - one person's register entry never points to another's data."""
    return exports_dir() / f"{unique_name(reference)}.{request_type}.zip"


def export_subject(
    conn: Connection, target: Target, policy: RetentionPolicy, subject: Subject, reference: str, request_type: str
) -> tuple[Location, dict[str, int]]:
    """Write the zip for ``reference``; return its path and the rows exported per table side."""
    portability = request_type == "portability"
    found = [
        f
        for f in locate(conn, target, policy, subject)
        if not portability or (f.side == Side.ACTIVE and f.node.policy.provided_columns)
    ]
    data: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    counts: dict[str, int] = {}
    for f in found:
        rows = _rows(conn, f, portability)
        side = f.side.value
        data.setdefault(f.category, {}).setdefault(f.node.name, {})[side] = rows
        counts[f"{f.category}.{f.node.name}.{side}"] = len(rows)
    document = {
        "request": {"reference": reference, "type": request_type, "generated_at": datetime.now().astimezone()},
        "categories": [_category_facts(policy.categories[key]) for key in data],
        "data": data,
    }
    path = _write_zip(reference, request_type, document)
    return path, counts


def _rows(conn: Connection, found: Found, portability: bool) -> list[dict[str, Any]]:
    table = found.table
    columns = [table.c[c] for c in found.node.policy.provided_columns] if portability else list(table.c)
    return [
        {k: _plain(v) for k, v in row._mapping.items()}
        for row in conn.execute(select(*columns).where(found.where).order_by(*table.primary_key.columns))
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _category_facts(category: Category) -> dict[str, Any]:
    """What art. 15(1) asks besides the data: purpose, legal basis, how long it is kept."""
    return {
        "category": category.key,
        "purpose": {"fr": category.label.fr, "en": category.label.en},
        "legal_basis": category.legal_basis,
        "active_period": str(category.active_period),
        "active_period_counted_from": category.counted_from.model_dump() if category.counted_from else None,
        "archive_period": str(category.archive_period) if category.has_archive else None,
        "archive_purpose": category.archive_purpose,
        "end_of_life": category.end_action,
    }


def _write_zip(reference: str, request_type: str, document: dict[str, Any]) -> Location:
    """Write the zip in one step (``files.write_whole``, owner-only on a local disk): a reader
    never sees half an export, and only this request's own earlier export (a retry) can be
    replaced. The zip is made in memory - one person's data - so that object storage, which
    cannot seek in an object being written, takes it as one whole object."""
    path = export_path(reference, request_type)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("subject.json", json.dumps(document, indent=2, ensure_ascii=False, default=str))
        for category, tables in document["data"].items():
            for table, sides in tables.items():
                for side, rows in sides.items():
                    archive.writestr(f"{category}/{table}.{side}.csv", _csv(rows))
    write_whole(path, buffer.getvalue(), private=True)
    return path


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out.getvalue()
