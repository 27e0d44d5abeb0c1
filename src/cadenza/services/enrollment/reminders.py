"""Task reminders per user, and the daily task digest (docs/task-reminders.md).

A sequence's "task reminders" setting says whether its tasks are reminded of at all;
the task owner's preference says when (never, at the due time, N minutes before).
The digest is one email per user and local day, at the user's chosen hour, listing
the day's open tasks: this module's clocked job records the day's digest (the unique
(user, day) key makes it once, whichever worker gets there first), and the delivery
claims send it like a reminder (delivery/claims.py): same slots, same daily room, a
message row in the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenza.domain.contact_fields import parse_timezone
from cadenza.domain.enums import DigestStatus, ReminderTiming, TaskStatus
from cadenza.domain.policy import Action, Resource
from cadenza.domain.reminders import ReminderPrefs, day_bounds, digest_due_day, next_digest_at
from cadenza.domain.sequence_settings import SequenceSettings
from cadenza.services.access import authorize
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.lookup import fetch
from cadenza.store.models import Enrollment, Mailbox, Task, TaskDigest, User


@dataclass(frozen=True)
class PreferencesView:
    """A user's reminder and digest preferences, with what they depend on: the time zone
    the digest hour is in, and the mailbox digests come from (None: no digest is sent)."""

    user_id: int
    timing: str
    minutes_before: int
    digest: bool
    digest_hour: int
    timezone: str
    digest_mailbox: str | None


def prefs_of(user: User) -> ReminderPrefs:
    return ReminderPrefs(
        ReminderTiming(user.reminder_timing),
        user.reminder_minutes,
        user.digest_enabled,
        user.digest_hour,
    )


def zone_of(ctx: Context, user: User) -> ZoneInfo:
    """The user's own time zone, else the installation's default."""
    return parse_timezone(user.timezone or ctx.settings.default_timezone)


def digest_mailbox(session: Session, user_id: int) -> Mailbox | None:
    """Digests come from the user's first mailbox, to themselves (their own address)."""
    return session.scalar(
        select(Mailbox).where(Mailbox.owner_id == user_id).order_by(Mailbox.id).limit(1)
    )


def remind_at(owner: User, due_at: datetime, now: datetime, *, wanted: bool) -> datetime | None:
    """A task's reminder moment: `wanted` is its sequence's task reminders setting."""
    return prefs_of(owner).remind_at(due_at, now) if wanted else None


def _view(ctx: Context, session: Session, user: User) -> PreferencesView:
    prefs = prefs_of(user)
    mailbox = digest_mailbox(session, user.id)
    return PreferencesView(
        user.id,
        str(prefs.timing),
        prefs.minutes_before,
        prefs.digest,
        prefs.digest_hour,
        user.timezone or ctx.settings.default_timezone,
        mailbox.from_email if mailbox else None,
    )


def get_preferences(ctx: Context, user_id: int, *, actor_id: int | None = None) -> PreferencesView:
    with ctx.db.read() as session:
        authorize(session, actor_id, Resource.PREFERENCES, Action.READ, [user_id])
        return _view(ctx, session, fetch(session, User, user_id))


def update_preferences(
    ctx: Context, user_id: int, changes: dict[str, Any], *, actor_id: int | None = None
) -> PreferencesView:
    """Changes some preferences (each checked; nothing is written if one is refused) and
    moves the reminders of the user's open tasks not yet reminded of and not yet due."""
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        authorize(session, actor_id, Resource.PREFERENCES, Action.UPDATE, [user_id])
        user = fetch(session, User, user_id, for_update=True)
        prefs = prefs_of(user).changed(changes)
        user.reminder_timing = prefs.timing
        user.reminder_minutes = prefs.minutes_before
        user.digest_enabled = prefs.digest
        user.digest_hour = prefs.digest_hour
        moved = _move_reminders(session, user, now)
        data = {**{k: str(v) for k, v in vars(prefs).items()}, "reminders_moved": moved}
        record(session, ctx, actor_id, "user.preferences", "user", user_id, data)
        return _view(ctx, session, user)


