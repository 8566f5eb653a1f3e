"""Pending approvals: the runs of the schedule waiting for a person to approve removals past
the deletion limit, newest first, each with a link to answer it in Airflow's Required Actions.

Read from Airflow's metadata (the API server has it): the human-in-the-loop requests not yet
answered, of this target's ``retention_<category>`` DAGs. Answering stays in Airflow, with
its permissions; this page only lists and links. Stable hooks: ``section#approvals`` (one
``tbody tr`` per request), ``a.required-action`` (each link, ``target=_top``).
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from airflow.api_fastapi.common.db.common import SessionDep
from airflow.configuration import conf
from airflow.models.hitl import HITLDetail
from airflow.models.taskinstance import TaskInstance
from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from include.retention.language import translator
from include.retention.reports import html
from include.retention_airflow.ui.layout import page, section
from include.retention_airflow.ui.reader import READER, Reader

router = APIRouter()


def _ui_root() -> str:
    """Where Airflow's own UI is (the path of ``[api] base_url``): links leave the iframe to it."""
    return urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


@router.get("/approvals", response_class=HTMLResponse)
def approvals(session: SessionDep, reader: Reader = READER) -> HTMLResponse:
    _ = translator(reader.lang, "ui")
    dags = [reader.site.dag_id(f"retention_{key}") for key in reader.policy.categories]
    pending = session.execute(
        select(
            HITLDetail.created_at, HITLDetail.subject, TaskInstance.dag_id, TaskInstance.run_id, TaskInstance.task_id
        )
        .join(TaskInstance, TaskInstance.id == HITLDetail.ti_id)
        .where(HITLDetail.responded_at.is_(None), TaskInstance.dag_id.in_(dags))
        .order_by(HITLDetail.created_at.desc())
    ).all()
    root = _ui_root()
    rows = [
        (
            reader.short_moment(p.created_at),
            p.dag_id,
            p.run_id,
            p.subject,
            html.Raw(
                f"<a class='required-action' target='_top' href='{html.text(_required_action(root, p))}'>"
                + html.text(_("Answer in Airflow"))
                + "</a>"
            ),
        )
        for p in pending
    ]
    headers = (_("asked ({zone})").format(zone=reader.zone), _("DAG"), _("run"), _("question"), "")
    everything = (
        f"<a class='required-action' target='_top' href='{html.text(root + '/required_actions')}'>"
        + html.text(_("Every required action in Airflow"))
        + "</a>"
    )
    table = html.table(headers, rows) if rows else "<p>" + html.text(_("No run is waiting for an approval.")) + "</p>"
    intro = _(
        "Runs waiting for a person to approve removals past the deletion limit, newest first. Rejected, or left "
        "unanswered for {hours} hours, the run fails and removes nothing."
    ).format(hours=reader.policy.approval_timeout_hours)
    body = f"<p>{html.text(intro)}</p>" + section("approvals", table) + f"<p>{everything}</p>"
    return page(reader, _("Approvals"), body, "approvals")


def _required_action(root: str, pending: object) -> str:
    dag_id, run_id, task_id = (quote(str(getattr(pending, name)), safe="") for name in ("dag_id", "run_id", "task_id"))
    return f"{root}/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/required_actions"
