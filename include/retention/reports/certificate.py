"""Deletion certificates: one per DAG run, the DPO's evidence of what that run did.

A certificate is derived from the audit log alone (``build``), so it can be issued again
at any time and checked against the log: it names the first and last event of the run
and their hashes, and ``verify_chain`` proves those events were not altered since. It
says, per table, how many rows were archived, deleted, anonymised, held back (kept
active by an open related row or retained for an archived dependant), kept by a legal
hold, quarantined (no start date: cannot be aged, waiting for a person to fix it), and
waiting for re-consent (past their active period, kept until the person is asked, as the
charter promises: at most the category's ``notice_days``), and which checks ran with their
results. Like the log, it holds counts and names, no personal data.

``write`` renders it as JSON (for machines) and HTML (for people) under
``reports/<dag_id>/<run id, readable>~<hash of the run id>.certificate.{json,html}`` (``paths``):
the reports folder (``files.reports_dir``) is a local folder or a place in object storage.

A certificate names the audit log it was taken from (``audit_log``: database and table,
never credentials), so that its hashes are only ever compared with that log: several
targets may share a reports folder, and a target that is recreated (the demo) takes its
certificates with it. ``chain_status`` is the one verdict on a log - hash chain,
certificates and the daily anchors (``anchors.py``) together - that every screen, report
and the daily verification show.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from include.retention.database import store
from include.retention.dates.words import day_words, moment_words
from include.retention.errors import RetentionError
from include.retention.files import Location, folder_missing, reports_dir, unique_name, write_new, write_whole
from include.retention.language import (
    DEFAULT_LANGUAGE,
    N_,
    SOURCE_LANGUAGE,
    Language,
    Translate,
    checked,
    translations,
    translator,
)
from include.retention.policy.model import RetentionPolicy
from include.retention.records import anchors as anchor_files
from include.retention.records import audit
from include.retention.reports import html
from include.retention.schedule.context import StepContext

_DESTRUCTIVE = ("archive", "delete", "anonymize")


@dataclass
class TableOutcome:
    table: str
    archived: int = 0
    deleted: int = 0
    anonymized: int = 0
    held: int = 0
    legal_hold: int = 0
    quarantined: int = 0
    waiting_for_reconsent: int = 0  # past their active period, waiting for the re-consent ask


@dataclass(frozen=True)
class CheckOutcome:
    suite: str
    table: str | None
    check: str
    success: bool
    blocking: bool
    unexpected_rows: int


@dataclass
class Certificate:
    category: str
    category_label: str
    dag_id: str
    run_id: str
    as_of: date
    policy_version: str
    dry_run: bool
    completed: bool  # the run reached its summary, and every check passed
    approved_past_limit: int | None  # rows a person approved past the deletion limit (None: within it)
    first_event: int
    last_event: int
    first_hash: str
    last_hash: str
    issued_at: datetime
    # The log the hashes belong to (``log_identity``); "" on certificates written before it existed.
    audit_log: str = ""
    tables: list[TableOutcome] = field(default_factory=list)
    checks: list[CheckOutcome] = field(default_factory=list)
    # When rows waited for re-consent: how many days past its period end the promise may keep a row.
    reconsent_notice_days: int | None = None
    # How a person is shown it, from the policy when it was built (``PRESENTATION``): the
    # language its files are written in, the zone its instants are read in, the category's
    # name in each language.
    language: Language = DEFAULT_LANGUAGE
    timezone: str = "Europe/Paris"
    category_labels: dict[str, str] = field(default_factory=dict)

    @property
    def waiting_for_reconsent(self) -> int:
        return sum(t.waiting_for_reconsent for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly. The re-consent keys appear only when rows waited: the certificate of a
        run that kept nobody waiting reads, and compares (``write``), as it always did."""
        data = {key: value for key, value in asdict(self).items() if key not in PRESENTATION}
        data["as_of"] = self.as_of.isoformat()
        data["issued_at"] = self.issued_at.isoformat()
        if not self.waiting_for_reconsent:
            del data["reconsent_notice_days"]
            for table in data["tables"]:
                del table["waiting_for_reconsent"]
        return data


# Not evidence of what the run did, so not in the JSON: a certificate issued again compares
# (``write``) with the one written before these existed.
PRESENTATION = ("language", "timezone", "category_labels")


class NoSuchRun(LookupError):
    """The audit log holds no event for this run."""


