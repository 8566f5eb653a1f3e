"""Fixtures shared by the engine tests (``target`` itself is in the root conftest)."""

from crm_helpers import crm  # noqa: F401 - a fixture, used by name
