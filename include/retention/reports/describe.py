"""The schedule in words, for DAG docs (``doc_md``) and the README.

A data engineer reading a DAG in the Airflow UI should see, without opening the policy,
what it enforces: how long rows stay active, from which event, how long the archive
keeps them, what happens at the end, and which tables are involved.
"""

from __future__ import annotations

from include.retention.database.archive_tables import identifier_columns
from include.retention.dates.periods import Period
from include.retention.policy.model import Category, ChildTable, RetentionPolicy, TableBase, TablePolicy


def category_doc(policy: RetentionPolicy, category: Category) -> str:
    """Markdown describing one category's rule, rendered from the policy."""
    lines = [
        f"# {category.label.en} / {category.label.fr}",
        "",
        f"Enforces the retention rule **{category.key}** of policy version `{policy.version}`.",
        "",
        f"- **Legal basis:** {category.legal_basis}",
        f"- **Schedule:** `{category.schedule}` ({policy.timezone})",
        f"- **Rule:** {schedule_sentence(category)}",
    ]
    if category.has_archive:
        lines.append(f"- **Purpose of the archive:** {category.archive_purpose}")
    lines += ["", "## Tables", ""]
    for table in category.tables:
        lines += _table_lines(table, 0)
    lines += [
        "",
        "## Tasks",
        "",
        "`preflight_checks` validates the tables (Great Expectations; a failure stops the run before any row",
        "moves) → `plan` counts what is due (nothing changes) → `approve_deletions` waits for a person when the",
        "plan passes the deletion limit (Required Actions; reject or no answer: nothing changes) → `archive`",
        "moves due rows to the restricted archive → `purge` destroys what reached end of life →",
        "`postflight_checks` proves nothing is overdue and every count reconciles → `summary` records the run",
        "in the audit log and issues its deletion certificate. Rows under a legal hold (`legal_hold` DAG) stay.",
        "",
        "Params: `dry_run` (plan only; empty: a run triggered by hand is a dry run, a scheduled run executes),",
        "`as_of` (a date that replaces the run's date), `batch_size`.",
    ]
    return "\n".join(lines)


def schedule_sentence(category: Category) -> str:
    """E.g. "kept active 3 years from last_inbound_contact_at, then 5 years in the archive, then deleted"."""
    starts = ", ".join(sorted({t.start_event.describe() for t in category.tables}))
    active = (
        f"kept active {category.active_period.in_words()} from `{starts}`"
        if not category.active_period.is_zero
        else f"kept active until `{starts}` is set"
    )
    end = "deleted" if category.end_action == "delete" else "anonymised"
    parents = sorted(
        {
            t.archived_with.table
            for t in category.tables
            if t.archived_with is not None and t.archived_with.on_parent_event
        }
    )
    if parents and category.has_archive:
        # Released by the parent's event, ended by its own clock (``archived_with.leaves_active``).
        event = f"the start event of its {', '.join(f'`{p}`' for p in parents)} row"
        active = (
            f"kept active until {event}"
            if category.active_period.is_zero
            else f"kept active {category.active_period.in_words()} from {event}"
        )
        whole = Period(
            category.active_period.years + category.archive_or_zero.years,
            category.active_period.months + category.archive_or_zero.months,
            category.active_period.days + category.archive_or_zero.days,
        )
        return f"{active}, then in the archive until {whole.in_words()} from `{starts}`, then {end}."
    if category.has_archive:
        return f"{active}, then {category.archive_or_zero.in_words()} in the archive, then {end}."
    return f"{active}, then {end} (no archive)."


def _identifiers_kept(table: TableBase) -> str:
    """The subject identifiers an archive row keeps beyond its archive columns (``archive_layout``):
    the schedule must not say the archive holds less than it does."""
    extra = [c for c in identifier_columns(table) if c not in table.archive_columns]
    if not extra:
        return ""
    return f"; also kept to find the person on a rights request or legal hold: {', '.join(extra)}"


def _table_lines(table: TableBase, depth: int) -> list[str]:
    indent = "  " * depth
    kind = ""
    if isinstance(table, TablePolicy):
        meaning = "still ongoing" if table.start_event.when_missing == "ongoing" else "a data defect, reported"
        kind = f" - clock: `{table.start_event.describe()}` (missing means {meaning})"
        if table.scope is not None:
            kind += "; only the rows in its scope"
        if table.start_event.ongoing_if_open is not None:
            kind += f"; ongoing while a `{table.start_event.ongoing_if_open.path[-1].table}` row is open"
        if table.archived_with is not None and table.archived_with.on_parent_event:
            kind += (
                f"; leaves the active base when the start event of its `{table.archived_with.table}` row has "
                "passed (plus this category's active period; its own clock if that row has left or no "
                "category governs it), or with "
                "that row; kept in the archive until its own start + both periods"
            )
        elif table.archived_with is not None:
            kind += f"; archived together with its `{table.archived_with.table}` row"
    elif isinstance(table, ChildTable):
        kind = f" - child via `{', '.join(table.foreign_key)}`"
    archived = ", ".join(table.archive_columns) or "nothing"
    out = [f"{indent}- `{table.table}`{kind}; archived columns: {archived}{_identifiers_kept(table)}"]
    for child in table.children:
        out += _table_lines(child, depth + 1)
    return out
