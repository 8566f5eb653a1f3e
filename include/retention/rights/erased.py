"""The answer to "was person X erased?": where their rows are now, what kind of record each
is (their own data, what a legal obligation keeps, evidence of a request), until when it is
kept, and the day an erasure was carried out (from the log).

Finding the rows is ``rights/subjects.py``; this module dates and names them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, case, false, func, not_, or_, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from include.retention.database import store
from include.retention.database.identity import (
    Subject,
    SubjectKey,
)
from include.retention.database.reflect import (
    Dependant,
    Side,
    TableNode,
    archive_exists,
    key_of,
    linked_rows,
)
from include.retention.database.target import Target
from include.retention.dates.clock import retention_dates
from include.retention.dates.periods import Period
from include.retention.dates.words import day_words
from include.retention.language import LANGUAGES, N_, SOURCE_LANGUAGE, Translate, translator
from include.retention.policy.model import Category, Label, RetentionPolicy
from include.retention.records import audit
from include.retention.records.held_rows import holds_in_force
from include.retention.rights.subjects import Found, locate_in, open_trees
from include.retention.schedule import dependants

# What a row found about a person is, for the answer to "was X erased?".
PERSONAL_DATA = "personal_data"  # the person's own data
KEPT_BY_OBLIGATION = "kept_by_obligation"  # their data in a category an erasure keeps (on_erasure: keep)
REQUEST_EVIDENCE = "request_evidence"  # the rights-request register: evidence a request was handled
# Rows of another category attached to the person's rows (``archived_with``: invoices of a
# customer), kept on their own category's clock, whatever happens to the person's rows.
RETAINED_DEPENDANT = "retained_dependant"
RECORD_KINDS = (PERSONAL_DATA, KEPT_BY_OBLIGATION, REQUEST_EVIDENCE, RETAINED_DEPENDANT)
# What the answer lists as what a legal obligation keeps.
_KEPT_KINDS = (KEPT_BY_OBLIGATION, RETAINED_DEPENDANT)
_DATA_KINDS = (PERSONAL_DATA, *_KEPT_KINDS)


@dataclass(frozen=True)
class Horizon:
    """Until when a category keeps the person's rows: the latest ``until`` among rows whose
    clock runs (the day the run destroys them, as the engine computes it: archive rows'
    ``retention_until``, active rows' start + active + archive period), and how many rows
    wait for their start event (a request still open, a contract running), which are kept
    ``after`` it happens."""

    until: date | None
    waiting: int
    after: Label  # what the rows with no date wait for, said after "until": "5 years after ..."
    today: date | None = None  # the company's day when asked: an ``until`` not after it is overdue

    def text(self, lang: str = SOURCE_LANGUAGE) -> str:
        _ = translator(lang, "engine")
        after = getattr(self.after, lang)
        if self.waiting and self.until is None:
            return _("until {after}").format(after=after)
        if self.until is None:
            return _("until their end of life")
        if self.today and self.until <= self.today:
            dated = _("past their end of life ({day}): the next run destroys them").format(
                day=day_words(self.until, lang)
            )
        else:
            dated = _("until {day}").format(day=day_words(self.until, lang))
        if not self.waiting:
            return dated
        return _("{dated}, and {count} row(s) until {after}").format(dated=dated, count=self.waiting, after=after)


@dataclass(frozen=True)
class Presence:
    """How many rows about the subject one table holds now, active and archived, what kind
    of record they are, and until when their category keeps them."""

    category: str
    table: str
    active: int
    archived: int
    kind: str = PERSONAL_DATA
    horizon: Horizon | None = None
    # KEPT_BY_OBLIGATION rows kept in the archive by a staying retained dependant: the
    # dependant's category (its legal obligation keeps them), else None.
    kept_for: str | None = None


@dataclass
class ErasureAnswer:
    """The answer to "was person X erased?", per kind of record: the person's data (active,
    archive; what a legal obligation keeps apart), the evidence kept about their requests
    (the register entry), and the day an erasure request was carried out (from the log)."""

    subject_hash: str
    presence: list[Presence] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    erased_on: date | None = None  # the last completed erasure request, in the company's time zone
    labels: dict[str, Label] = field(default_factory=dict)  # category key -> its name in each language

    def _of(self, *kinds: str) -> list[Presence]:
        return [p for p in self.presence if p.kind in kinds]

    @property
    def active_rows(self) -> int:
        """The person's data in the active base, their records of other categories included
        (evidence about requests not counted)."""
        return sum(p.active for p in self._of(*_DATA_KINDS))

    @property
    def archived_rows(self) -> int:
        """The person's data in the restricted archive, their records of other categories
        included (evidence about requests not counted)."""
        return sum(p.archived for p in self._of(*_DATA_KINDS))

    @property
    def evidence_rows(self) -> int:
        return sum(p.active + p.archived for p in self._of(REQUEST_EVIDENCE))

    @property
    def verdict(self) -> str:
        """``erased``: an erasure was carried out and none of the person's data is left;
        ``erased_except_kept``: ... and what is left is what a legal obligation keeps;
        ``active``: some of the person's data is in the active base (erased or not);
        ``archived``: only in the restricted archive; ``none_held``: none of the person's
        data is held (destroyed by the schedule, or never held). The register entry of a
        request is evidence, not the person's data: it never makes a person "active"."""
        kept = sum(p.active + p.archived for p in self._of(*_KEPT_KINDS))
        other_active = sum(p.active for p in self._of(PERSONAL_DATA))
        other_archived = sum(p.archived for p in self._of(PERSONAL_DATA))
        if self.erased_on and not other_active and not other_archived:
            return "erased_except_kept" if kept else "erased"
        if self.active_rows:
            return "active"
        return "archived" if self.archived_rows else "none_held"

    def sentence(self, lang: str = SOURCE_LANGUAGE) -> str:
        """The answer in one paragraph, as the Retention view (in its reader's language) and the
        demo's console (English, for the engineer) give it."""
        _ = translator(lang, "engine")
        verdict = self.verdict
        erased = day_words(self.erased_on, lang) if self.erased_on else None
        if verdict == "erased":
            head = _("Erased on {day}").format(day=erased)
        elif verdict == "erased_except_kept":
            head = _("Erased on {day}, except what a legal obligation keeps: {listed}").format(
                day=erased, listed=self._listed(lang, *_KEPT_KINDS)
            )
        elif verdict == "active":
            head = _("Still in the active base: {count} row(s) of the person's data").format(count=self.active_rows)
            if erased:
                head += _(
                    " (an erasure was carried out on {day}: kept by a legal hold or for a record a legal "
                    "obligation keeps, or added since - see the request's outcome in the register)"
                ).format(day=erased)
        elif verdict == "archived":
            head = _("Only in the restricted archive, kept for its legal purpose and then destroyed: {listed}").format(
                listed=self._listed(lang, *_DATA_KINDS)
            )
        elif self.events:
            head = _("No data about this person is held any more, active or archived")
        else:
            head = _(
                "No data about this person is held, active or archived, and no event is logged about them "
                "(never held, or destroyed by the schedule, whose events hold counts, not people)"
            )
        if not self.evidence_rows:
            return _("{head}.").format(head=head)
        return _("{head}; {evidence}.").format(head=head, evidence=self._evidence(_, lang))

    def _label(self, category: str, lang: str) -> str:
        label = self.labels.get(category)
        return getattr(label, lang) if label else category

    def _listed(self, lang: str, *kinds: str) -> str:
        """Per category and kind of record: rows, where, until when, and why when another
        category's obligation keeps them."""
        parts: dict[tuple[str, str, str | None], list[Presence]] = {}
        for p in self._of(*kinds):
            parts.setdefault((p.category, p.kind, p.kept_for), []).append(p)
        return ", ".join(
            self._group(lang, category, kind, kept_for, found) for (category, kind, kept_for), found in parts.items()
        )

    def _group(self, lang: str, category: str, kind: str, kept_for: str | None, found: list[Presence]) -> str:
        _ = translator(lang, "engine")
        kept = found[0].horizon.text(lang) if found[0].horizon else _("until their end of life")
        why = (
            _(", needed by records {category} keeps for its legal obligation").format(
                category=self._label(kept_for, lang)
            )
            if kept_for
            else ""
        )
        if kind == RETAINED_DEPENDANT:
            said = _("{category} ({count} row(s), {where}, records attached to theirs, kept {kept}{why})")
        else:
            said = _("{category} ({count} row(s), {where}, kept {kept}{why})")
        count = sum(p.active + p.archived for p in found)
        return said.format(
            category=self._label(category, lang), count=count, where=_where(found, _), kept=kept, why=why
        )

    def _evidence(self, _: Translate, lang: str) -> str:
        horizons = [p.horizon for p in self._of(REQUEST_EVIDENCE) if p.horizon]
        until = max((h.until for h in horizons if h.until), default=None)
        waiting = next((h for h in horizons if h.waiting), None)
        if waiting:
            kept = " " + Horizon(until, waiting.waiting, waiting.after).text(lang)
        else:
            kept = " " + _("until {day}").format(day=day_words(until, lang)) if until else ""
        if self.evidence_rows == 1:
            return _("the request record is kept as evidence{kept}").format(kept=kept)
        return _("the {count} request records are kept as evidence{kept}").format(count=self.evidence_rows, kept=kept)


