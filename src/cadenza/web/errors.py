"""Every failure leaves as `{"error": {"code", "message", "details"}}` with a fitting status."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from cadenza.domain import ids
from cadenza.domain.errors import CadenzaError, ErrorCode

MAX_ID = ids.MAX_ID  # the largest id a path or query may give (domain/ids.py)
# PostgreSQL text cannot hold NUL: refused as invalid input rather than in the driver.
NO_NUL = r"^[^\x00]*$"


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    """Declared so clients (and the schema fuzzer) know the shape every failure has."""

    error: ErrorDetail


_ERROR_MEANINGS = {
    401: "No valid API token",
    403: "The role does not allow this",
    404: "No such record, or not one of yours",
    409: "The record is not in a state that allows this",
    413: "The body is too large",
    422: "The request is invalid (field paths in details)",
    429: "Too many failed authentications",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for our error format; 422 replaces FastAPI's own, which we never send."""
    return {s: {"model": ErrorOut, "description": _ERROR_MEANINGS[s]} for s in statuses}


_HTTP_CODES = {
    401: ErrorCode.UNAUTHENTICATED,
    403: ErrorCode.PERMISSION_DENIED,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.NOT_FOUND,
    413: ErrorCode.BODY_TOO_LARGE,
}


def error_response(status: int, code: str, message: str, details=None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": str(code), "message": message, "details": details}}, status_code=status
    )


def _field_path(location: tuple) -> str:
    return ".".join(str(part) for part in location)


async def cadenza_error(_request: Request, exc: CadenzaError) -> JSONResponse:
    return error_response(exc.http_status, exc.code, exc.message, exc.details)


async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    fields = [
        {"field": _field_path(error["loc"]), "message": error["msg"]} for error in exc.errors()
    ]
    first = fields[0] if fields else {"field": "", "message": "invalid request"}
    return error_response(
        422,
        ErrorCode.VALIDATION_ERROR,
        f"{first['field']}: {first['message']}" if first["field"] else first["message"],
        fields,
    )


async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, ErrorCode.VALIDATION_ERROR)
    # A body that cannot be parsed (bad JSON, bad multipart) is invalid input like
    # any other: one status for one code.
    status = 422 if exc.status_code == 400 else exc.status_code
    response = error_response(status, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(CadenzaError, cadenza_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
