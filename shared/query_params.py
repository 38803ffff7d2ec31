"""Unknown query parameters are a 422, not silently ignored (issue 12, item 6).

A client that sends ``?q=张三`` or misspells ``village_cod=`` to a list endpoint used to get the whole
unfiltered list back and no hint that its filter was dropped. ``strict_query_parameters`` wraps a
service's routers in one router whose dependency compares the request's query parameter names with
the parameters the matched route declares (its own, its dependencies', and the fields of a query
parameter model), so every GET route of a service is covered in one place, routes added later too.

Only GET and HEAD are checked: the list endpoints are GETs, and a write's query string is not where a
silently dropped filter would return the wrong data. A NUL character (``%00``) in the path or the query
string is a 422 for every method.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from shared.problems import Problem

VALIDATION = "https://jingzhun.dev/problems/validation"
CHECKED_METHODS = frozenset({"GET", "HEAD"})

# Where a route keeps its accepted names once worked out (its parameters are fixed once it is built).
_CACHE_ATTRIBUTE = "_jz_accepted_query_parameters"


def accepted_query_parameters(dependant: Dependant) -> frozenset[str]:
    """Every query parameter name a route declares (aliases, as clients send them)."""
    names: set[str] = set()
    pending, seen = [dependant], set()
    while pending:  # the route's own parameters and its dependencies', to any depth
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for field in current.query_params:
            annotation = field.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                # A query parameter model (FastAPI >= 0.115): its fields are the parameters.
                names.update(f.alias or name for name, f in annotation.model_fields.items())
            else:
                names.add(field.alias)
        pending.extend(current.dependencies)
    return frozenset(names)


def _accepted_for(route: APIRoute) -> frozenset[str]:
    accepted = getattr(route, _CACHE_ATTRIBUTE, None)
    if accepted is None:
        accepted = accepted_query_parameters(route.dependant)
        setattr(route, _CACHE_ATTRIBUTE, accepted)
    return accepted


def unknown_query_parameter_problem(unknown: list[str], accepted: frozenset[str]) -> Problem:
    listed = ", ".join(sorted(accepted)) or "none"
    return Problem(422, "Unknown query parameter",
                   f"Unknown query parameter(s): {', '.join(unknown)}. This endpoint accepts: {listed}.",
                   type_=VALIDATION, accepted=sorted(accepted),
                   errors=[{"loc": ["query", name], "msg": "unknown query parameter",
                            "type": "unknown_query_parameter"} for name in unknown])


def nul_character_problem(request: Request) -> Problem:
    where = [["query", name] for name, value in request.query_params.multi_items() if "\x00" in name + value]
    if "\x00" in request.scope.get("path", ""):
        where.append(["path"])
    return Problem(422, "Invalid request", "A NUL character (%00) is not allowed in the path or the query string.",
                   type_=VALIDATION, errors=[{"loc": loc, "msg": "NUL character", "type": "nul_character"}
                                             for loc in where or [["query"]]])


async def reject_unknown_query_parameters(request: Request) -> None:
    # A NUL reaches no database: PostgreSQL's text refuses it (a 500 before; found by fuzzing on PostgreSQL,
    # the audit filters), SQLite would store it. Every method, before anything else.
    if b"%00" in request.scope.get("query_string", b"") or "\x00" in request.scope.get("path", ""):
        raise nul_character_problem(request)
    if request.method not in CHECKED_METHODS or not request.query_params:
        return
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    accepted = _accepted_for(route)
    unknown = sorted(set(request.query_params.keys()) - accepted)
    if unknown:
        raise unknown_query_parameter_problem(unknown, accepted)


def strict_query_parameters(*routers: APIRouter) -> APIRouter:
    """One router holding ``routers``' routes, each checked by ``reject_unknown_query_parameters``."""
    outer = APIRouter(dependencies=[Depends(reject_unknown_query_parameters)])
    for router in routers:
        outer.include_router(router)
    return outer
