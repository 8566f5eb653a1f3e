"""Run the whole retention schedule on the embedded demo, through Airflow.

1. migrates an Airflow home with SQLite metadata (``.airflow/``);
2. recreates and seeds the SQLite demo target (``.demo/target.db`` and its archive file
   ``.demo/target.archive.db``) and empties its reports folder (``.demo/reports``: run
   certificates, DPO report) - every run starts from the same fresh data, and the
   certificates compared with the target's audit log are that log's own;
3. runs every ``retention_<category>`` DAG in-process (``dag.test``) for today, each task's
   log written where the UI reads it (``task_logs_for_the_ui``) - each is a
   first run on a years-long backlog, so it passes the deletion limit and waits for
   approval: the demo approves it through Airflow's REST API, as a person would in
   Required Actions, and prints what it approved; after each run (of every DAG the demo
   runs), its tasks with their state and time, and the rows archive and purge moved;
4. prints one row per category, read back from the audit log, the log's chain status (as
   ``retention_audit_verify`` computes it) and each run's certificate;
5. erases the most recent prospect through the subject_request DAG, answers "was person X
   erased?" for two prospects;
6. runs the re-consent campaign (``retention_reconsent``) against an SMTP server it starts
   itself (``scripts/mail_sink.py``, the ``smtp_default`` connection pointed at it), shows one
   message, answers yes for one prospect and no for another through ``reconsent_answer``,
   runs ``retention_prospection`` again and shows the effect; then writes the DPO report.

Run it with ``make demo``, which sets the Airflow environment before Python starts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage
from html import unescape
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pluggy
import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, text  # noqa: E402

from include.demo.seed import seed_demo  # noqa: E402
from include.retention.database.identity import KEY_VARIABLE, key_from_env, subject_hash  # noqa: E402
from include.retention.database.store import audit_table, reconsent_table, suppression_table  # noqa: E402
from include.retention.database.target import connect, sqlite_archive_path  # noqa: E402
from include.retention.dates.words import period_words  # noqa: E402
from include.retention.policy.load import load_policy
from include.retention.policy.model import RetentionPolicy  # noqa: E402
from include.retention.reports import certificate  # noqa: E402
from include.retention.reports.summary import format_summary, summary_table  # noqa: E402
from include.retention.rights.erased import was_erased  # noqa: E402
from include.retention.settings import KEY_ENV_VAR, REPORTS_ENV_VAR
from scripts.airflow_env import apply_demo_settings  # noqa: E402
from scripts.mail_sink import MailSink  # noqa: E402


@dataclass(frozen=True)
class DemoHome:
    """The demo's own folder: its target, the target's archive file, and what belongs to that
    target - its run certificates and reports (``reports``), the task logs, the subject key.
    ``reset`` recreates the target and empties ``reports`` with it; nothing outside ``folder``
    is ever removed."""

    folder: Path

    @property
    def target(self) -> Path:
        return self.folder / "target.db"

    @property
    def archive(self) -> Path:
        return sqlite_archive_path(str(self.target))

    @property
    def reports(self) -> Path:
        return self.folder / "reports"

    @property
    def run_log(self) -> Path:
        return self.folder / "airflow-runs.log"

    @property
    def secret_file(self) -> Path:
        return self.folder / "subject_secret"

    @property
    def url(self) -> str:
        return f"sqlite:///{self.target}"

    def environment(self) -> dict[str, str]:
        """What the demo's Airflow runs read: the target connection and the reports folder
        (``make airflow`` sets the same two)."""
        return {
            "AIRFLOW_CONN_RETENTION_TARGET": json.dumps({"conn_type": "sqlite", "host": str(self.target)}),
            REPORTS_ENV_VAR: str(self.reports),
        }

    def reset(self, as_of: date) -> dict[str, int]:
        """A fresh target seeded for ``as_of``, with no certificate or report of an earlier one:
        a certificate names its log by file path, and the old log's hashes are not the new one's."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for path in (self.target, self.archive):
            path.unlink(missing_ok=True)
        shutil.rmtree(self.reports, ignore_errors=True)
        target = connect(self.url)
        try:
            return seed_demo(target.engine, None, as_of)
        finally:
            target.dispose()