def build(
    conn: Connection, table: Table, policy: RetentionPolicy, run_id: str, dag_id: str | None = None
) -> Certificate:
    """The certificate of ``run_id``, from its events in the audit log; of ``dag_id``'s run when
    given (run ids are unique per DAG only: the Retention view's run tab knows both)."""
    logged = audit.events(conn, table, run_id=run_id, **({} if dag_id is None else {"dag_id": dag_id}))
    if not logged:
        of_dag = "" if dag_id is None else f" of DAG {dag_id!r}"
        raise NoSuchRun(f"the audit log holds no event for run {run_id!r}{of_dag}")
    first, last = logged[0], logged[-1]
    category = policy.categories.get(first["category"])
    checks = [_check(e) for e in logged if e["action"] == "validation"]
    tables = _tables(logged)
    waited = any(t.waiting_for_reconsent for t in tables)
    return Certificate(
        category=first["category"],
        category_label=category.label.en if category else first["category"],
        dag_id=first["dag_id"],
        run_id=run_id,
        as_of=first["as_of"],
        policy_version=first["policy_version"],
        dry_run=first["dry_run"],
        # Checks that do not block (a dry run's overdue rows: nothing was meant to move) are
        # listed, but do not make the run incomplete.
        completed=any(e["action"] == "run_summary" for e in logged)
        and all(c.success or not c.blocking for c in checks)
        and _summary_says_complete(logged),
        approved_past_limit=next((e["row_count"] for e in logged if e["action"] == "approval"), None),
        first_event=first["event_id"],
        last_event=last["event_id"],
        first_hash=first["event_hash"],
        last_hash=last["event_hash"],
        issued_at=datetime.now(UTC),
        audit_log=log_identity(conn, table),
        tables=tables,
        checks=checks,
        reconsent_notice_days=category.reconsent.notice_days if waited and category and category.reconsent else None,
        language=policy.language,
        timezone=policy.timezone,
        category_labels=category.label.model_dump() if category else {},
    )


def _summary_says_complete(logged: list[dict[str, Any]]) -> bool:
    summary = next(e for e in reversed(logged) if e["action"] == "run_summary")
    return not summary["details"].get("incomplete")


def _check(event: dict[str, Any]) -> CheckOutcome:
    details = event["details"]
    return CheckOutcome(
        details.get("suite", ""),
        event["table_name"],
        details.get("expectation", ""),
        bool(details.get("success")),
        bool(details.get("blocking", True)),
        event["row_count"],
    )


def _tables(logged: list[dict[str, Any]]) -> list[TableOutcome]:
    """Per table, in the order the run met them: counts of what was done and what was kept."""
    outcomes: dict[str, TableOutcome] = {}

    def outcome(name: str) -> TableOutcome:
        return outcomes.setdefault(name, TableOutcome(name))

    for event in logged:
        name, details = event["table_name"], event["details"]
        if name is None:
            continue
        if event["action"] == "plan":
            kept = details.get("kept_for_dependants", {})  # per dependant table: {"rows": ..., ...}
            outcome(name).held += details.get("held_open", 0) + sum(k["rows"] for k in kept.values())
            outcome(name).legal_hold += details.get("legal_hold_due", 0) + details.get("legal_hold_end_of_life", 0)
            outcome(name).quarantined += details.get("missing_start", 0)
            outcome(name).waiting_for_reconsent += details.get("waiting_for_reconsent", 0)
            for child in details.get("children", {}):
                outcome(child)
        elif event["action"] in _DESTRUCTIVE and not event["dry_run"]:
            counted = {"archive": "archived", "delete": "deleted", "anonymize": "anonymized"}[event["action"]]
            setattr(outcome(name), counted, getattr(outcome(name), counted) + event["row_count"])
    return list(outcomes.values())