def _where(found: list[Presence], _: Translate) -> str:
    active, archived = sum(p.active for p in found), sum(p.archived for p in found)
    return _("active") if not archived else _("archive") if not active else _("active and archive")


def _in_each_language(text: str) -> Label:
    """A text marked with ``N_``, as each language says it: the answer is worded later, in
    the language its reader asks for."""
    return Label(**{lang: translator(lang, "engine")(text) for lang in LANGUAGES})


def was_erased(target: Target, policy: RetentionPolicy, key: SubjectKey, kind: str, value: str) -> ErasureAnswer:
    """Answer "was person X erased?" from the database as it is now, plus the log.

    Counts X's rows in every table whose policy declares a ``kind`` identifier (and the
    child rows of those), active and archive, each with its kind of record and until when
    its category keeps it. The retained dependants of those rows (``archived_with``: a
    customer's invoices) are the person's records too: they are listed as their own kind,
    with their own category's until-date, and an archived row that a staying dependant keeps
    is said to be kept for that category's obligation, until the dependant's end. Lists the
    audit events stored under X's keyed hash (rights requests, legal holds) and takes from
    them the day an erasure was carried out. It returns counts, dates and events, never rows,
    and logs nothing about X.
    """
    subject = Subject.of({kind: value})
    answer = ErasureAnswer(subject.hashes(key)[0], labels={k: c.label for k, c in policy.categories.items()})
    register = policy.register_category()
    today = datetime.now(policy.zone).date()
    with target.read() as conn:
        trees = open_trees(conn, target, policy, subject)
        keeping = _Keeping.read(conn, target, key, today)
        groups = _own_groups(conn, target, policy, trees, subject, keeping, register.key if register else None)
        roots = [f for group in groups for f in group.found if f.depth == 0]
        groups = _kept_for_dependants(groups, _dependant_groups(conn, target, policy, roots, today))
        answer.presence = [p for group in groups for p in group.presence()]
        table = store.audit_table(target.archive_schema, policy.audit_table)
        if store.table_exists(conn, table):  # events written before the canonical form too
            answer.events = audit.events(conn, table, table.c.subject_hash.in_(subject.lookup_hashes(key)))
    answer.erased_on = _erased_on(answer.events, policy)
    return answer


