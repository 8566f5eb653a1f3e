"""The real Airflow UI in headless Chromium: `airflow standalone` with the plugin, the DPO logs
in through Airflow's login page, opens Browse → Retention (embedded in the UI) and asks
"was X erased?" through the form - the route a DPO actually takes.

Skipped, with the reason, when Chromium or its driver is missing; `.ci/run` installs them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from ui_target import RUNS, SECRET, seeded_target

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver; .ci/run does)",
)
PASSWORDS = {"admin": "admin-chromium-pw", "dpo": "dpo-chromium-pw"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def airflow_standalone(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    """`airflow standalone` on free ports, in a home of its own, over the seeded target."""
    home = tmp_path_factory.mktemp("standalone")
    connection, people = seeded_target(home / "target.db")
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
    try:
        _wait_healthy(base, process, home / "standalone.log")
        yield base, people
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def _wait_healthy(base: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
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


@pytest.fixture
def browser():
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
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(20)
    yield driver
    driver.quit()


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


def test_the_dpo_logs_in_opens_the_retention_view_and_asks_whether_a_person_was_erased(airflow_standalone, browser):
    from selenium.webdriver.common.by import By

    base, people = airflow_standalone
    browser.get(f"{base}/retention/")
    assert "Retention" not in browser.find_element(By.TAG_NAME, "body").text  # anonymous: refused (401)

    browser.get(f"{base}/")
    browser.find_element(By.NAME, "username").send_keys("dpo")
    browser.find_element(By.NAME, "password").send_keys(PASSWORDS["dpo"])
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait_for_text(browser, "Dags")

    browser.get(f"{base}/plugin/retention")  # Browse → Retention: the view inside the Airflow UI
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    page = _wait_for_text(browser, "Last audit event")
    assert RUNS["prospection"] in page and RUNS["web_forms"] in page
    browser.find_element(By.LINK_TEXT, "Chain status").click()
    _wait_for_text(browser, "Audit log intact")

    browser.find_element(By.LINK_TEXT, "Was X erased?").click()
    browser.find_element(By.NAME, "identifier").send_keys(people["destroyed"])
    browser.find_element(By.CSS_SELECTOR, "form button").click()
    answer = _wait_for_text(browser, "No data about this person is held any more")
    assert "rights_request" in answer

    browser.find_element(By.LINK_TEXT, "Audit log").click()
    assert "scheduled__web_forms" in _wait_for_text(browser, "event(s) shown")