def latest_runs(conn: Connection, table: Table, limit: int = 200) -> list[dict[str, Any]]:
    """The most recent runs that reached their summary: the certificates one can issue."""
    rows = conn.execute(
        select(
            table.c.run_id,
            table.c.dag_id,
            table.c.category,
            table.c.as_of,
            table.c.dry_run,
            func.max(table.c.event_id).label("last_event"),
        )
        .where(table.c.action == "run_summary")
        .group_by(table.c.run_id, table.c.dag_id, table.c.category, table.c.as_of, table.c.dry_run)
        .order_by(func.max(table.c.event_id).desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in rows]


def paths(dag_id: str, run_id: str) -> tuple[Location, Location]:
    """Where the certificate of ``run_id`` goes: ``<reports>/<dag_id>/<name>.certificate.{json,html}``.

    ``<name>`` is ``report.unique_name(run_id)``: a readable prefix and a hash of the exact run
    id, so run ids that read alike (``...T10:00:00+00:00``, ``...T10_00_00_00_00``) never share
    a file, and a 250-character run id still makes a name the file system accepts.
    Certificates written before (``<run id with _>.certificate.json``) stay where they are:
    ``anchors`` reads every ``*.certificate.json``, whatever its name.
    """
    name = unique_name(run_id)
    folder = reports_dir() / _folder_name(dag_id)
    return folder / f"{name}.certificate.json", folder / f"{name}.certificate.html"


_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}$")


def _folder_name(dag_id: str) -> str:
    """The DAG's folder: its id as it is when that is a plain file name (every retention DAG:
    the folders certificates were always written to), else a unique bounded name."""
    return dag_id if _PLAIN_NAME.match(dag_id) else unique_name(dag_id)


def write(certificate: Certificate) -> tuple[Location, Location]:
    """Write the certificate as JSON and as HTML, once; return both paths.

    A certificate is evidence: a file is never replaced. Issued again with the same content
    (``issued_at`` aside), the file already there is kept; with other content (an old run's
    summary cleared and run again rebuilds it from the log as it is now), it goes to a new
    name, ``<name>-<n>.certificate.{json,html}``, beside the earlier one, whose hashes
    ``anchors`` still compares. Each file is written once (``files.write_new``: on a local
    disk, flushed and linked to its name, which fails rather than replace a file).

    A certificate of another audit log at the same path (two targets sharing a reports
    folder, with the same DAG and run id) is refused, not overwritten: it is that log's evidence.
    """
    json_path, html_path = paths(certificate.dag_id, certificate.run_id)
    if json_path.exists():
        existing = json.loads(json_path.read_text(encoding="utf-8")).get("audit_log", "")
        if existing and normal_identity(existing) != normal_identity(certificate.audit_log):
            raise RetentionError(
                f"{json_path} is the certificate of another audit log ({existing}), not of "
                f"{certificate.audit_log}: give each target its own $RETENTION_REPORTS_DIR"
            )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    content = json.dumps(certificate.to_dict(), indent=2, ensure_ascii=False) + "\n"
    stem = json_path.name.removesuffix(".certificate.json")
    for attempt in range(1000):
        name = f"{stem}-{attempt}" if attempt else stem
        json_at, html_at = (json_path.parent / f"{name}.certificate.{kind}" for kind in ("json", "html"))
        if json_at.exists():
            if _same_certificate(json_at, content):
                return json_at, html_at
            continue
        if not write_new(json_at, content.encode("utf-8")):
            continue  # taken meanwhile
        page = render(certificate, certificate.language).encode("utf-8")
        if not write_new(html_at, page):  # an HTML left without its JSON: this JSON's rendering
            write_whole(html_at, page)
        return json_at, html_at
    raise RetentionError(f"{json_path.parent}: 1000 certificates named {stem}: clean the folder of copies")


def _same_certificate(path: Location, content: str) -> bool:
    """Whether ``path`` holds this certificate, but for the instant it was issued."""
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return False
    return {**existing, "issued_at": None} == {**json.loads(content), "issued_at": None}


def _ngettext(lang: str) -> Callable[[str, str, int], str]:
    """The engine catalog's ``ngettext`` for ``lang``: the singular or plural text by the
    language's rule (called by that name so that ``make messages`` extracts both texts)."""
    return translations(checked(lang), "engine").ngettext


def status_text(c: Certificate, lang: str = DEFAULT_LANGUAGE) -> str:
    """What the run amounts to, in one line: a dry run that reports rows an executing run
    would move is complete, and says so, rather than looking like a failed run."""
    _, ngettext = translator(lang, "engine"), _ngettext(lang)
    if not c.completed:
        return _("INCOMPLETE: the run did not finish or a check failed")
    reported = sum(1 for k in c.checks if not k.success)
    if not reported:
        return _("completed, every check passed")
    if c.dry_run:
        return ngettext(
            "dry run completed, nothing was changed; {count} check reports the rows an executing run would act on",
            "dry run completed, nothing was changed; {count} checks report the rows an executing run would act on",
            reported,
        ).format(count=reported)
    return ngettext(
        "completed; {count} non-blocking check reported rows (listed below)",
        "completed; {count} non-blocking checks reported rows (listed below)",
        reported,
    ).format(count=reported)


