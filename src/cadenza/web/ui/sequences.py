"""Sequences: the list with each one's key numbers, and a read-only view of its steps."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request

from cadenza.services.context import Context
from cadenza.services.sequences import get_sequence, list_sequences, step_specs
from cadenza.services.stats import sequence_stats
from cadenza.store.models import User
from cadenza.web.auth import get_ctx
from cadenza.web.errors import MAX_ID
from cadenza.web.ui.rendering import render
from cadenza.web.ui.session import check_csrf, signed_in_user

router = APIRouter(dependencies=[Depends(check_csrf)])


@router.get("/sequences")
def sequence_list(
    request: Request, _user: User = Depends(signed_in_user), ctx: Context = Depends(get_ctx)
):
    rows = [(s, sequence_stats(ctx, s.id)) for s in list_sequences(ctx)]
    return render(request, "sequences/list.html", rows=rows)


@router.get("/sequences/{sequence_id}")
def sequence_detail(
    request: Request,
    sequence_id: int = Path(ge=1, le=MAX_ID),
    _user: User = Depends(signed_in_user),
    ctx: Context = Depends(get_ctx),
):
    sequence = get_sequence(ctx, sequence_id)
    return render(
        request,
        "sequences/detail.html",
        sequence=sequence,
        specs=step_specs(sequence),
        stats=sequence_stats(ctx, sequence_id),
    )
