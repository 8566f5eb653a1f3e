"""Drive one generated world through the engine and compare it with the oracle, row by row."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from include.retention.database.target import Target
from oracle.model import Oracle, describe_differences
from oracle.strategies import World
from oracle.world import (
    add_holds,
    engine_state,
    moving_events,
    open_target,
    reset,
    run_night,
    seed,
    snapshot,
    stored_rows,
)


class GateFailed(AssertionError):
    """Every row is where the oracle says, but the engine's post-run gate failed."""


@dataclass
class Targets:
    """One database per test (PostgreSQL: emptied by each example; SQLite: a new file each)."""

    url: str
    tmp: Path
    counter: itertools.count = itertools.count()

    def fresh(self) -> Target:
        if self.url.startswith("sqlite"):
            return open_target(f"sqlite:///{self.tmp / f'example-{next(self.counter)}.db'}")
        target = open_target(self.url)
        reset(target)
        return target


def describe_world(world: World) -> str:
    """What a failure report needs to reproduce it by hand."""
    lines = [
        f"knobs: {world.knobs}",
        f"nights: {world.nights}",
        f"holds: {world.holds}",
        f"holds added after the first night: {world.later_holds}",
    ]
    for table, rows in world.rows.items():
        for row in rows:
            lines.append(f"  {table}: {row}")
    return "\n".join(lines)


def check_world(targets: Targets, world: World, *, check_gate: bool = True) -> None:
    """Seed the world, run each night, and after each compare the engine with the oracle;
    then run the last night again and check that nothing changed."""
    target = targets.fresh()
    try:
        rows = stored_rows(world.rows, target.is_sqlite)
        seed(target, rows)
        if world.holds:
            add_holds(target, world.policy, world.holds, world.nights[0][0], "FIRST")
        oracle = Oracle(world.policy, rows, world.holds)
        expected = oracle.initial_state()
        for n, (as_of, order) in enumerate(world.nights):
            if n == 1 and world.later_holds:
                later = world.later_holds.existing(expected)
                add_holds(target, world.policy, later, as_of, "LATER")
                oracle.holds = oracle.holds.union(later)
            expected = oracle.run(expected, as_of)
            result = run_night(target, world.policy, as_of, order, f"night{n}")
            got, problems = engine_state(target, world.policy, world.keys())
            differences = describe_differences(expected, got)
            assert not problems and not differences, _report(world, target, as_of, problems + differences)
            if check_gate and result.failed_checks:
                raise GateFailed(
                    _report(
                        world,
                        target,
                        as_of,
                        [f"post-run gate failed although every row is where the schedule says: {result.failed_checks}"],
                    )
                )
        last_day, last_order = world.nights[-1]
        before = snapshot(target, world.policy)
        run_night(target, world.policy, last_day, last_order, "again", gate=False)
        after = snapshot(target, world.policy)
        changed = [name for name in before if before[name] != after.get(name)]
        assert not changed, _report(world, target, last_day, [f"a second run for {last_day} changed {changed}"])
        moved = moving_events(target, world.policy, "again")
        assert not moved, _report(world, target, last_day, [f"a second run for {last_day} logged {moved}"])
    finally:
        target.dispose()


def _report(world: World, target: Target, as_of: date, problems: list[Any]) -> str:
    return (
        f"engine and oracle disagree on {target.dialect} as of {as_of}:\n  "
        + "\n  ".join(map(str, problems))
        + "\n"
        + describe_world(world)
    )
