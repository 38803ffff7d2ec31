"""RFC 9457 problem+json errors for every service."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.i18n import negotiate, validation_message

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise from services/routes to answer with a problem+json body."""

    def __init__(self, status: int, title: str, detail: str | None = None, *,
                 type_: str = "about:blank", **extra: Any) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.type, self.extra = status, title, detail, type_, extra

    def body(self) -> dict[str, Any]:
        body = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        body.update(self.extra)
        return body


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(problem.body(), status_code=problem.status,
                        media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _loc(loc) -> list:
    return [part for part in loc]


def no_policy_pack_problem(exc: LookupError, loc: list[str]) -> Problem:
    """422: no policy pack is in force on the date at ``loc`` (``shared.policy`` found none)."""
    return Problem(422, "Invalid request", f"该日期无适用政策包。/ {exc}",
                   type_="https://jingzhun.dev/problems/validation", errors=[{"loc": loc, "msg": str(exc)}])


def busy_problem() -> Problem:
    """503: every pooled database connection stayed in use for the pool's timeout (overload)."""
    return Problem(503, "Service busy", "Every database connection is in use; retry shortly.",
                   type_="https://jingzhun.dev/problems/busy")


#: The busy answer's headers: a retry is what the caller should do.
BUSY_HEADERS = {"Retry-After": "1"}


def install_problem_handlers(app: FastAPI, *, language_layer: bool = True) -> None:
    """Problem handlers, and the layer that puts every problem+json answer into the caller's language.

    The layer is added here, last, so it is the outermost middleware: it also sees the problems that other
    middlewares (body limit, idempotency, metrics guard) answer themselves. The services do that in their
    one edge layer instead (``shared.http_headers.ServiceEdge``) and pass ``language_layer=False``.
    """
    if language_layer:
        from shared.i18n import ProblemLanguageMiddleware
        app.add_middleware(ProblemLanguageMiddleware)

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem):
        return problem_response(exc, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        # Each message in the caller's language from its pydantic type and ctx (the ctx itself is not
        # sent: it may hold the rejected input's objects, which are not JSON).
        lang = negotiate(request.headers.get("accept-language"))
        errors = [{"loc": _loc(e.get("loc", ())), "type": e.get("type", ""),
                   "msg": validation_message({"type": e.get("type"), "msg": e.get("msg", ""), "ctx": e.get("ctx")},
                                             lang)}
                  for e in exc.errors()]
        return problem_response(Problem(422, "Invalid request", "The request body or parameters are invalid.",
                                        type_="https://jingzhun.dev/problems/validation", errors=errors))

    from sqlalchemy.exc import TimeoutError as PoolTimeout
    from shared.db import NulInText

    @app.exception_handler(NulInText)
    async def _nul(_: Request, exc: NulInText):
        return problem_response(Problem(422, "Invalid request", "Text with a NUL character (U+0000) cannot be stored "
                                        "or looked up.", type_="https://jingzhun.dev/problems/validation",
                                        errors=[{"loc": ["body"], "msg": "NUL character", "type": "nul_character"}]))

    @app.exception_handler(PoolTimeout)
    async def _busy(_: Request, exc: PoolTimeout):
        # Every pooled database connection stayed in use for the pool's timeout: overload, not a fault of
        # the request. The pool has no overflow (shared.db.make_engine), so this is how overload shows.
        import logging
        logging.getLogger("app").warning("database pool exhausted: %s", exc)
        return problem_response(busy_problem(), BUSY_HEADERS)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):
        import logging
        from shared.logs import request_id_var
        logging.getLogger("app").exception("unhandled error")
        return problem_response(Problem(500, "Internal error", "The error has been logged.",
                                        request_id=request_id_var.get()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException):
        problem = Problem(exc.status_code, _title(exc.status_code), str(exc.detail) if exc.detail else None)
        return problem_response(problem, dict(exc.headers) if exc.headers else None)


def _title(status: int) -> str:
    from http import HTTPStatus
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


PROBLEM_RESPONSES = {
    401: {"description": "Missing or invalid bearer token", "content": {PROBLEM_MEDIA_TYPE: {}}},
    403: {"description": "Token lacks the scope or area", "content": {PROBLEM_MEDIA_TYPE: {}}},
    422: {"description": "Invalid input (problem+json with errors[])", "content": {PROBLEM_MEDIA_TYPE: {}}},
}