def _kept_for_dependants(own: list[_Group], retained: list[_Group]) -> list[_Group]:
    """The person's rows, then their retained dependants, each parent group dated no earlier
    than the dependants it has: a parent row is never destroyed while a dependant stays in
    the archive (``Dependant.retained``), so a customer whose invoice runs to 2036 is kept
    until 2036, whatever its own clock says. A dependant past its horizon keeps nothing (the
    next run destroys both)."""
    until = {
        g.category: g.horizon.until
        for g in retained
        if g.horizon.until is not None and (g.horizon.today is None or g.horizon.until > g.horizon.today)
    }
    for group in own:
        dependant_categories = {d.category.key for f in group.found if f.depth == 0 for d in f.node.dependants}
        latest = max((until[c] for c in dependant_categories if c in until), default=None)
        if latest is not None and group.horizon.until is not None and latest > group.horizon.until:
            group.horizon = replace(group.horizon, until=latest)
    return own + retained


@dataclass
class _Group:
    """Table sides of one category that share a kind of record and a horizon."""

    category: str
    kind: str
    horizon: Horizon
    found: list[Found]
    kept_for: str | None = None

    def presence(self) -> list[Presence]:
        counts: dict[str, dict[str, int]] = {}
        for one in self.found:
            side = counts.setdefault(one.node.name, {})
            side[one.side] = side.get(one.side, 0) + one.rows
        return [
            Presence(
                self.category,
                table,
                c.get(Side.ACTIVE, 0),
                c.get(Side.ARCHIVE, 0),
                self.kind,
                self.horizon,
                self.kept_for,
            )
            for table, c in counts.items()
        ]


