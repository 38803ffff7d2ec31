"""``/dashboard``: the supervisor's page, server-rendered (Jinja2 + inline SVG, no CDN).

Auth: a bearer token, or ``?token=<jwt>`` once (the page then sets an HttpOnly cookie and
redirects to the same URL without the token), or that cookie. The token needs ``audit:read``;
an area claim limits the page to the area.

Headers: a Content-Security-Policy that allows nothing but this page's own stylesheet (by a
per-response nonce) and inline SVG; no scripts, frames, forms or outside requests at all.
"""
from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import func, select

from services.audit.dashboard.charts import grouped_bars, hbar_chart
from services.audit.dashboard.coverage import national_only_regions
from services.audit.dashboard.village_exit import caller_token, village_exit_section
from services.audit.ledger.service import latest_checkpoint
from services.audit.supervision.anomalies import RULES, Context, find_anomalies
from services.audit.supervision.common import default_as_of, effective_area
from services.audit.supervision.progress import entitlement_stats, progress, village_incidence
from services.audit.tables import ledger_records
from shared.auth import Principal
from shared.bounds import QueryDate
from shared.clock import evaluation_date_setting
from shared.problems import Problem

router = APIRouter(tags=["dashboard"])
COOKIE = "jz_dashboard_token"
templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(["html"]))
_bearer = HTTPBearer(auto_error=False)


def content_security_policy(nonce: str) -> str:
    return (f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'none'")


def cookie_secure(request: Request) -> bool:
    """Secure cookie unless configured otherwise; only the embedded profile (plain-HTTP loopback) defaults off."""
    configured = request.app.state.audit.cookie_secure
    return configured if configured is not None else request.app.state.settings.profile != "embedded"


async def dashboard_principal(request: Request,
                              credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
    token = (credentials.credentials if credentials else None) or request.query_params.get("token") \
        or request.cookies.get(COOKIE)
    if not token:
        problem = Problem(401, "Missing token", "Open /dashboard?token=<jwt> (scope audit:read) or send a bearer token.",
                          type_="https://jingzhun.dev/problems/unauthorized")
        problem.headers = {"WWW-Authenticate": "Bearer"}
        raise problem
    principal = await request.app.state.token_verifier.averify(token)
    if not principal.has("audit:read"):
        raise Problem(403, "Insufficient scope", "The dashboard needs scope audit:read.",
                      type_="https://jingzhun.dev/problems/forbidden", required_scopes=["audit:read"])
    return principal


@router.get("/dashboard", response_class=HTMLResponse, summary="Supervision dashboard (HTML)")
async def dashboard(request: Request, area: str | None = None, as_of: QueryDate | None = None,
                    principal: Principal = Depends(dashboard_principal)):
    if "token" in request.query_params:
        # Keep the token out of the address bar and history: cookie, then the same URL without it.
        rest = {k: v for k, v in request.query_params.items() if k != "token"}
        response = RedirectResponse(f"/dashboard{'?' + urlencode(rest) if rest else ''}", status_code=303)
        response.set_cookie(COOKIE, request.query_params["token"], httponly=True, samesite="strict",
                            secure=cookie_secure(request), path="/dashboard")
        return response
    area = effective_area(principal, area)
    # Say who fixed the date when the page judges on the configured one (the demo's 2020-06-30).
    fixed_by = evaluation_date_setting(request.app.state.settings) \
        if as_of is None and request.app.state.settings.evaluation_date else None
    as_of = as_of or default_as_of(request.app.state.settings)
    settings, extras = request.app.state.settings, request.app.state.audit
    async with request.app.state.sessionmaker() as session:
        found = await find_anomalies(session, Context(area=area, as_of=as_of, no_visit_days=settings.no_visit_days,
                                                      lookup_grace_days=extras.lookup_grace_days, limit=200))
        prog = await progress(session, area)
        villages = (await village_incidence(session, area, limit=500))["items"]
        stats = await entitlement_stats(session, area=area, since=None, until=None, area_level="county",
                                        period="year")
        records = await session.scalar(select(func.count()).select_from(ledger_records))
        checkpoint = await latest_checkpoint(session)
        coverage_banner = await national_only_regions(session, area, as_of)
    blocks = []
    for block in prog["areas"]:
        years = block["years"]
        chart = grouped_bars([str(y["year"]) for y in years],
                             [("目标人数", "target people", [y["target_people"] for y in years]),
                              ("已脱贫人数", "exited people", [y["exited_people"] for y in years])],
                             en=f"Exits against targets, {block['pack']}")
        blocks.append({**block, "chart": chart, "note": block.get("target_scope_note")})
    ranked = sorted(villages, key=lambda v: (-(float(v["incidence"]) if v["incidence"] else -1), -v["poor_people"]))[:30]
    with_incidence = [v for v in ranked if v["incidence"]]
    if with_incidence:
        incidence_chart = hbar_chart(
            [(v["village_name"] or v["village_code"], float(v["incidence"]) * 100,
              f"{v['village_code']}: incidence {v['incidence']}, poor people {v['poor_people']}")
             for v in with_incidence], unit="%",
            en="Poverty incidence by village (percent of the village population)")
    else:
        incidence_chart = hbar_chart(
            [(v["village_name"] or v["village_code"], float(v["poor_people"]),
              f"{v['village_code']}: poor people {v['poor_people']} (village population unknown)") for v in ranked],
            unit=" 人", en="Poor people by village (no village population reported yet)")
    programmes: dict[tuple, dict] = {}
    for row in stats["current"]:
        p = programmes.setdefault((row["program"], row["unit"]), {"program": row["program"], "unit": row["unit"],
                                                                   "entitlements": 0, "households": 0, "amount_fen": 0})
        p["entitlements"] += row["entitlements"]
        p["households"] += row["households"]
        p["amount_fen"] += int(round(float(row["amount"]) * 100))
    programme_rows = sorted(programmes.values(), key=lambda p: -p["amount_fen"])
    for p in programme_rows:
        p["amount"] = f"{p['amount_fen'] / 100:,.2f}"
    entitlement_chart = hbar_chart([(p["program"], p["amount_fen"] / 100, f"{p['program']} ({p['unit']}): "
                                     f"{p['entitlements']} entitlements") for p in programme_rows[:25]],
                                   unit=" 元", colour="#7fb800", en="Entitlement amounts by programme (yuan)")
    anomaly_chart = hbar_chart([(RULES[code].title, n, RULES[code].title_en) for code, n in found["counts"].items()],
                               colour="#c0392b", en="Open anomalies by rule")
    village_exit = await village_exit_section(request, principal, caller_token(request, COOKIE), area,
                                              as_of.isoformat())
    nonce = secrets.token_urlsafe(16)
    html = templates.get_template("dashboard.html").render(
        nonce=nonce, area=area, as_of=as_of.isoformat(), generated_at=datetime.now().isoformat(timespec="seconds"),
        ledger={"records": records, "checkpoint": checkpoint}, progress=blocks, villages=ranked,
        incidence_chart=incidence_chart, programmes=programme_rows, entitlement_chart=entitlement_chart,
        anomalies={"total": len(found["items"]), "rows": found["items"][:50]}, anomaly_chart=anomaly_chart,
        village_exit=village_exit, coverage_banner=coverage_banner, evaluation_date_setting=fixed_by)
    return HTMLResponse(html, headers={"Content-Security-Policy": content_security_policy(nonce),
                                       "X-Frame-Options": "DENY"})
