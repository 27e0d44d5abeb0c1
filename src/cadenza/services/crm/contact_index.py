"""The contact index a rep browses: search, filters, sort and numbered pages.

The API pages contacts by keyset (cheap at any depth, stable under inserts); a person
sorting by name and jumping to page 3 needs offsets and a total instead, so the index
has its own query. What keeps it as fast with a million contacts as with ten thousand
(issue 15 §4, bench/large.py):

- every sort walks an index in its own order (ix_contacts_sort_*, migration 0024), so
  a page reads its rows and stops; the sort keys are written with literals, not bound
  parameters, because a database matches an expression index only on the same text;
- the total is counted no further than the pages around the one shown need
  (`count_limit`: the pages up to it and PAGES_AHEAD more, at least COUNT_FLOOR, at most
  COUNT_CAP): past that the page says "500+" instead of counting a million rows on every
  request. A search counts by reading each match (`LIKE '%word%'` rechecks every
  candidate), so a count of 10,000 matches cost a page 10,000 reads where the page
  itself needs 25: it now costs about what the page costs;
- numbered pages reach as deep as COUNT_CAP (an OFFSET walks the rows it skips); past
  that a search or filter narrows the list, and the API's cursor reaches any depth.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnClause, and_, exists, func, literal_column, or_, select, text

from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import LIVE_ENROLLMENT_STATES, ContactStatus
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.services.context import Context
from cadenza.services.crm.contacts import ContactView, search_condition
from cadenza.store.models import BlockedAddress, Contact, Enrollment

BLANK: ColumnClause[str] = literal_column("''")  # in the SQL text, as the sort indexes have it
SORTS = {
    "name": (
        func.lower(func.coalesce(Contact.lastname, BLANK)),
        func.lower(func.coalesce(Contact.firstname, BLANK)),
    ),
    "email": (Contact.email_key,),
    "company": (func.lower(func.coalesce(Contact.company, BLANK)),),
    "timezone": (Contact.timezone,),
    "created": (Contact.created_at,),
}
ENROLLED_FILTERS = ("yes", "no")
STATUS_FILTERS = (
    ContactStatus.BOUNCED,
    ContactStatus.UNSUBSCRIBED,
    ContactStatus.REACHABLE,
    ContactStatus.NO_EMAIL,
)
MAX_PER_PAGE = 200
# How far numbered pages reach, and the furthest the index ever counts.
COUNT_CAP = 10_000
# The index counts as far as the pages around the one shown: up to PAGES_AHEAD pages past
# it, and at least COUNT_FLOOR (what "Select all N matching" takes, MAX_CONTACTS_IN_URL),
# so that the count costs what the page costs (docs/ui.md, "Contact index paging").
COUNT_FLOOR = 500
PAGES_AHEAD = 10


def count_limit(page: int, per_page: int) -> int:
    """How far the index counts for this page: past it the total reads "N+"."""
    return min(COUNT_CAP, max(COUNT_FLOOR, (page + PAGES_AHEAD) * per_page))


@dataclass(frozen=True)
class ContactFilter:
    query: str | None = None
    timezone: str | None = None  # an IANA zone, or "none" for contacts without one
    enrolled: str | None = None  # "yes": in a sequence now; "no": not
    # A ContactStatus; REACHABLE: has an email address that may be sent to (not bounced,
    # unsubscribed or blocked), the contacts enrollment would accept.
    status: str | None = None
    sort: str = "name"
    descending: bool = False


@dataclass(frozen=True)
class ContactIndexPage:
    contacts: list[ContactView]
    live_contact_ids: set[int]  # which of these contacts are in a sequence now
    total: int  # at most counted_to + 1: more than counted_to reads "500+"
    page: int
    per_page: int

    @property
    def counted_to(self) -> int:
        return count_limit(self.page, self.per_page)

    @property
    def capped(self) -> bool:
        return self.total > self.counted_to

    @property
    def total_label(self) -> str:
        """The count as a page shows it: "500+" past what was counted."""
        return f"{self.counted_to:,}+" if self.capped else str(self.total)

    @property
    def pages(self) -> int:
        return max(1, -(-min(self.total, self.counted_to) // self.per_page))

    @property
    def pages_label(self) -> str:
        """ "20+" when more match than were counted: there are pages past the last known."""
        return f"{self.pages}+" if self.capped else str(self.pages)


def _invalid(message: str, field: str) -> CadenzaError:
    return CadenzaError(ErrorCode.VALIDATION_ERROR, message, {"field": field})


def _live():
    return exists().where(
        Enrollment.contact_id == Contact.id,
        Enrollment.state.in_(LIVE_ENROLLMENT_STATES),
    )


def _conditions(spec: ContactFilter) -> list:
    conditions = []
    if spec.query and "\x00" in spec.query:
        raise _invalid("the search contains a NUL character", "q")
    if spec.query and spec.query.strip():
        conditions.append(search_condition(spec.query))
    if spec.timezone == "none":
        conditions.append(Contact.timezone.is_(None))
    elif spec.timezone:
        parse_timezone(spec.timezone)
        conditions.append(Contact.timezone == spec.timezone)
    if spec.enrolled not in (None, *ENROLLED_FILTERS):
        raise _invalid("enrolled must be yes or no", "enrolled")
    if spec.enrolled:
        conditions.append(_live() if spec.enrolled == "yes" else ~_live())
    if spec.status not in (None, *STATUS_FILTERS):
        raise _invalid(f"status must be one of {', '.join(STATUS_FILTERS)}", "status")
    if spec.status == ContactStatus.BOUNCED:
        conditions.append(Contact.bounced_at.is_not(None))
    elif spec.status == ContactStatus.UNSUBSCRIBED:
        conditions.append(Contact.unsubscribed_at.is_not(None))
    elif spec.status == ContactStatus.NO_EMAIL:
        conditions.append(or_(Contact.email_key.is_(None), Contact.email_key == ""))
    elif spec.status == ContactStatus.REACHABLE:
        conditions.extend(reachable_conditions())
    return conditions


def reachable_conditions() -> list:
    """Who an email could go to: the same facts enrollment refuses on (an address,
    not bounced, unsubscribed or blocked, by the contact or by the blocklist), so a
    "Reachable" filter never offers someone the dialog will then refuse for that."""
    key_length = func.length(Contact.email_key)
    tail = func.substr(Contact.email_key, key_length - func.length(BlockedAddress.pattern) + 1)
    blocked_by_list = exists().where(
        or_(
            BlockedAddress.pattern == Contact.email_key,
            and_(BlockedAddress.pattern.like("@%"), tail == BlockedAddress.pattern),
        )
    )
    return [
        Contact.email_key.is_not(None),
        Contact.email_key != "",
        Contact.bounced_at.is_(None),
        Contact.unsubscribed_at.is_(None),
        Contact.blocked.is_(False),
        ~blocked_by_list,
    ]


def browse_contacts(
    ctx: Context, spec: ContactFilter, *, page: int = 1, per_page: int = 50
) -> ContactIndexPage:
    if spec.sort not in SORTS:
        raise _invalid(f"sort must be one of {', '.join(SORTS)}", "sort")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise _invalid(f"per_page must be between 1 and {MAX_PER_PAGE}", "per_page")
    if page < 1:
        raise _invalid("page must be 1 or more", "page")
    if (page - 1) * per_page >= COUNT_CAP:
        raise _invalid(
            f"pages reach the first {COUNT_CAP:,} contacts: narrow the search or the filters",
            "page",
        )
    conditions = _conditions(spec)
    keys = [k.desc() if spec.descending else k.asc() for k in SORTS[spec.sort]]
    query = (
        select(Contact)
        .where(*conditions)
        .order_by(*keys, Contact.id.desc() if spec.descending else Contact.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    with ctx.db.read() as session:
        total = session.scalar(capped_count(conditions, count_limit(page, per_page)))
        contacts = [ContactView.of(row) for row in session.scalars(query)]
        ids = [c.id for c in contacts]
        live = set(
            session.scalars(
                select(Enrollment.contact_id).where(
                    Enrollment.contact_id.in_(ids),
                    Enrollment.state.in_(LIVE_ENROLLMENT_STATES),
                )
            )
        )
    return ContactIndexPage(contacts, live, total, page, per_page)


def capped_count(conditions: list, limit: int):
    """How many contacts match, counted no further than `limit` + 1."""
    matching = select(Contact.id).where(*conditions).limit(limit + 1).subquery()
    return select(func.count()).select_from(matching)


# One index seek per zone (a "loose index scan" over ix_contacts_sort_timezone), where
# SELECT DISTINCT would read every contact: a few hundred zones at most, whatever the count.
ZONES = text(
    "WITH RECURSIVE zones(zone) AS ("
    " SELECT min(timezone) FROM contacts"
    " UNION ALL"
    " SELECT (SELECT min(timezone) FROM contacts WHERE timezone > zones.zone)"
    " FROM zones WHERE zones.zone IS NOT NULL"
    ") SELECT zone FROM zones WHERE zone IS NOT NULL"
)


def contact_timezones(ctx: Context) -> list[str]:
    """The zones contacts have, for the filter: a short list instead of all of IANA."""
    with ctx.db.read() as session:
        return sorted(session.scalars(ZONES))


def get_contacts(ctx: Context, contact_ids: list[int]) -> list[ContactView]:
    """In the order asked, skipping ids that do not exist."""
    with ctx.db.read() as session:
        rows = session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))
        found = {c.id: ContactView.of(c) for c in rows}
    return [found[i] for i in contact_ids if i in found]


def matching_ids(ctx: Context, spec: ContactFilter, limit: int) -> tuple[list[int], int]:
    """The ids of the contacts a filter matches, in the index's order, at most `limit`,
    and how many match: "select all N matching" on the contacts index."""
    if spec.sort not in SORTS:
        raise _invalid(f"sort must be one of {', '.join(SORTS)}", "sort")
    conditions = _conditions(spec)
    keys = [k.desc() if spec.descending else k.asc() for k in SORTS[spec.sort]]
    order = [*keys, Contact.id.desc() if spec.descending else Contact.id]
    with ctx.db.read() as session:
        total = session.scalar(select(func.count()).select_from(Contact).where(*conditions))
        ids = list(
            session.scalars(select(Contact.id).where(*conditions).order_by(*order).limit(limit))
        )
    return ids, total
