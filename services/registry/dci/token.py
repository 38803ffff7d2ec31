"""``POST /oauth2/client/token``: the DCI token API (client credentials) over the partner client registry.

Partner clients live in benefits (``POST /v1/partners/clients``, ``jingzhun partner create --scope dci
--area 360703``); the registry holds no client and no secret. This route reads the request as the DCI
specification writes it (``OAuth2ClientTokenRequest`` as JSON), or as RFC 6749 does (a form), the client
id and secret in the body or in HTTP Basic, passes it to benefits' ``POST /oauth/token`` and answers the
spec's ``OAuth2ClientTokenResponse`` (``expires_in`` a string of seconds). The token is a partner token:
every service verifies it through benefits' JWKS, its ``area`` claim limits what the partner sees.

Benefits' RFC 6749 errors (400 and 401 with ``error``, 429 with Retry-After) come back as benefits gave
them; a request that is not one (not an object, a missing field) is a 400 ``invalid_request`` in the same
form; benefits unreachable is a 503 problem. The secret is never logged nor put into an answer.
"""
from __future__ import annotations

import json

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from services.registry.benefits_client import UNAVAILABLE
from shared.problems import PROBLEM_MEDIA_TYPE, PROBLEM_RESPONSES, Problem

router = APIRouter(responses=PROBLEM_RESPONSES)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 5.1, on errors as well
FORM = "application/x-www-form-urlencoded"
FIELDS = ("grant_type", "client_id", "client_secret", "scope")
PASSED_ON = (400, 401, 429)  # benefits' own refusals: RFC 6749 errors, and its throttle
PASSED_HEADERS = ("retry-after", "www-authenticate")


class OAuth2ClientTokenRequest(BaseModel):
    """The DCI authz ``OAuth2ClientTokenRequest`` (the body's schema in the OpenAPI document)."""
    grant_type: str = Field(description="授权方式，固定为 client_credentials · grant type, always client_credentials",
                            examples=["client_credentials"])
    client_id: str = Field(description="合作机构客户端编号（由管理员登记，权限 dci）；用 HTTP Basic 时可不传 · "
                                       "partner client id (registered by the administrator, scope dci); "
                                       "not needed with HTTP Basic")
    client_secret: str = Field(description="客户端密钥；用 HTTP Basic 时可不传 · client secret; not needed with "
                                           "HTTP Basic")
    scope: str | None = Field(None, description="申请的权限（空格分隔），须为该客户端所持有；不传为全部 · scopes "
                                                "asked for (space-separated), among the client's; omitted = all")


class OAuth2ClientTokenResponse(BaseModel):
    access_token: str = Field(description="访问令牌（JWT，带 area 声明时只看该辖区）· access token (JWT; with an "
                                          "area claim it sees that area only)")
    token_type: str = Field("bearer", description="令牌类型（bearer）· token type (bearer)")
    expires_in: str = Field(description="有效期（秒，按 DCI 规范为字符串）· lifetime in seconds (a string, as the "
                                        "DCI specification has it)", examples=["3600"])
    scope: str = Field(description="令牌所含权限（空格分隔）· the token's scopes (space-separated)")


# The DCI specification requires client_id and client_secret in the body; like RFC 6749 (2.3.1) this route
# also takes them from HTTP Basic, so the documented schema requires grant_type only.
_REQUEST_SCHEMA = {**OAuth2ClientTokenRequest.model_json_schema(), "required": ["grant_type"]}
REQUEST_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": _REQUEST_SCHEMA}, FORM: {"schema": _REQUEST_SCHEMA}}}}


def _oauth_error(status: int, error: str, description: str) -> Problem:
    """An RFC 6749 error answer (``error``, ``error_description``) as benefits gives one: a problem+json."""
    return Problem(status, error.replace("_", " ").capitalize(), description,
                   type_=f"https://jingzhun.dev/problems/oauth/{error}", error=error, error_description=description)