def _move_reminders(session: Session, user: User, now: datetime) -> int:
    """Open tasks due later and not reminded of yet get the new reminder moment. Overdue
    ones keep theirs: turning reminders on never floods the inbox with old tasks."""
    rows = session.execute(
        select(Task, Enrollment.settings_snapshot)
        .outerjoin(Enrollment, Enrollment.id == Task.enrollment_id)
        .where(
            Task.owner_id == user.id,
            Task.status == TaskStatus.OPEN,
            Task.reminded_at.is_(None),
            Task.due_at > now,
        )
    )
    moved = 0
    for task, snapshot in rows:
        wanted = snapshot is None or SequenceSettings.from_dict(snapshot).task_reminders
        new = remind_at(user, task.due_at, now, wanted=wanted)
        if new != task.remind_at:
            task.remind_at, moved = new, moved + 1
    return moved


# --- the daily digest ---------------------------------------------------------------------


def _digest_users(session: Session) -> list[User]:
    return list(
        session.scalars(
            select(User).where(User.digest_enabled.is_(True), User.deactivated_at.is_(None))
        )
    )


def open_tasks_until(user_id: int, end: datetime) -> tuple[Any, ...]:
    """What makes a task the user's and in their digest: open, due before `end` (the
    end of the local day: today's and overdue ones)."""
    return (Task.owner_id == user_id, Task.status == TaskStatus.OPEN, Task.due_at < end)


def _made(session: Session, keys: list[tuple[int, date]]) -> set[tuple[int, date]]:
    """Which of these (user, local day) digests are recorded already."""
    key = tuple_(TaskDigest.user_id, TaskDigest.local_date)
    found = session.execute(select(TaskDigest.user_id, TaskDigest.local_date).where(key.in_(keys)))
    return {(user_id, day) for user_id, day in found}


def make_due_digests(ctx: Context) -> int:
    """Records the digest of every user whose digest hour has come today and who has none
    for today yet; returns how many are waiting to be sent. Each is its own transaction:
    a user's digest another worker recorded first is simply not recorded again."""
    now = ctx.clock.now()
    with ctx.db.read() as session:
        due = []
        for user in _digest_users(session):
            zone = zone_of(ctx, user)
            day = digest_due_day(now, user.digest_hour, zone)
            if day is not None:
                due.append((user.id, day, zone))
        if not due:
            return 0
        made = _made(session, [(user_id, day) for user_id, day, _ in due])
    pending = 0
    for user_id, day, zone in due:
        if (user_id, day) in made:
            continue
        try:
            with ctx.db.transaction() as session:
                mailbox = digest_mailbox(session, user_id)
                _, end = day_bounds(day, zone)
                count = session.scalar(
                    select(func.count()).select_from(Task).where(*open_tasks_until(user_id, end))
                )
                status = (
                    DigestStatus.NO_MAILBOX
                    if mailbox is None
                    else DigestStatus.PENDING
                    if count
                    else DigestStatus.NO_TASKS
                )
                session.add(
                    TaskDigest(
                        user_id=user_id,
                        local_date=day,
                        mailbox_id=mailbox.id if mailbox else None,
                        status=status,
                        task_count=count or 0,
                        due_at=now,
                        created_at=now,
                    )
                )
        except IntegrityError:
            continue  # another worker recorded this day's digest first
        pending += status == DigestStatus.PENDING
    return pending


def next_digest_moment(ctx: Context) -> datetime | None:
    """The next instant a user's digest hour comes on a day without a digest yet."""
    now = ctx.clock.now()
    with ctx.db.read() as session:
        users = _digest_users(session)
        if not users:
            return None
        zones = {user.id: zone_of(ctx, user) for user in users}
        today = {user.id: now.astimezone(zones[user.id]).date() for user in users}
        made = _made(session, list(today.items()))
    moments = [
        next_digest_at(now, u.digest_hour, zones[u.id], sent_today=(u.id, today[u.id]) in made)
        for u in users
    ]
    return min(moments)