def render(c: Certificate, lang: str | None = None) -> str:
    """The certificate as a self-contained HTML page, in ``lang`` (default: the policy's
    language, French unless it says otherwise); its instants on the policy's clocks."""
    lang = lang or c.language
    _ = translator(lang, "engine")
    label = c.category_labels.get(lang, c.category_label)
    waited = c.waiting_for_reconsent > 0
    passed = len(c.checks) - sum(1 for k in c.checks if not k.success)
    done = _("What was done, per table")
    checks = _("Checks ({passed} of {total} passed)").format(passed=passed, total=len(c.checks))
    body = (
        f"{_facts_table(c, label, lang)}<h2>{html.text(done)}</h2>"
        f"{_tables_table(c, waited, _)}<p>{html.text(_(_COUNTS_EXPLAINED))}</p>"
        f"{_waiting_paragraph(c, lang) if waited else ''}"
        f"<h2>{html.text(checks)}</h2>{_checks_table(c, _)}<p>{_derived_paragraph(_)}</p>"
    )
    return html.page(_title(c, label, lang), body, lang=lang)


def _title(c: Certificate, label: str, lang: str) -> str:
    """A preview changed nothing, so its page must not call itself a deletion certificate."""
    _ = translator(lang, "engine")
    if c.dry_run:
        title = _("Preview (nothing changed) - {category} - {day}")
    else:
        title = _("Deletion certificate - {category} - {day}")
    return title.format(category=label, day=day_words(c.as_of, lang))


_COUNTS_EXPLAINED = N_(
    "Held: rows past their date kept because an open related row or a retained dependant needs them. "
    "Legal hold: rows past their date that a legal hold (litigation, inquiry) keeps where they are. "
    "Quarantined: rows with no start date, which cannot be aged and wait for a person to fix them."
)


def _facts_table(c: Certificate, label: str, lang: str) -> str:
    """The run, what it was allowed to do, where its evidence is."""
    _ = translator(lang, "engine")
    status = f"<span class='{'ok' if c.completed else 'ko'}'>{html.text(status_text(c, lang))}</span>"
    if c.approved_past_limit is None:
        limit = _("within the limit")
    else:
        limit = _("passed: {count} removals approved by a person (task approve_deletions)").format(
            count=c.approved_past_limit
        )
    return html.table(
        ("", ""),
        [
            (_("Category"), f"{label} ({c.category})"),
            (_("Run"), c.run_id),
            ("DAG", c.dag_id),
            (_("Audit log"), c.audit_log or _("not named (certificate written before the log was named)")),
            (_("As of"), day_words(c.as_of, lang)),
            (_("Policy version"), c.policy_version),
            (_("Mode"), _("dry run: nothing was changed") if c.dry_run else _("executed")),
            (_("Status"), html.Raw(status)),
            (_("Deletion limit"), limit),
            (_("Audit events"), _("{first} to {last}").format(first=c.first_event, last=c.last_event)),
            (_("First event hash"), html.Raw(f"<code>{html.text(c.first_hash)}</code>")),
            (_("Last event hash"), html.Raw(f"<code>{html.text(c.last_hash)}</code>")),
            (_("Issued at"), moment_words(c.issued_at, lang, ZoneInfo(c.timezone))),
        ],
    )


def _tables_table(c: Certificate, waited: bool, _: Translate) -> str:
    headers = (_("table"), _("archived"), _("deleted"), _("anonymised"), _("held"), _("legal hold"), _("quarantined"))
    return html.table(
        headers + ((_("waiting for re-consent"),) if waited else ()),
        [
            (t.table, t.archived, t.deleted, t.anonymized, t.held, t.legal_hold, t.quarantined)
            + ((t.waiting_for_reconsent,) if waited else ())
            for t in c.tables
        ],
    )


def _checks_table(c: Certificate, _: Translate) -> str:
    failed = _("FAILED")
    return html.table(
        (_("suite"), _("table"), _("check"), _("result"), _("blocking"), _("rows failing")),
        [
            (
                k.suite,
                k.table,
                k.check,
                _("passed") if k.success else failed,
                _("yes") if k.blocking else _("no"),
                k.unexpected_rows,
            )
            for k in c.checks
        ],
        row_class=lambda r: "ko" if r[3] == failed else "",
    )


