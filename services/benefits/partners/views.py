"""Partner identity endpoints: OAuth2 token, its signing keys (JWKS), client administration, whoami."""
from __future__ import annotations

import base64
import binascii
from typing import Annotated
from urllib.parse import unquote_plus

from fastapi import APIRouter, Depends, Form, Request
from pydantic import BaseModel, Field

from services.benefits.partners import service
from services.benefits.partners.throttle import FailureThrottle
from services.benefits.partners.deps import _state, any_partner
from shared.auth import Principal, require_scopes
from shared.bounds import UtcDatetime
from shared.db import transaction
from shared.problems import PROBLEM_MEDIA_TYPE, PROBLEM_RESPONSES, Problem

router = APIRouter(tags=["partners"], responses=PROBLEM_RESPONSES)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    scope: str


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    # RFC 6749 2.3.1: both parts are form-urlencoded before Basic encoding.
    return (unquote_plus(client_id), unquote_plus(secret)) if sep else None


@router.post("/oauth/token", response_model=TokenResponse, responses={429: {
    "description": "Too many failed attempts for this client id or from this address (see Retry-After)",
    "content": {PROBLEM_MEDIA_TYPE: {}}}},
             summary="OAuth2 client credentials: exchange a client id and secret for a bearer token",
             description="Form body `grant_type=client_credentials` with `client_id` and `client_secret`, "
                         "or the client id and secret in HTTP Basic. Optional `scope` narrows the token "
                         "to some of the client's scopes. Errors carry RFC 6749 `error` codes.")
async def token(request: Request, grant_type: Annotated[str, Form()],
                client_id: Annotated[str | None, Form()] = None,
                client_secret: Annotated[str | None, Form()] = None,
                scope: Annotated[str | None, Form()] = None) -> dict:
    if grant_type != "client_credentials":
        raise service._oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported.")
    basic = _basic_credentials(request)
    if basic is not None:
        client_id, client_secret = basic
    if not client_id or not client_secret:
        raise service._oauth_error(401, "invalid_client", "Send client_id and client_secret (form or Basic).")
    by_client, by_address = _throttles(request)
    keys = ((by_client, client_id), (by_address, await _caller_address(request)))
    wait = max(throttle.wait_s(key) for throttle, key in keys)
    if wait > 0:
        problem = Problem(429, "登录失败次数过多 / Too many failed attempts",
                          "Too many failed token requests for this client or from this address; retry later.",
                          type_="https://jingzhun.dev/problems/rate-limited")
        problem.headers = {"Retry-After": FailureThrottle.retry_after_header(wait)}
        raise problem
    for throttle, key in keys:
        throttle.begin(key)
    failed = True
    try:
        async with request.app.state.sessionmaker() as session:
            authenticated = await service.authenticate(session, client_id, client_secret)
        failed = False
    finally:
        for throttle, key in keys:
            throttle.end(key, failed=failed)
    return service.issue_token(request.app.state.partner_signer, request.app.state.settings, authenticated, scope)


def _throttles(request: Request) -> tuple[FailureThrottle, FailureThrottle]:
    state = request.app.state
    if not hasattr(state, "oauth_throttles"):
        settings = state.settings
        state.oauth_throttles = (FailureThrottle(settings.oauth_failures_per_client, settings.oauth_failure_window_s),
                                 FailureThrottle(settings.oauth_failures_per_address, settings.oauth_failure_window_s))
    return state.oauth_throttles


FORWARDED_ADDRESS = "x-jingzhun-client-address"
FORWARDER = "x-jingzhun-forwarder"


async def _caller_address(request: Request) -> str:
    """The address failed attempts are counted under: the connection's, or, for a token request the registry
    forwards for a DCI partner (``POST /oauth2/client/token``), the partner's own address, which the registry
    names in ``X-Jingzhun-Client-Address`` and vouches for with its service token (scope benefits:evaluate) in
    ``X-Jingzhun-Forwarder``. Otherwise every DCI partner would share the registry's address, and anyone's wrong
    secrets would lock all of them out. An address without a valid service token is ignored."""
    own = request.client.host if request.client else "unknown"
    forwarded, forwarder = request.headers.get(FORWARDED_ADDRESS), request.headers.get(FORWARDER, "")
    scheme, _, token = forwarder.partition(" ")
    if not forwarded or scheme.lower() != "bearer" or not token:
        return own
    try:
        principal = await request.app.state.token_verifier.averify(token.strip())
    except Problem:
        return own
    return f"{own}>{forwarded.strip()[:64]}" if principal.has("benefits:evaluate") else own