HOME = DemoHome(ROOT / ".demo")


def configure_environment(home: DemoHome) -> None:
    """The Airflow environment of the demo (``scripts/airflow_env.py``, shared with ``make
    airflow`` and the tests), set before anything imports Airflow, and the demo's target."""
    apply_demo_settings()
    os.environ.update(home.environment())  # never the caller's reports folder: the demo empties its own


@contextlib.contextmanager
def task_logs_for_the_ui() -> Iterator[None]:
    """While inside, each task ``dag.test`` runs in this process writes its log to the file the
    UI reads (``TaskLogFiles``): a listener, a structlog processor before Airflow's renderer, a
    handler on the root logger - each taken away on the way out."""
    import structlog
    from airflow.sdk.listener import get_listener_manager

    task_logs = TaskLogFiles()
    listeners = get_listener_manager()
    processors = structlog.get_config()["processors"]
    listeners.add_listener(task_logs)
    structlog.configure(processors=[*processors[:-1], task_logs, processors[-1]])
    logging.getLogger().addHandler(task_logs)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(task_logs)
        structlog.configure(processors=processors)
        listeners.pm.unregister(task_logs)
        task_logs.end_task()


def chain_line(home: DemoHome, policy: RetentionPolicy) -> str:
    """The audit log's chain status, as retention_audit_verify and the Retention view give it."""
    target = connect(home.url, policy.archive_schema)
    try:
        with target.read() as conn:
            status = certificate.chain_status(
                conn, audit_table(target.archive_schema, policy.audit_table), home.reports
            )
    finally:
        target.dispose()
    return f"Audit log {status.sentence()}"


def main() -> int:
    configure_environment(HOME)
    with task_logs_for_the_ui():
        return run_demo()


def run_demo() -> int:
    """The demo's steps (the module's docstring), once its environment is set."""
    policy = load_policy()
    as_of = datetime.now(ZoneInfo(policy.timezone)).date()
    print(f"==> Airflow metadata in {os.environ['AIRFLOW_HOME']} (SQLite)")
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    seeded = HOME.reset(as_of)
    print(
        f"==> Demo target {HOME.target} recreated and seeded for {as_of}: "
        f"{sum(seeded.values())} rows in {len(seeded)} tables (archive: {HOME.archive}); "
        f"its certificates and reports: {HOME.reports.relative_to(ROOT)}/ (emptied)"
    )
    ensure_subject_secret()
    people = pick_people(policy)
    run_ids = run_all_dags(policy.categories)
    target = connect(HOME.url, policy.archive_schema)
    with target.read() as conn:
        trail = audit_table(target.archive_schema, policy.audit_table)
        summaries = summary_table(conn, trail, [run_id for _, run_id in run_ids])
    target.dispose()
    print(f"\n==> What the schedule did on {as_of} (policy {policy.version}), read from the audit log:\n")
    print(format_summary(summaries))
    print("\n'missing start' rows cannot be aged: for an ongoing event (contract running, request open) they stay")
    print("active by design; for a defect (no contact date) they are reported as data-quality findings.")
    print(f"\n==> {chain_line(HOME, policy)}")
    request = run_erasure_request(people[1], as_of)
    print(
        f"\n==> Erasure request {request['reference']} for the most recent prospect, through the subject_request DAG:"
    )
    print(f"    {request['status']}: {request['erased']} rows erased, {request['kept']} kept")
    for table in request["tables"]:
        kept = f", kept: {table['kept_because']}" if table["kept_because"] else ""
        print(
            f"      {table['category']}.{table['table']}{' (archive)' if table['archive'] else ''}: "
            f"{table['found']} found, {table['erased']} erased{kept}"
        )
    answer_erasure_questions(policy, people)
    run_ids.append(run_reconsent(policy))
    print("\n==> Deletion certificate of each run (counts per table, checks, audit hashes), JSON and HTML:")
    for dag_id, run_id in run_ids:
        _, html_path = certificate.paths(dag_id, run_id)
        print(f"    {os.path.relpath(str(html_path), ROOT)}  (+ .json)")  # the demo's own folder: a local path
    period = period_words(as_of.replace(day=1), as_of, "en")
    print(f"\n==> DPO report for {period} (French; English with the DAG's language param):")
    print(f"    {run_dpo_report(as_of).relative_to(ROOT)}")
    return 0


