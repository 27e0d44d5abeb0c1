"""Every failure leaves as `{"error": {"code", "message", "details"}}` with a fitting status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cadenza.domain.errors import CadenzaError, ErrorCode

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


def install(app: FastAPI) -> None:
    @app.exception_handler(CadenzaError)
    async def cadenza_error(_request: Request, exc: CadenzaError) -> JSONResponse:
        return error_response(exc.http_status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
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

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, ErrorCode.VALIDATION_ERROR)
        response = error_response(exc.status_code, code, str(exc.detail))
        if exc.headers:
            response.headers.update(exc.headers)
        return response
