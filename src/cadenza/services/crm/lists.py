"""Lists of contacts: static (members added and removed by hand) and active (members
are whoever matches the filter, kept current by services/crm/membership.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadenza.domain import filters
from cadenza.domain.enums import ListKind
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.services.access import authorize
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.crm import membership
from cadenza.services.crm.contacts import ContactView
from cadenza.services.read_models import copy_row
from cadenza.store.models import AutomationRule, Contact, ContactList, ListMember, ObjectType

KINDS = tuple(ListKind)
MAX_MEMBER_CHANGE = 1000


@dataclass(frozen=True)
class ListRow:
    """A list's own values: its name, kind and (for an active list) its filters."""

    id: int
    name: str
    kind: str
    filters: dict[str, Any] | None
    created_by_id: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: ContactList) -> ListRow:
        return copy_row(cls, row)


@dataclass(frozen=True)
class ListView:
    contact_list: ListRow
    size: int


def _not_found(list_id: int) -> CadenzaError:
    return CadenzaError(ErrorCode.NOT_FOUND, f"list {list_id} does not exist", {"id": list_id})


def fetch_list(session: Session, list_id: int, *, for_update: bool = False) -> ContactList:
    found = session.get(ContactList, list_id, with_for_update=for_update or None)
    if found is None:
        raise _not_found(list_id)
    return found


def _authorize(session: Session, actor_id: int | None, contact_list, action: Action) -> None:
    """A list is its creator's; one with no creator (made by the CLI or before owners
    were kept, or whose creator was deleted) is the team's, and only admins change it."""
    authorize(session, actor_id, Resource.LIST, action, [contact_list.created_by_id])


def check_filters(session: Session, value: Any) -> dict[str, Any]:
    types = set(session.scalars(select(ObjectType.name)))
    return filters.check(value, types)


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\x00" in name:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, "name must be 1 to 200 characters", {"field": "name"}
        )
    return name.strip()


def create_list(
    ctx: Context, actor_id: int | None, name: str, kind: ListKind | str, list_filters: Any = None
) -> ListView:
    if kind not in KINDS:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, "kind must be static or active", {"field": "kind"}
        )
    kind = ListKind(kind)
    if kind == ListKind.STATIC and list_filters is not None:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR,
            "a static list has no filters: its members are added by hand",
            {"field": "filters"},
        )
    if kind == ListKind.ACTIVE and list_filters is None:
        raise CadenzaError(
            ErrorCode.VALIDATION_ERROR, "an active list needs filters", {"field": "filters"}
        )
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.LIST, Action.CREATE)
        clean = check_filters(session, list_filters) if kind == ListKind.ACTIVE else None
        contact_list = ContactList(
            name=_check_name(name),
            kind=kind,
            filters=clean,
            created_by_id=actor_id,
            created_at=now,
            updated_at=now,
        )
        session.add(contact_list)
        session.flush()
        if kind == ListKind.ACTIVE:
            membership.rebuild(session, now, contact_list)
        record(session, ctx, actor_id, "list.create", "list", contact_list.id, {"kind": kind})
        return ListView(ListRow.of(contact_list), _size(session, contact_list.id))


def update_list(ctx: Context, actor_id: int | None, list_id: int, changes: dict) -> ListView:
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        contact_list = fetch_list(session, list_id, for_update=True)
        _authorize(session, actor_id, contact_list, Action.UPDATE)
        if "name" in changes:
            contact_list.name = _check_name(changes["name"])
        if "filters" in changes:
            if contact_list.kind != ListKind.ACTIVE:
                raise CadenzaError(
                    ErrorCode.INVALID_STATE,
                    "a static list has no filters: add or remove members instead",
                )
            contact_list.filters = check_filters(session, changes["filters"])
            session.flush()
            membership.rebuild(session, now, contact_list)
        contact_list.updated_at = now
        record(session, ctx, actor_id, "list.update", "list", list_id, sorted(changes))
        return ListView(ListRow.of(contact_list), _size(session, list_id))


def delete_list(ctx: Context, actor_id: int | None, list_id: int) -> None:
    """Refused while an automation rule watches the list: the rule would go quiet."""
    with ctx.db.transaction() as session:
        contact_list = fetch_list(session, list_id, for_update=True)
        _authorize(session, actor_id, contact_list, Action.DELETE)
        watching = [
            rule.id
            for rule in session.scalars(select(AutomationRule))
            if (rule.trigger or {}).get("list_id") == list_id
        ]
        if watching:
            raise CadenzaError(
                ErrorCode.INVALID_STATE,
                f"automation rules {', '.join(map(str, watching))} watch this list: "
                "change or delete them first",
                {"rule_ids": watching},
            )
        session.delete(contact_list)
        record(session, ctx, actor_id, "list.delete", "list", list_id)