def _derived_paragraph(_: Translate) -> str:
    """Where the certificate comes from and how to check it (the DAG's name stays as it is)."""
    return html.text(
        _(
            "Derived from the audit log alone. The hashes above can be checked against the log's hash chain "
            "({dag}). Counts only: no personal data."
        )
    ).format(dag="<code>retention_audit_verify</code>")


def _waiting_paragraph(c: Certificate, lang: str) -> str:
    """What the waiting count means: the promise to ask before the data leaves, and how long
    it may delay the archive at most."""
    _, ngettext = translator(lang, "engine"), _ngettext(lang)
    days = c.reconsent_notice_days
    if days:
        bound = ngettext("at most {days} day (notice_days)", "at most {days} days (notice_days)", days)
    else:
        bound = _("at most the notice window (notice_days)")
    said = _(
        "{count} waiting for re-consent: rows past their active period that stay active until the person has "
        "been asked whether they still want commercial messages, as the charter promises. The promise delays "
        "the archive by {bound} past the end of the active period."
    )
    # The count and its name in bold: the sentence is escaped first, then the bold part put in.
    waiting, colon, rest = said.partition(":")
    return (
        f"<p><b>{html.text(waiting.format(count=c.waiting_for_reconsent))}</b>"
        f"{html.text(colon + rest.format(bound=bound.format(days=days)))}</p>"
    )


def issue(step: StepContext) -> tuple[Location, Location]:
    """Build the running step's certificate from the log and write it; return (json, html).

    By run id AND DAG: two categories on the same cron share a ``scheduled__...`` run id, and
    each run's certificate holds its own DAG's events only."""
    with step.target.read() as conn:
        certificate = build(conn, step.audit_table, step.policy, step.ctx.run_id, step.ctx.dag_id)
    return write(certificate)


def log_identity(conn: Connection, table: Table) -> str:
    """Which audit log ``table`` is, as the certificates name it: database and table, no
    credentials (the DPO's read-only role and the runs' role read the same log).

    ``sqlite:///<absolute path> archive.retention_audit``, or
    ``postgresql://<host>:<port>/<database> archive.retention_audit``. Spellings of one
    database that are cheap to tell apart are made one (``normal_identity``): the SQLite
    path with its links resolved, the host lower-cased, the default port filled in. Other
    names of one server (an alias, an IP address) stay apart: every component must reach
    the database by the same name, else ``chain_status`` says the log was NOT VERIFIED.
    """
    url = conn.engine.url
    backend = url.get_backend_name()
    if backend == "sqlite":
        where = f"sqlite:///{url.database or ''}"
    else:
        where = f"{backend}://{url.host or 'localhost'}:{url.port or ''}/{url.database}"
    return normal_identity(f"{where} {table.schema}.{table.name}" if table.schema else f"{where} {table.name}")


_DEFAULT_PORTS = {"postgresql": 5432}
_SERVER_IDENTITY = re.compile(r"(?P<backend>[a-z0-9+]+)://(?P<host>[^:/]*)(?::(?P<port>[0-9]*))?/(?P<rest>.*)")


def normal_identity(identity: str) -> str:
    """One spelling per audit log, for comparing a certificate's ``audit_log`` with the log:
    ``sqlite:///<path> <table>`` with the path made absolute and its links resolved
    (``os.path.realpath``); ``<backend>://<host>:<port>/<database> <table>`` with the host
    lower-cased (host names are case-insensitive) and the backend's default port filled in.
    Anything else is returned as it is."""
    where, _, name = identity.rpartition(" ")
    if not where:
        return identity
    if where.startswith("sqlite:///"):
        return f"sqlite:///{os.path.realpath(where[len('sqlite:///') :])} {name}"
    server = _SERVER_IDENTITY.fullmatch(where)
    if server is None:
        return identity
    backend = server["backend"].split("+")[0]
    port = server["port"] or str(_DEFAULT_PORTS.get(backend, ""))
    return f"{backend}://{(server['host'] or 'localhost').lower()}:{port}/{server['rest']} {name}"


