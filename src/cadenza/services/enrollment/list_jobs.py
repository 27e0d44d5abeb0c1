"""Enrolling a whole list: a job the worker runs in batches of the bulk limit.

The request is checked at once (the user may enroll, the sequence and mailbox are
usable), then the worker enrolls the list's members in contact-id order, one batch
per transaction, counting processed / enrolled / refused (by code). Members are read
when their batch comes up, so contacts joining or leaving an active list meanwhile
are taken as they are then. When the user's daily enrollment limit is reached the job
waits for the next midnight in the user's time zone and carries on from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from cadenza.domain.enums import ListJobStatus
from cadenza.domain.errors import CadenzaError, ErrorCode
from cadenza.domain.policy import Action, Resource
from cadenza.services.access import authorize
from cadenza.services.audit import record
from cadenza.services.context import Context
from cadenza.services.crm import lists
from cadenza.services.enrollment.enroll import (
    ContactRequest,
    EnrollOptions,
    EnrollRequest,
    check_plan,
    daily_limit_resets_at,
    enroll_in,
)
from cadenza.services.lookup import fetch
from cadenza.services.read_models import copy_row
from cadenza.store.models import ListEnrollJob, ListMember, User


@dataclass(frozen=True)
class JobView:
    """A list enrollment job's progress, as its page, the API and the CLI follow it
    (`describe` words it for them)."""

    id: int
    list_id: int
    sequence_id: int
    user_id: int
    mailbox_id: int | None
    options: dict[str, Any]
    status: str
    total: int
    processed: int
    enrolled: int
    refused: int
    refusals: dict[str, Any]
    cursor: int
    resume_at: datetime | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, row: ListEnrollJob) -> JobView:
        return copy_row(cls, row)


def start(
    ctx: Context,
    user_id: int,
    list_id: int,
    sequence_id: int,
    options: EnrollOptions | None = None,
) -> JobView:
    """Checks every shared choice now (the same `EnrollOptions` as the enroll dialog)
    and leaves the members to the worker."""
    options = options or EnrollOptions()
    now = ctx.clock.now()
    with ctx.db.transaction() as session:
        authorize(session, user_id, Resource.LIST_ENROLL_JOB, Action.CREATE)
        lists.fetch_list(session, list_id)
        request = options.request(sequence_id, user_id, [])
        check_plan(session, ctx, request)
        total = session.scalar(
            select(func.count()).select_from(ListMember).where(ListMember.list_id == list_id)
        )
        if not total:
            raise CadenzaError(ErrorCode.NO_CONTACTS, f"list {list_id} has no members to enroll")
        job = ListEnrollJob(
            list_id=list_id,
            sequence_id=sequence_id,
            user_id=user_id,
            mailbox_id=options.mailbox_id,
            options=options.to_json(),
            status=ListJobStatus.RUNNING,
            total=total,
            refusals={},
            created_at=now,
        )
        session.add(job)
        session.flush()
        record(
            session, ctx, user_id, "list.enroll", "list", list_id,
            {"job_id": job.id, "sequence_id": sequence_id},
        )  # fmt: skip
        return JobView.of(job)


def _request(job: ListEnrollJob, contact_ids: list[int]) -> EnrollRequest:
    options = EnrollOptions.from_json(job.options, job.mailbox_id)
    return options.request(
        job.sequence_id, job.user_id, [ContactRequest(contact_id=c) for c in contact_ids]
    )


def first_batch_ids(ctx: Context, list_id: int) -> list[int]:
    """The members the first batch would take, for the dialog's dry run."""
    with ctx.db.read() as session:
        lists.fetch_list(session, list_id)
        return lists.member_ids(session, list_id, after=0, limit=ctx.settings.enroll_bulk_limit)


def get_job(ctx: Context, job_id: int, *, actor_id: int | None = None) -> JobView:
    """A member sees only the jobs they started; to them another's does not exist."""
    with ctx.db.read() as session:
        job = _fetch(session, job_id)
        hidden = CadenzaError(
            ErrorCode.NOT_FOUND, f"list enrollment job {job_id} does not exist", {"id": job_id}
        )
        authorize(
            session, actor_id, Resource.LIST_ENROLL_JOB, Action.READ, [job.user_id],
            hidden_as=hidden,
        )  # fmt: skip
        return JobView.of(job)


def _fetch(session, job_id: int, *, for_update: bool = False) -> ListEnrollJob:
    job = session.get(ListEnrollJob, job_id, with_for_update=for_update or None)
    if job is None:
        raise CadenzaError(
            ErrorCode.NOT_FOUND, f"list enrollment job {job_id} does not exist", {"id": job_id}
        )
    return job


def run_due(ctx: Context, max_batches: int = 20) -> int:
    """Runs due jobs a batch at a time; returns how many contacts were processed."""
    now = ctx.clock.now()
    with ctx.db.read() as session:
        due = list(
            session.scalars(
                select(ListEnrollJob.id)
                .where(
                    ListEnrollJob.status == ListJobStatus.RUNNING,
                    or_(ListEnrollJob.resume_at.is_(None), ListEnrollJob.resume_at <= now),
                )
                .order_by(ListEnrollJob.id)
            )
        )
    processed = 0
    for job_id in due:
        for _ in range(max_batches):
            step = run_batch(ctx, job_id, now)
            processed += step
            if not step:
                break
    return processed


def run_batch(ctx: Context, job_id: int, now: datetime) -> int:
    """One batch of one job in one transaction; 0 when the job is done or waiting."""
    with ctx.db.transaction() as session:
        job = _fetch(session, job_id, for_update=True)
        if job.status != ListJobStatus.RUNNING or (job.resume_at and job.resume_at > now):
            return 0
        job.resume_at = None
        ids = lists.member_ids(
            session, job.list_id, after=job.cursor, limit=ctx.settings.enroll_bulk_limit
        )
        if not ids:
            job.status, job.finished_at = ListJobStatus.DONE, now
            return 0
        request = _request(job, ids)
        try:
            with session.begin_nested():
                results = enroll_in(session, ctx, request)
        except CadenzaError as exc:
            job.status, job.finished_at = ListJobStatus.FAILED, now
            job.error_code, job.error_message = str(exc.code), exc.message
            return 0
        refusals: dict[str, Any] = dict(job.refusals or {})
        for result in results:
            if result.code == ErrorCode.DAILY_ENROLLMENT_LIMIT:
                job.resume_at = daily_limit_resets_at(ctx, fetch(session, User, job.user_id), now)
                break
            job.cursor = result.contact_id
            job.processed += 1
            if result.ok:
                job.enrolled += 1
            else:
                job.refused += 1
                refusals[result.code] = refusals.get(result.code, 0) + 1
        job.refusals = refusals
        return 0 if job.resume_at else len(ids)


def describe(job: ListEnrollJob | JobView) -> dict[str, Any]:
    return {
        "id": job.id,
        "list_id": job.list_id,
        "sequence_id": job.sequence_id,
        "user_id": job.user_id,
        "mailbox_id": job.mailbox_id,
        "status": job.status,
        "total": job.total,
        "processed": job.processed,
        "enrolled": job.enrolled,
        "refused": job.refused,
        "refusals": job.refusals or {},
        "resume_at": job.resume_at,
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }
