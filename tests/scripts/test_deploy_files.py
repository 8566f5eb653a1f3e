"""The deployment files hold together where no Docker engine or Kubernetes cluster is at hand.

docker-compose.yaml, the Dockerfile, .env.example and deploy/helm/values.yaml are read by tools
this project's build machines do not have; each mistake they can hold is found here instead:
a service missing from Airflow's distributed shape, a secret written in the file, a variable
the compose file reads that .env.example does not document, an image of another Airflow than
requirements.txt's, a RETENTION_* name the code does not read, a Helm combination the chart
refuses at install. The helpers the image and the compose stack run (scripts/image_constraints.py,
scripts/seed_target.py) and the Helm values checker (scripts/check_helm_values.py) are run too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from include.retention import settings
from include.retention.policy.load import DEFAULT_POLICY_PATH, load_policy, parse_policy, read_policy_yaml
from include.retention_airflow.alerts import approval_alert_hours, channels
from include.retention_airflow.approval import approvers
from include.retention_airflow.targets import sites
from scripts.check_helm_values import errors, merged
from scripts.check_helm_values import main as check_helm_values
from scripts.image_constraints import constraints_without_pins
from scripts.seed_target import seed_once

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
HELM_VALUES = ROOT / "deploy" / "helm" / "values.yaml"

MOST_BATCH_WORKERS = 8  # the policy's batch_workers: 1 to 8 (policy/model.py)

AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?message}, ${NAME?message}; $$ is a literal $.
VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")
# A name that says its value is a secret (not a file holding one), and a URL's user:password@ part.
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|FERNET|JWT|TOKEN|_KEY$|_AUTH$)(?!.*_FILE$)")
URL_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s]+)@")
# The project's own settings: what settings.py names, the only RETENTION_* the code reads.
PROJECT_VARIABLES = {value for name, value in vars(settings).items() if name.endswith("_ENV_VAR")}
# A variable's name defined anywhere else than settings.py (``NAME_ENV_VAR = "RETENTION_..."``).
ENV_VAR_CONSTANT = re.compile(r"^\w+_ENV_VAR\s*=", re.MULTILINE)


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def strings(node: Any) -> list[str]:
    """Every string in a YAML document, keys included."""
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (*strings(key), *strings(value))]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def variables_read(text: str) -> set[str]:
    return {match.group(1) for match in VARIABLE.finditer(text) if match.group(1)}


def documented_variables() -> set[str]:
    return {
        m.group(1)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if (m := re.match(r"([A-Z_][A-Z0-9_]*)=", line))
    }


def example_values() -> dict[str, str]:
    """.env.example's values, quotes removed."""
    found = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"([A-Z_][A-Z0-9_]*)=(.*)$", line):
            found[m.group(1)] = m.group(2).strip("'")
    return found


def interpolated(text: str, values: dict[str, str]) -> str:
    """``text`` as docker compose reads it with ``values`` as its .env (``:-`` and ``:?``
    take an empty value as unset)."""

    def value(match: re.Match[str]) -> str:
        whole, name = match.group(0), match.group(1)
        if name is None:
            return "$"
        given = values.get(name, "")
        if given or ":" not in whole:
            return given
        if ":?" in whole:
            raise KeyError(f"{name} is required")
        return whole.split(":-", 1)[1][:-1]

    return VARIABLE.sub(value, text)


def the_code_accepts(environ: dict[str, str]) -> None:
    """Read the project's Airflow settings from ``environ`` as every DAG's parse does: a value
    the code refuses would fail every DAG of the deployment."""
    sites(environ)
    channels(environ)
    approvers(environ)
    approval_alert_hours(load_policy(environ.get("RETENTION_POLICY") or None).approval_timeout_hours, environ)


def environments(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(service, variable, value) of every service's environment."""
    found = []
    for service, spec in document["services"].items():
        environment = spec.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.split("=", 1) for item in environment)
        found += [(service, name, str(value)) for name, value in environment.items()]
    return found


def literal_secrets(document: dict[str, Any]) -> list[str]:
    """Places where a compose file writes a secret rather than reading it from .env."""
    found = []
    for service, name, value in environments(document):
        if SECRET_NAME.search(name) and not VARIABLE.search(value):
            found.append(f"{service}: {name}")
    for text in strings(document):
        for password in URL_PASSWORD.findall(text):
            if not VARIABLE.fullmatch(password):
                found.append(f"a URL's password: {text}")
    return found


# --- docker-compose.yaml ---------------------------------------------------------------------


