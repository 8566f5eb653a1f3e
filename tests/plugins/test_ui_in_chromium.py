"""The real Airflow UI in headless Chromium, as the DPO sees it: `airflow standalone` with the
plugin, the read-only `dpo` user logs in through Airflow's login page, opens Browse → Retention
(the view inside the Airflow UI, in an iframe), walks every page of it, asks "was X erased?",
opens a run certificate and the DPO report, and the "Certificat" tab of a retention DAG's run.

Every page must be in French (the policy's language): a few telling words per page, none of
the English texts it had, and times on Paris clocks with the zone named ("heure de Paris"),
never UTC. A screenshot of each page is written under ``reports/ui/`` (run output, ignored by
git like the rest of ``reports/``) before its checks, so a page that fails is there to look at.

The target is the demo CRM after two categories' executed runs (``ui_target``), a DPO report
written for November, and one preview run of ``retention_prospection`` run through Airflow
(``airflow dags test``, the DAG stays paused) while the pages are walked: its run page carries
the tab. Skipped, with the reason, when Chromium or its driver is missing; `.ci/run` installs them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import unquote

import pytest
from ui_target import AS_OF, RUNS, SECRET, seeded_target

from include.retention.database.identity import SubjectKey
from include.retention.database.target import connect
from include.retention.policy.load import load_policy
from include.retention.reports import dpo_render, dpo_report
from include.retention.settings import REPORTS_ENV_VAR

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "reports" / "ui"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver; .ci/run does)",
)
PASSWORDS = {"admin": "admin-chromium-pw", "dpo": "dpo-chromium-pw"}
WINDOW = (1400, 1000)
RUN_DAG = "retention_prospection"  # the DAG whose run the tab is checked on
RUN_ID = re.compile(r"\b(?:manual|scheduled|backfill|asset_triggered)__\S+")
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


@dataclass(frozen=True)
class Page:
    """A page of the Retention view: its tab's ``data-page`` and French label, the screenshot's
    name, words it must show, and whether it shows a recorded time (then named in Paris time)."""

    key: str
    tab: str
    shot: str
    words: tuple[str, ...]
    clock: bool


# Every tab of the view, in the tab bar's order.
PAGES = (
    Page(
        "overview",
        "Vue d'ensemble",
        "01-vue-d-ensemble",
        ("Conformité aujourd'hui", "non conforme", "Dernières exécutions", "Campagnes de re-consentement"),
        clock=True,
    ),
    Page("tonight", "Ce soir", "02-ce-soir", ("prochaine exécution", "à archiver", "à détruire", "Compté en"), False),
    Page(
        "audit", "Journal d'audit", "03-journal-d-audit", ("enregistré (heure de Paris)", "page 1 sur", "Filtrer"), True
    ),
    Page("certificates", "Certificats d'exécution", "04-certificats", ("exécutée", "jour de"), False),
    Page("reports", "Rapports DPO", "05-rapports-dpo", ("retention-dpo-report_2026-11-01_2026-11-26.fr.html",), False),
    Page("approvals", "Approbations", "06-approbations", ("Aucune exécution n'attend d'approbation",), False),
    Page("schedule", "Calendrier", "07-calendrier", ("Calendrier de conservation", "Sort final"), False),
    Page("holds", "Gels juridiques", "08-gels-juridiques", ("RG-UI-1", "en vigueur", "créé (heure de Paris)"), True),
    Page("chain", "Chaîne d'audit", "09-chaine-d-audit", ("État de la chaîne d'audit", "Événements lus"), False),
    Page("lookup", "X a-t-il été effacé ?", "10-x-a-t-il-ete-efface", ("Identifiant", "Rechercher"), False),
)
# English the view showed before it was translated: none of it may come back on any page.
ENGLISH = (
    "Overview",
    "Tonight",
    "Audit log",
    "Run certificates",
    "DPO reports",
    "Approvals",
    "Legal holds",
    "Chain status",
    "Was X erased",
    "Compliance",
    "compliant",
    "Latest runs",
    "Last audit event",
    "event(s) shown",
    "Previous page",
    "Next page",
    "recorded",
    "No data about",
    "Deletion certificate",
    "Generated on",
    "Paris time",
    "November",
    "December",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_dpo_report(database: Path, reports: Path) -> None:
    """November's DPO report in French, in the home's reports folder, as the report DAG writes it."""
    before = os.environ.get(REPORTS_ENV_VAR)
    os.environ[REPORTS_ENV_VAR] = str(reports)
    target = connect(f"sqlite:///{database}")
    try:
        report = dpo_report.build(
            target, load_policy(), AS_OF.replace(day=1), AS_OF, max(AS_OF, date.today()), SubjectKey(SECRET, "test")
        )
        dpo_render.write(report, "fr")
    finally:
        target.dispose()
        if before is None:
            del os.environ[REPORTS_ENV_VAR]
        else:
            os.environ[REPORTS_ENV_VAR] = before


@dataclass
class Standalone:
    """The running Airflow: its URL, the seeded people, and the preview run started through it."""

    base: str
    people: dict[str, str]
    run: subprocess.Popen
    run_log: Path


@pytest.fixture(scope="module")
def airflow_standalone(tmp_path_factory) -> Iterator[Standalone]:
    """`airflow standalone` on free ports, in a home of its own, over the seeded target; once
    it answers, a preview run of ``retention_prospection`` through ``airflow dags test``."""
    home = tmp_path_factory.mktemp("standalone")
    connection, people = seeded_target(home / "target.db")
    _write_dpo_report(home / "target.db", home / "reports")
    (home / "passwords.json").write_text(json.dumps(PASSWORDS))
    port = _free_port()
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "PATH": f"{venv_bin}:{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,dpo:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__TRIGGERER__LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW_CONN_RETENTION_TARGET": connection,
        "RETENTION_SUBJECT_SECRET": SECRET,
        "RETENTION_REPORTS_DIR": str(home / "reports"),
    }
    env.pop("AIRFLOW__API_AUTH__JWT_SECRET", None)
    log = (home / "standalone.log").open("w")
    process = subprocess.Popen(
        [str(Path(venv_bin) / "airflow"), "standalone"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    run_log = home / "preview-run.log"
    run = None
    try:
        _wait_healthy(base, process, home / "standalone.log")
        with run_log.open("w") as out:  # the metadata database exists now
            run = subprocess.Popen(
                [str(Path(venv_bin) / "airflow"), "dags", "test", RUN_DAG, "-c", json.dumps({"mode": "preview"})],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        yield Standalone(base, people, run, run_log)
    finally:
        for started in (run, process):
            if started is not None:
                _stop(started)
        log.close()


def _stop(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM to the process group (standalone's scheduler, API server... too), and wait until
    every one of them has exited - the leader goes first - SIGKILL to those left after ``grace``."""
    group = process.pid
    if process.poll() is None:
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _group_alive(group):
        if time.monotonic() > deadline:
            os.killpg(group, signal.SIGKILL)
            break
        process.poll()  # reap the leader once it exits
        time.sleep(0.5)
    process.wait(timeout=10)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_healthy(base: str, process: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"airflow standalone exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/v2/monitor/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    pytest.fail(f"airflow standalone not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def screenshots() -> Path:
    """``reports/ui/``, emptied of an earlier run's screenshots so that none is mistaken for this run's."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    return SCREENSHOTS


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium asking for French pages, as a French DPO's browser does."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--lang=fr-FR",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": "fr-FR,fr"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(20)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def dpo(airflow_standalone, browser):
    """The browser, logged in to Airflow as the read-only ``dpo`` user."""
    from selenium.webdriver.common.by import By

    base = airflow_standalone.base
    browser.get(f"{base}/retention/")
    assert "Conservation" not in browser.find_element(By.TAG_NAME, "body").text  # anonymous: refused (401)
    browser.get(f"{base}/")
    browser.find_element(By.NAME, "username").send_keys("dpo")
    browser.find_element(By.NAME, "password").send_keys(PASSWORDS["dpo"])
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait_for_text(browser, "Dags")
    # Paris time in Airflow's own pages too, as the DPO picks it in the user menu (kept by the browser).
    browser.execute_script("localStorage.setItem('timezone', JSON.stringify('Europe/Paris'))")
    return browser


def _wait_for_text(driver, text: str, timeout: float = 30) -> str:
    """The page's text once it shows ``text``; the page may be replaced while we look (a link
    was followed), so a stale element is read again rather than failing."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    deadline, seen = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        try:
            seen = driver.find_element(By.TAG_NAME, "body").text
        except (StaleElementReferenceException, NoSuchElementException):
            seen = ""
        if text in seen:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"{text!r} did not appear within {timeout} s; the page shows: {seen[:500]!r}")


