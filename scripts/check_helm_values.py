"""Validate a values file for the official Apache Airflow Helm chart against the chart's schema.

``helm install`` validates the chart's default values merged with yours against the chart's
``values.schema.json``; a key the chart does not know (a typo, a key of another chart version)
is refused there, on the cluster, at deploy time. This runs the same check where no Helm or
cluster is at hand: the schema (and, to validate the merged values as Helm does, the chart's
own ``values.yaml``) come from the chart's source at the version you deploy:

    python scripts/check_helm_values.py deploy/helm/values.yaml chart/values.schema.json \\
        --defaults chart/values.yaml

Helm's merge is followed: maps merge key by key, anything else in your file replaces the
default, and a ``null`` removes the default's key. Exit status 0 when valid, 1 with one line
per error (the key's path and what is wrong) otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator


def merged(defaults: Any, overrides: Any) -> Any:
    """``overrides`` over ``defaults`` as Helm merges values files."""
    if not isinstance(defaults, dict) or not isinstance(overrides, dict):
        return overrides
    result = dict(defaults)
    for key, value in overrides.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merged(defaults.get(key), value)
    return result


def errors(values: Any, schema: dict[str, Any]) -> Iterator[str]:
    """One line per schema violation: the key's path, then the validator's message."""
    for error in sorted(Draft7Validator(schema).iter_errors(values), key=lambda e: list(map(str, e.path))):
        path = ".".join(str(part) for part in error.path) or "(top level)"
        yield f"{path}: {error.message}"


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream) or {}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Validate Helm values against a chart's values.schema.json.")
    parser.add_argument("values", type=Path, help="your values file")
    parser.add_argument("schema", type=Path, help="the chart's values.schema.json")
    parser.add_argument("--defaults", type=Path, help="the chart's values.yaml, merged under yours as Helm does")
    args = parser.parse_args(argv)
    values = load_yaml(args.values)
    if args.defaults is not None:
        values = merged(load_yaml(args.defaults), values)
    schema = json.loads(args.schema.read_text(encoding="utf-8"))
    found = list(errors(values, schema))
    for line in found:
        print(line)
    what = "merged with the chart's defaults" if args.defaults is not None else "alone"
    print(f"{args.values} ({what}): {'valid' if not found else f'{len(found)} error(s)'} against {args.schema}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