def test_compose_has_airflow_distributed_shape() -> None:
    services = compose()["services"]
    for name in ("postgres", "redis", "target", "target-seed", *AIRFLOW_SERVICES):
        assert name in services, f"docker-compose.yaml has no service {name}"
    common = compose()["x-airflow-common"]["environment"]
    assert common["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert common["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert services["airflow-worker"]["deploy"]["replicas"] == "${AIRFLOW_WORKER_REPLICAS:-2}"
    assert services["airflow-worker"]["command"] == "celery worker"
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE.read_text(encoding="utf-8")


def test_every_airflow_component_shares_the_evidence_volume() -> None:
    services = compose()["services"]
    for name in AIRFLOW_SERVICES:
        mounts = [str(mount).split(":")[:2] for mount in services[name]["volumes"]]
        assert ["retention-data", "/opt/airflow/retention-data"] in mounts, name
        environment = services[name]["environment"]
        assert environment["RETENTION_REPORTS_DIR"].endswith(":-/opt/airflow/retention-data/reports}")


def init_pools_script() -> str:
    """airflow-init's commands up to the pools imported (what follows writes the UI passwords)."""
    script = compose()["services"]["airflow-init"]["command"][2]
    return script[: script.index("umask 077")]


def helm_migrate_script() -> str:
    return str(helm_values()["migrateDatabaseJob"]["args"][2])


@pytest.mark.parametrize("script", [init_pools_script, helm_migrate_script], ids=["compose", "helm"])
def test_a_start_creates_the_missing_pools_after_migrating(script) -> None:
    text = script()
    migrate = text.index("airflow db migrate")
    listed = text.index("airflow pools list -o json > /tmp/retention-pools-existing.json")
    missing = text.index(
        "python -m include.retention_airflow.targets --except-existing /tmp/retention-pools-existing.json"
    )
    assert migrate < listed < missing < text.index("airflow pools import /tmp/retention-pools.json")


FAKE_AIRFLOW = """#!/bin/sh
echo "$*" >> "$AIRFLOW_CALLS"
case "$1 $2" in
  "pools list") cat "$EXISTING_POOLS" ;;
  "pools import") cp "$3" "$IMPORTED_POOLS" ;;
esac
"""


@pytest.mark.parametrize("script", [init_pools_script, helm_migrate_script], ids=["compose", "helm"])
def test_a_start_keeps_the_size_an_operator_gave_a_pool(script, tmp_path) -> None:
    """``airflow pools import`` overwrites a pool: the start of compose's airflow-init and of the
    Helm migration job import only the pools missing from ``airflow pools list`` - an upgrade
    that adds a target creates its pool, and an operator's ``airflow pools set`` survives every
    restart. Run with an ``airflow`` that records its calls and lists the pools it is given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "airflow").write_text(FAKE_AIRFLOW)
    (bin_dir / "airflow").chmod(0o755)
    existing = [
        {"pool": "default_pool", "slots": 128, "description": "Default pool", "include_deferred": False},
        {"pool": "retention_target_paris", "slots": 16, "description": "resized", "include_deferred": False},
    ]
    (tmp_path / "existing.json").write_text(json.dumps(existing))
    environment = {
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
        "AIRFLOW_CALLS": str(tmp_path / "calls"),
        "EXISTING_POOLS": str(tmp_path / "existing.json"),
        "IMPORTED_POOLS": str(tmp_path / "imported.json"),
        "RETENTION_TARGETS": "paris=policy/retention_policy.yaml,lyon=policy/retention_policy.yaml",
    }
    done = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{script().replace('/tmp/', f'{tmp_path}/')}"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls == ["db migrate", "pools list -o json", f"pools import {tmp_path}/retention-pools.json"]
    imported = json.loads((tmp_path / "imported.json").read_text())
    assert list(imported) == ["retention_target_lyon"]  # Paris's pool keeps its 16 slots
    # At least the largest batch_workers any policy may set: archive and purge take that many slots.
    assert imported["retention_target_lyon"]["slots"] >= MOST_BATCH_WORKERS == 8


def test_a_policys_batch_workers_are_at_most_eight() -> None:
    """What a pool's size is compared with above (docs/how-to/deploy.md says it too)."""
    with pytest.raises(ValueError, match="batch_workers"):
        parse_policy({**read_policy_yaml(DEFAULT_POLICY_PATH), "batch_workers": MOST_BATCH_WORKERS + 1})


def test_compose_writes_no_secret() -> None:
    assert literal_secrets(compose()) == []


def test_the_secret_check_finds_a_written_secret() -> None:
    written = {
        "services": {
            "worker": {
                "environment": {
                    "AIRFLOW__CORE__FERNET_KEY": "abc",
                    "AIRFLOW_CONN_X": "postgresql://u:hunter2@db/x",
                    "AIRFLOW_CONN_Y": "postgresql://u:${Y_PASSWORD}@db/y",
                }
            }
        }
    }
    assert literal_secrets(written) == [
        "worker: AIRFLOW__CORE__FERNET_KEY",
        "a URL's password: postgresql://u:hunter2@db/x",
    ]


def test_every_variable_compose_reads_is_documented() -> None:
    read = variables_read(COMPOSE.read_text(encoding="utf-8"))
    assert read - documented_variables() == set(), "add them to .env.example, with how to generate a secret"
    assert documented_variables() - read == set(), ".env.example documents variables docker-compose.yaml never reads"


def test_every_secret_is_required_and_left_blank_in_the_example() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if re.match(r"[A-Z_]+=", line)
    )
    for name in variables_read(text):
        if SECRET_NAME.search(name):
            assert f"${{{name}:?" in text, f"{name} has a default in docker-compose.yaml"
            assert example[name] == "", f".env.example gives {name} a value: every deployment must make its own"


