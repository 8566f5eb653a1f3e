"""Airflow's constraints for the project image, less the packages requirements.txt pins.

The official way to extend the ``apache/airflow`` image installs extra packages with
``apache-airflow==$AIRFLOW_VERSION`` (so that pip never moves Airflow) and the constraints the
image was built with (``~/constraints.txt``), so that no dependency leaves the versions Airflow
was released and tested with. ``requirements.txt`` pins its own versions - those the project's
test suite runs with - and a constraint naming another version of one of them makes pip refuse
the whole install. The Dockerfile therefore passes the image's constraints without those lines:
what the project pins comes from requirements.txt, everything else stays at Airflow's version.

    python scripts/image_constraints.py ~/constraints.txt requirements.txt > constraints.txt
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# A requirement's project name, before any extras, version or marker (PEP 508).
_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical_name(name: str) -> str:
    """The name pip compares (PEP 503): ``SQLAlchemy`` and ``great_expectations`` read as
    ``sqlalchemy`` and ``great-expectations``, as a constraints file may spell them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str | None:
    """The canonical project name a requirements or constraints line names; None for a
    comment, a blank line or an option (``-r``, ``--index-url``)."""
    text = line.split("#", 1)[0].strip()
    if not text or text.startswith("-"):
        return None
    found = _NAME.match(text)
    return canonical_name(found.group(1)) if found else None


def constraints_without_pins(constraints: str, requirements: str) -> str:
    """``constraints`` less every line naming a project that ``requirements`` names."""
    pinned = {name for line in requirements.splitlines() if (name := requirement_name(line))}
    kept = [line for line in constraints.splitlines() if requirement_name(line) not in pinned]
    return "\n".join(kept) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write(f"usage: {sys.argv[0]} AIRFLOW_CONSTRAINTS REQUIREMENTS\n")
        return 2
    constraints, requirements = (Path(arg).read_text(encoding="utf-8") for arg in argv)
    sys.stdout.write(constraints_without_pins(constraints, requirements))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
