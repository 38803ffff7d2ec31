"""Small pieces every registry folder uses: the clock, request-model base, problem helpers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.clock import china_now  # noqa: F401 - registry modules import it from here
from shared.problems import Problem

# China Standard Time has no daylight saving; a fixed offset avoids a tzdata dependency.
CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")
VALIDATION = "https://jingzhun.dev/problems/validation"
CONFLICT = "https://jingzhun.dev/problems/conflict"


def now_of(request: Request) -> datetime:
    """The app's clock (tests replace ``app.state.clock`` to step past notice periods)."""
    return getattr(request.app.state, "clock", china_now)()


class StrictBody(BaseModel):
    """Request bodies: unknown fields are a 422, like the household write endpoints."""

    model_config = ConfigDict(extra="forbid")


def invalid(loc: list, msg: str, title: str = "Invalid request", detail: str | None = None) -> Problem:
    return Problem(422, title, detail or msg, type_=VALIDATION, errors=[{"loc": loc, "msg": msg}])


def problem_from_validation(exc: ValidationError, title: str = "Invalid request",
                            prefix: tuple = ("body",)) -> Problem:
    errors = [{"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return Problem(422, title, "The request does not match the contract.", type_=VALIDATION, errors=errors)


def as_utc(value: datetime) -> datetime:
    """Aware datetimes are stored in UTC; a naive one is read as China time."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=CHINA_TZ)
    return value.astimezone(timezone.utc)


def json_ready(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def require_any_scope(*scopes: str):
    """Dependency: the caller must hold at least one of the scopes (``admin`` holds all)."""
    from fastapi import Depends

    from shared.auth import Principal, current_principal

    def _check(principal: Principal = Depends(current_principal)) -> Principal:
        if not any(principal.has(scope) for scope in scopes):
            raise Problem(403, "Insufficient scope", f"This call needs one of: {' '.join(scopes)}.",
                          type_="https://jingzhun.dev/problems/forbidden", required_scopes=list(scopes))
        return principal

    return _check
