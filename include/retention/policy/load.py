"""Loading a policy: which file, and every problem in it reported at once with its key path.

``load_policy`` reads ``path``, else the file named by ``$RETENTION_POLICY``, else the shipped
``include/policy/retention_policy.yaml``; ``parse_policy`` validates data already read. Both
raise ``PolicyError`` listing every problem as ``key.path[0].key: message (got value)``, in the
words of the YAML file rather than of pydantic. ``check.check_against_database`` then checks
that the schemas, tables and columns it names exist.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from include.retention.errors import PolicyError, Problem
from include.retention.policy.conditions import ALL_OF, ANY_OF, COLUMN_TEST, NOT
from include.retention.policy.model import RetentionPolicy
from include.retention.policy.safe_yaml import read_policy_yaml
from include.retention.policy.validate import consistency_problems
from include.retention.settings import POLICY_ENV_VAR

DEFAULT_POLICY_PATH = Path(__file__).resolve().parents[2] / "policy" / "retention_policy.yaml"


def load_policy(path: str | os.PathLike[str] | None = None) -> RetentionPolicy:
    """Load and validate a policy: ``path``, else ``$RETENTION_POLICY``, else the default."""
    chosen = Path(path or os.environ.get(POLICY_ENV_VAR) or DEFAULT_POLICY_PATH)
    return parse_policy(read_policy_yaml(chosen), source=str(chosen))


def parse_policy(data: Any, source: str = "<memory>") -> RetentionPolicy:
    """Validate already-parsed YAML. Raises ``PolicyError`` listing every problem."""
    if not isinstance(data, dict):
        problem = Problem("", "the file must hold a mapping with version and categories", type(data).__name__)
        raise PolicyError(source, [problem])
    try:
        # Strict: YAML reads yes/no/on/off as booleans, and a lax model would take them for 1
        # and 0 (``fraction: yes`` a limit of 100 %); a quoted "5000" is not a number either.
        policy = RetentionPolicy.model_validate({**data, "source": source}, strict=True)
    except ValidationError as exc:
        raise PolicyError(source, [_problem_from_pydantic(err) for err in exc.errors()]) from None
    policy = policy.model_copy(
        update={"categories": {k: c.model_copy(update={"key": k}) for k, c in policy.categories.items()}}
    )
    problems = consistency_problems(policy)
    if problems:
        raise PolicyError(source, problems)
    return policy


# The names pydantic gives the branches of a union in an error's location.
_UNION_BRANCHES = {
    "literal['null', 'keep', 'year', 'month']",
    "PrefixRule",
    "RoundRule",
    COLUMN_TEST,
    ALL_OF,
    ANY_OF,
    NOT,
    "function-after[_exactly_one_test(), ColumnTest]",
}


def _problem_from_pydantic(err: ErrorDetails) -> Problem:
    """One pydantic error as a problem of the YAML file: its key path, without union branch names."""
    path = ""
    for part in err["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in _UNION_BRANCHES:
            continue  # union branch names: noise for a YAML author
        else:
            path += f".{part}" if path else str(part)
    value = err.get("input")
    if isinstance(value, (dict, list)):
        value = None  # do not echo a whole sub-tree back
    return Problem(path, _strict_hint(err["type"], value) or err["msg"], value)


_NUMBER_ERRORS = {"int_type", "float_type", "int_from_float"}


def _strict_hint(error_type: str, value: Any) -> str | None:
    """Say why a value YAML parsed as a boolean, or a number, is refused where the other is read."""
    if error_type in _NUMBER_ERRORS and isinstance(value, bool):
        return "must be a number; YAML reads yes/no/on/off/true/false as a boolean"
    if error_type in _NUMBER_ERRORS and isinstance(value, str):
        return (
            "must be a plain decimal number without quotes, such as 5000 or 0.2 (the file is read as "
            "YAML 1.2: 0x10, 0o10, 1:20 and 1_000 are strings)"
        )
    if error_type == "bool_type" and not isinstance(value, bool):
        return "must be true or false (a number or a string is not a boolean)"
    return None
