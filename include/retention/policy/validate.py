"""Rules that tie several keys of a policy together, checked once every key is valid on its own.

Pydantic checks each block; these checks read the whole schedule: a table shared by two
categories, a dependant and the parent it is archived with, one table declared under two
parents or under itself, one table name in two schemas, a partitioned table whose bounds
cannot tell its horizon, a ``reconsent`` block against its category (``reconsent_rules``).
Each problem names the key path to fix, so that every mistake of a file is reported at once.
"""

from __future__ import annotations

from include.retention.errors import Problem
from include.retention.policy.conditions import provably_disjoint
from include.retention.policy.model import ArchivedWith, Category, ChildTable, RetentionPolicy, TableBase, TablePolicy
from include.retention.policy.reconsent_rules import reconsent_problems

# Category keys a policy may not use. A category's DAG is ``retention_<key>`` (``_<target>`` when
# several targets are served): these keys would give the id of one of the project's other DAGs
# (``retention_audit_verify``, ``retention_dpo_report``, ``retention_rights_deadlines``,
# ``retention_reconsent``, in dags/), and one DAG would silently replace the other. Listed here,
# in the engine, so that a policy is refused when it is loaded, with or without Airflow; a test of
# the DAG folder checks that this list names every such DAG.
RESERVED_CATEGORY_KEYS = frozenset({"audit_verify", "dpo_report", "rights_deadlines", "reconsent"})

# Every place a table is declared: (category key, key path, the declaration), by table name.
Appearances = dict[str, list[tuple[str, str, TableBase]]]


def consistency_problems(policy: RetentionPolicy) -> list[Problem]:
    """Rules that tie several keys together; each problem names its key path."""
    problems = _precedence_problems(policy)
    appearances: Appearances = {}
    archive_names: dict[str, str] = {}
    for key, category in policy.categories.items():
        problems += _category_problems(key, category)
        problems += reconsent_problems(key, category, policy.rights_register)
        problems += _declaration_problems(key, category, appearances, archive_names)
    for table_name, places in appearances.items():
        problems += _shared_table_problems(policy, table_name, places)
    problems += _archived_with_problems(policy, appearances)
    problems += _partitioned_problems(policy)
    problems += _self_reference_problems(policy)
    problems += _schema_name_problems(policy)
    problems += _two_parent_problems(policy)
    problems += _rights_register_problems(policy)
    return problems


def _precedence_problems(policy: RetentionPolicy) -> list[Problem]:
    return [
        Problem(f"precedence[{i}]", "not a category of this policy", name)
        for i, name in enumerate(policy.precedence)
        if name not in policy.categories
    ]


def _category_problems(key: str, category: Category) -> list[Problem]:
    """A reserved key, an archive without a purpose, and a zero active period counted from an event that happened."""
    base = f"categories.{key}"
    problems = []
    if key in RESERVED_CATEGORY_KEYS:
        problems.append(
            Problem(
                base,
                f"the category key {key!r} is reserved: its DAG retention_{key} would take the id of another "
                f"DAG of the project (reserved: {', '.join(sorted(RESERVED_CATEGORY_KEYS))})",
            )
        )
    if category.has_archive and not category.archive_purpose:
        problems.append(Problem(f"{base}.archive_purpose", "required when there is an archive period"))
    # P0D: "as long as the relationship lasts" - counted from its end (a contract's end,
    # ``when_missing: ongoing``), or for rows that wait for the parent they are archived
    # with (``archived_with``). Counted from a contact, it would empty the active base.
    waits = all(t.start_event.when_missing == "ongoing" or t.archived_with for t in category.tables)
    if category.active_period.is_zero and not waits:
        problems.append(
            Problem(
                f"{base}.active_period",
                "P0D is only allowed when every table counts from an "
                "end event (when_missing: ongoing, e.g. a contract's end) or waits for the "
                "row it is archived with (archived_with); counted from a contact or a "
                "creation date it would take every row out of the active base the day it "
                "is created",
                str(category.active_period),
            )
        )
    return problems


