"""The Celery cluster test's report: its wall time and each component's peak memory, printed in
the terminal summary (a fixture's output is captured; docs/how-to/deploy.md quotes these numbers)."""

from __future__ import annotations

import pytest

REPORT = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session")
def cluster_report(request: pytest.FixtureRequest) -> list[str]:
    """Lines for the terminal summary."""
    return request.config.stash.setdefault(REPORT, [])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    lines = config.stash.get(REPORT, [])
    if lines:
        terminalreporter.section("Celery cluster: wall time and peak memory")
        for line in lines:
            terminalreporter.write_line(line)
