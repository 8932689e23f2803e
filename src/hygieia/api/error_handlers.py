"""Errors to HTTP, in one place: every error answer is ``error_response(exc)``.

Services raise :mod:`hygieia.errors`; the framework's own exceptions (a body that fails
validation, an unknown route or method) are mapped onto that same tree at this edge, so
the exception handlers and the middleware render through one function and a client
sees one shape, ``{"code", "detail"}``, whatever refused the request.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from hygieia.errors import (
    HttpError,
    HygieiaError,
    MalformedBody,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    from_validation_errors,
)

log = logging.getLogger("hygieia")

#: Statuses Starlette raises itself, as our errors. A 400 from the framework means it
#: could not parse the body.
_FRAMEWORK_ERRORS: dict[int, type[HygieiaError]] = {
    400: MalformedBody,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}


def error_response(exc: HygieiaError, *, close: bool = False) -> JSONResponse:
    """The one rendering of an error. ``close`` ends the connection too (the middleware
    answers before reading a body it refuses, so the connection can't be reused)."""
    headers = exc.headers
    if close:
        headers = {**headers, "connection": "close"}
    return JSONResponse(
        {"code": exc.code, "detail": exc.detail, **exc.extra},
        status_code=exc.status,
        headers=headers,
    )


def from_http_exception(exc: StarletteHTTPException) -> HygieiaError:
    detail = exc.detail if isinstance(exc.detail, str) else None
    known = _FRAMEWORK_ERRORS.get(exc.status_code)
    return known(detail) if known is not None else HttpError(exc.status_code, detail)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HygieiaError)
    async def _hygieia(_: Request, exc: HygieiaError) -> JSONResponse:
        if exc.status >= 500:
            log.warning("request failed: %s", exc.code)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(from_validation_errors(exc.errors(), unparseable=MalformedBody()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(from_http_exception(exc))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error: %s", type(exc).__name__)
        return error_response(HygieiaError())
