"""Fixtures shared by the engine tests (``target`` itself is in the root conftest)."""

from crm_helpers import crm, crm_templates  # noqa: F401 - fixtures, used by name
