"""Progress against exit targets, poverty incidence per village, and entitlement statistics."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit.projections import fen_to_yuan
from services.audit.supervision.common import in_area
from services.audit.tables import (audit_entitlement_decisions, audit_entitlements, audit_households,
                                   audit_villages)

POOR_STATUSES = ("registered", "returned")
EVER_REGISTERED = ("registered", "returned", "exited", "monitored")
#: Common village exit threshold (贫困发生率降至3%以下, western regions) when a pack gives none.
DEFAULT_VILLAGE_MAX_INCIDENCE = Decimal("0.03")
POPULATION_KEYS = ("population", "registered_population", "rural_population", "household_population",
                   "agricultural_population")


def _overlaps(region: str, area: str | None) -> bool:
    return not area or region.startswith(area) or area.startswith(region)


async def exits_by_year(session: AsyncSession, prefix: str) -> dict[int, dict[str, int]]:
    h = audit_households
    query = (select(h.c.exit_year, func.count(), func.coalesce(func.sum(h.c.population), 0))
             .where(h.c.exit_year.is_not(None), h.c.status != "removed").group_by(h.c.exit_year))
    if prefix:
        query = query.where(in_area(h, prefix))
    return {int(y): {"households": int(c), "people": int(p)} for y, c, p in (await session.execute(query)).all()}


async def progress(session: AsyncSession, area: str | None) -> dict[str, Any]:
    from shared.policy import default_registry
    registry = default_registry()
    areas = []
    for name in registry.names():
        spec = registry.spec(name)
        targets = spec.targets or {}
        if not targets or not _overlaps(spec.region, area):
            continue
        prefix = area if area and area.startswith(spec.region) else spec.region
        exits = await exits_by_year(session, prefix)
        years = sorted({int(y) for key in ("exit_people", "exit_villages") for y in (targets.get(key) or {})}
                       | set(exits))
        village_exits = await _village_exits(session, spec.region)
        rows = []
        cumulative_target = cumulative_actual = 0
        for year in years:
            target = (targets.get("exit_people") or {}).get(year)
            actual = exits.get(year, {"households": 0, "people": 0})
            cumulative_target += int(target or 0)
            cumulative_actual += actual["people"]
            rows.append({"year": year, "target_people": int(target) if target is not None else None,
                         "exited_people": actual["people"], "exited_households": actual["households"],
                         "achieved": (round(actual["people"] / int(target), 4) if target else None),
                         "cumulative_target": cumulative_target, "cumulative_exited": cumulative_actual,
                         "target_villages": (targets.get("exit_villages") or {}).get(year),
                         "exited_villages": village_exits.get(year, 0)})
        areas.append({"pack": name, "region": spec.region, "description": spec.description,
                      "actuals_area": prefix,
                      "target_scope_note": None if prefix == spec.region else
                      f"the pack's targets cover region {spec.region}; actuals are for area {prefix} only",
                      "source": targets.get("source"), "years": rows})
    return {"area": area, "areas": areas}


async def _village_exits(session: AsyncSession, prefix: str) -> dict[int, int]:
    out: dict[int, int] = {}
    rows = (await session.execute(select(audit_villages.c.data).where(
        audit_villages.c.code.startswith(prefix, autoescape=True)))).scalars()
    for data in rows:
        year = (data or {}).get("exit_year")
        if isinstance(year, int):
            out[year] = out.get(year, 0) + 1
    return out


def _village_population(data: dict) -> int | None:
    for key in POPULATION_KEYS:
        value = data.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _max_incidence(village_code: str) -> tuple[Decimal, str]:
    from shared.clock import today_in_china
    from shared.policy import resolve_pack
    try:
        policy = resolve_pack(village_code, today_in_china())
    except LookupError:
        try:
            policy = resolve_pack(village_code, dt.date(2020, 6, 30))
        except LookupError:
            return DEFAULT_VILLAGE_MAX_INCIDENCE, "default"
    value = policy.param("village_exit.max_incidence", None)
    return (Decimal(str(value)), policy.pack) if value is not None else (DEFAULT_VILLAGE_MAX_INCIDENCE, "default")


async def village_incidence(session: AsyncSession, area: str | None, *, cursor: str | None = None,
                            limit: int = 500) -> dict[str, Any]:
    h, v = audit_households, audit_villages
    poor = func.sum(case((h.c.status.in_(POOR_STATUSES), h.c.population), else_=0))
    ever = func.sum(case((h.c.status.in_(EVER_REGISTERED), h.c.population), else_=0))
    query = (select(h.c.village_code, func.max(h.c.village_name), func.max(h.c.township_code),
                    func.max(h.c.township_name), poor, ever,
                    func.sum(case((h.c.status.in_(POOR_STATUSES), 1), else_=0)))
             .where(h.c.village_code.is_not(None)).group_by(h.c.village_code).order_by(h.c.village_code)
             .limit(limit + 1))
    if area:
        query = query.where(h.c.village_code.startswith(area, autoescape=True))
    if cursor:
        query = query.where(h.c.village_code > cursor)
    rows = (await session.execute(query)).all()
    codes = [r[0] for r in rows[:limit]]
    villages = {r.code: r for r in (await session.execute(select(v).where(v.c.code.in_(codes)))).all()} if codes else {}
    items = []
    for code, name, township_code, township_name, poor_people, registered_people, poor_households in rows[:limit]:
        data = (villages[code].data if code in villages else None) or {}
        population = _village_population(data)
        incidence = (Decimal(int(poor_people or 0)) / population).quantize(Decimal("0.0001")) if population else None
        threshold, basis = _max_incidence(code)
        indicators = data.get("indicators") if isinstance(data.get("indicators"), dict) else {}
        items.append({
            "village_code": code, "village_name": name or data.get("name"), "township_code": township_code,
            "township_name": township_name, "is_poor_village": data.get("is_poor_village"),
            "is_deep_poverty_village": data.get("is_deep_poverty_village"), "exit_year": data.get("exit_year"),
            "poor_people": int(poor_people or 0), "poor_households": int(poor_households or 0),
            "registered_people": int(registered_people or 0), "population": population,
            "incidence": str(incidence) if incidence is not None else None,
            "exit_indicators": {
                "incidence_below": str(threshold), "incidence_basis": basis,
                "incidence_met": (incidence < threshold) if incidence is not None else None,
                "indicators": indicators,
                "all_met": (incidence is not None and incidence < threshold and all(bool(x) for x in indicators.values())),
            }})
    return {"area": area, "items": items, "next_cursor": rows[limit - 1][0] if len(rows) > limit else None}


def _period_expr(session: AsyncSession, column, period: str):
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    if dialect == "postgresql":
        return func.to_char(func.timezone("Asia/Shanghai", column), "YYYY" if period == "year" else "YYYY-MM")
    # SQLite stores UTC text; shift to China time before cutting the period
    return func.strftime("%Y" if period == "year" else "%Y-%m", column, "+8 hours")


def _area_expr(level: str):
    h = audit_households
    return {"county": h.c.region_code, "township": h.c.township_code, "village": h.c.village_code}.get(level, h.c.region_code)


async def entitlement_stats(session: AsyncSession, *, area: str | None, since: dt.datetime | None,
                            until: dt.datetime | None, area_level: str, period: str,
                            program: str | None = None) -> dict[str, Any]:
    h, e, d = audit_households, audit_entitlements, audit_entitlement_decisions
    area_col = _area_expr(area_level)
    current = (select(e.c.program, area_col.label("area"), e.c.unit, func.count(), func.coalesce(func.sum(e.c.amount_fen), 0),
                      func.count(func.distinct(e.c.household_id)))
               .join(h, h.c.household_id == e.c.household_id)
               .group_by(e.c.program, area_col, e.c.unit).order_by(e.c.program, area_col, e.c.unit))
    period_col = _period_expr(session, d.c.time, period)
    decisions = (select(d.c.program, area_col.label("area"), period_col.label("period"), d.c.change, func.count(),
                        func.coalesce(func.sum(d.c.amount_fen), 0))
                 .join(h, h.c.household_id == d.c.household_id)
                 .group_by(d.c.program, area_col, period_col, d.c.change)
                 .order_by(d.c.program, area_col, period_col, d.c.change))
    if area:
        current, decisions = current.where(in_area(h, area)), decisions.where(in_area(h, area))
    if program:
        current, decisions = current.where(e.c.program == program), decisions.where(d.c.program == program)
    if since:
        decisions = decisions.where(d.c.time >= since)
    if until:
        decisions = decisions.where(d.c.time < until)
    current_rows = [{"program": p, "area": a, "unit": u, "entitlements": int(n), "households": int(hh),
                     "amount": fen_to_yuan(int(s))}
                    for p, a, u, n, s, hh in (await session.execute(current)).all()]
    decision_rows: dict[tuple, dict] = {}
    for p, a, per, change, n, s in (await session.execute(decisions)).all():
        row = decision_rows.setdefault((p, a, per), {"program": p, "area": a, "period": per, "granted": 0,
                                                     "changed": 0, "revoked": 0, "amount_decided": "0.00"})
        row[change if change in ("granted", "changed", "revoked") else "changed"] += int(n)
        if change != "revoked":
            row["amount_decided"] = fen_to_yuan(int(Decimal(row["amount_decided"]) * 100) + int(s))
    return {"area": area, "area_level": area_level, "period": period,
            "since": since.isoformat() if since else None, "until": until.isoformat() if until else None,
            "current": current_rows, "decisions": list(decision_rows.values()),
            "note": "current = entitlements in force now (amount per unit); decisions = grants, changes and "
                    "revocations recorded in each period (amount_decided sums the amounts granted or changed to)"}
