"""The pools a deployment imports at each start: only the targets' missing ones, so that an
operator's resize of a pool (``airflow pools set``) survives the next start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.cli.commands.pool_command import _show_pools

from include.retention_airflow.targets import PROJECT_ROOT, TargetsError, existing_pool_names, missing_pools, pools

TWO = {"RETENTION_TARGETS": "paris=include/policy/retention_policy.yaml,lyon=include/policy/retention_policy.yaml"}


def _listing(capsys: pytest.CaptureFixture[str], rows: list[tuple]) -> str:
    """What ``airflow pools list -o json`` prints for ``rows`` (name, slots, description, deferred, team)."""
    capsys.readouterr()
    _show_pools(pools=rows, output="json")
    return capsys.readouterr().out


def _cli(*args: str, environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "include.retention_airflow.targets", *args],
        env={"PATH": "/usr/bin:/bin", **environ},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_pools_list_of_airflow_is_read_and_only_the_missing_pools_are_given(capsys):
    listing = _listing(
        capsys,
        [("default_pool", 128, "Default pool", False, None), ("retention_target_paris", 2, "resized", False, None)],
    )
    assert existing_pool_names(listing, "existing.json") == {"default_pool", "retention_target_paris"}
    assert list(missing_pools({"default_pool", "retention_target_paris"}, TWO)) == ["retention_target_lyon"]
    assert missing_pools(set(pools(TWO)), TWO) == {}


def test_the_cli_prints_only_the_missing_pools_and_keeps_its_plain_form(capsys, tmp_path: Path):
    existing = tmp_path / "existing.json"
    existing.write_text(
        _listing(capsys, [("default_pool", 128, "", False, None), ("retention_target_paris", 2, "", False, None)])
    )
    missing = _cli("--except-existing", str(existing), environ=TWO)
    assert missing.returncode == 0, missing.stderr
    assert json.loads(missing.stdout) == {"retention_target_lyon": pools(TWO)["retention_target_lyon"]}
    every = _cli(environ=TWO)
    assert json.loads(every.stdout) == pools(TWO)


def test_a_file_that_is_not_a_pools_list_is_refused_naming_it(tmp_path: Path):
    with pytest.raises(TargetsError, match="existing.json is not the output of 'airflow pools list -o json'"):
        existing_pool_names('{"retention_target": {"slots": 8}}', "existing.json")
    wrong = _cli("--except-existing", str(tmp_path / "nowhere.json"), "extra", environ={})
    assert wrong.returncode == 2 and "usage" in wrong.stderr