def _enter_view(driver) -> None:
    """Into the iframe in which Airflow shows a plugin's page, once its document has loaded."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    driver.switch_to.default_content()
    WebDriverWait(driver, 30).until(expected_conditions.frame_to_be_available_and_switch_to_it((By.TAG_NAME, "iframe")))
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")


def _wait_for_page(driver, key: str):
    """The view's ``main`` once the page ``key`` is shown in the iframe."""
    from selenium.webdriver.common.by import By

    _enter_view(driver)
    return driver.find_element(By.CSS_SELECTOR, f"main#retention-page[data-page='{key}']")


def _screenshot(driver, screenshots: Path, name: str) -> None:
    """``reports/ui/<name>.png``: the whole page, the window stretched to the iframe's content
    (Airflow's page does not scroll: the plugin's document scrolls inside the iframe)."""
    from selenium.webdriver.common.by import By

    in_frame = driver.execute_script("return window !== window.top")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.switch_to.default_content()
    frames = driver.find_elements(By.TAG_NAME, "iframe") if in_frame else []
    top = frames[0].rect["y"] if frames else 0
    chrome = driver.execute_script("return window.outerHeight - window.innerHeight")
    driver.set_window_size(WINDOW[0], min(max(WINDOW[1], int(top + height + chrome + 32)), 12000))
    time.sleep(0.5)  # the UI lays out again at the new size
    driver.save_screenshot(str(screenshots / f"{name}.png"))
    driver.set_window_size(*WINDOW)
    if frames:
        driver.switch_to.frame(frames[0])