@dataclass(frozen=True)
class Anchors:
    """The hashes to compare with one log: ``(event_id, event_hash, certificate or anchor
    file)``; how many run certificates and daily anchors (``anchors.py``) were compared, and
    how many of either were left aside as another log's."""

    hashes: list[tuple[int, str, str]]
    certificates: int
    other_logs: int
    other_log: str | None = None  # the log the first certificate (or anchor) left aside names
    daily: int = 0
    runs: frozenset[tuple[str, str]] = frozenset()  # (dag_id, run_id) of this log's certificates

    @property
    def anchored_to(self) -> int:
        """The last event an anchor covers (each hash covers every event before it)."""
        return max((event_id for event_id, _, _ in self.hashes), default=0)


def anchors(directory: Location | None = None, audit_log: str | None = None) -> Anchors:
    """The audit hashes named by the certificates and the daily anchors under ``directory``
    (default: the reports folder) that belong to ``audit_log`` (None: all of them), for
    ``audit.check_anchors``.

    A certificate that names no log (written before certificates named theirs) is compared:
    it can only come from the log its folder served. Certificates are found by their suffix
    in any folder, whatever naming wrote them (before names had a hash suffix, too).
    """
    found: list[tuple[int, str, str]] = []
    compared = others = daily = 0
    first_other: str | None = None
    wanted = normal_identity(audit_log) if audit_log is not None else None
    folder = directory or reports_dir()
    for anchor in anchor_files.read(folder):
        if wanted is not None and normal_identity(anchor.audit_log) != wanted:
            others += 1
            first_other = first_other or anchor.audit_log
            continue
        daily += 1
        found.append((anchor.last_event, anchor.last_hash, anchor.file))
    runs: set[tuple[str, str]] = set()
    for path in sorted(folder.glob("*/*.certificate.json"), key=lambda found: (found.parent.name, found.name)):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            _check_hashes(data)
        except (ValueError, KeyError, TypeError) as exc:
            raise RetentionError(
                f"{path} is not a run certificate that can be read ({exc!r}): restore it from a "
                "backup, or move it out of the reports folder if it is not one"
            ) from exc
        named = data.get("audit_log")
        if wanted is not None and named and normal_identity(str(named)) != wanted:
            others += 1
            first_other = first_other or str(named)
            continue
        compared += 1
        runs.add((str(data.get("dag_id", "")), str(data.get("run_id", ""))))
        found += [
            (data["first_event"], data["first_hash"], path.name),
            (data["last_event"], data["last_hash"], path.name),
        ]
    return Anchors(found, compared, others, first_other, daily, frozenset(runs))


_HASH = re.compile(r"[0-9a-f]{64}")


def _check_hashes(data: Any) -> None:
    """A certificate's event ids are integers >= 1 and its hashes SHA-256 hex digests: a null or
    a string there would otherwise crash the comparison, or compare as nothing."""
    for key in ("first_event", "last_event"):
        if type(data[key]) is not int or data[key] < 1:
            raise ValueError(f"{key} is {data[key]!r}, not an event id (an integer >= 1)")
    for key in ("first_hash", "last_hash"):
        if not isinstance(data[key], str) or not _HASH.fullmatch(data[key]):
            raise ValueError(f"{key} is not a SHA-256 hash (64 hex digits)")


