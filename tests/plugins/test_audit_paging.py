"""The audit browser: pages numbered from 1 with the total, previous and next links that keep
the filters, the target and the language, and details readable as key: value lines."""

from __future__ import annotations

import re
from html import unescape

import pytest
from view_client import view_client

from include.retention_airflow.ui import audit_browser


@pytest.fixture(scope="module")
def view(tmp_path_factory, airflow_db):
    with view_client(tmp_path_factory.mktemp("paging")) as client:
        yield client


@pytest.fixture
def five_per_page(monkeypatch):
    monkeypatch.setattr(audit_browser, "PAGE_SIZE", 5)


def links(page: str, rel: str) -> list[str]:
    return [unescape(href) for href in re.findall(rf"<a rel='{rel}' href='([^']*)'", page)]


def event_ids(page: str) -> list[int]:
    table = page.split("<section id='audit-events'>", 1)[1].split("</section>", 1)[0]
    return [int(n) for n in re.findall(r"<tr><td class='n'>(\d+)</td>", table)]


def test_the_first_page_is_page_1_of_the_total_with_a_next_link_only(view, five_per_page):
    total = view.get("/retention/api/chain").json()["events"]
    page = view.get("/retention/audit").text
    pages = -(-total // 5)
    assert f"Événements 1 à 5 sur {total} - page 1 sur {pages}" in page
    assert event_ids(page) == list(range(total, total - 5, -1))  # newest first
    assert links(page, "prev") == [] and links(page, "next") == ["/retention/audit?page=2"] * 2  # above and below


def test_the_next_and_previous_pages_follow_each_other_without_a_gap(view, five_per_page):
    total = view.get("/retention/api/chain").json()["events"]
    second = view.get("/retention/audit", params={"page": 2}).text
    assert event_ids(second) == list(range(total - 5, total - 10, -1))
    assert f"Événements 6 à 10 sur {total} - page 2" in second
    assert links(second, "prev")[0] == "/retention/audit?page=1"
    last_number = -(-total // 5)
    last = view.get("/retention/audit", params={"page": last_number}).text
    assert links(last, "next") == [] and event_ids(last)[-1] == 1
    beyond = view.get("/retention/audit", params={"page": last_number + 1}).text
    assert (
        f"Aucun événement en page {last_number + 1} : les {total} événements tiennent en {last_number} page(s)."
        in beyond
    )
    assert links(beyond, "prev")[0] == f"/retention/audit?page={last_number}"


def test_the_page_links_keep_the_filters_and_the_language(view, five_per_page):
    page = view.get("/retention/audit", params={"category": "prospection", "lang": "en"}).text
    (following, _) = links(page, "next")
    assert following == "/retention/audit?category=prospection&page=2&lang=en"
    assert "Events 1 to 5 of" in page and "<input type='hidden' name='lang' value='en'>" in page


def test_page_0_is_refused_naming_the_parameter(view):
    response = view.get("/retention/audit", params={"page": 0})
    assert response.status_code == 400 and "page" in response.json()["detail"]


def test_details_read_as_key_value_lines_that_wrap(view):
    page = view.get("/retention/audit", params={"action": "run_summary", "category": "web_forms"}).text
    (details,) = re.findall(r"<dl class='details'>(.*?)</dl>", page)
    assert re.search(r"<dt>archived:</dt><dd>\d+</dd>", details)
    # A nested value: one line per leaf, its key the path to it (not a JSON blob squeezed in a cell).
    assert re.search(r"<dt>tables\.archived\.web_form_submissions:</dt><dd>\d+</dd>", details)
    assert "{" not in details
    assert "dl.details dd{margin:0;overflow-wrap:break-word;white-space:pre-wrap}" in page
    assert "word-break:break-all" not in page  # what squeezed the JSON to one character per line
