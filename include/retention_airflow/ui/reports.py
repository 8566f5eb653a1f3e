"""The DPO reports the ``retention_dpo_report`` DAG wrote, served from the reports folder.

Only the report files of the target's ``dpo/`` folder, by a name of the exact form the report
writes (``retention-dpo-report_<start>_<end>.<lang>.html``) and found in that folder's
listing: no other file, no path, so nothing else of the reports folder (certificates aside,
which have their own route) nor of the server can be read through it.

A link in that folder is never followed, nor a ``dpo/`` folder that is itself a link: whoever
may write a link there could otherwise have the view serve any file the webserver may read.
Object storage has no links: its reports are read as they are.

Stable hooks: ``section#dpo-reports`` (the list), ``a.dpo-report`` (each report's link).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path as LocalPath

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import HTMLResponse, Response

from include.retention.files import Location, reports_dir, site_folder
from include.retention.language import translator
from include.retention.reports import html
from include.retention_airflow.ui.layout import page, section
from include.retention_airflow.ui.reader import READER, Reader

router = APIRouter()
REPORT_NAME = re.compile(r"retention-dpo-report_\d{4}-\d{2}-\d{2}_\d{4}-\d{2}-\d{2}\.(fr|en)\.html")
# A served report is a document, not part of the view: no script, its own inline style and
# images only, and never shown as anything but HTML.
REPORT_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
    "X-Content-Type-Options": "nosniff",
}


def _folder() -> Location:
    return reports_dir() / "dpo"


def report_names(reader: Reader) -> list[str]:
    """The target's DPO reports, the latest period first (the name starts with the period)."""
    with site_folder(reader.site.reports_folder):
        folder = _folder()
        if _is_link(folder) or not folder.is_dir():
            return []
        names = [path.name for path in folder.glob("retention-dpo-report_*.html") if not _is_link(path)]
    return sorted((name for name in names if REPORT_NAME.fullmatch(name)), reverse=True)


def latest_report(reader: Reader) -> str | None:
    """The latest report in the reader's language, else the latest in any."""
    names = report_names(reader)
    return next((n for n in names if n.endswith(f".{reader.lang}.html")), names[0] if names else None)


def report_href(reader: Reader, name: str) -> str:
    return reader.href(f"/reports/{name}")


@router.get("/reports", response_class=HTMLResponse)
def reports(reader: Reader = READER) -> HTMLResponse:
    """Every DPO report written for this target, the latest first."""
    _ = translator(reader.lang, "ui")
    names = report_names(reader)
    if names:
        items = "".join(
            f"<li><a class='dpo-report' href='{html.text(report_href(reader, n))}'>{html.text(n)}</a></li>"
            for n in names
        )
        body = f"<ul>{items}</ul>"
    else:
        body = "<p>{}</p>".format(
            html.text(
                _(
                    "No DPO report has been written yet: the {dag} DAG writes one each month, or on demand "
                    "for a period you choose."
                ).format(dag=reader.site.dag_id("retention_dpo_report"))
            )
        )
    return page(reader, _("DPO reports"), section("dpo-reports", body), "reports")


@router.get("/reports/{name}")
def report_file(name: str = Path(max_length=100), reader: Reader = READER) -> Response:
    """One DPO report file, as the DAG wrote it; 404 for any name that is not one of them."""
    if not REPORT_NAME.fullmatch(name) or name not in report_names(reader):
        raise HTTPException(404, f"no DPO report named {name[:100]!r} in this target's reports folder")
    with site_folder(reader.site.reports_folder):
        content = _read(_folder(), name)
    return Response(content, media_type="text/html; charset=utf-8", headers=REPORT_HEADERS)


def _is_link(where: Location) -> bool:
    """Whether ``where`` is a symbolic link on the local disk (object storage has none)."""
    return isinstance(where, LocalPath) and where.is_symlink()


def _read(folder: Location, name: str) -> bytes:
    """The report ``name`` of ``folder``; on a local disk, only a plain file of that very folder."""
    if not isinstance(folder, LocalPath):
        return (folder / name).read_bytes()
    not_served = HTTPException(
        404, f"no DPO report {name!r} to serve: a link, or not a plain file of the reports folder"
    )
    if _is_link(folder) or _is_link(folder / name) or (folder / name).resolve().parent != folder.resolve():
        raise not_served
    # Opened without following a link, the folder then the file in it: a link put there after
    # the checks above is refused too (ELOOP), not followed. Opened without blocking, then
    # checked to be a regular file: a FIFO named like a report would otherwise hang the worker.
    try:
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder_fd)
        finally:
            os.close(folder_fd)
    except OSError as exc:
        raise not_served from exc
    with os.fdopen(file_fd, "rb") as report:
        if not stat.S_ISREG(os.fstat(report.fileno()).st_mode):
            raise not_served
        return report.read()
