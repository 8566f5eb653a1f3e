"""Errors that name what is wrong, where, and what the user can do about it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class RetentionError(Exception):
    """Base class: every error the engine raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One mistake in a policy: where it is (a dotted key path) and what is wrong."""

    path: str
    message: str
    value: Any = None

    def __str__(self) -> str:
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{self.path or '<top>'}: {self.message}{shown}"


class PolicyError(RetentionError, ValueError):
    """A policy file that cannot be enforced as written. Lists every problem found."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid retention policy {source}:\n{lines}")


class BatchIntegrityError(RetentionError):
    """A batch copied and removed different numbers of rows; it was rolled back."""