def _declaration_problems(
    key: str, category: Category, appearances: Appearances, archive_names: dict[str, str]
) -> list[Problem]:
    """Each table of the category's trees: its archive table's name is its own, and its keys and
    anonymisation rules fit. Records every declaration in ``appearances`` and ``archive_names``."""
    problems = []
    for t_index, table in enumerate(category.tables):
        for path, node in _walk_with_paths(table, f"categories.{key}.tables[{t_index}]"):
            appearances.setdefault(node.table, []).append((key, path, node))
            if node.archive_name in archive_names:
                problems.append(
                    Problem(
                        f"{path}.archive_table",
                        f"archive table {node.archive_name!r} is already used at {archive_names[node.archive_name]}; "
                        "a table shared by several categories needs a distinct archive_table in each",
                        node.archive_name,
                    )
                )
            archive_names.setdefault(node.archive_name, path)
            problems += _table_problems(node, path, category)
    return problems


def _rights_register_problems(policy: RetentionPolicy) -> list[Problem]:
    """The register of requests must be a root table, so that a category enforces its retention."""
    if not policy.rights_register or policy.register_category() is not None:
        return []
    roots = sorted({t.table for c in policy.categories.values() for t in c.tables})
    return [
        Problem(
            "rights_register",
            "must be a table with its own clock in one of the categories "
            f"(one of: {', '.join(roots)}), so that the register's retention is enforced",
            policy.rights_register,
        )
    ]


def _archived_with_problems(policy: RetentionPolicy, appearances: Appearances) -> list[Problem]:
    """``archived_with`` must name a root table of another category that has an archive."""
    problems = []
    for key, category in policy.categories.items():
        for t_index, table in enumerate(category.tables):
            link = table.archived_with
            if link is None:
                continue
            path = f"categories.{key}.tables[{t_index}].archived_with"
            parents = [(k, node) for k, _, node in appearances.get(link.table, []) if isinstance(node, TablePolicy)]
            if not parents or all(k == key for k, _ in parents):
                problems += _missing_parent_problems(link, path)
                continue
            if not category.has_archive:
                problems.append(
                    Problem(path, "a dependant is moved to the archive: its category needs an archive_period")
                )
            problems += _anonymised_link_problems(key, category, table, link, path)
            for parent_key, parent in parents:
                problems += _parent_problems(policy, parent_key, parent, link, path)
    return problems


def _missing_parent_problems(link: ArchivedWith, path: str) -> list[Problem]:
    """The parent named by ``archived_with`` is a root table of no other category."""
    problems = [Problem(f"{path}.table", "must be a table with its own clock in another category", link.table)]
    if link.on_parent_event:
        problems.append(
            Problem(
                f"{path}.leaves_active",
                f"on_parent_event counts from the start event "
                f"of the {link.table} row, but {link.table} is not a root table "
                "(tables[]) of any other category: it has no start event of its own",
                link.leaves_active,
            )
        )
    return problems


def _parent_problems(
    policy: RetentionPolicy, parent_key: str, parent: TablePolicy, link: ArchivedWith, path: str
) -> list[Problem]:
    """The parent must be archived, keyed as the link says, and not itself a dependant."""
    problems = []
    if not policy.categories[parent_key].has_archive:
        problems.append(
            Problem(
                path,
                f"category {parent_key!r} deletes {link.table} without archiving "
                "it; a retained dependant needs its parent archived",
                link.table,
            )
        )
    if len(link.foreign_key) != len(parent.primary_key):
        problems.append(
            Problem(
                f"{path}.foreign_key",
                f"has {len(link.foreign_key)} column(s) but "
                f"the primary key of {link.table} has {len(parent.primary_key)}",
                link.foreign_key,
            )
        )
    if parent.archived_with is not None:
        problems.append(
            Problem(
                path,
                f"{link.table} is itself archived with another table; chains of retained dependants are not supported",
                link.table,
            )
        )
    return problems