@router.get("/.well-known/jwks.json", summary="Public keys that sign partner tokens (JWKS, RFC 7517)",
            description="Other services, and partners who want to check a token, verify partner tokens "
                        "with these keys; `kid` in the token header names the key.")
async def jwks(request: Request) -> dict:
    return request.app.state.partner_signer.jwks()


AREA_DESCRIPTION = ("区划代码前缀（2–12 位，如 360703 南康区）：该客户端的令牌只看此辖区；不设为不限 · "
                    "administrative code prefix (2–12 digits, e.g. 360703 Nankang): the client's tokens see this "
                    "area only; none = no limit")


class ClientCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, examples=["Nankang Rural Commercial Bank"])
    scopes: list[str] = Field(min_length=1, examples=[["credit"]],
                              description="`credit` (bank), `settlement` (insurer) and/or `dci` (DCI Social "
                                          "Registry consumer)")
    area: str | None = Field(None, pattern=service.AREA_PATTERN, examples=["360703"], description=AREA_DESCRIPTION)


class ClientView(BaseModel):
    client_id: str
    name: str
    scopes: list[str]
    area: str | None = Field(None, description=AREA_DESCRIPTION)
    status: str
    created_at: UtcDatetime
    rotated_at: UtcDatetime | None = None
    disabled_at: UtcDatetime | None = None


class ClientWithSecret(ClientView):
    client_secret: str = Field(description="Shown once; only a hash is stored")
    previous_secret_valid_until: UtcDatetime | None = None


class Rotate(BaseModel):
    grace_seconds: int = Field(0, ge=0, le=7 * 24 * 3600,
                               description="How long the old secret keeps working (default: not at all)")


@router.post("/v1/partners/clients", status_code=201, response_model=ClientWithSecret,
             summary="Register a partner client (bank: scope credit; insurer: scope settlement; "
                     "DCI consumer: scope dci, with an area)")
async def create_client(request: Request, body: ClientCreate,
                        principal: Principal = Depends(require_scopes("admin"))) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        return await service.create_client(session, body.name, body.scopes, body.area)


@router.get("/v1/partners/clients", summary="List partner clients (no secrets)")
async def list_clients(request: Request, principal: Principal = Depends(require_scopes("admin"))) -> dict:
    async with request.app.state.sessionmaker() as session:
        return {"items": [ClientView(**c).model_dump(mode="json") for c in await service.list_clients(session)],
                "next_cursor": None}


@router.post("/v1/partners/clients/{client_id}:rotate", response_model=ClientWithSecret,
             summary="Issue a new secret; the old one stops working (after the grace period)")
async def rotate_client(request: Request, client_id: str, body: Rotate | None = None,
                        principal: Principal = Depends(require_scopes("admin"))) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        result = await service.rotate_client(session, client_id, (body or Rotate()).grace_seconds)
    _state(request).partner_clients.forget(client_id)  # the rotation time applies to its tokens at once
    return result


@router.post("/v1/partners/clients/{client_id}:disable", response_model=ClientView,
             summary="Disable a client: no new tokens, and its current tokens stop working")
async def disable_client(request: Request, client_id: str,
                         principal: Principal = Depends(require_scopes("admin"))) -> dict:
    async with transaction(request.app.state.sessionmaker) as session:
        result = await service.disable_client(session, client_id)
    _state(request).partner_clients.forget(client_id)
    return result


@router.get("/v1/partners/whoami", summary="The calling token's client id and scopes (cheap; not logged to audit)")
async def whoami(principal: Principal = Depends(any_partner)) -> dict:
    return {"client_id": principal.client_id, "subject": principal.subject, "scopes": sorted(principal.scopes)}