def _in_french_on_paris_time(text: str, where: str, *, clock: bool) -> None:
    """No English the view used to show; no time in UTC nor as an ISO timestamp (a run id, which
    Airflow makes of its UTC start, aside); ``clock``: a time is shown, named in Paris time."""
    leftovers = [words for words in ENGLISH if words in text]
    assert not leftovers, f"{where}: English left {leftovers}; the page shows: {text[:800]!r}"
    shown = RUN_ID.sub("<run>", text)
    assert "UTC" not in shown, f"{where} names UTC: {text[:800]!r}"
    iso = ISO_TIME.findall(shown)
    assert not iso, f"{where} shows ISO timestamps {iso[:3]} instead of times in words: {text[:800]!r}"
    if clock:
        assert "heure de Paris" in text, f"{where} shows no time named in Paris time: {text[:800]!r}"


def _overview_shows_compliance_per_category_and_the_report(main) -> None:
    from selenium.webdriver.common.by import By

    rows = main.find_elements(By.CSS_SELECTOR, "section#compliance tr[data-category]")
    assert [r.get_attribute("data-category") for r in rows] == list(load_policy().categories)
    assert {r.get_attribute("data-compliant") for r in rows} == {"yes", "no"}  # the demo CRM has both
    assert main.find_element(By.CSS_SELECTOR, "a#dpo-report-link").text == "Le dernier rapport DPO"


def _tonight_counts_every_category(main) -> None:
    from selenium.webdriver.common.by import By

    rows = main.find_elements(By.CSS_SELECTOR, "section#tonight tr[data-category]")
    assert [r.get_attribute("data-category") for r in rows] == list(load_policy().categories)
    assert not [r.text for r in rows if r.get_attribute("data-problem")], "a category could not be counted"


