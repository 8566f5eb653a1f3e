"""The schedule page: the policy laid out like the charter's table (the DPO report's own table)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from include.retention.language import translator
from include.retention.reports import dpo_render, html
from include.retention_airflow.ui.layout import page, section
from include.retention_airflow.ui.reader import READER, Reader

router = APIRouter()


@router.get("/schedule", response_class=HTMLResponse)
def schedule(reader: Reader = READER) -> HTMLResponse:
    """Stable hook: ``section#schedule``."""
    _ = translator(reader.lang, "ui")
    policy = reader.policy
    body = (
        "<p>"
        + html.text(_("Policy version {version} ({source}).").format(version=policy.version, source=policy.source))
        + "</p>"
        + section("schedule", dpo_render.schedule_table(policy, reader.lang))
    )
    return page(reader, _("Retention schedule"), body, "schedule")
