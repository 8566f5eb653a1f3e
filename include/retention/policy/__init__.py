"""The retention policy: the charter's schedule as validated, frozen data (no database here)."""