def ensure_subject_secret() -> None:
    """The demo's HMAC key for pseudonymous subjects: generated once, kept in .demo/ (not committed)."""
    HOME.folder.mkdir(exist_ok=True)
    if not HOME.secret_file.exists():
        HOME.secret_file.write_text(secrets.token_hex(32))
        HOME.secret_file.chmod(0o600)
    secret = HOME.secret_file.read_text().strip()
    os.environ["AIRFLOW_VAR_" + KEY_VARIABLE.upper()] = secret
    os.environ[KEY_ENV_VAR] = secret


def pick_people(policy) -> list[str]:
    """Two prospects' e-mails before the runs: the longest silent (due for destruction) and the latest."""
    target = connect(HOME.url, policy.archive_schema)
    with target.read() as conn:
        column = text("last_inbound_contact_at")
        query = "SELECT email FROM prospects WHERE last_inbound_contact_at IS NOT NULL ORDER BY {} LIMIT 1"
        people = [conn.execute(text(query.format(f"{column} {order}"))).scalar_one() for order in ("ASC", "DESC")]
    target.dispose()
    return people


def answer_erasure_questions(policy, people: list[str]) -> None:
    """ "Was person X erased?" for the two prospects, as the DPO asks it (erased.was_erased):
    the same sentence the Retention view gives, per kind of record."""
    target = connect(HOME.url, policy.archive_schema)
    print("\n==> 'Was person X erased?' (answered by hashing X's e-mail with the subject key):")
    for email in people:
        answer = was_erased(target, policy, key_from_env(), "email", email)
        masked = email[0] + "***@" + email.split("@", 1)[1]
        print(f"    {masked} (hash {answer.subject_hash[:16]}...): {answer.sentence()}")
    target.dispose()


def run_reconsent(policy: RetentionPolicy) -> tuple[str, str]:
    """The charter's last promise, through Airflow: the campaign sends its notices to an SMTP
    server the demo starts (``scripts/mail_sink.py``), a yes and a no come back through
    ``reconsent_answer`` (as the company's website posts them), and the next prospection run
    honours both. Returns that run."""
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's session log names addresses
    with MailSink() as sink:
        return _reconsent_through(policy, sink)