def test_compose_reads_only_settings_the_project_defines() -> None:
    read = {name for _, name, _ in environments(compose()) if name.startswith("RETENTION_")}
    assert read - PROJECT_VARIABLES == set()
    assert {"RETENTION_TARGETS", "RETENTION_REPORTS_DIR", "RETENTION_ALERT_EMAILS"} <= read


def test_every_variable_the_code_reads_is_named_in_settings() -> None:
    # Otherwise the checks below, which start from settings.py, miss it (RETENTION_APPROVERS did).
    elsewhere = [
        str(path.relative_to(ROOT))
        for folder in ("include", "dags", "plugins")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "settings.py" and ENV_VAR_CONSTANT.search(path.read_text(encoding="utf-8"))
    ]
    assert elsewhere == []


def test_every_setting_reaches_every_airflow_container() -> None:
    common = compose()["x-airflow-common"]["environment"]
    # The subject key reaches them as the Airflow Variable AIRFLOW_VAR_RETENTION_SUBJECT_SECRET.
    assert "AIRFLOW_VAR_" + settings.KEY_ENV_VAR in common
    missing = PROJECT_VARIABLES - {settings.KEY_ENV_VAR} - set(common)
    assert missing == set(), f"set in .env, never seen by Airflow: {sorted(missing)}"
    assert PROJECT_VARIABLES - {settings.KEY_ENV_VAR} <= documented_variables()