@dataclass(frozen=True)
class _Keeping:
    """Which archived rows a retained dependant keeps there: the engine's own test
    (``dependants.kept_by_any``: a dependant within its horizon, or under a legal hold)."""

    today: date
    holds: Any

    @classmethod
    def read(cls, conn: Connection, target: Target, key: SubjectKey, today: date) -> _Keeping:
        return cls(today, holds_in_force(conn, store.hold_tables(target.archive_schema), today, key, target.dialect))

    def kept(self, category: str, root: TableNode, side: Side) -> ColumnElement[bool]:
        """Root rows (archive side) a staying dependant keeps; none on the active side."""
        if side != Side.ARCHIVE or not root.dependants:
            return false()
        return dependants.kept_by_any(root, self.today, self.holds)

    def free(self, category: str, root: TableNode, side: Side) -> ColumnElement[bool]:
        return not_(self.kept(category, root, side)) if side == Side.ARCHIVE and root.dependants else true()

    def latest_keeper(self, conn: Connection, root: Found) -> tuple[date | None, str | None]:
        """The latest until among the staying dependants of ``root``'s rows, and their category."""
        best: tuple[date | None, str | None] = (None, None)
        for dep in root.node.dependants:
            until = conn.execute(
                select(func.max(dep.node.archive.c.retention_until)).where(
                    dep.linked(Side.ARCHIVE, root.node, root.where), dependants.staying(dep, self.today, self.holds)
                )
            ).scalar_one()
            until = date.fromisoformat(until) if isinstance(until, str) else until
            if until is not None and (best[0] is None or until > best[0]):
                best = (until, dep.category.key)
            elif (
                best[1] is None
                and conn.execute(
                    select(func.count())
                    .select_from(dep.node.archive)
                    .where(
                        dep.linked(Side.ARCHIVE, root.node, root.where), dependants.staying(dep, self.today, self.holds)
                    )
                ).scalar_one()
            ):
                best = (best[0], dep.category.key)  # kept by an undated dependant under a hold
        return best


_HELD_KEEPER = N_("a legal hold on the records that need them is lifted")