def _audit_reads_its_details_and_counts_pages_from_one(main) -> None:
    """Details as wrapped ``key: value`` lines, not squeezed to a letter per line; page 1 first."""
    from selenium.webdriver.common.by import By

    assert main.find_elements(By.CSS_SELECTOR, "section#audit-events tbody tr"), "the audit log shows no event"
    values = main.find_elements(By.CSS_SELECTOR, "section#audit-events dl.details dd")
    assert values, "no event shows its details"
    narrow = [v.text for v in values if v.rect["width"] < 80]
    assert not narrow, f"details squeezed into a column under 80 px: {narrow[:3]}"
    assert main.find_element(By.CSS_SELECTOR, "span#audit-count").text.startswith("Événements 1 à")


def _certificates_lists_the_runs(main) -> None:
    from selenium.webdriver.common.by import By

    links = {a.text for a in main.find_elements(By.CSS_SELECTOR, "section#latest-runs a")}
    assert {RUNS["prospection"], RUNS["web_forms"]} <= links


# What a page shows beyond its words, by its key.
SHOWS = {
    "overview": _overview_shows_compliance_per_category_and_the_report,
    "tonight": _tonight_counts_every_category,
    "audit": _audit_reads_its_details_and_counts_pages_from_one,
    "certificates": _certificates_lists_the_runs,
}


def test_the_dpo_reaches_the_retention_view_through_browse_and_walks_every_page_in_french(
    airflow_standalone, dpo, screenshots
):
    from selenium.webdriver.common.by import By

    dpo.switch_to.default_content()
    dpo.get(f"{airflow_standalone.base}/")
    _wait_for_text(dpo, "Dags")
    dpo.find_element(By.CSS_SELECTOR, "button[aria-label='Parcourir']").click()  # Browse, in Airflow's French
    dpo.find_element(By.CSS_SELECTOR, "a[href$='/plugin/retention']").click()
    for number, expected in enumerate(PAGES):
        if number:
            dpo.find_element(By.CSS_SELECTOR, f"nav#retention-tabs a[data-page='{expected.key}']").click()
        try:
            main = _wait_for_page(dpo, expected.key)
        finally:  # the page as it is, even one that is not the page expected
            _screenshot(dpo, screenshots, expected.shot)
        tabs = {
            a.get_attribute("data-page"): a.text
            for a in dpo.find_elements(By.CSS_SELECTOR, "nav#retention-tabs a[data-page]")
        }
        assert tabs == {p.key: p.tab for p in PAGES}, f"{expected.key}: the tab bar shows {tabs}"
        current = dpo.find_element(By.CSS_SELECTOR, "nav#retention-tabs a[aria-current=page]")
        assert current.get_attribute("data-page") == expected.key
        text = dpo.find_element(By.TAG_NAME, "body").text
        missing = [words for words in expected.words if words not in text]
        assert not missing, f"{expected.key}: {missing} not shown; the page shows: {text[:800]!r}"
        _in_french_on_paris_time(text, expected.key, clock=expected.clock)
        SHOWS.get(expected.key, lambda main: None)(main)


def test_the_dpo_asks_whether_a_destroyed_prospect_was_erased_and_reads_the_answer_in_french(
    airflow_standalone, dpo, screenshots
):
    from selenium.webdriver.common.by import By

    dpo.switch_to.default_content()
    dpo.get(f"{airflow_standalone.base}/plugin/retention")
    _wait_for_page(dpo, "overview")
    dpo.find_element(By.CSS_SELECTOR, "nav#retention-tabs a[data-page='lookup']").click()
    _wait_for_page(dpo, "lookup")
    dpo.find_element(By.CSS_SELECTOR, "form#lookup-form input[name=identifier]").send_keys(
        airflow_standalone.people["destroyed"]
    )
    dpo.find_element(By.CSS_SELECTOR, "form#lookup-form button").click()
    verdict = dpo.find_element(By.CSS_SELECTOR, "p#lookup-verdict").text
    _screenshot(dpo, screenshots, "11-x-a-t-il-ete-efface-reponse")
    assert verdict.startswith("Plus aucune donnée sur cette personne"), verdict
    text = dpo.find_element(By.TAG_NAME, "body").text
    assert "rights_request" in dpo.find_element(By.CSS_SELECTOR, "section#lookup-events").text
    assert airflow_standalone.people["destroyed"] not in text  # the page names the person by a keyed hash only
    _in_french_on_paris_time(text, "the lookup's answer", clock=True)