def _reconsent_through(policy: RetentionPolicy, sink: MailSink) -> tuple[str, str]:
    os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
        {
            "conn_type": "smtp",
            "host": sink.host,
            "port": sink.port,
            "extra": {"disable_ssl": True, "disable_tls": True, "retry_limit": 0},
        }
    )
    print(
        f"\n==> Re-consent campaign (retention_reconsent) through Airflow's SMTP provider, to {sink.host}:{sink.port}:"
    )
    _run_dag("retention_reconsent.py", "retention_reconsent", {"mode": "execute"})
    target = connect(HOME.url, policy.archive_schema)
    register = reconsent_table(target.archive_schema)
    with target.read() as conn:
        counts = conn.execute(
            select(register.c.category, register.c.status, func.count()).group_by(
                register.c.category, register.c.status
            )
        ).all()
    target.dispose()
    statuses = ", ".join(f"{category} {n} {status}" for category, status, n in sorted(counts))
    print(f"    {len(sink.messages)} notices sent (the register: {statuses})")
    yes_to, no_to = _asked_prospects(policy, sink)
    shown = sink.to(yes_to)[0].message
    print(f"\n    One of them (demo data is fake), to {_masked(yes_to)}:")
    print(f"    Subject: {shown['Subject']}")
    print(textwrap.indent(_readable(_html_of(shown)), "    | "))
    tokens = [_link_token(sink, yes_to, "yes"), _link_token(sink, no_to, "no")]
    print(f"\n==> {_masked(yes_to)} follows the yes link, {_masked(no_to)} the no link; the website posts both")
    print("    tokens to Airflow's REST API (here: dag.test) by triggering reconsent_answer ...", flush=True)
    _run_dag("retention_reconsent.py", "reconsent_answer", {"tokens": tokens})
    print("==> Running retention_prospection again ...", flush=True)
    bag_dag = _dag("retention_dags.py", "retention_prospection")
    rerun = _run_approving(bag_dag)
    print_tasks(rerun)
    if rerun.state != "success":
        raise SystemExit(f"retention_prospection ended {rerun.state}; the task logs are in {HOME.run_log}")
    _show_answers_effect(policy, yes_to, no_to)
    return bag_dag.dag_id, rerun.run_id


def _asked_prospects(policy: RetentionPolicy, sink: MailSink) -> tuple[str, str]:
    """Two prospects who received a notice, the one whose active period ended first first."""
    target = connect(HOME.url, policy.archive_schema)
    with target.read() as conn:
        prospects = conn.execute(
            text("SELECT email FROM prospects WHERE email IS NOT NULL ORDER BY last_inbound_contact_at, prospect_id")
        ).scalars()
        asked = [email for email in prospects if sink.to(email)]
    target.dispose()
    if len(asked) < 2:
        raise SystemExit(f"the campaign asked {len(asked)} prospect(s): the demo needs two (include/demo/seed.py)")
    return asked[0], asked[1]


def _link_token(sink: MailSink, address: str, answer: str) -> str:
    """The token of the yes or no link of the notice sent to ``address``."""
    for link in re.findall(r'href="([^"]+)"', _html_of(sink.to(address)[0].message)):
        token = parse_qs(urlparse(unescape(link)).query)["token"][0]
        if token.split(".")[1] == answer[0]:
            return token
    raise SystemExit(f"no {answer} link in the notice")


def _html_of(message: EmailMessage) -> str:
    """The HTML body of a notice (what Airflow's SMTP provider sends)."""
    body = message.get_body(("html",))
    if body is None:
        raise SystemExit("a notice without an HTML body")
    return body.get_content()


def _readable(html: str) -> str:
    """The notice's HTML as text for the terminal: paragraphs, line breaks, the tokens shortened."""
    body = re.sub(r"</p>\s*", "\n\n", re.sub(r"<br\s*/?>", "\n", html))
    body = re.sub(r"(token=[0-9a-f]{8})[0-9a-f]*(\.[yn]\.\d{8}\.)[0-9a-f]+", r"\1…\2…", body)
    return unescape(re.sub(r"<[^>]+>", "", body)).strip()


def _show_answers_effect(policy: RetentionPolicy, yes_to: str, no_to: str) -> None:
    """What the answers did, read back from the target: the row, the register, the suppression list."""
    key = key_from_env()
    target = connect(HOME.url, policy.archive_schema)
    register = reconsent_table(target.archive_schema)
    suppression = suppression_table(target.archive_schema)
    active = policy.category("prospection").active_period
    with target.read() as conn:
        kept = conn.execute(text("SELECT count(*) FROM prospects WHERE email = :e"), {"e": yes_to}).scalar_one()
        left = conn.execute(text("SELECT count(*) FROM prospects WHERE email = :e"), {"e": no_to}).scalar_one()
        answered_on = conn.execute(
            select(register.c.answered_on).where(
                register.c.subject_hash == subject_hash(key, "email", yes_to), register.c.answer == "yes"
            )
        ).scalar_one()
        listed = conn.execute(
            select(func.count()).where(suppression.c.subject_hash == subject_hash(key, "email", no_to))
        ).scalar_one()
    target.dispose()
    print("\n==> The effect, after the prospection run:")
    print(
        f"    yes: {_masked(yes_to)} {'is still active' if kept else 'IS GONE'}; its clock restarted on "
        f"{answered_on} (active until {active.add_to(answered_on)}, then archived, then destroyed)"
    )
    print(
        f"    no:  {_masked(no_to)} {'deleted' if not left else 'IS STILL THERE'} (an opposition, as subject_request "
        f"does it) and {'suppressed' if listed else 'NOT SUPPRESSED'}: its keyed hash is on the suppression list"
    )