def get_list(ctx: Context, list_id: int) -> ListView:
    with ctx.db.read() as session:
        contact_list = fetch_list(session, list_id)
        return ListView(ListRow.of(contact_list), _size(session, list_id))


def list_lists(ctx: Context, *, limit: int, after_id: int | None = None) -> list[ListView]:
    """`limit` rows (callers ask one more than they show, to know whether more follow)."""
    with ctx.db.read() as session:
        query = select(ContactList).order_by(ContactList.id).limit(limit)
        if after_id is not None:
            query = query.where(ContactList.id > after_id)
        found = list(session.scalars(query))
        sizes = {
            list_id: size
            for list_id, size in session.execute(
                select(ListMember.list_id, func.count())
                .where(ListMember.list_id.in_([c.id for c in found]))
                .group_by(ListMember.list_id)
            )
        }
        return [ListView(ListRow.of(c), sizes.get(c.id, 0)) for c in found]


def static_lists(ctx: Context, *, limit: int) -> list[ListRow]:
    """The static lists, oldest first, without their sizes: the contacts index's "Add to
    list" menu, which counted every list's members on each page (a 100,000-member list
    cost the index 15-20 ms a request, bench/large.py after its list enrollment)."""
    with ctx.db.read() as session:
        rows = session.scalars(
            select(ContactList)
            .where(ContactList.kind == ListKind.STATIC)
            .order_by(ContactList.id)
            .limit(limit)
        )
        return [ListRow.of(c) for c in rows]


def _size(session: Session, list_id: int) -> int:
    return session.scalar(
        select(func.count()).select_from(ListMember).where(ListMember.list_id == list_id)
    )


def members(
    ctx: Context, list_id: int, *, limit: int, after_id: int | None = None
) -> list[ContactView]:
    """Members ordered by contact id (keyset pages); `limit` rows."""
    with ctx.db.read() as session:
        fetch_list(session, list_id)
        query = (
            select(Contact)
            .join(ListMember, ListMember.contact_id == Contact.id)
            .where(ListMember.list_id == list_id)
            .order_by(Contact.id)
            .limit(limit)
        )
        if after_id is not None:
            query = query.where(Contact.id > after_id)
        return [ContactView.of(row) for row in session.scalars(query)]


def member_ids(session: Session, list_id: int, *, after: int, limit: int) -> list[int]:
    return list(
        session.scalars(
            select(ListMember.contact_id)
            .where(ListMember.list_id == list_id, ListMember.contact_id > after)
            .order_by(ListMember.contact_id)
            .limit(limit)
        )
    )


def change_members(
    ctx: Context, actor_id: int | None, list_id: int, *, add=(), remove=()
) -> dict[str, Any]:
    """Static lists only. Unknown contacts are refused as a whole (nothing is written)."""
    add, remove = set(add), set(remove)
    if len(add) + len(remove) > MAX_MEMBER_CHANGE:
        raise CadenzaError(
            ErrorCode.BULK_LIMIT_EXCEEDED,
            f"at most {MAX_MEMBER_CHANGE} members can be changed at once",
            {"limit": MAX_MEMBER_CHANGE},
        )
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        contact_list = fetch_list(session, list_id, for_update=True)
        _authorize(session, actor_id, contact_list, Action.UPDATE)
        if contact_list.kind != ListKind.STATIC:
            raise CadenzaError(
                ErrorCode.INVALID_STATE,
                "an active list's members follow its filters: change the filters instead",
            )
        known = set(session.scalars(select(Contact.id).where(Contact.id.in_(add | remove))))
        missing = sorted((add | remove) - known)
        if missing:
            raise CadenzaError(
                ErrorCode.CONTACT_NOT_FOUND,
                f"no contact with id {', '.join(map(str, missing[:20]))}",
                {"contact_ids": missing},
            )
        current = set(
            session.scalars(
                select(ListMember.contact_id).where(
                    ListMember.list_id == list_id, ListMember.contact_id.in_(add | remove)
                )
            )
        )
        added = {(list_id, c) for c in add - current}
        removed = {(list_id, c) for c in (remove & current) - add}
        membership.apply_changes(session, now, added, removed)
        record(
            session,
            ctx,
            actor_id,
            "list.members",
            "list",
            list_id,
            {"added": len(added), "removed": len(removed)},
        )
        return {"added": len(added), "removed": len(removed), "size": _size(session, list_id)}