def _self_reference_problems(policy: RetentionPolicy) -> list[Problem]:
    """A table declared as its own descendant (``children``), or archived with itself.

    A self-reference (a company's subsidiaries, a contact's manager: ``parent_id`` to the same
    table) is no tree edge: its rows would be chosen twice, as rows of their own and as
    children of another row of the same table, copied into two archive tables and deleted
    from under each other. Each row keeps its own place in the tree instead, and the
    database link must be ``ON DELETE SET NULL`` (``database.check`` checks it against the database).
    """
    problems = []
    for key, category in policy.categories.items():
        for t_index, table in enumerate(category.tables):
            base = f"categories.{key}.tables[{t_index}]"
            problems += _descendant_problems(table, base, [table.table])
            link = table.archived_with
            if link is not None and link.table == table.table:
                problems.append(
                    Problem(
                        f"{base}.archived_with.table",
                        f"table {table.table} is archived with itself (through {', '.join(link.foreign_key)}): a "
                        "self-reference cannot carry rows of one category with rows of another in the same table; "
                        f"give each row its own clock, and make the database link ON DELETE SET NULL",
                        link.table,
                    )
                )
    return problems


def _qualified(policy: RetentionPolicy, node: TableBase) -> str:
    """A governed table's identity: ``schema.table``, in its own ``schema`` or the policy's
    ``source_schema`` (``schema: public`` and no schema name one table when public is the source)."""
    return f"{node.schema_name or policy.source_schema}.{node.table}"


def _schema_name_problems(policy: RetentionPolicy) -> list[Problem]:
    """One table name in two schemas (``crm.contacts`` and ``web.contacts``).

    The engine tells governed tables apart by their name at run time: a category with
    precedence excludes its rows from every table of that name (with ``crm`` first, ``web``
    never archived one row of ``web.contacts``), ``archived_with`` names a parent by its name
    alone, a hold on a row names a table, and SQLite has no schemas at all. One policy governs
    one table of each name.
    """
    first: dict[str, tuple[str, str]] = {}
    problems = []
    for key, category in policy.categories.items():
        for t_index, table in enumerate(category.tables):
            for path, node in _walk_with_paths(table, f"categories.{key}.tables[{t_index}]"):
                qualified = _qualified(policy, node)
                seen, seen_at = first.setdefault(node.table, (qualified, path))
                if seen != qualified:
                    problems.append(
                        Problem(
                            f"{path}.schema",
                            f"table {qualified} has the name of {seen} (at {seen_at}): the engine "
                            "tells governed tables apart by their name (precedence between categories, archived_with, "
                            "holds on a row; SQLite has no schemas), so one policy may govern only one table of a "
                            "name; govern the other in a policy of its own",
                            node.schema_name or policy.source_schema,
                        )
                    )
    return problems


def _two_parent_problems(policy: RetentionPolicy) -> list[Problem]:
    """A child declared under two different parents (a link table between accounts and
    contacts, a note that may belong to either, a transfer from one account to another)
    keeps nothing but its keys in the archive.

    A parent is a link: the parent table, schema-qualified, and the child's foreign key to it;
    a transfer declared under accounts through ``from_account`` and again through
    ``to_account`` has two parents. A row pointing at both goes with whichever leaves first,
    into that parent's archive, and is destroyed at that parent's end of life. An erasure,
    access request or legal hold about the other parent reaches it only through the tree it
    left in, so it must carry nothing of that person there: no archived column beyond its
    keys, and no ``subject_identifiers`` (they would also find an active row twice, once in
    each tree, and make every erasure of that person fail).
    """
    problems = []
    for child_table, places in _child_declarations(policy).items():
        parents = sorted({link for link, _, _ in places})
        if len(parents) < 2:
            continue
        for parent, path, child in places:
            others = " and ".join(p for p in parents if p != parent)
            why = (
                f"table {child_table} is a child of {' and of '.join(parents)}: a row pointing at several of them "
                f"goes with whichever leaves first, and an erasure, access request or legal hold about "
                f"{others} cannot reach it in the archive of {parent}"
            )
            for sub_path, node in _walk_with_paths(child, path):
                problems += _keys_only_problems(node, sub_path, why)
    return problems


def _child_declarations(policy: RetentionPolicy) -> dict[str, list[tuple[str, str, ChildTable]]]:
    """Every declaration of a child table, by its qualified name: (its link to the parent, key path, child)."""
    declared: dict[str, list[tuple[str, str, ChildTable]]] = {}
    for key, category in policy.categories.items():
        for t_index, table in enumerate(category.tables):
            for path, node in _walk_with_paths(table, f"categories.{key}.tables[{t_index}]"):
                for i, child in enumerate(node.children):
                    link = f"{_qualified(policy, node)} (through {', '.join(child.foreign_key)})"
                    declared.setdefault(_qualified(policy, child), []).append((link, f"{path}.children[{i}]", child))
    return declared


