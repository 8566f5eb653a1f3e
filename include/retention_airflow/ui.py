"""The Retention view in the Airflow UI: the DPO's window on the audit trail.

A FastAPI app that the plugin in ``plugins/retention_view.py`` mounts under ``/retention``
in Airflow's API server. Pages: an overview (the chain status, the latest runs and the
re-consent campaigns), an audit browser (filter by category, action, date range, run), the
run certificates, the schedule, the legal holds, the chain status and the "was X erased?"
lookup.

Which target: the default one (connection ``retention_target``) when ``$RETENTION_TARGETS`` is
unset. A deployment that serves several targets names one on every page and API call with
``?target=<name>``: its policy, its connection and its folder of evidence under the reports
root; the pages' links keep it. Without it, the overview lists the targets to choose from and
every other route answers 400 naming them; a name not served answers 404.

Every route requires an authenticated Airflow user: the dependency is set on the app
itself, so a route added later cannot forget it. Anonymous requests get 401; Airflow's
read-only users (the DPO) see everything, and nothing here changes data. The lookup is a
POST form, so an identifier never lands in a URL or in the access log.

Two more app-wide rules, for the same reason: a POST (the lookup names a person) must come
from this server's own pages - its ``Origin`` (else ``Referer``) is this server; with
neither, only an explicit ``Authorization: Bearer`` token, which a browser never adds on
its own, is accepted - so another site cannot make a logged-in DPO's browser ask about
someone (403). And a bad parameter answers 400 naming it, never a 500.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, Form, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import Table

from include.retention.database import store
from include.retention.database.identifiers import IDENTIFIER_KINDS
from include.retention.database.identity import normalise
from include.retention.database.target import Target, connect
from include.retention.errors import RetentionError
from include.retention.files import reports_dir, site_folder
from include.retention.policy.model import RetentionPolicy
from include.retention.records import audit
from include.retention.records.audit import ACTIONS
from include.retention.records.holds import list_holds
from include.retention.reports import certificate, dpo_render, dpo_report, dpo_texts, html
from include.retention.rights.erased import Presence, was_erased
from include.retention_airflow.hooks import connection_url, subject_key, target_connection
from include.retention_airflow.targets import Site, TargetsError, sites

log = logging.getLogger(__name__)
PAGE_SIZE = 200
# Far beyond any audit log (two billion events), and small enough that the offset stays a
# 64-bit integer for every database: ?page=99999999999999999999 is a 400, not an overflow.
MAX_PAGE = 10_000_000
MAX_RUN_ID = 250  # Airflow's own limit on a run id
MAX_IDENTIFIER = 320  # an e-mail address is at most 254 characters; room for phone separators
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# -- request guards --------------------------------------------------------------------------


def _netloc(url: str) -> tuple[str, int] | None:
    """(host, port) of an http(s) URL, the port filled in; None for ``null`` or anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return parts.hostname.lower(), port or (443 if parts.scheme.lower() == "https" else 80)


def _own_origins(request: Request) -> set[tuple[str, int]]:
    """This server as the browser reached it (its ``Host``), and as configured (``[api] base_url``).

    A ``Host`` without a port matches either default port: behind a TLS-terminating proxy the
    server sees http while the browser's Origin says https, and both name this host."""
    from airflow.configuration import conf

    own: set[tuple[str, int]] = set()
    host = request.headers.get("host", "")
    parsed = _netloc(f"http://{host}") if host else None
    if parsed:
        explicit = ":" in host.rsplit("]", 1)[-1]
        own |= {parsed} if explicit else {(parsed[0], 80), (parsed[0], 443)}
    configured = _netloc(conf.get("api", "base_url", fallback="") or "")
    if configured:
        own.add(configured)
    return own


def _same_origin(request: Request) -> None:
    """Refuse a state-changing or person-identifying request that another site's page sent.

    Browsers add ``Origin`` to every POST (``null`` when hidden), and ``Referer`` unless told
    not to; they never add an ``Authorization`` header by themselves. So: the Origin, else
    the Referer, must be this server; with neither, only an explicit bearer token passes."""
    if request.method not in UNSAFE_METHODS:
        return
    for header in ("origin", "referer"):
        claimed = request.headers.get(header)
        if claimed is None:
            continue
        if _netloc(claimed) in _own_origins(request):
            return
        raise HTTPException(
            403,
            f"cross-origin {request.method} refused: the {header.capitalize()} header "
            f"{claimed[:200]!r} is not this server; use the form on this server's own page",
        )
    if request.headers.get("authorization", "").lower().startswith("bearer "):
        return
    raise HTTPException(
        403,
        f"cross-origin {request.method} refused: a request authenticated by the session "
        "cookie must carry an Origin or Referer header naming this server",
    )


