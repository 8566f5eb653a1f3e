""" "Tonight": what the next scheduled run of each category will do, before it runs.

Per category, the forecast of its next run (``schedule.tonight.forecast``: the plan's own
counts, read-only, nothing written) for the day that run counts for (``next_runs``): rows due
for the archive, due for destruction (deleted or anonymised), kept by a legal hold, waiting for
the re-consent ask, the defects (rows that cannot be aged), and the tables whose removals pass
the deletion limit (the run will wait for a person's approval). A category that cannot be
counted shows its problem; the others are still counted. A paused DAG runs nothing: it says
so, and shows what a run on its day would do.

Stable hooks: ``section#tonight`` (one ``tr`` per category with ``data-category``, and
``data-problem='yes'`` when it could not be counted), ``p#tonight-timing``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.api_fastapi.common.db.common import SessionDep
from babel.numbers import format_decimal
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from include.retention.dates.words import day_words
from include.retention.language import translator
from include.retention.reports import html
from include.retention.schedule.tonight import CategoryForecast, forecast
from include.retention_airflow.hooks import optional_subject_key
from include.retention_airflow.ui.layout import badge, number, page, section
from include.retention_airflow.ui.next_runs import NextRun, next_runs
from include.retention_airflow.ui.reader import READER, Reader
from include.retention_airflow.ui.served import target_of

router = APIRouter()


@router.get("/tonight", response_class=HTMLResponse)
def tonight(session: SessionDep, reader: Reader = READER) -> HTMLResponse:
    _ = translator(reader.lang, "ui")
    policy = reader.policy
    target = target_of(reader.site, policy)
    today = datetime.now(policy.zone).date()
    dags = {key: reader.site.dag_id(f"retention_{key}") for key in policy.categories}
    runs = next_runs(session, list(dags.values()))
    key = optional_subject_key()
    forecasts = [
        (
            runs[dags[category]],
            forecast(target, policy, category, runs[dags[category]].day(policy.zone, today), subject_key=key),
        )
        for category in policy.categories
    ]
    seconds = sum(f.seconds for _run, f in forecasts)
    intro = _(
        "What the next scheduled run of each category will do, counted now as its plan counts (a preview: "
        "nothing is written). Counts change until the run starts."
    )
    timing = _("Counted in {seconds} s.").format(seconds=format_decimal(seconds, "0.0", locale=reader.lang))
    body = (
        f"<p>{html.text(intro)}</p>"
        + section("tonight", _table(reader, forecasts))
        + f"<p id='tonight-timing' class='muted'>{html.text(timing)}</p>"
    )
    return page(reader, _("Tonight"), body, "tonight")


def _when(reader: Reader, run: NextRun) -> str:
    """The next run in words, or why there is none."""
    _ = translator(reader.lang, "ui")
    if not run.known:
        return badge(_("not in Airflow yet: the DAG has not been parsed"), "warn")
    if run.paused:
        return badge(_("paused: nothing will run"), "off")
    if run.logical_date is None:
        return badge(_("no run scheduled"), "off")
    return html.text(reader.moment(run.logical_date))


def _table(reader: Reader, forecasts: list[tuple[NextRun, CategoryForecast]]) -> str:
    _ = translator(reader.lang, "ui")
    headers = (
        _("category"),
        _("next run"),
        _("day counted"),
        _("due for the archive"),
        _("due for destruction"),
        _("kept by a legal hold"),
        _("waiting for approval"),
        _("defects (no start date)"),
        _("waiting for the re-consent ask"),
    )
    head = "".join(f"<th>{html.text(h)}</th>" for h in headers)
    rows = "".join(_row(reader, run, f) for run, f in forecasts)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _row(reader: Reader, run: NextRun, f: CategoryForecast) -> str:
    _ = translator(reader.lang, "ui")
    start = (
        f"<tr data-category='{html.text(f.category)}'{' data-problem=yes class=bad' if f.problem else ''}>"
        f"<td>{html.text(reader.category(f.category))}<br><small><code>{html.text(run.dag_id)}</code></small></td>"
        f"<td>{_when(reader, run)}</td><td>{html.text(day_words(f.as_of, reader.lang))}</td>"
    )
    if f.problem:
        problem = _("Cannot be counted: {problem}").format(problem=f.problem)
        return start + f"<td colspan='6' class='ko'>{html.text(problem)}</td></tr>"
    archive = html.cell(f.due_for_archive) if f.has_archive else "<td>" + html.text(_("no archive")) + "</td>"
    action = _("anonymised") if f.end_action == "anonymize" else _("deleted")
    destroyed = f"<td class='n'>{number(f.due_for_end_of_life)} <small>{html.text(action)}</small></td>"
    approval = (
        "<td class='warn'>"
        + html.text(_("yes: {tables} pass the deletion limit").format(tables=", ".join(f.over_limit)))
        + "</td>"
        if f.over_limit
        else "<td>" + html.text(_("no")) + "</td>"
    )
    return (
        start
        + archive
        + destroyed
        + html.cell(f.held)
        + approval
        + html.cell(f.missing_start)
        + html.cell(f.waiting_for_reconsent)
        + "</tr>"
    )
