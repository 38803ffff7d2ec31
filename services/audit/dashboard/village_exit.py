"""The dashboard's village-exit section: the area's villages with benefits' ``assessment.village_exit``.

Over HTTP, not events: benefits computes the assessment on demand for the page's ``as_of`` from its own
village records and household snapshots; audit keeps no copy that could drift. One request per render
(``GET /v1/villages/assessments?area=&as_of=&limit=``), a 2 s timeout, and any failure becomes a section
saying "村退出评估暂不可用 / village exit assessments unavailable" with the reason, never an error page.

Token: the dashboard caller's own token when it carries ``benefits:read``; otherwise, outside production,
a short service token from the development issuer limited to the caller's area; in production there is
no audit service token, so the section says the caller's token lacks the scope.
"""
from __future__ import annotations

from typing import Any

import httpx
from fastapi import Request

from shared.auth import Principal, mint_token

SERVICE_SUBJECT = "service:audit"
PAGE = 200
UNAVAILABLE = "村退出评估暂不可用 / village exit assessments unavailable"


def caller_token(request: Request, cookie: str) -> str | None:
    """The token the dashboard request was authenticated with (bearer header, else the page cookie)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.cookies.get(cookie)


def benefits_token(request: Request, principal: Principal, token: str | None) -> str | None:
    if token and principal.has("benefits:read"):
        return token
    settings = request.app.state.settings
    if settings.profile == "production":
        return None
    area = None if principal.is_admin else principal.area
    return mint_token(settings, ["benefits:read"], subject=SERVICE_SUBJECT, area=area, ttl_s=300)


def _row(item: dict[str, Any]) -> dict[str, Any]:
    village = item.get("village") or {}
    assessments = [a for a in item.get("assessments") or [] if a.get("kind") == "village_exit"]
    base = {"code": item["village_code"], "name": village.get("name") or item["village_code"],
            "is_poor_village": village.get("is_poor_village"), "pack": (item.get("policy") or {}).get("pack")}
    if not assessments:
        reasons = [n.get("reason", "") for n in item.get("not_assessed") or []]
        return {**base, "status": "not_assessed", "unmet": [], "note": "; ".join(reasons)}
    assessment = assessments[0]
    failed = [check["condition"] for check in assessment.get("explanation") or [] if not check.get("passed")]
    return {**base, "status": "met" if assessment["result"] else "not_met", "unmet": failed, "note": None}


async def village_exit_section(request: Request, principal: Principal, caller: str | None, area: str | None,
                               as_of: str) -> dict[str, Any]:
    """``caller``: the dashboard request's token (see ``caller_token``)."""
    extras = request.app.state.audit
    unavailable = {"available": False, "rows": [], "more": False}
    token = benefits_token(request, principal, caller)
    if token is None:
        return {**unavailable, "reason": "令牌没有 benefits:read 权限，生产环境中 audit 无服务令牌 / the dashboard "
                                         "token lacks benefits:read and audit has no service token in production"}
    params = {"as_of": as_of, "limit": str(PAGE), **({"area": area} if area else {})}
    try:
        async with httpx.AsyncClient(base_url=extras.benefits_url, transport=extras.benefits_transport,
                                     timeout=extras.benefits_timeout_s) as client:
            response = await client.get("/v1/villages/assessments", params=params,
                                        headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            title = ""
            if response.headers.get("content-type", "").startswith(("application/problem+json", "application/json")):
                title = f": {response.json().get('title', '')}"
            return {**unavailable, "reason": f"benefits 应答 {response.status_code} / benefits answered "
                                             f"{response.status_code}{title}"}
        body = response.json()
        rows = [_row(item) for item in body["items"]]
    except httpx.HTTPError as exc:
        # Host and port only: the page links nowhere (its CSP and the browser test allow no outside URL).
        where = extras.benefits_url.split("://", 1)[-1].rstrip("/")
        return {**unavailable, "reason": f"无法连接 benefits / could not reach benefits at {where} "
                                         f"({type(exc).__name__})"}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return {**unavailable, "reason": f"benefits 应答无法解析 / unreadable answer from benefits ({type(exc).__name__})"}
    return {"available": True, "reason": None, "rows": rows, "more": body.get("next_cursor") is not None,
            "met": sum(1 for r in rows if r["status"] == "met"),
            "not_met": sum(1 for r in rows if r["status"] == "not_met")}
