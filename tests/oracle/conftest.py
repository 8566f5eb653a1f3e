"""Hypothesis profiles for the oracle property tests.

``ci`` (the default): a few examples, derandomised so that every CI run tries the same
ones, no deadline (an example is a whole night on a real database) and no shrinking (the
failure message already names each row that differs, with the whole dataset). ``deep``:
hundreds of random examples, shrunk; select it with ``HYPOTHESIS_PROFILE=deep``
(``make test-deep``). Neither keeps a Hypothesis database in the checkout: a failure
prints its ``@reproduce_failure`` blob instead.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

_COMMON = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    # The target database is made once per test and emptied by each example.
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("ci", max_examples=4, derandomize=True, phases=[Phase.explicit, Phase.generate], **_COMMON)
settings.register_profile("deep", max_examples=300, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