def _own_groups(
    conn: Connection,
    target: Target,
    policy: RetentionPolicy,
    trees: list[tuple[str, TableNode]],
    subject: Subject,
    keeping: _Keeping,
    register: str | None,
) -> list[_Group]:
    """The person's rows per category: those nothing else keeps, with their category's kind
    and horizon; and archived rows a staying dependant keeps, kept by that dependant's
    category's obligation until the latest end of the dependants that keep them."""
    free = locate_in(conn, trees, subject, restrict=keeping.free)
    kept = locate_in(conn, trees, subject, restrict=keeping.kept)
    groups: list[_Group] = []
    for category in dict.fromkeys(f.category for f in free + kept):
        mine = [f for f in free if f.category == category]
        if mine:
            groups.append(
                _Group(
                    category, _kind(policy, category, register), _horizon(conn, target, policy, category, mine), mine
                )
            )
        held = [f for f in kept if f.category == category]
        if held:
            own = _horizon(conn, target, policy, category, held)
            keepers = [keeping.latest_keeper(conn, f) for f in held if f.depth == 0]
            latest = max((d for d, _ in keepers if d), default=None)
            kept_for = max(keepers, key=lambda k: k[0] or date.min, default=(None, None))[1]
            if latest is None or latest <= keeping.today:
                # Kept only by dependants a legal hold keeps past their dates (or with none): no
                # date can be said, and the next run does not destroy them.
                waiting = sum(f.rows for f in held if f.depth == 0)
                horizon = Horizon(None, waiting, _in_each_language(_HELD_KEEPER), own.today)
            else:
                horizon = Horizon(max(latest, own.until or latest), 0, own.after, own.today)
            groups.append(_Group(category, KEPT_BY_OBLIGATION, horizon, held, kept_for))
    return groups


def _dependant_groups(
    conn: Connection, target: Target, policy: RetentionPolicy, roots: list[Found], today: date
) -> list[_Group]:
    """The retained dependants of the person's root rows, on the same side (an invoice of
    their customer row), with their children; anonymised rows are no one's data and are left
    out, and so are rows already found as the person's own. One group per dependant category,
    dated by that category's clock."""
    links: dict[tuple[str, str], list[tuple[Dependant, Side, ColumnElement[bool]]]] = {}
    for root in roots:
        for dep in root.node.dependants:
            rows = dep.linked(root.side, root.node, root.where)
            if root.side == Side.ARCHIVE:
                rows = and_(rows, dep.node.archive.c.anonymized == false())
            links.setdefault((dep.category.key, dep.node.name), []).append((dep, root.side, rows))
            if root.side == Side.ACTIVE and archive_exists(conn, dep.node):
                # Released by its parent's event (``on_parent_event``): an invoice already in
                # billing's archive while its customer is still active.
                parents = select(*(root.node.source.c[c] for c in root.node.key_columns)).where(root.where)
                archived = and_(
                    key_of(dep.node.archive, dep.foreign_key).in_(parents), dep.node.archive.c.anonymized == false()
                )
                links[(dep.category.key, dep.node.name)].append((dep, Side.ARCHIVE, archived))
    groups: dict[str, list[Found]] = {}
    for (category, _), linked in links.items():
        first = linked[0][0]
        for side in dict.fromkeys(s for _, s, _ in linked):
            table = first.node.table(side)
            where = or_(*(_same_rows(first.node, side, dep.node, rows) for dep, s, rows in linked if s == side))
            where = and_(
                where,
                *(
                    not_(_same_rows(first.node, side, own.node, own.where))
                    for own in roots
                    if (own.category, own.node.name, own.side) == (category, first.node.name, side)
                ),
            )
            groups.setdefault(category, []).extend(_tree_of(conn, category, first.node, side, where, table))
    return [
        _Group(
            category,
            RETAINED_DEPENDANT,
            _horizon(conn, target, policy, category, [f for f in found if f.rows], dependant=True),
            [f for f in found if f.rows],
        )
        for category, found in groups.items()
        if any(f.rows for f in found)
    ]


