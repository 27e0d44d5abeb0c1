"""Records: object types, companies / deals / tickets / custom objects, associations.

`/companies`, `/deals` and `/tickets` are the built-in types' own paths; every type,
custom ones included, is also at `/objects/{type}` (by name or plural). Records are
shared like contacts: everyone reads, members and admins write; only admins define
object types.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cadenza.services.crm import records
from cadenza.services.crm.records import AssociationIn, RecordView, TypeView
from cadenza.web.auth import ApiAdmin, ApiUser, ApiWriter, Ctx
from cadenza.web.errors import MAX_ID, NO_NUL, error_responses
from cadenza.web.pagination import DEFAULT_LIMIT, MAX_LIMIT, after_id, paged
from cadenza.web.routes.contacts import _property_filters

router = APIRouter(tags=["records"])

RowId = Annotated[int, Field(ge=1, le=MAX_ID)]
RecordId = Annotated[int, Path(ge=1, le=MAX_ID)]
TypeName = Annotated[str, Path(max_length=64, pattern=NO_NUL)]
Value = str | int | float | bool | None
BUILTIN_PATHS = {"companies": "company", "deals": "deal", "tickets": "ticket"}


class PropertyDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., max_length=63, pattern=NO_NUL)
    label: str | None = Field(None, max_length=100, pattern=NO_NUL)
    type: Literal["string", "number", "date", "bool", "enum"]
    options: list[Annotated[str, Field(max_length=200, pattern=NO_NUL)]] | None = None


class ObjectTypeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., max_length=64, pattern=NO_NUL, description="e.g. boat")
    plural: str = Field(..., max_length=64, pattern=NO_NUL, description="e.g. boats")
    label: str | None = Field(None, max_length=100, pattern=NO_NUL)
    properties: list[PropertyDef] = Field(default_factory=list)


class ObjectTypePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str | None = Field(None, max_length=100, pattern=NO_NUL)
    properties: list[PropertyDef] | None = None


class ObjectTypeOut(BaseModel):
    id: int
    name: str
    plural: str
    label: str
    builtin: bool
    properties: list[dict[str, Any]]


class AssociationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: RowId
    primary: bool = False


class RecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., max_length=300, pattern=NO_NUL)
    properties: dict[str, Value] = Field(default_factory=dict)
    associations: list[AssociationBody] = Field(default_factory=list, max_length=500)


class RecordPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=300, pattern=NO_NUL)
    properties: dict[str, Value] | None = Field(None, description="Merged; null clears one")


class AssociatedOut(BaseModel):
    contact_id: int
    primary: bool


class RecordEnrollmentOut(BaseModel):
    id: int
    contact_id: int
    sequence_id: int
    state: str
    enrolled_at: datetime


class RecordOut(BaseModel):
    id: int
    type: str
    name: str
    properties: dict[str, Any]
    associations: list[AssociatedOut]
    created_at: datetime
    updated_at: datetime


class RecordDetailOut(RecordOut):
    enrollments: list[RecordEnrollmentOut]


class RecordSummaryOut(BaseModel):
    id: int
    type: str
    name: str
    properties: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class RecordPage(BaseModel):
    results: list[RecordSummaryOut]
    next_cursor: str | None


class AssociationCreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    record_id: RowId
    contact_id: RowId
    primary: bool = False


class AssociationOut(BaseModel):
    id: int
    record_id: int
    record_type: str
    record_name: str
    contact_id: int
    primary: bool
    created_at: datetime


class AssociationPage(BaseModel):
    results: list[AssociationOut]
    next_cursor: str | None


def type_out(object_type: TypeView) -> ObjectTypeOut:
    return ObjectTypeOut(
        id=object_type.id,
        name=object_type.name,
        plural=object_type.plural,
        label=object_type.label,
        builtin=object_type.builtin,
        properties=object_type.properties or [],
    )


def record_out(view: RecordView) -> RecordDetailOut:
    return RecordDetailOut(
        **_summary(view.record, view.object_type.name),
        associations=[
            AssociatedOut(contact_id=a.contact_id, primary=a.is_primary) for a in view.associations
        ],
        enrollments=[
            RecordEnrollmentOut(
                id=e.id,
                contact_id=e.contact_id,
                sequence_id=e.sequence_id,
                state=e.state,
                enrolled_at=e.enrolled_at,
            )
            for e in view.enrollments
        ],
    )


def _summary(record, type_name: str) -> dict[str, Any]:
    return {
        "id": record.id,
        "type": type_name,
        "name": record.name,
        "properties": record.properties or {},
        "created_at": record.created_at,
        "updated_at": record.updated_at,
    }


# -- object types -----------------------------------------------------------------------


@router.get("/object-types", response_model=list[ObjectTypeOut], responses=error_responses(401))
def list_types(
    _user: ApiUser,
    ctx: Ctx,
) -> list[ObjectTypeOut]:
    return [type_out(t) for t in records.list_types(ctx)]


@router.post(
    "/object-types",
    status_code=201,
    response_model=ObjectTypeOut,
    responses=error_responses(401, 403, 409, 422),
)
def create_type(
    body: ObjectTypeIn,
    user: ApiAdmin,
    ctx: Ctx,
) -> ObjectTypeOut:
    return type_out(
        records.create_type(
            ctx,
            user.id,
            name=body.name,
            plural=body.plural,
            label=body.label,
            properties=[p.model_dump(exclude_none=True) for p in body.properties],
        )
    )


@router.get(
    "/object-types/{type_name}",
    response_model=ObjectTypeOut,
    responses=error_responses(401, 404, 422),
)
def get_type(
    type_name: TypeName,
    _user: ApiUser,
    ctx: Ctx,
) -> ObjectTypeOut:
    return type_out(records.get_type(ctx, type_name))


@router.patch(
    "/object-types/{type_name}",
    response_model=ObjectTypeOut,
    responses=error_responses(401, 403, 404, 422),
)
def update_type(
    body: ObjectTypePatch,
    type_name: TypeName,
    user: ApiAdmin,
    ctx: Ctx,
) -> ObjectTypeOut:
    changes = body.model_dump(exclude_unset=True)
    if body.properties is not None:
        changes["properties"] = [p.model_dump(exclude_none=True) for p in body.properties]
    return type_out(records.update_type(ctx, user.id, type_name, changes))


@router.delete(
    "/object-types/{type_name}",
    status_code=204,
    responses=error_responses(401, 403, 404, 409, 422),
)
def delete_type(
    type_name: TypeName,
    user: ApiAdmin,
    ctx: Ctx,
) -> None:
    records.delete_type(ctx, user.id, type_name)


# -- records, for /objects/{type} and each built-in path -------------------------------


def _search(ctx, type_name, q, property, contact_id, limit, cursor) -> dict[str, Any]:
    object_type, rows = records.search_records(
        ctx,
        type_name,
        q,
        properties=_property_filters(property),
        contact_id=contact_id,
        limit=limit + 1,
        after_id=after_id(cursor),
    )
    return paged(rows, limit, lambda r: _summary(r, object_type.name))


def _create(ctx, user, type_name, body: RecordIn) -> RecordDetailOut:
    return record_out(
        records.create_record(
            ctx,
            user.id,
            type_name,
            name=body.name,
            properties=dict(body.properties),
            associations=[AssociationIn(a.contact_id, a.primary) for a in body.associations],
        )
    )


def _path_type(type_name: TypeName) -> str:
    return type_name


def _add_record_routes(prefix: str, fixed_type: str | None) -> None:
    """The five record routes under `prefix`, for one type or for `{type_name}`."""
    resolve = _path_type if fixed_type is None else (lambda: fixed_type)

    def list_records(
        _user: ApiUser,
        ctx: Ctx,
        type_name: str = Depends(resolve),
        q: str | None = Query(None, pattern=NO_NUL, description="Part of the name"),
        property: list[str] = Query(
            default_factory=list, description="Property filter NAME:VALUE (exact); repeatable"
        ),
        contact_id: int | None = Query(
            None, ge=1, le=MAX_ID, description="Only records associated with this contact"
        ),
        limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
        cursor: str | None = None,
    ) -> dict[str, Any]:
        return _search(ctx, type_name, q, property, contact_id, limit, cursor)

    def create_record(
        body: RecordIn,
        user: ApiWriter,
        ctx: Ctx,
        type_name: str = Depends(resolve),
    ) -> RecordDetailOut:
        return _create(ctx, user, type_name, body)

    def get_record(
        record_id: RecordId,
        _user: ApiUser,
        ctx: Ctx,
        type_name: str = Depends(resolve),
    ) -> RecordDetailOut:
        """The record, its associated contacts and the enrollments made from it."""
        return record_out(records.get_record(ctx, type_name, record_id))

    def update_record(
        body: RecordPatch,
        record_id: RecordId,
        user: ApiWriter,
        ctx: Ctx,
        type_name: str = Depends(resolve),
    ) -> RecordDetailOut:
        changes = body.model_dump(exclude_unset=True)
        return record_out(records.update_record(ctx, user.id, type_name, record_id, changes))

    def delete_record(
        record_id: RecordId,
        user: ApiWriter,
        ctx: Ctx,
        type_name: str = Depends(resolve),
    ) -> None:
        records.delete_record(ctx, user.id, type_name, record_id)

    name = fixed_type or "object"
    one = f"{prefix}/{{record_id}}"
    tag = {"tags": ["records"]}
    router.add_api_route(
        prefix,
        list_records,
        methods=["GET"],
        response_model=RecordPage,
        responses=error_responses(401, 404, 422),
        name=f"list_{name}s",
        **tag,
    )
    router.add_api_route(
        prefix,
        create_record,
        methods=["POST"],
        status_code=201,
        response_model=RecordDetailOut,
        name=f"create_{name}",
        responses=error_responses(401, 403, 404, 422),
        **tag,
    )
    router.add_api_route(
        one,
        get_record,
        methods=["GET"],
        response_model=RecordDetailOut,
        responses=error_responses(401, 404, 422),
        name=f"get_{name}",
        **tag,
    )
    router.add_api_route(
        one,
        update_record,
        methods=["PATCH"],
        response_model=RecordDetailOut,
        responses=error_responses(401, 403, 404, 422),
        name=f"update_{name}",
        **tag,
    )
    router.add_api_route(one, delete_record, methods=["DELETE"], status_code=204,
                         responses=error_responses(401, 403, 404, 422), name=f"delete_{name}",
                         **tag)  # fmt: skip


for _path, _type in BUILTIN_PATHS.items():
    _add_record_routes(f"/{_path}", _type)
_add_record_routes("/objects/{type_name}", None)


# -- associations -----------------------------------------------------------------------


def association_out(row) -> AssociationOut:
    link, record, type_name = row
    return AssociationOut(
        id=link.id,
        record_id=record.id,
        record_type=type_name,
        record_name=record.name,
        contact_id=link.contact_id,
        primary=link.is_primary,
        created_at=link.created_at,
    )


@router.get("/associations", response_model=AssociationPage, responses=error_responses(401, 422))
def list_associations(
    _user: ApiUser,
    ctx: Ctx,
    record_id: int | None = Query(None, ge=1, le=MAX_ID),
    contact_id: int | None = Query(None, ge=1, le=MAX_ID),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
    cursor: str | None = None,
) -> dict[str, Any]:
    rows = records.list_associations(
        ctx, record_id=record_id, contact_id=contact_id, limit=limit + 1, after_id=after_id(cursor)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "results": [association_out(r) for r in rows],
        "next_cursor": str(rows[-1][0].id) if more else None,
    }


@router.post(
    "/associations",
    status_code=201,
    response_model=AssociationOut,
    responses=error_responses(401, 403, 404, 422),
)
def create_association(
    body: AssociationCreateIn,
    user: ApiWriter,
    ctx: Ctx,
) -> AssociationOut:
    records.associate(ctx, user.id, body.record_id, body.contact_id, primary=body.primary)
    [row] = [
        r
        for r in records.list_associations(ctx, record_id=body.record_id, limit=MAX_LIMIT)
        if r[0].contact_id == body.contact_id
    ]
    return association_out(row)


@router.delete("/associations", status_code=204, responses=error_responses(401, 403, 404, 422))
def delete_association(
    user: ApiWriter,
    ctx: Ctx,
    record_id: int = Query(..., ge=1, le=MAX_ID),
    contact_id: int = Query(..., ge=1, le=MAX_ID),
) -> None:
    records.dissociate(ctx, user.id, record_id, contact_id)
