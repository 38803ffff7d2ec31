"""``/dashboard``: the supervisor's pages, server-rendered (Jinja2 + inline SVG, no CDN).

Pages: ``/dashboard`` (overview), ``/dashboard/villages/{code}`` (a village's households),
``/dashboard/households/{id}`` (decision history, entitlements in force, anomalies, a link to the
registry's case file), ``/dashboard/anomalies``, ``/dashboard/monitoring`` (the overview's monitoring section
on its own); every table downloads as
``/dashboard/export/{table}.csv`` or ``.xlsx`` with the page's filters. What the pages compute is in
``service.py``; this module only reads the request and renders.

Auth: a bearer token, or ``?token=<jwt>`` once (the page then sets an HttpOnly cookie and
redirects to the same URL without the token), or that cookie. The token needs ``audit:read``;
an area claim limits every page to the area (a village or household outside it is a 404).

Headers: a Content-Security-Policy that allows nothing but this page's own stylesheet (by a
per-response nonce) and inline SVG; no scripts or frames; forms only to the page itself (the filters).
"""
from __future__ import annotations

import re

import secrets
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.audit.dashboard import service
from services.audit.dashboard.charts import grouped_bars, hbar_chart
from services.audit.dashboard.coverage import national_only_regions
from services.audit.dashboard.export import XLSX_MEDIA_TYPE, table_csv, table_xlsx
from services.audit.dashboard.service import Filters
from services.audit.dashboard.village_exit import caller_token, village_exit_section
from services.audit.supervision.anomalies import RULES
from services.audit.supervision.common import default_as_of, effective_area
from shared.auth import Principal
from shared.bounds import QueryDate
from shared.clock import china_now, evaluation_date_setting
from shared.policy.program_names import program_name
from shared.policy.programs import KNOWN_PROGRAMS
from shared.problems import Problem

router = APIRouter(tags=["dashboard"])
COOKIE = "jz_dashboard_token"
templates = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                        autoescape=select_autoescape(["html"]))
_bearer = HTTPBearer(auto_error=False)
EXPORTABLE = ("progress", "villages", "benefits", "credit", "anomalies", "households", "entitlements", "decisions",
              "monitoring", "monitoring_steps", "monitoring_overdue")


def content_security_policy(nonce: str) -> str:
    return (f"default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")


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


_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,4096}\.[A-Za-z0-9_-]{1,8192}\.[A-Za-z0-9_-]{0,4096}")


def token_redirect(request: Request) -> RedirectResponse | None:
    """Keep the token out of the address bar and history: cookie, then the same URL without it."""
    if "token" not in request.query_params:
        return None
    token = request.query_params["token"]
    if not _JWT_SHAPE.fullmatch(token):  # a cookie carries latin-1 only; a JWT is base64url segments anyway
        raise Problem(401, "Invalid token", "The token is malformed.", type_="https://jingzhun.dev/problems/unauthorized")
    rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    response = RedirectResponse(f"{request.url.path}{'?' + urlencode(rest) if rest else ''}", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                        secure=cookie_secure(request), path="/dashboard")
    return response


class PageQuery:
    """The filters every dashboard page and export takes, declared so unknown parameters stay detectable."""

    def __init__(self, area: str | None = Query(None, description="administrative code prefix"),
                 as_of: QueryDate | None = Query(None, description="evaluation date (YYYY-MM-DD)"),
                 status: str | None = Query(None, description="household status"),
                 program: str | None = Query(None, description="programme code, e.g. safety_net.dibao"),
                 village: str | None = Query(None, description="village code"),
                 rule: str | None = Query(None, description="anomaly rule code"),
                 token: str | None = Query(None, description="a JWT, once: moved into a cookie")):
        self.area, self.as_of, self.status, self.program = area, as_of, status, program
        self.village, self.rule, self.token = village or None, rule or None, token
        self.status, self.program = status or None, program or None

    def filters(self, request: Request, principal: Principal) -> Filters:
        f = Filters(area=effective_area(principal, self.area or None),
                    as_of=self.as_of or default_as_of(request.app.state.settings), status=self.status,
                    program=self.program, village=self.village, rule=self.rule)
        service.check_filters(f)
        return f