def _same_rows(node: TableNode, side: Side, other: TableNode, where: ColumnElement[bool]) -> ColumnElement[bool]:
    """Rows of ``node`` that ``where`` selects in ``other``, the same table reflected for
    another tree (its own Table object): matched by key, never mixed in one FROM."""
    if other is node:
        return where
    columns = node.key_columns
    return key_of(node.table(side), columns).in_(select(*(other.table(side).c[c] for c in columns)).where(where))


def _tree_of(
    conn: Connection, category: str, node: TableNode, side: Side, where: ColumnElement[bool], table: Any, depth: int = 0
) -> list[Found]:
    """``where``'s rows of ``node`` and their children's rows, counted, on one side."""
    rows = conn.execute(select(func.count()).select_from(table).where(where)).scalar_one()
    found = [Found(category, node, side, where, rows, depth)]
    for child in node.children:
        child_where = linked_rows(child, side, child.foreign_key, node, where)
        found += _tree_of(conn, category, child, side, child_where, child.table(side), depth + 1)
    return found


def _kind(policy: RetentionPolicy, category: str, register: str | None) -> str:
    if category == register:
        return REQUEST_EVIDENCE
    return KEPT_BY_OBLIGATION if policy.categories[category].on_erasure == "keep" else PERSONAL_DATA


def _horizon(
    conn: Connection, target: Target, policy: RetentionPolicy, key: str, found: list[Found], dependant: bool = False
) -> Horizon:
    """Until when the category keeps the subject's rows, from its root rows (children share
    their root's dates): the same clock the runs use (``clock.retention_dates``), so the date
    said is the day the row is destroyed. An active retained dependant waits for its parent
    (never "ageable" while it is there) but leaves with it dated by its own start: its end is
    counted from its start whenever it has one."""
    category = policy.categories[key]
    until: list[date] = []
    waiting = 0
    for root in (f for f in found if f.depth == 0):
        node = root.node
        if root.side == Side.ARCHIVE:
            latest = conn.execute(select(func.max(node.archive.c.retention_until)).where(root.where)).scalar_one()
        else:
            _, end = retention_dates(
                node.start, category.active_period, category.archive_or_zero, target.dialect, policy.zones
            )
            runs = node.start.is_not(None) if dependant else node.ageable()
            latest, open_rows = conn.execute(
                select(func.max(case((runs, end))), func.count().filter(not_(runs)))
                .select_from(node.source)
                .where(root.where)
            ).one()
            waiting += open_rows
        if latest is not None:
            until.append(date.fromisoformat(latest) if isinstance(latest, str) else latest)
    total = Period(
        category.active_period.years + category.archive_or_zero.years,
        category.active_period.months + category.archive_or_zero.months,
        category.active_period.days + category.archive_or_zero.days,
    )
    return Horizon(max(until, default=None), waiting, _kept_after(category, total), datetime.now(policy.zone).date())


def _kept_after(category: Category, total: Period) -> Label:
    """What rows with no date yet wait for, in each language: ``5 years after the closure of
    the request`` (the category's whole period after its start event)."""
    said = {}
    for lang in LANGUAGES:
        _ = translator(lang, "engine")
        start = getattr(category.counted_from, lang) if category.counted_from else _("its start event")
        said[lang] = (
            start if total.is_zero else _("{period} after {start}").format(period=total.in_words(lang), start=start)
        )
    return Label(**said)


def _erased_on(events: list[dict[str, Any]], policy: RetentionPolicy) -> date | None:
    """The day (company time zone) of the last completed erasure request logged under the hash."""
    moments = [
        e["recorded_at"]
        for e in events
        if e["action"] == "rights_request"
        and e["details"].get("request_type") == "erasure"
        and e["details"].get("outcome") == "completed"
    ]
    if not moments:
        return None
    latest = max(m if m.tzinfo else m.replace(tzinfo=UTC) for m in moments)  # SQLite drops the zone: UTC
    return latest.astimezone(policy.zone).date()