def _keys_only_problems(node: TableBase, path: str, why: str) -> list[Problem]:
    """A table of a two-parent subtree that archives more than its keys, or identifies a person."""
    problems = []
    keys = set(node.primary_key) | set(getattr(node, "foreign_key", []))
    kept = [c for c in node.archive_columns if c not in keys]
    if kept:
        problems.append(
            Problem(
                f"{path}.archive_columns",
                f"{why}, so it may keep only its keys there: remove {', '.join(kept)} from archive_columns",
                kept,
            )
        )
    for kind, columns in node.subject_identifiers.items():
        problems.append(
            Problem(
                f"{path}.subject_identifiers.{kind}",
                f"{why}; identifiers "
                "would find one active row twice (once under each parent) and make "
                "every erasure of that person fail: remove them",
                columns,
            )
        )
    return problems


def _descendant_problems(node: TableBase, path: str, ancestors: list[str]) -> list[Problem]:
    """Children whose table is already on the way down from the root (``ancestors``)."""
    problems = []
    for i, child in enumerate(node.children):
        child_path = f"{path}.children[{i}]"
        if child.table in ancestors:
            chain = " -> ".join([*ancestors, child.table])
            problems.append(
                Problem(
                    child_path,
                    f"table {child.table} is declared under itself ({chain}, through "
                    f"{', '.join(child.foreign_key)}): a self-reference is not a child, its rows would be chosen twice. "
                    f"Leave it out of children (each row moves with its own parent row), and make the database link "
                    f"ON DELETE SET NULL",
                    child.table,
                )
            )
            continue
        problems += _descendant_problems(child, child_path, [*ancestors, child.table])
    return problems


def _anonymised_link_problems(
    key: str, category: Category, table: TablePolicy, link: ArchivedWith, path: str
) -> list[Problem]:
    """Anonymising a retained dependant sets its ``archived_with`` link to NULL (the one thing
    that ties it back to a person). A link column that is part of the primary key - and so of
    its children's foreign keys - cannot hold NULL: every run would fail on it, so refuse."""
    if category.end_action != "anonymize":
        return []
    in_key = [c for c in link.foreign_key if c in table.primary_key]
    if not in_key:
        return []
    return [
        Problem(
            f"{path}.foreign_key",
            f"column {in_key[0]!r} is part of the primary key of {table.table} "
            f"(and of its children's foreign keys), but category {key!r} anonymises at end of life, "
            "which sets the link to NULL: a key column cannot hold NULL. Link through columns outside "
            "the primary key, or use end_action: delete",
            in_key,
        )
    ]


def _partitioned_problems(policy: RetentionPolicy) -> list[Problem]:
    """A partition moves whole only if "past the horizon" is a fact about its bounds: the
    start is the partition column itself, and every row of the table belongs to the
    category, with nothing else moving with it."""
    problems = []
    kept_with = {t.archived_with.table for c in policy.categories.values() for t in c.tables if t.archived_with}
    for key, category in policy.categories.items():
        for t_index, table in enumerate(category.tables):
            if not table.partitioned:
                continue
            path = f"categories.{key}.tables[{t_index}].partitioned"
            reasons = [
                (
                    table.start_event.column is None,
                    "start_event.column (the partition column): a start derived "
                    "from other rows cannot be read from partition bounds",
                ),
                (table.start_event.ongoing_if_open is not None, "no start_event.ongoing_if_open"),
                (table.scope is not None, "no scope: every row of the table must belong to the category"),
                (bool(table.children), "no children (they would have to move first, row by row)"),
                (table.archived_with is not None, "no archived_with"),
                (table.table in kept_with, "no table archived with it"),
            ]
            problems += [Problem(path, f"a partitioned table needs {why}", table.table) for bad, why in reasons if bad]
    return problems