def _masked(email: str) -> str:
    return email[0] + "***@" + email.split("@", 1)[1]


def _dag(file: str, dag_id: str):
    """The DAG ``dag_id`` of ``dags/<file>``."""
    from airflow.dag_processing.dagbag import DagBag

    with _output_to(HOME.run_log):
        return DagBag(dag_folder=str(ROOT / "dags" / file)).get_dag(dag_id)


def _run_dag(file: str, dag_id: str, conf: dict) -> None:
    """``dag.test`` one run of ``dag_id`` with ``conf``; stop the demo if it fails."""
    dag = _dag(file, dag_id)
    with _output_to(HOME.run_log):
        dag_run = dag.test(logical_date=datetime.now(UTC), run_conf=conf)
    print_tasks(dag_run)
    if dag_run.state != "success":
        raise SystemExit(f"{dag_id} ended {dag_run.state}; the task logs are in {HOME.run_log}")


def run_erasure_request(email: str, as_of: date) -> dict:
    """What the DPO does when a person asks to be erased: trigger subject_request with the form."""
    from airflow.dag_processing.dagbag import DagBag

    conf = {
        "request_type": "erasure",
        "reference": f"DDP-DEMO-{as_of:%Y%m%d}",
        "received": as_of.isoformat(),
        "identity": "verified",
        "email": email,
    }
    with _output_to(HOME.run_log):
        dag = DagBag(dag_folder=str(ROOT / "dags" / "subject_request.py")).get_dag("subject_request")
        dag_run = dag.test(logical_date=datetime.now(UTC), run_conf=conf)
    print_tasks(dag_run)
    if dag_run.state != "success":
        raise SystemExit(f"subject_request ended {dag_run.state}; the task logs are in {HOME.run_log}")
    target = connect(HOME.url)  # the outcome, as the DPO reads it in the register
    with target.read() as conn:
        status, outcome = conn.execute(
            text("SELECT status, outcome FROM rights_requests WHERE reference = :r"), {"r": conf["reference"]}
        ).one()
    target.dispose()
    return {"reference": conf["reference"], "status": status, **json.loads(outcome)}


def run_dpo_report(as_of: date) -> Path:
    from airflow.dag_processing.dagbag import DagBag

    with _output_to(HOME.run_log):
        dag = DagBag(dag_folder=str(ROOT / "dags" / "retention_dpo_report.py")).get_dag("retention_dpo_report")
        conf = {"period_start": as_of.replace(day=1).isoformat(), "period_end": as_of.isoformat(), "language": "fr"}
        dag_run = dag.test(logical_date=datetime.now(UTC), run_conf=conf)
    print_tasks(dag_run)
    if dag_run.state != "success":
        raise SystemExit(f"retention_dpo_report ended {dag_run.state}; the task logs are in {HOME.run_log}")
    return HOME.reports / "dpo" / f"retention-dpo-report_{conf['period_start']}_{conf['period_end']}.fr.html"