@dataclass(frozen=True)
class ChainStatus:
    """Whether an audit log can be trusted: its hash chain holds, and it agrees with the
    hashes copied outside the database when they were written - its run certificates and
    its daily anchors (``chain_status``).

    ``broken_at``/``reason``: the first event that does not hold in the chain itself;
    ``mismatches``: anchored hashes the log no longer has (a log rewritten from the first
    event, hashes recomputed, or shortened by its last events, is consistent in itself and
    caught only there), or the log missing or empty though anchors name it;
    ``other_logs``/``other_log``: certificates and anchors set aside because they name
    another log (how many, and the first one's log), found in ``reports``;
    ``anchored_to``: the last event an anchor of this log covers; ``head_event``/``head_hash``:
    the last event verified, when the chain holds (what the daily verification anchors).
    """

    audit_log: str
    events: int
    broken_at: int | None = None
    reason: str = ""
    certificates: int = 0
    mismatches: tuple[str, ...] = ()
    other_logs: int = 0
    other_log: str | None = None
    reports: str = ""
    daily_anchors: int = 0
    anchored_to: int = 0
    head_hash: str = ""
    exists: bool = True  # False: the log's table is not there
    reports_missing: bool = False  # the reports folder is not there (unmounted, wrong path)
    missing_certificates: tuple[str, ...] = ()  # "<run id> (<dag id>)" of finished runs with no certificate

    @property
    def chain_holds(self) -> bool:
        return self.broken_at is None

    @property
    def head_event(self) -> int:
        return self.events if self.head_hash else 0

    @property
    def unverified(self) -> bool:
        """Nothing of this log was compared, though something should have been: a log with events
        and no reports folder (unmounted, a wrong ``$RETENTION_REPORTS_DIR``, a relative
        ``reports/`` read from another working directory), or a log - with events or none -
        whose certificates and anchors all name another log (the connection pointed at another
        database, or the same log under another name: a host alias, another mount path).
        A re-hashed log would pass unseen: it must not read as verified."""
        if self.reports_missing:
            return self.events > 0
        return not (self.certificates or self.daily_anchors) and self.other_logs > 0

    @property
    def intact(self) -> bool:
        return self.chain_holds and not self.mismatches and not self.unverified and not self.missing_certificates

    def sentence(self, lang: str = SOURCE_LANGUAGE) -> str:
        """One line for people: what every screen and the daily verification say. In English
        unless asked (the log line, the failure's message and the JSON ``status`` are read by
        engineers and machines); a page passes its reader's language. The details quoted from
        the verification (a broken event's reason, a mismatch) stay as the log check words them."""
        _ = translator(lang, "engine")
        if not self.chain_holds:
            return _("BROKEN: the hash chain does not hold at event {event}: {reason} ({events} events read)").format(
                event=self.broken_at, reason=self.reason, events=self.events
            )
        if self.mismatches and not self.events:
            verdict = _("EMPTIED") if self.exists else _("REMOVED")
            return _("{verdict}: {mismatch}").format(verdict=verdict, mismatch=self.mismatches[0])
        if self.mismatches:
            return _(
                "REWRITTEN: the log does not match the hashes its run certificates and daily anchors copied: "
                "{mismatch} ({count} mismatch(es); its hash chain is consistent, so it was re-hashed or shortened)"
            ).format(mismatch=self.mismatches[0], count=len(self.mismatches))
        if self.unverified and self.reports_missing:
            return _(
                "NOT VERIFIED against its anchors: the reports folder {reports} is missing (not mounted, "
                "or $RETENTION_REPORTS_DIR is wrong); its hash chain holds ({events} events), but a "
                "re-hashed log would pass unseen"
            ).format(reports=self.reports, events=self.events)
        if self.unverified:
            return _(
                "NOT VERIFIED against its anchors: {count} certificate(s) or anchor(s) in {reports} name another "
                "log ({other}), none this one ({log}); its hash chain holds ({events} events), but a re-hashed "
                "log would pass unseen: if it is this log under another name, reach the database by one name "
                "everywhere"
            ).format(
                count=self.other_logs,
                reports=self.reports,
                other=self.other_log,
                log=self.audit_log,
                events=self.events,
            )
        if self.missing_certificates:
            return self._missing_sentence(_)
        return self._intact_sentence(_)

    def _missing_sentence(self, _: Translate) -> str:
        runs = _(", run ").join(self.missing_certificates[:5])
        if len(self.missing_certificates) > 5:
            runs += _(" and {count} more").format(count=len(self.missing_certificates) - 5)
        return _(
            "CERTIFICATES MISSING: run {runs} finished (the log holds its summary) but no certificate of this log "
            "in {reports} names it, and the log records no failure to write it: restore the certificate(s) from a "
            "backup, or check that $RETENTION_REPORTS_DIR is the folder the runs wrote to"
        ).format(runs=runs, reports=self.reports)

    def _intact_sentence(self, _: Translate) -> str:
        said = _(
            "intact: {events} events, hash chain verified, hashes of {certificates} run certificate(s) and "
            "{anchors} daily anchor(s) matched"
        ).format(events=self.events, certificates=self.certificates, anchors=self.daily_anchors)
        if self.anchored_to < self.events:
            said += _(
                "; {count} event(s) after #{last} not anchored yet (the next run certificate or daily "
                "verification anchors them)"
            ).format(count=self.events - self.anchored_to, last=self.anchored_to)
        if self.other_logs:
            said += _("; {count} certificate(s) or anchor(s) of another log left aside (first: {other})").format(
                count=self.other_logs, other=self.other_log
            )
        return said

    def to_dict(self) -> dict[str, Any]:
        return {
            "audit_log": self.audit_log,
            "events": self.events,
            "intact": self.intact,
            "broken_at": self.broken_at,
            "reason": self.reason,
            "certificates": self.certificates,
            "daily_anchors": self.daily_anchors,
            "anchored_to": self.anchored_to,
            "head_event": self.head_event,
            "head_hash": self.head_hash,
            "mismatches": list(self.mismatches),
            "other_logs": self.other_logs,
            "other_log": self.other_log,
            "unverified": self.unverified,
            "reports": self.reports,
            "reports_missing": self.reports_missing,
            "missing_certificates": list(self.missing_certificates),
            "status": self.sentence(),
        }


