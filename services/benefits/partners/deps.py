"""FastAPI dependencies for partner endpoints: scope, disabled clients, rate limit."""
from __future__ import annotations

import time

from fastapi import Depends, Request, Security
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2

from services.benefits.partners.access import client_of
from services.benefits.partners.ratelimit import TokenBuckets
from services.benefits.partners.service import ClientStatusCache
from shared.auth import Principal, current_principal, require_scopes
from shared.config import BenefitsSettings
from shared.problems import Problem


# Declares the client-credentials flow in the OpenAPI document, so a bank or an insurer can
# press "Authorize" in /docs, enter its client id and secret, and call its endpoints from there.
# The token still arrives as a bearer token and is verified by shared.auth like any other.
partner_oauth2 = OAuth2(flows=OAuthFlows(clientCredentials=OAuthFlowClientCredentials(
    tokenUrl="/oauth/token", scopes={"credit": "bank: microcredit eligibility, loans, interest claims",
                                     "settlement": "insurer: one-stop settlement, roster, records"})),
    scheme_name="PartnerClientCredentials", auto_error=False,
    description="Partners: client credentials from the administrator (`jingzhun partner create`).")


def _state(request: Request):
    state = request.app.state
    if not hasattr(state, "partner_buckets"):
        settings: BenefitsSettings = state.settings
        state.partner_buckets = TokenBuckets(settings.partner_rate_per_s, settings.partner_burst)
        state.partner_clients = ClientStatusCache(settings.partner_status_cache_s)
    return state


async def _admit(request: Request, principal: Principal) -> Principal:
    state = _state(request)
    if principal.client_id:
        client = await state.partner_clients.state(state.sessionmaker, principal.client_id)
        refused = client.refuses(principal.claims.get("iat"), time.time())
        if refused:
            title = "Client disabled" if client.status == "disabled" else "Token predates secret rotation"
            problem = Problem(401, title, refused, type_="https://jingzhun.dev/problems/unauthorized")
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
    async def _check(request: Request, principal: Principal = Depends(require_scopes(scope)),
                     _documented: str | None = Security(partner_oauth2, scopes=[scope])) -> Principal:
        return await _admit(request, principal)
    return _check


async def any_partner(request: Request, principal: Principal = Depends(current_principal),
                      _documented: str | None = Security(partner_oauth2)) -> Principal:
    return await _admit(request, principal)