def test_the_dpo_opens_a_run_certificate_and_the_dpo_report_from_the_view(airflow_standalone, dpo, screenshots):
    from selenium.webdriver.common.by import By

    dpo.switch_to.default_content()
    dpo.get(f"{airflow_standalone.base}/plugin/retention")
    _wait_for_page(dpo, "overview")
    dpo.find_element(By.CSS_SELECTOR, "a#dpo-report-link").click()
    text = _wait_for_text(dpo, "Rapport de conservation des données personnelles")
    _screenshot(dpo, screenshots, "12-rapport-dpo")
    assert "du 1er au 26 novembre 2026" in text
    _in_french_on_paris_time(text, "the DPO report", clock=True)

    dpo.switch_to.default_content()
    dpo.get(f"{airflow_standalone.base}/plugin/retention")
    _wait_for_page(dpo, "overview")
    dpo.find_element(By.CSS_SELECTOR, "nav#retention-tabs a[data-page='certificates']").click()
    _wait_for_page(dpo, "certificates")
    dpo.find_element(By.LINK_TEXT, RUNS["web_forms"]).click()
    text = _wait_for_text(dpo, "Certificat de suppression")
    _screenshot(dpo, screenshots, "13-certificat")
    assert "26 novembre 2026" in text and "Émis le" in text
    _in_french_on_paris_time(text, "a run certificate", clock=True)


def test_a_run_of_a_retention_dag_has_a_certificate_tab_in_french(airflow_standalone, dpo, screenshots):
    from selenium.webdriver.common.by import By

    run = airflow_standalone.run
    try:
        run.wait(timeout=600)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the preview run did not end in 600 s:\n{airflow_standalone.run_log.read_text()[-3000:]}")
    assert run.returncode == 0, airflow_standalone.run_log.read_text()[-3000:]
    dpo.switch_to.default_content()
    dpo.get(f"{airflow_standalone.base}/dags/{RUN_DAG}/runs")
    link = dpo.find_element(By.CSS_SELECTOR, f"a[href*='/dags/{RUN_DAG}/runs/manual__']")
    run_page = link.get_attribute("href").rstrip("/")
    dpo.get(run_page)
    tab = dpo.find_element(By.CSS_SELECTOR, "a[href$='/plugin/retention-certificate']")
    assert tab.text == "Certificat"
    tab.click()
    _enter_view(dpo)
    text = _wait_for_text(dpo, "Aperçu (rien n'a été modifié)")
    _screenshot(dpo, screenshots, "14-onglet-certificat-d-une-execution")
    assert unquote(run_page.rsplit("/runs/", 1)[1]) in text, "the tab shows another run's certificate"
    assert "aperçu" in text, "the preview run's certificate does not say it was a preview"
    _in_french_on_paris_time(text, "the run's certificate tab", clock=True)


def test_the_view_is_in_english_on_request_and_keeps_paris_time(airflow_standalone, dpo, screenshots):
    from selenium.webdriver.common.by import By

    dpo.switch_to.default_content()
    dpo.get(f"{airflow_standalone.base}/plugin/retention")
    _wait_for_page(dpo, "overview")
    dpo.find_element(By.CSS_SELECTOR, "a#language-switch").click()
    text = _wait_for_text(dpo, "Compliance today")
    _screenshot(dpo, screenshots, "15-overview-in-english")
    assert dpo.find_element(By.CSS_SELECTOR, "nav#retention-tabs a[aria-current=page]").text == "Overview"
    assert "(Paris time)" in text and "UTC" not in text
    dpo.find_element(By.CSS_SELECTOR, "nav#retention-tabs a[data-page='audit']").click()  # the link keeps ?lang=en
    _wait_for_page(dpo, "audit")
    assert "recorded (Paris time)" in dpo.find_element(By.TAG_NAME, "body").text