def test_compose_settings_as_env_example_gives_them_are_accepted() -> None:
    values = {**example_values(), **{name: "x" * 32 for name in documented_variables() if SECRET_NAME.search(name)}}
    common = compose()["x-airflow-common"]["environment"]
    environ = {name: interpolated(str(value), values) for name, value in common.items()}
    the_code_accepts(environ)
    assert environ["RETENTION_ALERT_SMTP_CONN"] == "smtp_default"
    assert interpolated(compose()["services"]["airflow-worker"]["deploy"]["replicas"], values) == "2"
    with pytest.raises(KeyError, match="AIRFLOW_FERNET_KEY is required"):
        interpolated(common["AIRFLOW__CORE__FERNET_KEY"], example_values())


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_extends_requirements_airflow() -> None:
    pinned = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    base = re.search(r"^FROM apache/airflow:(\S+)-python(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert pinned and base
    assert base.group(1) == pinned.group(1), "the image's Airflow is not requirements.txt's"
    assert base.group(2) == "3.11"


def test_dockerfile_installs_requirements_as_airflow_and_copies_the_project() -> None:
    text = DOCKERFILE.read_text()
    assert text.index("USER airflow") < text.index("pip install")
    assert '"apache-airflow==${AIRFLOW_VERSION}" ' in text
    assert "-r /tmp/retention-build/requirements.txt --constraint /tmp/retention-build/constraints.txt" in text
    for folder in ("dags", "include", "plugins", "scripts"):
        assert re.search(rf"^COPY .*\b{folder}/ \$\{{PROJECT_DIR\}}/{folder}/$", text, re.MULTILINE), folder
    assert "ENV PYTHONPATH=${PROJECT_DIR}" in text


def test_image_constraints_leave_out_what_requirements_pin() -> None:
    constraints = "# Airflow 3.3.2\nSQLAlchemy==1.4.54\ngreat_expectations==1.0.0\nredis==5.2.1\nzipp==3.21.0\n"
    requirements = (
        "# Engine\nsqlalchemy==2.1.9\ngreat-expectations==1.24.1  # gates\npsycopg[binary]==3.3.9\n-r other.txt\n"
    )
    assert constraints_without_pins(constraints, requirements) == "# Airflow 3.3.2\nredis==5.2.1\nzipp==3.21.0\n"


# --- The demo target's seed ----------------------------------------------------------------------


def test_seed_fills_an_empty_target_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    seeded = seed_once(url)
    assert seeded is not None and seeded["prospects"] > 0
    assert seed_once(url) is None


# --- Helm values ---------------------------------------------------------------------------------


def helm_values() -> dict[str, Any]:
    return yaml.safe_load(HELM_VALUES.read_text(encoding="utf-8"))


def test_helm_values_run_the_project_image_on_celery() -> None:
    values = helm_values()
    assert values["executor"] == "CeleryExecutor"
    assert values["airflowVersion"] == re.search(r"apache/airflow:(\S+)-python", DOCKERFILE.read_text()).group(1)
    assert values["defaultAirflowRepository"] != "apache/airflow", "the project image, not Airflow's"
    assert isinstance(values["workers"]["celery"]["replicas"], int)
    assert values["config"]["core"]["dags_folder"] == "/opt/airflow/project/dags"


def test_helm_values_take_connections_and_variables_from_secrets() -> None:
    values = helm_values()
    from_secrets = {entry["envName"] for entry in values["secret"]}
    assert {"AIRFLOW_CONN_RETENTION_TARGET", "AIRFLOW_VAR_RETENTION_SUBJECT_SECRET"} <= from_secrets
    assert (
        literal_secrets({"services": {"helm": {"environment": {e["name"]: e["value"] for e in values["env"]}}}}) == []
    )
    assert values["createUserJob"]["enabled"] is False, "the chart's user job writes the admin's password in values"
    # The chart refuses its own Redis with a password secret unless the broker URL is a secret too.
    assert values["redis"]["passwordSecretName"] and values["data"]["brokerUrlSecretName"]


def test_helm_values_set_only_settings_the_project_defines() -> None:
    names = {entry["name"] for entry in helm_values()["env"]}
    assert {name for name in names if name.startswith("RETENTION_")} <= PROJECT_VARIABLES


def test_helm_values_settings_are_accepted() -> None:
    environ = {entry["name"]: entry["value"] for entry in helm_values()["env"]}
    the_code_accepts(environ)
    assert channels(environ).emails


def test_a_setting_the_code_refuses_is_found() -> None:
    with pytest.raises(ValueError, match="RETENTION_APPROVAL_ALERT_HOURS"):
        the_code_accepts({"RETENTION_APPROVAL_ALERT_HOURS": "24"})  # the policy's approval timeout: too late
    with pytest.raises(ValueError, match="RETENTION_APPROVERS: entry 1"):
        the_code_accepts({"RETENTION_APPROVERS": "dpo;bob"})


def test_helm_values_mount_the_evidence_volume_and_create_the_pools() -> None:
    values = helm_values()
    (mount,) = values["volumeMounts"]
    (volume,) = values["volumes"]
    assert mount["name"] == volume["name"] and mount["mountPath"] == "/opt/airflow/retention-data"
    env = {entry["name"]: entry["value"] for entry in values["env"]}
    assert env["RETENTION_REPORTS_DIR"].startswith(mount["mountPath"])
    job = " ".join(values["migrateDatabaseJob"]["args"])
    assert job.index("airflow db migrate") < job.index("airflow pools import /tmp/retention-pools.json")


SCHEMA = {
    "type": "object",
    "properties": {
        "executor": {"type": "string", "pattern": "Executor$"},
        "workers": {"type": "object", "properties": {"replicas": {"type": "integer"}}, "additionalProperties": False},
    },
}


def test_helm_checker_merges_like_helm() -> None:
    defaults = {"workers": {"replicas": 1, "resources": {}}, "redis": {"enabled": True}, "tags": ["a"]}
    mine = {"workers": {"replicas": 3}, "redis": None, "tags": ["b"]}
    assert merged(defaults, mine) == {"workers": {"replicas": 3, "resources": {}}, "tags": ["b"]}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"executor": "CeleryExecutor", "workers": {"replicas": 2}}, []),
        (
            {"executor": "Celery", "workers": {"replica": 2}},
            [
                "executor: 'Celery' does not match 'Executor$'",
                "workers: Additional properties are not allowed ('replica' was unexpected)",
            ],
        ),
    ],
)
def test_helm_checker_reports_each_error(values: dict[str, Any], expected: list[str]) -> None:
    assert list(errors(values, SCHEMA)) == expected


def test_helm_checker_exit_status(tmp_path: Path) -> None:
    schema = tmp_path / "values.schema.json"
    schema.write_text(json.dumps(SCHEMA))
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("executor: CeleryExecutor\n")
    bad.write_text("workers:\n  replicas: two\n")
    assert check_helm_values([str(good), str(schema)]) == 0
    assert check_helm_values([str(bad), str(schema)]) == 1