def page_context(request: Request, f: Filters, q: PageQuery) -> dict:
    settings = request.app.state.settings
    now = china_now()
    fixed_by = evaluation_date_setting(settings) if q.as_of is None and settings.evaluation_date else None
    query = {k: v for k, v in {"area": q.area, "as_of": q.as_of.isoformat() if q.as_of else None, "status": f.status,
                                "program": f.program, "village": f.village, "rule": f.rule}.items() if v}

    def link(path: str, **changes) -> str:
        merged = {**query, **changes}
        merged = {k: v for k, v in merged.items() if v}
        return path + ("?" + urlencode(merged) if merged else "")

    return {"area": f.area, "as_of": f.as_of.isoformat(), "page_date": now.date().isoformat(),
            "generated_at": now.isoformat(timespec="seconds"), "evaluation_date_setting": fixed_by,
            "filters": f, "query": query, "link": link, "statuses": service.STATUS_LABELS,
            "programs": sorted((program_name(c), c) for c in KNOWN_PROGRAMS if not c.startswith("assessment.")),
            "rules": [(code, r.title) for code, r in RULES.items()], "program_name": program_name,
            "money": service.money, "nonce": secrets.token_urlsafe(16)}


def render(template: str, context: dict) -> HTMLResponse:
    html = templates.get_template(template).render(**context)
    return HTMLResponse(html, headers={"Content-Security-Policy": content_security_policy(context["nonce"]),
                                       "X-Frame-Options": "DENY"})


def _extras(request: Request) -> dict:
    extras = request.app.state.audit
    return {"no_visit_days": request.app.state.settings.no_visit_days, "lookup_grace_days": extras.lookup_grace_days,
            "monitoring_lead_days": extras.monitoring_lead_days,
            "monitoring_measure_grace_days": extras.monitoring_measure_grace_days}


def _monitoring_days(request: Request) -> dict:
    extras = request.app.state.audit
    return {"lead_days": extras.monitoring_lead_days, "grace_days": extras.monitoring_measure_grace_days}


@router.get("/dashboard", response_class=HTMLResponse, summary="Supervision dashboard (HTML)")
async def dashboard(request: Request, q: PageQuery = Depends(), principal: Principal = Depends(dashboard_principal)):
    if (redirect := token_redirect(request)) is not None:
        return redirect
    f = q.filters(request, principal)
    ctx = page_context(request, f, q)
    async with request.app.state.sessionmaker() as session:
        ledger = await service.ledger_summary(session)
        blocks, _ = await service.progress_blocks(session, f)
        villages = await service.village_table(session, f)
        groups, _ = await service.benefit_tables(session, f)
        credit, credit_rows = await service.credit_table(session, f)
        counts, anomalies = await service.anomaly_table(session, f, **_extras(request))
        coverage_banner = await national_only_regions(session, f.scope, f.as_of)
        monitoring, monitoring_categories, monitoring_steps, monitoring_overdue = await service.monitoring_tables(
            session, f, **_monitoring_days(request))
    for block in blocks:
        years = block["years"]
        series = [("已脱贫人数", "exited people", [y["exited_people"] for y in years])]
        if block["own_level"]:
            series.insert(0, ("目标人数", "target people", [y["target_people"] for y in years]))
        block["chart"] = grouped_bars([str(y["year"]) for y in years], series,
                                      en=f"Exits against targets, {block['pack']}")
    ranked = sorted(villages.rows, key=lambda v: (-(v["incidence_ratio"] or -1), -v["poor_people"]))[:30]
    incidence_chart = hbar_chart(
        [(v["village_name"], float(v["incidence_ratio"] * 100), f"{v['village_code']}: {v['incidence']}, "
          f"{v['poor_people']} / {v['population']}") for v in ranked if v["incidence_ratio"] is not None],
        unit="%", en="Poverty incidence by village (poor people / village population)")
    for group in groups:
        group["chart"] = hbar_chart([(r["program_name"], float(r["amount_value"]), f"{r['program']}: "
                                      f"{r['entitlements']} entitlements, {r['households']} households")
                                     for r in group["rows"][:20]], unit=" " + group["suffix"], colour="#7fb800",
                                    en=f"Entitlement amounts by programme, {group['en']} (yuan)")
    anomaly_chart = hbar_chart([(RULES[code].title, n, RULES[code].title_en) for code, n in counts.items()],
                               colour="#c0392b", en="Open anomalies by rule")
    village_exit = await village_exit_section(request, principal, caller_token(request, COOKIE), f.scope,
                                              f.as_of.isoformat())
    village_exit = not_applicable_villages(village_exit, villages.rows)
    return render("dashboard.html", {
        **ctx, "ledger": ledger, "progress": blocks, "villages": villages, "incidence_chart": incidence_chart,
        "benefit_groups": groups, "credit": credit, "credit_table": credit_rows, "anomalies": anomalies,
        "anomaly_total": len(anomalies.rows), "anomaly_chart": anomaly_chart, "village_exit": village_exit,
        "coverage_banner": coverage_banner, "monitoring": monitoring, "monitoring_categories": monitoring_categories,
        "monitoring_steps": monitoring_steps, "monitoring_overdue": monitoring_overdue,
        "monitoring_statuses": service.MONITORING_STATUS_LABELS})