def chain_status(conn: Connection, table: Table, directory: Location | None = None) -> ChainStatus:
    """The status of the audit log ``table``: its hash chain recomputed, then compared with
    the run certificates and daily anchors of this log under ``directory`` (default: the
    reports folder).

    The one function behind the daily ``retention_audit_verify``, the demo's output, the
    Retention view's overview, Chain status page and JSON, and the DPO report: they cannot
    disagree. A log that does not exist yet, or has no event, is intact - unless a
    certificate or anchor names it (then it was dropped or emptied), or only other logs'
    do (NOT VERIFIED). It fails closed: a log with events and no reports folder is NOT
    VERIFIED, and a finished run (a non-dry-run ``run_summary``) with no certificate of this
    log and no recorded failure to write one is CERTIFICATES MISSING.
    """
    identity = log_identity(conn, table)
    folder = directory or reports_dir()
    kept = anchors(folder, identity)
    # What the copies outside the database say; the chain itself is filled in below.
    copies = ChainStatus(
        identity,
        0,
        certificates=kept.certificates,
        other_logs=kept.other_logs,
        other_log=kept.other_log,
        reports=str(folder),
        daily_anchors=kept.daily,
        anchored_to=kept.anchored_to,
        reports_missing=folder_missing(folder),
    )
    exists = store.table_exists(conn, table)
    chain = audit.verify_chain(conn, table) if exists else audit.ChainReport(0)
    if not chain.events:
        # No log yet is intact; no log, or an empty one, while anchors name it was removed or emptied.
        gone = (
            (
                f"the audit log is {'empty' if exists else 'missing'}, though {kept.certificates} run "
                f"certificate(s) and {kept.daily} daily anchor(s) name it (first: {kept.hashes[0][2]})",
            )
            if kept.hashes
            else ()
        )
        return replace(copies, mismatches=gone, exists=exists)
    mismatches = audit.check_anchors(conn, table, kept.hashes)
    return replace(
        copies,
        events=chain.events,
        broken_at=chain.broken_at,
        reason=chain.reason,
        mismatches=tuple(mismatches),
        head_hash=chain.head_hash,
        missing_certificates=_uncertified_runs(conn, table, kept.runs),
    )


def _uncertified_runs(conn: Connection, table: Table, certified: frozenset[tuple[str, str]]) -> tuple[str, ...]:
    """The finished runs (a non-dry-run ``run_summary`` event) that no certificate of this log
    names and whose failure to write one the log does not record (``tasks.summary``'s failed
    check ``certificate``/``deletion_certificate_written``): their certificates were deleted,
    or are in another folder. Named ``<run id> (<dag id>)``, in the order they finished."""
    finished = conn.execute(
        select(table.c.dag_id, table.c.run_id, func.max(table.c.event_id).label("last"))
        .where(table.c.action == "run_summary", table.c.dry_run.is_(False))
        .group_by(table.c.dag_id, table.c.run_id)
        .order_by(func.max(table.c.event_id))
    )
    missing = [(r.dag_id, r.run_id) for r in finished if (r.dag_id, r.run_id) not in certified]
    if not missing:
        return ()
    recorded = {
        (e["dag_id"], e["run_id"])
        for e in audit.events(
            conn, table, table.c.action == "validation", table.c.details.like("%deletion_certificate_written%")
        )
        if e["details"].get("suite") == "certificate"
        and e["details"].get("expectation") == "deletion_certificate_written"
        and not e["details"].get("success")
    }
    return tuple(f"{run} ({dag})" for dag, run in missing if (dag, run) not in recorded)
