"""The docs point at files that exist: a relative link in README.md, docs/ or an example's
README, or a project path they quote (``include/...``, ``dags/...``, ``tests/...``), must name
a file or folder of the checkout. Modules move (issue 17 moved the engine into
sub-packages); this test makes a stale path in the docs fail ``make test`` instead of
misleading a reader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("examples/*/README.md")])

# [text](target) and [text](target "title"); images too. Targets with a scheme are not files.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
HEADING = re.compile(r"^#{1,6} ")
# A project path quoted in prose or code: starts at a top-level folder of the checkout, not
# inside another path (/opt/airflow/project/dags is a deployment's path, not ours).
PROJECT_PATH = re.compile(r"(?<![\w/.~$-])((?:include|dags|tests|plugins|scripts|bench|examples)/[\w./-]*)")


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def heading_anchors(doc: Path) -> set[str]:
    """The anchors GitHub gives the headings of ``doc``: lower case, punctuation dropped, spaces to ``-``."""
    anchors = set()
    in_code = False
    for line in doc.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and HEADING.match(line):
            title = HEADING.sub("", line).strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def broken_links(doc: Path) -> list[str]:
    """Relative link targets of ``doc`` that name no file of the checkout, or no heading of a Markdown file."""
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if SCHEME.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = doc.parent / file_part if file_part else doc
        if not linked.exists() or anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
            broken.append(target)
    return broken


def missing_project_paths(doc: Path) -> list[str]:
    """Project paths quoted in ``doc`` that name nothing in the checkout."""
    missing = []
    for match in PROJECT_PATH.findall(doc.read_text(encoding="utf-8")):
        path = match.rstrip(".-")
        if "*" in path or not path.strip("/"):
            continue
        if not (ROOT / path).exists():
            missing.append(path)
    return sorted(set(missing))


def test_the_docs_are_found() -> None:
    assert ROOT / "README.md" in DOCS
    assert any(doc.parent.name == "docs" for doc in DOCS)


@pytest.mark.parametrize("doc", DOCS, ids=_relative)
def test_relative_links_name_existing_files(doc: Path) -> None:
    assert broken_links(doc) == []


@pytest.mark.parametrize("doc", DOCS, ids=_relative)
def test_quoted_project_paths_exist(doc: Path) -> None:
    assert missing_project_paths(doc) == []


def test_a_wrong_link_and_a_stale_path_are_caught(tmp_path: Path) -> None:
    """The checks themselves: a link to a missing file and a moved module are reported."""
    doc = tmp_path / "page.md"
    doc.write_text(
        "# The top: `here`\n\n[ok](page.md#the-top-here), [web](https://example.org), [gone](missing.md), "
        "[no heading](#elsewhere), `include/retention/catalog.py` and `include/retention/database/reflect.py`.\n",
        encoding="utf-8",
    )
    assert broken_links(doc) == ["missing.md", "#elsewhere"]
    assert missing_project_paths(doc) == ["include/retention/catalog.py"]
