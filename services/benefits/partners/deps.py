"""FastAPI dependencies for partner endpoints: scope, disabled clients, rate limit."""
from __future__ import annotations

from fastapi import Depends, Request

from services.benefits.partners.access import client_of
from services.benefits.partners.ratelimit import TokenBuckets
from services.benefits.partners.service import ClientStatusCache
from shared.auth import Principal, current_principal, require_scopes
from shared.config import BenefitsSettings
from shared.problems import Problem


def _state(request: Request):
    state = request.app.state
    if not hasattr(state, "partner_buckets"):
        settings: BenefitsSettings = state.settings
        state.partner_buckets = TokenBuckets(settings.partner_rate_per_s, settings.partner_burst)
        state.partner_clients = ClientStatusCache(settings.partner_status_cache_s)
    return state


async def _admit(request: Request, principal: Principal) -> Principal:
    state = _state(request)
    if principal.client_id and await state.partner_clients.status(state.sessionmaker, principal.client_id) == "disabled":
        problem = Problem(401, "Client disabled", "This partner client has been disabled.",
                          type_="https://jingzhun.dev/problems/unauthorized")
        problem.headers = {"WWW-Authenticate": "Bearer"}
        raise problem
    if state.settings.partner_rate_limit_enabled:
        wait = state.partner_buckets.take(client_of(principal))
        if wait > 0:
            problem = Problem(429, "Too many requests",
                              f"Rate limit of {state.settings.partner_rate_per_s:g} requests/s "
                              f"(burst {state.settings.partner_burst}) exceeded; retry later.",
                              type_="https://jingzhun.dev/problems/rate-limited")
            problem.headers = {"Retry-After": TokenBuckets.retry_after_header(wait)}
            raise problem
    return principal


def partner_scope(scope: str):
    """The caller holds ``scope`` (admin holds all), is not disabled and is within its rate."""
    async def _check(request: Request, principal: Principal = Depends(require_scopes(scope))) -> Principal:
        return await _admit(request, principal)
    return _check


async def any_partner(request: Request, principal: Principal = Depends(current_principal)) -> Principal:
    return await _admit(request, principal)
