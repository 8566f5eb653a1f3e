"""The audit chain's status: the verdict of the daily verification, computed now.

``certificate.chain_status`` is the one verdict, shared with ``retention_audit_verify``, the
DPO report and the overview, checked against the target's own certificates and anchors.
Stable hooks: ``p#chain-status``, ``section#chain-facts``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from include.retention.files import reports_dir, site_folder
from include.retention.language import translator
from include.retention.reports import certificate, html
from include.retention_airflow.targets import Site
from include.retention_airflow.ui.layout import page, section
from include.retention_airflow.ui.overview import chain_line
from include.retention_airflow.ui.reader import READER, Reader
from include.retention_airflow.ui.served import SERVED_SITE, audit_log

router = APIRouter()


@router.get("/chain", response_class=HTMLResponse)
def chain_status(reader: Reader = READER) -> HTMLResponse:
    _ = translator(reader.lang, "ui")
    with site_folder(reader.site.reports_folder):  # the folder the page names is the target's
        status = _verify(reader.site)
        body = _chain_html(reader, status)
    return page(reader, _("Audit chain status"), body, "chain")


@router.get("/api/chain")
def chain_status_json(site: Site = SERVED_SITE) -> dict[str, Any]:
    """For monitoring: ``intact`` is the daily verification's verdict (chain and certificates)."""
    return _verify(site).to_dict()


def _verify(site: Site) -> certificate.ChainStatus:
    target, trail = audit_log(site, site.policy())
    with target.read() as conn, site_folder(site.reports_folder):
        return certificate.chain_status(conn, trail)


def _chain_html(reader: Reader, status: certificate.ChainStatus) -> str:
    """The verdict, then what it was checked against."""
    _ = translator(reader.lang, "ui")
    chain = (
        _("holds")
        if status.chain_holds
        else _("breaks at event {event}: {reason}").format(event=status.broken_at, reason=status.reason)
    )
    facts = html.table(
        (_("checked"), _("found")),
        [
            (_("Audit log"), status.audit_log),
            (_("Events read"), status.events),
            (_("Hash chain"), chain),
            (
                _("Run certificates compared"),
                _("{count} (under {folder})").format(count=status.certificates, folder=reports_dir()),
            ),
            (_("Hashes that do not match"), len(status.mismatches)),
            (_("Certificates of other audit logs, left aside"), status.other_logs),
        ],
    )
    mismatches = "".join(f"<li>{html.text(m)}</li>" for m in status.mismatches[:50])
    explained = _(
        "The same verdict as the daily retention_audit_verify DAG: the hash chain is recomputed, then the first "
        "and last hash each run certificate copied outside the database are compared with the log (a log "
        "rewritten with recomputed hashes is caught only there)."
    )
    return (
        chain_line(reader, status)
        + section("chain-facts", facts + (f"<ul>{mismatches}</ul>" if mismatches else ""))
        + f"<p>{html.text(explained)}</p>"
    )