def not_applicable_villages(section: dict, villages: list[dict]) -> dict:
    """Benefits judges the exit standard; a village audit knows to have no poor people is not "未达标"
    (the standard is about lifting poor people out) but "无贫困人口 / not applicable"."""
    if not section.get("available"):
        return section
    known = {v["village_code"]: v for v in villages}
    rows = []
    for row in section["rows"]:
        village = known.get(row["code"])
        if row["status"] != "met" and village is not None and village["poor_people"] == 0 \
                and village["registered_people"] == 0:
            row = {**row, "status": "not_applicable", "unmet": [],
                   "note": "无贫困人口，不适用贫困村退出标准 / no poor people: the exit standard does not apply"}
        rows.append(row)
    return {**section, "rows": rows, "met": sum(r["status"] == "met" for r in rows),
            "not_met": sum(r["status"] == "not_met" for r in rows),
            "not_applicable": sum(r["status"] == "not_applicable" for r in rows)}


@router.get("/dashboard/villages/{code}", response_class=HTMLResponse, include_in_schema=False)
async def village_page(request: Request, code: str, q: PageQuery = Depends(),
                       principal: Principal = Depends(dashboard_principal)):
    if (redirect := token_redirect(request)) is not None:
        return redirect
    f = q.filters(request, principal)
    if not code.isdigit() or (f.area and not code.startswith(f.area)):
        raise service.not_found("village", code)
    vf = Filters(area=f.area, as_of=f.as_of, status=f.status, program=f.program, village=code, rule=f.rule)
    async with request.app.state.sessionmaker() as session:
        if not await service.village_known(session, code):
            raise service.not_found("village", code)
        villages = await service.village_table(session, vf, codes=[code])
        households = await service.household_table(session, vf)
        groups, _ = await service.benefit_tables(session, vf)
        credit, _ = await service.credit_table(session, vf)
    village = villages.rows[0] if villages.rows else {"village_code": code, "village_name": code}
    return render("village.html", {**page_context(request, vf, q), "village": village, "villages": villages,
                                   "households": households, "benefit_groups": groups, "credit": credit})


@router.get("/dashboard/households/{household_id}", response_class=HTMLResponse, include_in_schema=False)
async def household_page(request: Request, household_id: str, q: PageQuery = Depends(),
                         principal: Principal = Depends(dashboard_principal)):
    if (redirect := token_redirect(request)) is not None:
        return redirect
    f = q.filters(request, principal)
    async with request.app.state.sessionmaker() as session:
        row = await service.household_row(session, household_id, f.area)
        entitlements = await service.entitlement_table(session, household_id)
        decisions = await service.decision_table(session, household_id, request.app.state.settings.hash_algorithm)
        hf = Filters(area=f.area, as_of=f.as_of, village=row.village_code if row.village_code and (
            not f.area or row.village_code.startswith(f.area)) else None)
        _, anomalies = await service.anomaly_table(session, hf, household_id=household_id, **_extras(request))
    case_file = f"{request.app.state.audit.registry_public_url}/v1/households/{quote(household_id, safe='')}/file"
    household = {"id": row.household_id, "head_name": row.head_name or "", "head_id": service.masked(row.head_masked_id),
                 "status": service.STATUS_LABELS.get(row.status, row.status), "population": row.population,
                 "village_code": row.village_code, "village_name": row.village_name or row.village_code or "",
                 "township_name": row.township_name or "", "identified_year": row.identified_year,
                 "exit_date": row.exit_date, "exit_readiness": row.exit_readiness, "version": row.version,
                 "case_file": case_file}
    return render("household.html", {**page_context(request, f, q), "household": household,
                                     "entitlements": entitlements, "decisions": decisions, "anomalies": anomalies})