def run_all_dags(categories: dict) -> list[tuple[str, str]]:
    """``dag.test`` every retention DAG; stop at the first failed run."""
    HOME.run_log.unlink(missing_ok=True)
    logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
    from airflow.dag_processing.dagbag import DagBag

    with _output_to(HOME.run_log):
        bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    run_ids = []
    for key in categories:
        dag = bag.get_dag(f"retention_{key}")
        print(f"==> Running {dag.dag_id} through Airflow ...", flush=True)
        dag_run = _run_approving(dag)
        print_tasks(dag_run)
        if dag_run.state != "success":
            raise SystemExit(f"{dag.dag_id} ended {dag_run.state}; the task logs are in {HOME.run_log}")
        run_ids.append((dag.dag_id, dag_run.run_id))
    print(f"==> Task logs of these runs: each task's Logs in the UI (make airflow); all of them in {HOME.run_log}")
    return run_ids


def print_tasks(dag_run) -> None:
    """The run's tasks in the order they ran, each with its state and time, archive and purge
    with the rows they moved (their return value), then the run's state and time."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        instances = session.scalars(
            select(TI).where(TI.dag_id == dag_run.dag_id, TI.run_id == dag_run.run_id).order_by(TI.end_date)
        ).all()
        for ti in instances:
            moved = ""
            if ti.task_id in ("archive", "purge") and ti.state == "success":
                xcom = session.scalars(
                    XComModel.get_many(
                        run_id=ti.run_id, key="return_value", task_ids=ti.task_id, dag_ids=ti.dag_id, limit=1
                    )
                ).first()
                value = XComModel.deserialize_value(xcom) if xcom is not None else {}
                moved = "  " + rows_words({"archived": value} if ti.task_id == "archive" else value)
            print(f"    {ti.task_id:<20} {ti.state:<8} {ti.duration or 0:5.1f} s{moved}")
    took = (dag_run.end_date - dag_run.start_date).total_seconds() if dag_run.end_date else 0
    print(f"    {dag_run.dag_id} {dag_run.state} in {took:.0f} s", flush=True)


def rows_words(moved: dict[str, dict[str, int]]) -> str:
    """``archived: prospects 120, interactions 300; deleted: no row``."""
    parts = []
    for action, tables in moved.items():
        counts = ", ".join(f"{table} {n}" for table, n in tables.items() if n) or "no row"
        parts.append(f"{action}: {counts}")
    return "; ".join(parts)


def _run_approving(dag):
    """``dag.test`` an executing run; when it waits for approval, a helper thread approves it
    over the REST API (what a person does in Required Actions); then say what was approved.
    (``dag.test`` needs the main thread: it installs signal handlers.)"""
    said: list[str] = []
    done = threading.Event()
    approver = threading.Thread(target=_approve_when_asked, args=(dag.dag_id, done, said), daemon=True)
    approver.start()
    try:
        with _output_to(HOME.run_log):
            dag_run = dag.test(logical_date=datetime.now(UTC), run_conf={"mode": "execute"})
    finally:
        done.set()
        approver.join()
    for line in said:
        print(f"    {line}")
    return dag_run


def limits_passed(body: str) -> list[str]:
    """The limits an approval request says were passed: its body's second paragraph, a heading
    then one "- " line each, in the policy's language (``approval.approval_body``)."""
    paragraphs = body.split("\n\n")
    return [line[2:] for line in paragraphs[1].splitlines()[1:]] if len(paragraphs) > 1 else []