def _field(value, name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise _oauth_error(400, "invalid_request", f"{name} must be a string.")


async def _parameters(request: Request) -> dict[str, str]:
    """The request's parameters: a JSON object (DCI) or a form (RFC 6749); unknown ones are ignored."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == FORM:
        form = await request.form()
        repeated = [name for name in FIELDS if len(form.getlist(name)) > 1]
        if repeated:
            raise _oauth_error(400, "invalid_request", f"Send each parameter once: {', '.join(repeated)}.")
        body = {name: form.get(name) for name in FIELDS}
    elif media == "application/json" or media.endswith("+json"):
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise _oauth_error(400, "invalid_request", "The body is not JSON.") from None
        if not isinstance(body, dict):
            raise _oauth_error(400, "invalid_request",
                               "The JSON body must be an object (OAuth2ClientTokenRequest).")
    elif not await request.body():
        body = {}
    else:
        raise _oauth_error(400, "invalid_request",
                           "Send the request as application/json or application/x-www-form-urlencoded.")
    return {name: value for name in FIELDS if (value := _field(body.get(name), name)) is not None}


def _basic(request: Request) -> str | None:
    """The caller's HTTP Basic credentials, passed to benefits as they came (benefits reads them)."""
    authorization = request.headers.get("authorization", "")
    return authorization if authorization[:6].lower() == "basic " else None


@router.post("/oauth2/client/token", tags=["DCI Social Registry API v1.0.0"], response_model=OAuth2ClientTokenResponse,
             openapi_extra=REQUEST_BODY, responses={
                 400: {"description": "RFC 6749 error: invalid_request, invalid_scope, unsupported_grant_type",
                       "content": {PROBLEM_MEDIA_TYPE: {}}},
                 429: {"description": "Too many failed attempts for this client (see Retry-After)",
                       "content": {PROBLEM_MEDIA_TYPE: {}}},
                 503: {"description": "Benefits, which holds the partner clients, cannot be reached",
                       "content": {PROBLEM_MEDIA_TYPE: {}}}},
             summary="DCI token API: exchange a partner client's id and secret for a bearer token (scope dci)",
             description="JSON `{grant_type, client_id, client_secret, scope}` as the DCI specification writes "
                         "it, or the RFC 6749 form; the client id and secret may come in HTTP Basic instead. "
                         "Clients are benefits' partner clients. Errors carry RFC 6749 `error` codes.")
async def token(request: Request) -> Response:
    try:
        return await _token(request)
    except Problem as problem:  # every answer of a token endpoint, refusals too, is kept by no cache
        problem.headers = {**(getattr(problem, "headers", None) or {}), **NO_STORE}
        raise


async def _token(request: Request) -> Response:
    parameters = await _parameters(request)
    basic = _basic(request)
    required = ("grant_type",) if basic else ("grant_type", "client_id", "client_secret")
    missing = [name for name in required if name not in parameters]
    if missing:
        raise _oauth_error(400, "invalid_request", f"Missing: {', '.join(missing)} (client_id and client_secret "
                                                   "may come in HTTP Basic instead).")
    answer = await request.app.state.benefits.partner_token(
        parameters, basic, caller_address=request.client.host if request.client else None)
    if answer.status_code in PASSED_ON:
        headers = {name: answer.headers[name] for name in PASSED_HEADERS if name in answer.headers}
        return Response(answer.content, status_code=answer.status_code, headers={**headers, **NO_STORE},
                        media_type=answer.headers.get("content-type", PROBLEM_MEDIA_TYPE))
    return JSONResponse(_dci_answer(answer), headers=NO_STORE)


def _dci_answer(answer: httpx.Response) -> dict:
    """Benefits' token answer as the DCI ``OAuth2ClientTokenResponse``."""
    if answer.status_code != 200:
        raise Problem(503 if answer.status_code >= 500 else 502, "Benefits token request failed",
                      f"benefits answered {answer.status_code} to the token request; retry later.",
                      type_=UNAVAILABLE, upstream_status=answer.status_code)
    try:
        body = answer.json()
        return OAuth2ClientTokenResponse(access_token=body["access_token"], expires_in=str(int(body["expires_in"])),
                                         scope=body.get("scope") or "").model_dump()
    except (ValueError, KeyError, TypeError) as exc:
        raise Problem(502, "Benefits token request failed", "benefits' token answer has no access_token or "
                      "expires_in.", type_=UNAVAILABLE, upstream_status=200) from exc