app = FastAPI(
    title="Retention",
    dependencies=[Depends(get_user), Depends(_same_origin)],
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


@app.exception_handler(RequestValidationError)
async def _bad_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
    """400 naming each bad parameter (FastAPI's default is a 422 in its own words). A form
    field's value is not echoed: it may be the identifier of a person."""
    problems = []
    for error in exc.errors():
        where, name = (error["loc"][0], error["loc"][-1]) if len(error["loc"]) > 1 else ("", error["loc"][0])
        shown = (
            ""
            if where == "body" or "input" not in error or error["input"] is None
            else f" (got {str(error['input'])[:100]!r})"
        )
        problems.append(f"{name}: {error['msg']}{shown}")
    return JSONResponse({"detail": "bad parameter " + "; ".join(problems)}, status_code=400)


def _valid_run_id(run_id: str | None, parameter: str = "run_id") -> None:
    """A run id is printable text of at most 250 characters (Airflow's limit): a NUL byte
    would be a raw DataError on PostgreSQL."""
    if run_id is not None and any(ord(c) < 32 or ord(c) == 127 for c in run_id):
        raise HTTPException(400, f"bad parameter {parameter}: control characters are not allowed in a run id")


# -- resources -------------------------------------------------------------------------------


def _served() -> list[Site]:
    """The targets this deployment serves; a mistake in ``$RETENTION_TARGETS`` is a 503 naming it."""
    try:
        return sites()
    except TargetsError as exc:
        raise HTTPException(503, str(exc)) from exc


def _site(target: str | None = Query(None, max_length=40)) -> Site:
    """The target a request is about: ``?target=<name>`` among those served, or the default one
    when the deployment serves only it. 400 naming the served targets when one must be chosen,
    404 naming a target that is not served."""
    served = _served()
    names = [site.name for site in served if site.name is not None]
    if target is None:
        if not names:
            return served[0]
        raise HTTPException(
            400, f"bad parameter target: this deployment serves several targets, name one: {', '.join(names)}"
        )
    for site in served:
        if site.name is not None and site.name == target:
            return site
    raise HTTPException(
        404,
        f"target {target!r} is not served here; " + (f"served: {', '.join(names)}" if names else "leave target out"),
    )


# The ``site`` parameter of every route but the overview (which also lists the targets).
SERVED_SITE = Depends(_site)


def _policy(site: Site) -> RetentionPolicy:
    return site.policy()


@lru_cache(maxsize=4)
def _connect(url: str, archive_schema: str) -> Target:
    return connect(url, archive_schema)


def _target(site: Site, policy: RetentionPolicy) -> Target:
    """The target's connection (``site.conn_id``), read by the API server (secrets backends, env, DB)."""
    try:
        conn = target_connection(site.conn_id)
    except Exception as exc:  # Airflow raises its own NotFound type, version-dependent
        raise HTTPException(503, f"the Airflow connection {site.conn_id!r} is not defined") from exc
    return _connect(connection_url(conn), policy.archive_schema)  # a wrong type says so (ValueError)


def _audit_log(site: Site) -> tuple[RetentionPolicy, Target, Table]:
    """The policy, the target and its audit table: what every page reads."""
    policy = _policy(site)
    target = _target(site, policy)
    return policy, target, store.audit_table(target.archive_schema, policy.audit_table)


def _keep(site: Site) -> str:
    """The query string that keeps the served target in a link (empty for the default target)."""
    return "" if site.name is None else f"?target={quote(site.name)}"


def _page(request: Request, title: str, body: str, site: Site) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    links = [
        ("", "Overview"),
        ("/audit", "Audit log"),
        ("/certificates", "Run certificates"),
        ("/schedule", "Schedule"),
        ("/holds", "Legal holds"),
        ("/chain", "Chain status"),
        ("/lookup", "Was X erased?"),
    ]
    nav = (
        "<nav>"
        + "".join(
            f"<a href='{html.text((root + path + '/' if not path else root + path) + _keep(site))}'>{label}</a>"
            for path, label in links
        )
        + "</nav>"
    )
    shown = title if site.name is None else f"{title} - {site.name}"
    return HTMLResponse(html.page(shown, body, nav=nav))


# -- pages -----------------------------------------------------------------------------------


@app.get("/", response_class=HTMLResponse)
def overview(request: Request, target: str | None = Query(None, max_length=40)) -> HTMLResponse:
    """The audit log's chain status (the verdict of the daily verification, computed now),
    its last event, the latest runs and the re-consent campaigns. With several targets served
    and none named: the list of targets to choose from."""
    served = _served()
    if target is None and served[0].name is not None:
        return _picker(request, served)
    site = _site(target)
    policy, db, trail = _audit_log(site)
    today = datetime.now(policy.zone).date()
    with db.read() as conn, site_folder(site.reports_folder):
        status = certificate.chain_status(conn, trail)
        exists = status.events > 0
        last = audit.latest_events(conn, trail, limit=1) if exists else []
        runs = certificate.latest_runs(conn, trail, limit=10) if exists else []
        refusals = (
            audit.events(conn, trail, trail.c.details.like('%"refused"%'), action="reconsent_answer") if exists else []
        )
        campaigns = dpo_report.campaigns(conn, db.archive_schema, policy, today, refusals)
    root = request.scope.get("root_path", "")
    latest = (
        (
            f"<p>Last audit event <b>#{last[0]['event_id']}</b>, recorded "
            f"{last[0]['recorded_at']:%Y-%m-%d %H:%M} UTC, hash <code>{last[0]['event_hash']}</code>. "
            f"<a href='{html.text(root + '/chain' + _keep(site))}'>Chain status in detail</a>.</p>"
        )
        if last
        else "<p>The audit log is empty: no run has been recorded yet.</p>"
    )
    body = (
        f"<p>Policy version <b>{html.text(policy.version)}</b>, {len(policy.categories)} categories.</p>"
        f"<h2>Audit log</h2>{_status_line(status)}{latest}"
        f"<h2>Latest runs</h2>{_runs_table(request, runs, site)}"
        f"<h2>Re-consent campaigns</h2><p>Every ask recorded so far, and where it stands on {today} (the "
        "DPO report counts those of its period). Delivered: handed to the mail server; not asked: no usable "
        "address, or on the suppression list; a yes restarts the clock, a no is an opposition, no answer "
        "once the links expired lets the schedule go on.</p>"
        f"{dpo_render.campaigns_section(policy, campaigns, 'en')}"
    )
    return _page(request, "Retention", body, site)


def _picker(request: Request, served: list[Site]) -> HTMLResponse:
    """The overview of a deployment that serves several targets, before one is chosen."""
    root = request.scope.get("root_path", "")
    items = "".join(
        f"<li><a href='{html.text(root + '/' + _keep(site))}'>{html.text(site.name or '')}</a></li>" for site in served
    )
    body = f"<p>This deployment serves several target databases. Choose one:</p><ul>{items}</ul>"
    return HTMLResponse(html.page("Retention", body))


@app.get("/audit", response_class=HTMLResponse)
def audit_browser(
    request: Request,
    category: str | None = Query(None, max_length=100),
    action: str | None = Query(None, max_length=100),
    run_id: str | None = Query(None, max_length=MAX_RUN_ID),
    date_from: date | None = None,
    date_to: date | None = None,
    page: int = Query(0, ge=0, le=MAX_PAGE),
    site: Site = SERVED_SITE,
) -> HTMLResponse:
    """Events, newest first, filtered; ``date_from``/``date_to`` are days the events were recorded (UTC)."""
    _valid_run_id(run_id)
    policy = _policy(site)
    if category and category not in policy.categories:
        raise HTTPException(400, f"unknown category {category!r}; known: {', '.join(policy.categories)}")
    if action and action not in ACTIONS:
        raise HTTPException(400, f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    if date_from and date_to and date_to < date_from:
        raise HTTPException(400, f"date_to ({date_to}) is before date_from ({date_from})")
    _, target, trail = _audit_log(site)
    conditions = [
        trail.c[name] == value
        for name, value in (("category", category), ("action", action), ("run_id", run_id))
        if value
    ]
    if date_from:
        conditions.append(trail.c.recorded_at >= datetime.combine(date_from, time(), UTC))
    if date_to and date_to < date.max:  # up to 9999-12-31: no upper bound (the day after does not exist)
        conditions.append(trail.c.recorded_at < datetime.combine(date_to + timedelta(days=1), time(), UTC))
    with target.read() as conn:
        found = (
            audit.latest_events(conn, trail, *conditions, limit=PAGE_SIZE, offset=page * PAGE_SIZE)
            if store.table_exists(conn, trail)
            else []
        )
    rows = [
        (
            e["event_id"],
            e["recorded_at"].strftime("%Y-%m-%d %H:%M:%S"),
            e["category"],
            e["action"],
            e["table_name"],
            e["row_count"],
            e["dry_run"],
            e["run_id"],
            e["policy_version"],
            e["as_of"].isoformat(),
            (e["subject_hash"] or "")[:12],
            html.Raw(f"<code>{html.text(json.dumps(e['details']))}</code>"),
        )
        for e in found
    ]
    body = (
        _filters_form(site, policy, category, action, run_id, date_from, date_to)
        + html.table(
            (
                "#",
                "recorded (UTC)",
                "category",
                "action",
                "table",
                "rows",
                "dry run",
                "run",
                "policy",
                "as of",
                "subject (hash)",
                "details",
            ),
            rows,
        )
        + f"<p>{len(rows)} event(s) shown (page {page}, {PAGE_SIZE} per page).</p>"
    )
    return _page(request, "Audit log", body, site)


def _filters_form(
    site: Site,
    policy: RetentionPolicy,
    category: str | None,
    action: str | None,
    run_id: str | None,
    date_from: date | None,
    date_to: date | None,
) -> str:
    def options(values: Any, chosen: str | None) -> str:
        return "<option value=''>any</option>" + "".join(
            f"<option{' selected' if v == chosen else ''}>{html.text(v)}</option>" for v in values
        )

    return (
        "<form method='get'>"
        + ("" if site.name is None else f"<input type='hidden' name='target' value='{html.text(site.name)}'>")
        + f"<label>Category <select name='category'>{options(policy.categories, category)}</select></label>"
        f"<label>Action <select name='action'>{options(ACTIONS, action)}</select></label>"
        f"<label>Run <input name='run_id' value='{html.text(run_id or '')}' size='40'></label>"
        f"<label>From <input type='date' name='date_from' value='{date_from or ''}'></label>"
        f"<label>To <input type='date' name='date_to' value='{date_to or ''}'></label>"
        "<button>Filter</button></form>"
    )


@app.get("/certificates", response_class=HTMLResponse)
def certificates(request: Request, site: Site = SERVED_SITE) -> HTMLResponse:
    _, target, trail = _audit_log(site)
    with target.read() as conn:
        runs = certificate.latest_runs(conn, trail) if store.table_exists(conn, trail) else []
    return _page(request, "Run certificates", _runs_table(request, runs, site), site)


@app.get("/certificates/{run_id}", response_model=None)
def run_certificate(
    request: Request,
    run_id: str = Path(max_length=MAX_RUN_ID),
    format: Literal["html", "json"] = "html",
    site: Site = SERVED_SITE,
) -> HTMLResponse | JSONResponse:
    """One run's deletion certificate, rebuilt from the log (``?format=json`` for machines)."""
    _valid_run_id(run_id)
    policy, target, trail = _audit_log(site)
    try:
        with target.read() as conn, site_folder(site.reports_folder):
            issued = certificate.build(conn, trail, policy, run_id)
    except certificate.NoSuchRun as exc:
        raise HTTPException(404, str(exc)) from exc
    if format == "json":
        return JSONResponse(issued.to_dict())
    return HTMLResponse(certificate.render(issued))


@app.get("/schedule", response_class=HTMLResponse)
def schedule(request: Request, lang: str = Query("en", max_length=10), site: Site = SERVED_SITE) -> HTMLResponse:
    if lang not in dpo_texts.LANGUAGES:
        raise HTTPException(400, f"bad parameter lang: language {lang!r}: use one of {', '.join(dpo_texts.LANGUAGES)}")
    policy = _policy(site)
    other = "fr" if lang == "en" else "en"
    keep = "" if site.name is None else f"&target={quote(site.name)}"
    body = (
        f"<p>Policy version <b>{html.text(policy.version)}</b> ({html.text(policy.source)}). "
        f"<a href='{html.text(f'?lang={other}{keep}')}'>{other.upper()}</a></p>"
        + dpo_render.schedule_table(policy, lang)
    )
    return _page(request, "Retention schedule", body, site)


@app.get("/holds", response_class=HTMLResponse)
def legal_holds(request: Request, site: Site = SERVED_SITE) -> HTMLResponse:
    """The legal-hold register: every hold, in force or not, with its reason (for the DPO; the
    audit log and the reports carry only references). Holds are changed by the legal_hold DAG."""
    policy, target, _ = _audit_log(site)
    today = datetime.now(policy.zone).date()
    with target.read() as conn:
        holds = list_holds(conn, target.archive_schema, today)
    rows = [
        (
            h.reference,
            h.status.replace("_", " "),
            h.scope,
            h.category or h.table or "",
            h.items,
            h.reason,
            h.created_by,
            f"{h.created_at.astimezone(policy.zone):%Y-%m-%d}" if h.created_at else "",
            h.expires_on.isoformat() if h.expires_on else "until lifted",
            h.lifted_by or "",
        )
        for h in holds
    ]
    table = (
        html.table(
            (
                "reference",
                "status",
                "scope",
                "category / table",
                "items",
                "reason",
                "requested by",
                "created",
                "expires",
                "lifted by",
            ),
            rows,
            row_class=lambda r: "ok" if r[1] == "in force" else "",
        )
        if rows
        else "<p>No legal hold recorded.</p>"
    )
    body = (
        f"<p>{sum(h.status == 'in_force' for h in holds)} hold(s) in force on {today}. Held rows are never "
        "archived, deleted or anonymised. Add, list or lift holds with the <code>legal_hold</code> DAG.</p>" + table
    )
    return _page(request, "Legal holds", body, site)


@app.get("/chain", response_class=HTMLResponse)
def chain_status(request: Request, site: Site = SERVED_SITE) -> HTMLResponse:
    with site_folder(site.reports_folder):  # the folder the page names is the target's
        return _page(request, "Audit chain status", _chain_html(_verify(site)), site)


@app.get("/api/chain")
def chain_status_json(site: Site = SERVED_SITE) -> dict[str, Any]:
    """For monitoring: ``intact`` is the daily verification's verdict (chain and certificates)."""
    return _verify(site).to_dict()


def _verify(site: Site) -> certificate.ChainStatus:
    """``certificate.chain_status``: the one verdict, shared with retention_audit_verify and the
    demo, against the target's own certificates and anchors."""
    _, target, trail = _audit_log(site)
    with target.read() as conn, site_folder(site.reports_folder):
        return certificate.chain_status(conn, trail)


@app.get("/lookup", response_class=HTMLResponse)
def lookup_form(request: Request, site: Site = SERVED_SITE) -> HTMLResponse:
    return _page(request, "Was X erased?", _lookup_form(), site)


@app.post("/lookup", response_class=HTMLResponse)
def lookup(
    request: Request,
    kind: str = Form(..., max_length=50),
    identifier: str = Form(..., max_length=MAX_IDENTIFIER),
    site: Site = SERVED_SITE,
) -> HTMLResponse:
    """Hash the identifier with the subject key; count the person's rows now; list events about them."""
    if kind not in IDENTIFIER_KINDS:
        raise HTTPException(
            400, f"bad parameter kind: unknown identifier kind {kind!r}; known: {', '.join(IDENTIFIER_KINDS)}"
        )
    try:
        normalise(kind, identifier)
    except RetentionError as exc:  # the message names the kind, never the value
        page = _page(request, "Was X erased?", f"<p class='ko'>identifier: {html.text(exc)}</p>{_lookup_form()}", site)
        page.status_code = 400
        return page
    policy = _policy(site)
    try:
        key = subject_key()
    except RetentionError as exc:
        raise HTTPException(503, str(exc)) from exc
    try:
        answer = was_erased(_target(site, policy), policy, key, kind, identifier)
    except RetentionError as exc:
        return _page(request, "Was X erased?", f"<p class='ko'>{html.text(exc)}</p>{_lookup_form()}", site)
    css = {"erased": "ok", "none_held": "ok", "erased_except_kept": "warn", "archived": "warn", "active": "ko"}[
        answer.verdict
    ]
    presence = html.table(
        ("category", "table", "kind of record", "active rows", "archived rows", "kept"),
        [(p.category, p.table, RECORD_KINDS_SHOWN[p.kind], p.active, p.archived, _kept(p)) for p in answer.presence],
    )
    events = html.table(
        ("#", "recorded (UTC)", "action", "category", "table", "rows", "run"),
        [
            (
                e["event_id"],
                e["recorded_at"].strftime("%Y-%m-%d %H:%M"),
                e["action"],
                e["category"],
                e["table_name"],
                e["row_count"],
                e["run_id"],
            )
            for e in answer.events
        ],
    )
    body = (
        f"<p class='{css}'><b>{html.text(answer.sentence())}</b></p>"
        f"<p>Keyed hash of the {html.text(kind)}: <code>{answer.subject_hash}</code></p>"
        f"<h2>Rows about this person now, per kind of record</h2>{presence}"
        "<p><small>The person's data: their rows in the active base and the restricted archive. Kept by legal "
        "obligation: their rows in a category an erasure keeps (<code>on_erasure: keep</code>, e.g. invoices), "
        "or archived rows a record of another category still needs (a customer row its kept invoices point at), "
        "kept as long as that record. Records of another category attached to theirs: rows of another category "
        "archived with theirs (<code>archived_with</code>, e.g. their invoices), kept on that category's "
        "own clock. "
        "Evidence of a request: the rights-request register entry, kept to prove the request was handled, "
        "then destroyed with its category.</small></p>"
        f"<h2>Events logged about this person</h2>{events}{_lookup_form()}"
    )
    return _page(request, "Was X erased?", body, site)


RECORD_KINDS_SHOWN = {
    "personal_data": "the person's data",
    "kept_by_obligation": "kept by legal obligation",
    "request_evidence": "evidence of a request (register)",
    "retained_dependant": "record of another category attached to theirs (archived_with)",
}


def _kept(presence: Presence) -> str:
    """Until when, and for which category's obligation when another category keeps the rows."""
    until = presence.horizon.text() if presence.horizon else ""
    return f"{until} (needed by kept records of {presence.kept_for})" if presence.kept_for else until


def _lookup_form() -> str:
    kinds = "".join(f"<option>{k}</option>" for k in IDENTIFIER_KINDS)
    return (
        "<form method='post'><label>Identifier <select name='kind'>" + kinds + "</select></label>"
        "<label><input name='identifier' size='40' autocomplete='off' required></label>"
        "<button>Look up</button></form><p><small>The identifier is hashed with the subject key and "
        "compared in the database; it is neither stored nor logged.</small></p>"
    )


def _status_line(status: certificate.ChainStatus) -> str:
    return f"<p class='{'ok' if status.intact else 'ko'}'><b>Audit log {html.text(status.sentence())}</b></p>"


def _chain_html(status: certificate.ChainStatus) -> str:
    """The verdict, then what it was checked against."""
    facts = html.table(
        ("", ""),
        [
            ("Audit log", status.audit_log),
            ("Events read", status.events),
            ("Hash chain", "holds" if status.chain_holds else f"breaks at event {status.broken_at}: {status.reason}"),
            ("Run certificates compared", f"{status.certificates} (under {reports_dir()})"),
            ("Hashes that do not match", len(status.mismatches)),
            ("Certificates of other audit logs, left aside", status.other_logs),
        ],
    )
    mismatches = "".join(f"<li>{html.text(m)}</li>" for m in status.mismatches[:50])
    return (
        _status_line(status)
        + facts
        + (f"<ul>{mismatches}</ul>" if mismatches else "")
        + "<p>The same verdict as the daily <code>retention_audit_verify</code> DAG: the hash chain is "
        "recomputed, then the first and last hash each run certificate copied outside the database are "
        "compared with the log (a log rewritten with recomputed hashes is caught only there).</p>"
    )


def _runs_table(request: Request, runs: list[dict[str, Any]], site: Site) -> str:
    root = request.scope.get("root_path", "")
    keep = "" if site.name is None else f"&target={quote(site.name)}"

    def link(run_id: str) -> html.Raw:
        href = f"{root}/certificates/{quote(run_id, safe='')}"
        return html.Raw(
            f"<a href='{html.text(href + _keep(site))}'>{html.text(run_id)}</a> "
            f"(<a href='{html.text(href + '?format=json' + keep)}'>json</a>)"
        )

    rows = [(r["as_of"].isoformat(), r["category"], r["dag_id"], r["dry_run"], link(r["run_id"])) for r in runs]
    return html.table(("as of", "category", "DAG", "dry run", "certificate"), rows)