def _approve_when_asked(dag_id: str, done, said: list[str]) -> None:
    from airflow.api_fastapi.app import create_app
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    while not done.wait(0.5):
        with create_session() as session:
            waiting = session.scalars(
                select(TI).where(TI.dag_id == dag_id, TI.task_id == "approve_deletions", TI.state == "awaiting_input")
            ).first()
            run_id = waiting.run_id if waiting else None
        if not run_id:
            continue
        with TestClient(create_app("core")) as client:
            passwords = json.loads(
                (Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated").read_text()
            )
            token = client.post("/auth/token", json={"username": "admin", "password": passwords["admin"]}).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/approve_deletions/-1/hitlDetails"
            body = client.get(path, headers=headers).json().get("body") or ""
            answer = client.patch(path, json={"chosen_options": ["Approve"]}, headers=headers)
        over = limits_passed(body)
        said.append(f"past the deletion limit: {'; '.join(over[:2])}{' ...' if len(over) > 2 else ''}")
        said.append(
            f"approved by the demo's admin over the REST API (HTTP {answer.status_code}); in production "
            "a person approves in Required Actions"
        )
        return


hookimpl = pluggy.HookimplMarker("airflow")  # Airflow's listener hooks (airflow.listeners.hookimpl)
# A failed task's exception as a worker's JSON log holds it (Airflow's dict_tracebacks, no locals):
# the frames and the message, which the supervisor files as ``error_detail`` and the UI shows.
_EXCEPTION_AS_DICT = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(use_rich=False, show_locals=False)
)


class TaskLogFiles(logging.Handler):
    """Each task ``dag.test`` runs, its log in the file the UI reads - an Airflow listener that
    opens ``[logging] base_log_folder`` / ``log_filename_template`` (what a worker writes, and
    the api-server reads) when the task runs and closes it when it ends; in between, what the
    task logs goes there as JSON lines (Airflow's task log format): its structlog events (a
    processor) and its standard logging records (a handler). ``dag.test`` runs the task in the
    demo's process, where it logged only to the demo's run log: ``make airflow`` said "Log file
    not found" for every task of the demo's runs. Lines from other threads (the demo's approver)
    stay out."""

    def __init__(self) -> None:
        super().__init__()
        self._file: TextIO | None = None
        self._thread: int | None = None

    @hookimpl
    def on_task_instance_running(self, previous_state, task_instance) -> None:
        from airflow.sdk.log import init_log_file
        from airflow.utils.helpers import log_filename_template_renderer

        self.end_task()  # a deferred task (the approval) runs again: its file again
        self._file = init_log_file(log_filename_template_renderer()(ti=task_instance)).open("a", encoding="utf-8")
        self._thread = threading.get_ident()

    @hookimpl
    def on_task_instance_success(self, previous_state, task_instance) -> None:
        self.end_task()

    @hookimpl
    def on_task_instance_failed(self, previous_state, task_instance, error) -> None:
        self.end_task()

    @hookimpl
    def on_task_instance_skipped(self, previous_state, task_instance) -> None:
        self.end_task()

    def end_task(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None

    def __call__(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        """A structlog processor: the event, as Airflow is about to render it, into the task's file.
        Its exception is not text yet (the console renderer after this one formats it): written as
        a worker writes it, ``error_detail``, masked like the rest - else the UI showed "Task
        failed with exception" with neither message nor traceback."""
        from airflow.sdk.log import mask_logs

        line = dict(event_dict)  # the renderer after this one still gets the event as it was
        if line.get("exc_info"):
            line = dict(_EXCEPTION_AS_DICT(logger, method_name, line))
            line["error_detail"] = line.pop("exception", None)
        self._write(mask_logs(logger, method_name, line))
        return event_dict

    def emit(self, record: logging.LogRecord) -> None:
        """A standard logging record (this project's tasks log through ``logging``), masked as
        Airflow masks it, into the task's file."""
        from airflow.sdk.log import mask_logs

        event = record.getMessage()
        if record.exc_info:
            event += "\n" + logging.Formatter().formatException(record.exc_info)
        when = datetime.fromtimestamp(record.created, UTC).isoformat()
        self._write(
            mask_logs(
                None,
                record.levelname.lower(),
                {"timestamp": when, "level": record.levelname.lower(), "event": event, "logger": record.name},
            )
        )

    def _write(self, line: Mapping[str, Any]) -> None:
        if self._file is None or threading.get_ident() != self._thread:
            return
        self._file.write(json.dumps(line, default=str) + "\n")
        self._file.flush()


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send everything written to stdout and stderr (Airflow's task logs) to a file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with path.open("a") as log_file:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


if __name__ == "__main__":
    sys.exit(main())
