"""Deletion limits: what one run may remove without a person's approval, per table side."""

from __future__ import annotations

import pytest
from engine_helpers import club_policy, create_club, ids, run_category

from include.retention.errors import RetentionError
from include.retention.policy.model import DeletionLimit
from include.retention.schedule.limits import DeletionLimitExceeded, check, over_limit


@pytest.mark.parametrize(
    "rows, base, limit, over",
    [
        (20, 100, DeletionLimit(rows=100, fraction=0.2), False),  # exactly 20%: allowed
        (21, 100, DeletionLimit(rows=100, fraction=0.2), True),
        (101, 10_000, DeletionLimit(rows=100, fraction=0.2), True),  # few percent, but past the row count
        (5, 0, DeletionLimit(rows=100, fraction=0.2), True),  # from an empty side: all of it
        (0, 0, DeletionLimit(rows=100, fraction=0.2), False),
        (10**6, 10**6, DeletionLimit(rows=None, fraction=1.0), False),  # no limit
    ],
)
def test_a_limit_is_passed_by_more_rows_or_a_larger_share(rows, base, limit, over):
    assert over_limit(rows, base, limit) is over


def test_an_approval_covers_up_to_the_approved_count_only():
    limit = DeletionLimit(rows=10, fraction=None)
    check("members", "active", 50, 100, limit, {"members:active": 50})
    with pytest.raises(DeletionLimitExceeded, match="only 49 were approved"):
        check("members", "active", 50, 100, limit, {"members:active": 49})
    with pytest.raises(DeletionLimitExceeded, match="needs an approval"):
        check("members", "archive", 50, 100, limit, None)


def test_a_run_within_its_category_limit_needs_no_approval(target):
    create_club(target)
    run_category(target, club_policy(deletion_limit={"rows": 10, "fraction": 0.7}), approve=False)
    assert ids(target, "members", archive=True) == [1, 3, 5, 7]


def test_a_category_limit_overrides_the_policy_limit(target):
    create_club(target)
    with pytest.raises(RetentionError, match="the limit is 2 rows"):
        run_category(target, club_policy(deletion_limit={"rows": 2, "fraction": None}), approve=False)


@pytest.mark.parametrize(
    "a, b, expected",
    [
        (DeletionLimit(rows=100_000, fraction=1.0), DeletionLimit(rows=0), DeletionLimit(rows=0, fraction=1.0)),
        (
            DeletionLimit(rows=10, fraction=0.5),
            DeletionLimit(rows=50, fraction=0.1),
            DeletionLimit(rows=10, fraction=0.1),
        ),
        (DeletionLimit(), DeletionLimit(fraction=0.2), DeletionLimit(fraction=0.2)),
    ],
)
def test_a_dependant_destroyed_in_its_parents_run_is_under_the_stricter_of_both_limits(a, b, expected):
    from include.retention.schedule.limits import stricter

    assert stricter(a, b) == expected and stricter(b, a) == expected
