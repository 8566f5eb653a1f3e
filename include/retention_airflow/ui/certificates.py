"""Run certificates: the list of finished runs, one run's certificate, and the tab on each DAG run.

A certificate is rebuilt from the audit log (``reports.certificate.build``), in the reader's
language. The tab Airflow shows on every DAG run (``/run?dag_id=...&run_id=...``) looks the run
up by its DAG and run ids together - run ids are unique per DAG only - in the database of the
target whose DAG it is; a run of another DAG, or a run that has logged nothing yet, gets a page
saying so in the reader's language, not a 404. A certificate's own address names both ids too,
``/certificates/<dag_id>/<run_id>``, and is a 404 for a DAG that is not one of the target's
``retention_<category>`` DAGs (a hold or a rights request deletes nothing by the schedule).

Stable hooks: ``section#latest-runs`` (the runs table), ``section#run-certificate-missing``
(the page when there is no certificate to show).
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from include.retention.database import store
from include.retention.dates.words import day_words
from include.retention.files import site_folder
from include.retention.language import translator
from include.retention.policy.model import RetentionPolicy
from include.retention.reports import certificate, html
from include.retention_airflow.targets import Site
from include.retention_airflow.ui.guards import MAX_RUN_ID, valid_run_id
from include.retention_airflow.ui.layout import document, page, section
from include.retention_airflow.ui.reader import LANG_PARAMETER, READER, Reader, language, reader_from
from include.retention_airflow.ui.served import audit_log, served

router = APIRouter()
MAX_DAG_ID = 250  # Airflow's limit on a DAG id


def mode_words(dry_run: bool, lang: str) -> str:
    """How a run went, in words: a preview changes nothing, an executed run does what it says."""
    _ = translator(lang, "ui")
    return _("preview (nothing changed)") if dry_run else _("executed")


def runs_table(reader: Reader, runs: list[dict[str, Any]]) -> str:
    """The runs that reached their summary, newest first, each with its certificate."""
    _ = translator(reader.lang, "ui")
    if not runs:
        return section("latest-runs", "<p>" + html.text(_("No run has finished yet.")) + "</p>")

    def link(run: dict[str, Any]) -> html.Raw:
        path = certificate_path(run["dag_id"], run["run_id"])
        return html.Raw(
            f"<a href='{html.text(reader.href(path))}'>{html.text(run['run_id'])}</a> "
            f"(<a href='{html.text(reader.href(path, format='json'))}'>json</a>)"
        )

    def mode(dry_run: bool) -> html.Raw:
        return html.Raw(
            f"<span class='{'warn' if dry_run else 'ok'}'>{html.text(mode_words(dry_run, reader.lang))}</span>"
        )

    rows = [
        (reader.category(r["category"]), r["dag_id"], mode(r["dry_run"]), day_words(r["as_of"], reader.lang), link(r))
        for r in runs
    ]
    headers = (_("category"), _("DAG"), _("mode"), _("day of the run"), _("certificate"))
    return section("latest-runs", html.table(headers, rows))


@router.get("/certificates", response_class=HTMLResponse)
def certificates(reader: Reader = READER) -> HTMLResponse:
    """Every run that reached its summary, newest first."""
    _ = translator(reader.lang, "ui")
    target, trail = audit_log(reader.site, reader.policy)
    with target.read() as conn:
        runs = certificate.latest_runs(conn, trail) if store.table_exists(conn, trail) else []
    return page(reader, _("Run certificates"), runs_table(reader, runs), "certificates")


def certificate_path(dag_id: str, run_id: str) -> str:
    """The view's path of the certificate of ``dag_id``'s run ``run_id`` (for ``Reader.href``)."""
    return f"/certificates/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


@router.get("/certificates/{dag_id}/{run_id:path}", response_model=None)
def run_certificate(
    dag_id: str = Path(max_length=MAX_DAG_ID),
    run_id: str = Path(max_length=MAX_RUN_ID),
    format: Literal["html", "json"] = "html",
    reader: Reader = READER,
) -> HTMLResponse | JSONResponse:
    """The deletion certificate of ``dag_id``'s run ``run_id``, rebuilt from the log
    (``?format=json`` for machines). Both ids, since run ids are unique per DAG only; a DAG
    that is not one of this target's ``retention_<category>`` DAGs deletes nothing by the
    schedule and gets no certificate (404), whatever its runs logged."""
    valid_run_id(run_id)
    if not is_schedule_dag(reader.site, reader.policy, dag_id):
        if format == "json":
            raise HTTPException(404, f"{dag_id!r} is not a retention_<category> DAG of this target")
        return _not_a_schedule_dag(reader.lang, dag_id, status_code=404)
    target, trail = audit_log(reader.site, reader.policy)
    try:
        with target.read() as conn, site_folder(reader.site.reports_folder):
            if not store.table_exists(conn, trail):
                raise certificate.NoSuchRun(run_id)
            issued = certificate.build(conn, trail, reader.policy, run_id, dag_id)
    except certificate.NoSuchRun as exc:
        if format == "json":
            raise HTTPException(404, str(exc)) from exc
        return _no_such_run(reader.lang, dag_id, run_id)
    if format == "json":
        return JSONResponse(issued.to_dict())
    return HTMLResponse(certificate.render(issued, reader.lang))


def is_schedule_dag(site: Site, policy: RetentionPolicy, dag_id: str) -> bool:
    """Whether ``dag_id`` is one of ``site``'s ``retention_<category>`` DAGs: the runs a
    certificate is issued for."""
    return any(site.dag_id(f"retention_{key}") == dag_id for key in policy.categories)


def _schedule_dag(dag_id: str) -> tuple[Site, RetentionPolicy] | None:
    """The target whose ``retention_<category>`` DAG ``dag_id`` is, with its policy; None for any other DAG."""
    for site in served():
        policy = site.policy()
        if is_schedule_dag(site, policy, dag_id):
            return site, policy
    return None


@router.get("/run", response_class=HTMLResponse)
def run_tab(
    request: Request,
    dag_id: str = Query(max_length=MAX_DAG_ID),
    run_id: str = Query(max_length=MAX_RUN_ID),
    lang: str | None = LANG_PARAMETER,
) -> HTMLResponse:
    """The "Certificate" tab Airflow shows on every DAG run (``{DAG_ID}``, ``{RUN_ID}`` filled in
    by the UI): the run's certificate when it is a run of the schedule that has logged events,
    else a page that says why there is none."""
    valid_run_id(run_id)
    found = _schedule_dag(dag_id)
    if found is None:
        return _not_a_schedule_dag(language(lang, served()[0].policy().language), dag_id)
    site = found[0]
    reader = reader_from(request, site, lang)
    target, trail = audit_log(site, reader.policy)
    try:
        with target.read() as conn, site_folder(site.reports_folder):
            if not store.table_exists(conn, trail):
                raise certificate.NoSuchRun(run_id)
            issued = certificate.build(conn, trail, reader.policy, run_id, dag_id)
    except certificate.NoSuchRun:
        _ = translator(reader.lang, "ui")
        message = _(
            "The run {run} of {dag} has recorded nothing in the audit log yet: its certificate appears here "
            "once its tasks have started (the plan is its first event)."
        ).format(run=run_id, dag=dag_id)
        return _no_certificate(reader.lang, _("No certificate yet"), message)
    return HTMLResponse(certificate.render(issued, reader.lang))


def _not_a_schedule_dag(lang: str, dag_id: str, status_code: int = 200) -> HTMLResponse:
    """Why a run of ``dag_id`` has no certificate: its DAG does not apply the schedule."""
    _ = translator(lang, "ui")
    message = _(
        "The DAG {dag} does not apply the retention schedule: its runs have no deletion certificate. "
        "Certificates are issued for the runs of the retention_<category> DAGs."
    ).format(dag=dag_id)
    return _no_certificate(lang, _("No certificate for this run"), message, status_code)


def _no_such_run(lang: str, dag_id: str, run_id: str) -> HTMLResponse:
    """A certificate's address naming a run the log does not know: a 404 a person can read."""
    _ = translator(lang, "ui")
    message = _(
        "The audit log holds no event for the run {run} of {dag}: there is no certificate at this address. "
        "The list of run certificates links every recorded run."
    ).format(run=run_id, dag=dag_id)
    return _no_certificate(lang, _("No certificate for this run"), message, status_code=404)


def _no_certificate(lang: str, title: str, message: str, status_code: int = 200) -> HTMLResponse:
    """The page when there is no certificate to show: on the tab a page, not an error, since the
    tab is on every run of every DAG; a 404 at a certificate's own address."""
    body = section("run-certificate-missing", f"<p>{html.text(message)}</p>")
    return HTMLResponse(document(lang, title, body, page="run"), status_code=status_code)