def _shared_table_problems(
    policy: RetentionPolicy, table: str, places: list[tuple[str, str, TableBase]]
) -> list[Problem]:
    """A table may serve several categories as scoped, non-overlapping root tables.

    Overlap is allowed when both categories appear in ``precedence``: the earlier wins.
    A child table may appear under several categories (its rows follow whichever
    category their parent row belongs to), but not also as a root with a clock of its own.
    """
    problems = []
    for i, first in enumerate(places):
        for second in places[i + 1 :]:
            problem = _shared_pair_problem(policy, table, first, second)
            if problem is not None:
                problems.append(problem)
    return problems


def _shared_pair_problem(
    policy: RetentionPolicy, table: str, first: tuple[str, str, TableBase], second: tuple[str, str, TableBase]
) -> Problem | None:
    """What is wrong with two declarations of one table, if anything (reported at the second)."""
    (key_a, path_a, node_a), (key_b, path_b, node_b) = first, second
    if not isinstance(node_a, TablePolicy) and not isinstance(node_b, TablePolicy):
        return None
    if not (isinstance(node_a, TablePolicy) and isinstance(node_b, TablePolicy)):
        return Problem(path_b, f"table {table} is both a child and a table with its own clock (see {path_a})", table)
    if key_a == key_b:
        return Problem(path_b, f"table {table} appears twice in category {key_a!r}", table)
    ranked = key_a in policy.precedence and key_b in policy.precedence
    if ranked or provably_disjoint(node_a.scope, node_b.scope):
        return None
    return Problem(
        path_b,
        f"categories {key_a!r} and {key_b!r} may both match a row of table {table}; make their "
        "scopes exclusive (equals/in/is_null on the same column) or list both in precedence",
        table,
    )


def _walk_with_paths(node: TableBase, path: str) -> list[tuple[str, TableBase]]:
    out = [(path, node)]
    for i, child in enumerate(node.children):
        out += _walk_with_paths(child, f"{path}.children[{i}]")
    return out


def _table_problems(node: TableBase, path: str, category: Category) -> list[Problem]:
    """A table's children keyed like its primary key, and its anonymisation rules complete."""
    problems = _child_key_problems(node, path)
    if category.end_action != "anonymize":
        if node.anonymize:
            problems.append(Problem(f"{path}.anonymize", "only allowed when the category's end_action is anonymize"))
        return problems
    if not category.has_archive:
        # Anonymised rows are kept in the archive schema; with no archive there is nowhere to keep them.
        problems.append(
            Problem(
                f"categories.{category.key}.end_action",
                "anonymize needs an archive_period: anonymised rows are kept in the archive",
            )
        )
    return problems + _anonymize_rule_problems(node, path)


def _child_key_problems(node: TableBase, path: str) -> list[Problem]:
    return [
        Problem(
            f"{path}.children[{i}].foreign_key",
            f"has {len(child.foreign_key)} column(s) but the parent's primary key has {len(node.primary_key)}",
            child.foreign_key,
        )
        for i, child in enumerate(node.children)
        if len(child.foreign_key) != len(node.primary_key)
    ]


def _anonymize_rule_problems(node: TableBase, path: str) -> list[Problem]:
    """Every archived column has a rule; a rule names an archived column that is no key, and
    never keeps a subject identifier."""
    problems = []
    keys = set(node.primary_key) | set(getattr(node, "foreign_key", []))
    for column in node.archive_columns:
        if column not in node.anonymize and column not in keys:
            rule_names = "null, keep, year, month, prefix, round"
            problems.append(Problem(f"{path}.anonymize", f"every archive column needs a rule ({rule_names})", column))
    identifiers = {c for cols in node.subject_identifiers.values() for c in cols}
    for column, rule in node.anonymize.items():
        if column not in node.archive_columns:
            problems.append(Problem(f"{path}.anonymize.{column}", "not one of this table's archive_columns", column))
        elif column in keys:
            problems.append(Problem(f"{path}.anonymize.{column}", "key columns cannot be rewritten", column))
        elif column in identifiers and rule == "keep":
            problems.append(
                Problem(f"{path}.anonymize.{column}", "a subject identifier cannot be kept in an anonymised row", rule)
            )
    return problems
