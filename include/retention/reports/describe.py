"""The schedule in words, for DAG docs (``doc_md``) and the README.

A data engineer reading a DAG in the Airflow UI should see, without opening the policy,
what it enforces: how long rows stay active, from which event, how long the archive
keeps them, what happens at the end, and which tables are involved. In the policy's language
(``policy.language``, like the DAG's trigger form), or the one asked; the policy's own names
(tables, columns, tasks, params) stay as written, in code.
"""

from __future__ import annotations

from include.retention.database.archive_tables import identifier_columns
from include.retention.dates.periods import Period
from include.retention.language import Translate, translator
from include.retention.policy.model import Category, ChildTable, RetentionPolicy, TableBase, TablePolicy


def category_doc(policy: RetentionPolicy, category: Category, lang: str | None = None) -> str:
    """Markdown describing one category's rule, rendered from the policy, in ``lang`` (the
    policy's language by default)."""
    lang = lang or policy.language
    _ = translator(lang, "report")
    lines = [
        f"# {getattr(category.label, lang)}",
        "",
        _("Enforces the retention rule **{key}** of policy version `{version}`.").format(
            key=category.key, version=policy.version
        ),
        "",
        _("- **Legal basis:** {basis}").format(basis=category.legal_basis),
        _("- **Schedule:** `{cron}` ({zone})").format(cron=category.schedule, zone=policy.timezone),
        _("- **Rule:** {rule}").format(rule=schedule_sentence(category, lang)),
    ]
    if category.has_archive:
        lines.append(_("- **Purpose of the archive:** {purpose}").format(purpose=category.archive_purpose))
    lines += ["", _("## Tables"), ""]
    for table in category.tables:
        lines += _table_lines(table, 0, _)
    tasks = _(
        "`preflight_checks` validates the tables (Great Expectations; a failure stops the run before any row "
        "moves) → `plan` counts what is due (nothing changes) → `approve_deletions` waits for a person when the "
        "plan passes the deletion limit (Required Actions; reject or no answer: nothing changes) → `archive` "
        "moves due rows to the restricted archive → `purge` destroys what reached end of life → "
        "`postflight_checks` proves nothing is overdue and every count reconciles → `summary` records the run "
        "in the audit log and issues its deletion certificate. Rows under a legal hold (`legal_hold` DAG) stay."
    )
    params = _(
        "Params: `mode` (`preview`: plan only, nothing changes; `execute`: archive and destroy what is due), "
        "`as_of` (a date that replaces the run's date), `batch_size`."
    )
    lines += ["", _("## Tasks"), "", tasks, "", params]
    return "\n".join(lines)


def schedule_sentence(category: Category, lang: str = "en") -> str:
    """E.g. "kept active 3 years from last_inbound_contact_at, then 5 years in the archive, then deleted"."""
    _ = translator(lang, "report")
    starts = ", ".join(sorted({t.start_event.describe() for t in category.tables}))
    active = (
        _("kept active {period} from `{start}`").format(period=category.active_period.in_words(lang), start=starts)
        if not category.active_period.is_zero
        else _("kept active until `{start}` is set").format(start=starts)
    )
    end = _("deleted") if category.end_action == "delete" else _("anonymised")
    parents = sorted(
        {
            t.archived_with.table
            for t in category.tables
            if t.archived_with is not None and t.archived_with.on_parent_event
        }
    )
    if parents and category.has_archive:
        # Released by the parent's event, ended by its own clock (``archived_with.leaves_active``).
        event = _("the start event of its {tables} row").format(tables=", ".join(f"`{p}`" for p in parents))
        active = (
            _("kept active until {event}").format(event=event)
            if category.active_period.is_zero
            else _("kept active {period} from {event}").format(
                period=category.active_period.in_words(lang), event=event
            )
        )
        whole = Period(
            category.active_period.years + category.archive_or_zero.years,
            category.active_period.months + category.archive_or_zero.months,
            category.active_period.days + category.archive_or_zero.days,
        )
        return _("{active}, then in the archive until {period} from `{start}`, then {end}.").format(
            active=active, period=whole.in_words(lang), start=starts, end=end
        )
    if category.has_archive:
        return _("{active}, then {period} in the archive, then {end}.").format(
            active=active, period=category.archive_or_zero.in_words(lang), end=end
        )
    return _("{active}, then {end} (no archive).").format(active=active, end=end)


def _identifiers_kept(table: TableBase, _: Translate) -> str:
    """The subject identifiers an archive row keeps beyond its archive columns (``archive_layout``):
    the schedule must not say the archive holds less than it does."""
    extra = [c for c in identifier_columns(table) if c not in table.archive_columns]
    if not extra:
        return ""
    return _("; also kept to find the person on a rights request or legal hold: {columns}").format(
        columns=", ".join(extra)
    )


def _table_lines(table: TableBase, depth: int, _: Translate) -> list[str]:
    indent = "  " * depth
    kind = ""
    if isinstance(table, TablePolicy):
        meaning = _("still ongoing") if table.start_event.when_missing == "ongoing" else _("a data defect, reported")
        kind = _(" - clock: `{start}` (missing means {meaning})").format(
            start=table.start_event.describe(), meaning=meaning
        )
        if table.scope is not None:
            kind += _("; only the rows in its scope")
        if table.start_event.ongoing_if_open is not None:
            kind += _("; ongoing while a `{table}` row is open").format(
                table=table.start_event.ongoing_if_open.path[-1].table
            )
        if table.archived_with is not None and table.archived_with.on_parent_event:
            kind += _(
                "; leaves the active base when the start event of its `{table}` row has passed (plus this "
                "category's active period; its own clock if that row has left or no category governs it), or "
                "with that row; kept in the archive until its own start + both periods"
            ).format(table=table.archived_with.table)
        elif table.archived_with is not None:
            kind += _("; archived together with its `{table}` row").format(table=table.archived_with.table)
    elif isinstance(table, ChildTable):
        kind = _(" - child via `{columns}`").format(columns=", ".join(table.foreign_key))
    archived = _("; archived columns: {columns}").format(columns=", ".join(table.archive_columns) or _("nothing"))
    out = [f"{indent}- `{table.table}`{kind}{archived}{_identifiers_kept(table, _)}"]
    for child in table.children:
        out += _table_lines(child, depth + 1, _)
    return out
