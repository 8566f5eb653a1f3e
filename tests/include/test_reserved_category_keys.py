"""A category key that would give its DAG the id of another DAG of the project is refused when
the policy is loaded, naming the key."""

from __future__ import annotations

import pytest
import yaml

from include.retention.errors import PolicyError
from include.retention.policy.load import DEFAULT_POLICY_PATH, parse_policy
from include.retention.policy.validate import RESERVED_CATEGORY_KEYS


@pytest.mark.parametrize("key", sorted(RESERVED_CATEGORY_KEYS))
def test_a_reserved_category_key_is_refused_naming_it(key):
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text())
    data["categories"][key] = data["categories"].pop("suppliers")
    data["precedence"] = [key if name == "suppliers" else name for name in data.get("precedence", [])]
    with pytest.raises(PolicyError) as info:
        parse_policy(data, source="policy.yaml")
    assert f"categories.{key}: the category key {key!r} is reserved" in str(info.value)