@router.get("/dashboard/anomalies", response_class=HTMLResponse, include_in_schema=False)
async def anomalies_page(request: Request, q: PageQuery = Depends(),
                         principal: Principal = Depends(dashboard_principal)):
    if (redirect := token_redirect(request)) is not None:
        return redirect
    f = q.filters(request, principal)
    async with request.app.state.sessionmaker() as session:
        counts, anomalies = await service.anomaly_table(session, f, **_extras(request))
    return render("anomalies.html", {**page_context(request, f, q), "anomalies": anomalies,
                                     "counts": [(code, RULES[code].title, n) for code, n in counts.items()]})


@router.get("/dashboard/monitoring", response_class=HTMLResponse, include_in_schema=False)
async def monitoring_page(request: Request, q: PageQuery = Depends(),
                          principal: Principal = Depends(dashboard_principal)):
    if (redirect := token_redirect(request)) is not None:
        return redirect
    f = q.filters(request, principal)
    async with request.app.state.sessionmaker() as session:
        monitoring, categories, steps, overdue = await service.monitoring_tables(session, f, **_monitoring_days(request))
    return render("monitoring.html", {**page_context(request, f, q), "monitoring": monitoring,
                                      "monitoring_categories": categories, "monitoring_steps": steps,
                                      "monitoring_overdue": overdue,
                                      "monitoring_statuses": service.MONITORING_STATUS_LABELS})


@router.get("/dashboard/export/{filename}", include_in_schema=False)
async def export(request: Request, filename: str, q: PageQuery = Depends(),
                 household: str | None = Query(None, description="household id (entitlements, decisions)"),
                 principal: Principal = Depends(dashboard_principal)):
    if (redirect := token_redirect(request)) is not None:
        return redirect
    name, _, ext = filename.rpartition(".")
    if name not in EXPORTABLE or ext not in ("csv", "xlsx"):
        raise Problem(404, "Not found", f"Tables: {', '.join(EXPORTABLE)}; formats: csv, xlsx "
                      "(e.g. /dashboard/export/villages.csv).", type_="https://jingzhun.dev/problems/not-found")
    f = q.filters(request, principal)
    async with request.app.state.sessionmaker() as session:
        table = await export_table(request, session, name, f, household)
    stem = "-".join(["jingzhun", name, *(v for v in (f.area, f.village, household, f.as_of.isoformat()) if v)])
    from services.audit.supervision.views import attachment
    if ext == "csv":
        return Response(table_csv(table), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": attachment(f"{stem}.csv")})
    return Response(table_xlsx(table, f), media_type=XLSX_MEDIA_TYPE,
                    headers={"Content-Disposition": attachment(f"{stem}.xlsx")})


async def export_table(request: Request, session, name: str, f: Filters, household: str | None) -> service.Table:
    if name in ("entitlements", "decisions"):
        if not household:
            raise Problem(422, "Missing household", f"The {name} table belongs to one household: ?household=<id>.",
                          type_="https://jingzhun.dev/problems/validation",
                          errors=[{"loc": ["query", "household"], "msg": "required for this table"}])
        await service.household_row(session, household, f.area)
        if name == "entitlements":
            return await service.entitlement_table(session, household)
        return await service.decision_table(session, household, request.app.state.settings.hash_algorithm)
    if name == "progress":
        return (await service.progress_blocks(session, f))[1]
    if name == "villages":
        return await service.village_table(session, f)
    if name == "benefits":
        return (await service.benefit_tables(session, f))[1]
    if name == "credit":
        return (await service.credit_table(session, f))[1]
    if name == "anomalies":
        return (await service.anomaly_table(session, f, **_extras(request)))[1]
    if name.startswith("monitoring"):
        tables = (await service.monitoring_tables(session, f, **_monitoring_days(request)))[1:]
        return next(t for t in tables if t.name == name)
    return await service.household_table(session, f)

