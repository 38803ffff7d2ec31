"""The monitoring report (``GET /v1/supervision/monitoring``) and the facts the four monitoring anomaly
rules judge on, over the monitoring projections.

Everything is judged as of a China calendar date (``as_of``): an object's status and last completed step
on that day are read from the dated steps it carries (its current status when every step it has is on or
before that day), a lead is open on that day if it was reported by then and no object was opened from it
by then. Objects are streamed in pages; only counters and day counts are kept.
"""
from __future__ import annotations

import base64
import datetime as dt
import math
from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import Any, AsyncIterator

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit.projections import parse_time
from services.audit.supervision.common import china_date, end_of_day_utc
from services.audit.tables import audit_households, audit_monitoring_leads, audit_monitoring_objects
from shared.events import as_aware
from shared.problems import Problem

CATEGORIES = ("unstable_exited", "marginal_at_risk", "sudden_hardship")
STATUSES = ("identifying", "monitored", "eliminating", "eliminated", "dismissed")
IDENTIFICATION_STEPS = ("risk_warning", "home_verification", "household_commitment", "information_comparison",
                        "democratic_appraisal", "village_notice", "township_review", "county_approval", "data_entry")
ELIMINATION_STEPS = ("propose_elimination", "home_verification", "democratic_appraisal", "village_notice",
                     "township_confirmation", "county_confirmation")
GUIDELINE = "中农组发〔2021〕7号《关于健全防止返贫动态监测和帮扶机制的指导意见》"
#: 2021 national floor of the monitoring range: 1.5 × the poverty-alleviation-era line (docs/monitoring.md).
DEFAULT_RANGE_LINE = Decimal("6000")
DEFAULT_ELIMINATION_MIN_MONTHS = 6
PAGE = 500


def in_monitoring_area(table, area: str | None):
    if not area:
        return None
    return or_(table.c.village_code.startswith(area, autoescape=True),
               and_(table.c.village_code.is_(None), table.c.region_code.startswith(area, autoescape=True)))


# ---------------------------------------------------------------- an object as of a day

def _step_time(step: dict) -> dt.datetime | None:
    return parse_time(step.get("at"))


def state_as_of(row: Any, end: dt.datetime) -> dict | None:
    """{status, procedure, step} of a monitoring object at ``end`` (a UTC instant); None before it was opened."""
    steps = [s for s in row.steps or [] if isinstance(s, dict)]
    opened = as_aware(row.opened_at) or next((t for t in map(_step_time, steps) if t is not None), None)
    if opened is not None and opened > end:
        return None
    done = [s for s in steps if (_step_time(s) or opened or end) <= end]
    last = done[-1] if done else None
    where = {"procedure": last.get("procedure") if last else None, "step": last.get("step") if last else None}
    if row.dismissed_at is not None and as_aware(row.dismissed_at) <= end:
        return {"status": "dismissed", **where}
    if len(done) == len(steps) and not (row.eliminated_at is not None and as_aware(row.eliminated_at) > end):
        return {"status": row.status if row.status != "dismissed" else "identifying", **where}
    status = "identifying"
    for step in done:  # the registry's own status is authoritative; this replays it for an earlier day
        name = step.get("step")
        if name == "data_entry":
            status = "monitored"
        elif name == "propose_elimination":
            status = "eliminating"
        elif name == "county_confirmation":
            status = "eliminated"
    return {"status": status, **where}


def _days(start: dt.datetime | None, stop: dt.datetime | None) -> int | None:
    if start is None or stop is None:
        return None
    return (china_date(as_aware(stop)) - china_date(as_aware(start))).days


def distribution(days: list[int]) -> dict[str, Any]:
    """n, median and 90th percentile (nearest rank) in days."""
    if not days:
        return {"n": 0, "median_days": None, "p90_days": None}
    ordered = sorted(days)
    n = len(ordered)
    middle = n // 2
    median = ordered[middle] if n % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    return {"n": n, "median_days": float(median), "p90_days": float(ordered[math.ceil(0.9 * n) - 1])}


async def iter_objects(session: AsyncSession, *conditions) -> AsyncIterator[Any]:
    o = audit_monitoring_objects
    last = ""
    while True:
        rows = (await session.execute(select(o).where(o.c.id > last, *[c for c in conditions if c is not None])
                                      .order_by(o.c.id).limit(PAGE))).all()
        for row in rows:
            yield row
        if len(rows) < PAGE:
            return
        last = rows[-1].id


# ---------------------------------------------------------------- leads

def _reported(table):
    return func.coalesce(table.c.reported_at, table.c.recorded_at)


def open_leads_condition(end: dt.datetime):
    """Leads still open at ``end``: reported by then, and no object opened from them by then."""
    l, o = audit_monitoring_leads, audit_monitoring_objects
    opened_later = select(o.c.id).where(o.c.id == l.c.monitoring_object_id,
                                        or_(o.c.opened_at.is_(None), o.c.opened_at > end)).exists()
    return and_(_reported(l).is_not(None), _reported(l) < end,
                or_(l.c.status == "open", and_(l.c.status == "verifying", opened_later)))


def overdue_cutoff(as_of: dt.date, days: int) -> dt.datetime:
    """Reported before this instant = open more than ``days`` China calendar days on ``as_of``."""
    return end_of_day_utc(as_of - dt.timedelta(days=days + 1))


def _encode(time: dt.datetime | None, key: str) -> str:
    return base64.urlsafe_b64encode(f"{time.isoformat() if time else ''}|{key}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[dt.datetime, str]:
    try:
        time, key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split("|", 1)
        return as_aware(dt.datetime.fromisoformat(time)), key
    except Exception as exc:  # noqa: BLE001
        raise Problem(400, "Invalid cursor", "The cursor is not one this API returned.") from exc


async def overdue_leads(session: AsyncSession, area: str | None, as_of: dt.date, lead_days: int, *,
                        limit: int, cursor: str | None = None) -> tuple[list[dict], str | None]:
    """Leads open more than ``lead_days`` days on ``as_of``, the longest-waiting first."""
    l = audit_monitoring_leads
    end = end_of_day_utc(as_of)
    reported = _reported(l)
    query = (select(l, reported.label("reported")).where(open_leads_condition(end),
                                                         reported < overdue_cutoff(as_of, lead_days))
             .order_by(reported, l.c.id).limit(limit + 1))
    if (where := in_monitoring_area(l, area)) is not None:
        query = query.where(where)
    if cursor:
        time, key = _decode(cursor)
        query = query.where(or_(reported > time, and_(reported == time, l.c.id > key)))
    rows = (await session.execute(query)).all()
    items = []
    for row in rows[:limit]:
        reported_on = china_date(as_aware(row.reported))
        items.append({"lead_id": row.id, "household_id": row.household_id, "village_code": row.village_code,
                      "township_code": row.township_code, "channel": row.channel,
                      "risk_causes": list(row.risk_causes or []), "reported_on": reported_on.isoformat(),
                      "days_open": (as_of - reported_on).days, "status_now": row.status,
                      "monitoring_object_id": row.monitoring_object_id, "record_id": row.record_id,
                      "event_id": row.event_id})
    next_cursor = _encode(as_aware(rows[limit - 1].reported), rows[limit - 1].id) if len(rows) > limit else None
    return items, next_cursor


# ---------------------------------------------------------------- objects without measures

async def objects_without_measures(session: AsyncSession, area: str | None, as_of: dt.date, grace_days: int, *,
                                   limit: int, cursor: str | None = None) -> tuple[list[dict], str | None]:
    """Identified objects, monitored (or in elimination) on ``as_of``, with no assistance measure recorded by
    then although more than ``grace_days`` days passed since identification; oldest identification first."""
    o = audit_monitoring_objects
    end = end_of_day_utc(as_of)
    query = (select(o).where(o.c.identified_at.is_not(None), o.c.identified_at < overdue_cutoff(as_of, grace_days),
                             or_(o.c.first_measure_at.is_(None), o.c.first_measure_at >= end))
             .order_by(o.c.identified_at, o.c.id))
    if (where := in_monitoring_area(o, area)) is not None:
        query = query.where(where)
    if cursor:
        time, key = _decode(cursor)
        query = query.where(or_(o.c.identified_at > time, and_(o.c.identified_at == time, o.c.id > key)))
    items, last_row = [], None
    offset = 0
    while len(items) <= limit:
        rows = (await session.execute(query.offset(offset).limit(PAGE))).all()
        for row in rows:
            state = state_as_of(row, end)
            if state is None or state["status"] not in ("monitored", "eliminating"):
                continue
            if len(items) == limit:
                return items, _encode(as_aware(last_row.identified_at), last_row.id)
            identified_on = china_date(as_aware(row.identified_at))
            items.append({"object_id": row.id, "case_no": row.case_no, "household_id": row.household_id,
                          "village_code": row.village_code, "township_code": row.township_code,
                          "category": row.category, "status": state["status"],
                          "identified_on": identified_on.isoformat(), "days_since_identification":
                          (as_of - identified_on).days, "measures": row.measures, "record_id": row.record_id,
                          "event_id": row.event_id})
            last_row = row
        if len(rows) < PAGE:
            break
        offset += PAGE
    return items, None


# ---------------------------------------------------------------- the report

async def monitoring_report(session: AsyncSession, *, area: str | None, as_of: dt.date, lead_days: int,
                            grace_days: int, limit: int = 100, cursor: str | None = None,
                            objects_cursor: str | None = None) -> dict[str, Any]:
    o, l = audit_monitoring_objects, audit_monitoring_leads
    end = end_of_day_utc(as_of)
    by_category_status: Counter = Counter()
    by_step: Counter = Counter()
    lead_to_identification, identification_to_measure, lead_to_measure = [], [], []
    async for row in iter_objects(session, in_monitoring_area(o, area)):
        state = state_as_of(row, end)
        if state is None:
            continue
        by_category_status[(row.category or "unknown", state["status"])] += 1
        by_step[(state["procedure"], state["step"])] += 1
        identified = as_aware(row.identified_at) if row.identified_at and as_aware(row.identified_at) <= end else None
        measured = as_aware(row.first_measure_at) if row.first_measure_at and as_aware(row.first_measure_at) <= end \
            else None
        reported = as_aware(row.lead_reported_at)
        for bucket, start, stop in ((lead_to_identification, reported, identified),
                                    (identification_to_measure, identified, measured),
                                    (lead_to_measure, reported, measured)):
            days = _days(start, stop)
            if days is not None and days >= 0:
                bucket.append(days)
    lead_area = in_monitoring_area(l, area)
    lead_query = (select(l.c.status, func.count()).where(_reported(l).is_not(None), _reported(l) < end)
                  .group_by(l.c.status))
    open_query = select(func.count()).select_from(l).where(open_leads_condition(end))
    overdue_query = select(func.count()).select_from(l).where(open_leads_condition(end),
                                                              _reported(l) < overdue_cutoff(as_of, lead_days))
    if lead_area is not None:
        lead_query, open_query, overdue_query = (q.where(lead_area) for q in (lead_query, open_query, overdue_query))
    leads_by_status = {status: int(n) for status, n in (await session.execute(lead_query)).all()}
    leads, leads_next = await overdue_leads(session, area, as_of, lead_days, limit=limit, cursor=cursor)
    bare, bare_next = await objects_without_measures(session, area, as_of, grace_days, limit=limit,
                                                     cursor=objects_cursor)
    categories = sorted({c for c, _ in by_category_status}, key=lambda c: (c not in CATEGORIES, CATEGORIES.index(c)
                                                                            if c in CATEGORIES else 0, c))
    step_order = {("identification", s): i for i, s in enumerate(IDENTIFICATION_STEPS)}
    step_order.update({("elimination", s): 100 + i for i, s in enumerate(ELIMINATION_STEPS)})
    return {
        "area": area, "as_of": as_of.isoformat(),
        "settings": {"lead_days": lead_days, "measure_grace_days": grace_days},
        "objects": {
            "total": sum(by_category_status.values()),
            "by_category_status": [{"category": c, "status": s, "objects": by_category_status[(c, s)]}
                                   for c in categories for s in STATUSES if by_category_status[(c, s)]],
            "by_category": {c: sum(n for (cc, _), n in by_category_status.items() if cc == c) for c in categories},
            "by_status": {s: sum(n for (_, ss), n in by_category_status.items() if ss == s) for s in STATUSES},
            "by_step": [{"procedure": p, "step": s, "objects": n} for (p, s), n in sorted(
                by_step.items(), key=lambda kv: (step_order.get(kv[0], 999 if kv[0][1] else -1), str(kv[0])))],
        },
        "leads": {"total": sum(leads_by_status.values()), "by_status": leads_by_status,
                  "open": int(await session.scalar(open_query) or 0),
                  "overdue": int(await session.scalar(overdue_query) or 0)},
        "durations": {"lead_to_identification": distribution(lead_to_identification),
                      "identification_to_first_measure": distribution(identification_to_measure),
                      "lead_to_first_measure": distribution(lead_to_measure)},
        "overdue_leads": {"items": leads, "next_cursor": leads_next},
        "objects_without_measures": {"items": bare, "next_cursor": bare_next},
        "note": "status and step as of as_of (the last step completed by that day); leads by_status are their "
                "latest status; days are China calendar days; p90 is the nearest rank",
    }


# ---------------------------------------------------------------- policy figures for the rules

def line_of_year(lines: Any, year: int) -> tuple[Any, int | None]:
    """(figure, its year) as benefits applies ``monitoring.range_line`` (services/benefits/rules/assessments.py):
    the year's own figure, else the latest earlier one, else the earliest; a scalar applies to every year."""
    if not isinstance(lines, dict):
        return lines, None
    by_year = {int(y): v for y, v in lines.items() if str(y).isdigit()}
    if not by_year:
        return None, None
    earlier = [y for y in by_year if y <= year]
    used = max(earlier) if earlier else min(by_year)
    return by_year[used], used


def range_line(region_code: str, year: int) -> dict[str, Any]:
    """The monitoring range line for an income year and region, read from the packs
    (``monitoring.range_line``) the way benefits applies it; without one, the 2021 national floor of
    6,000 yuan per person (中农组发〔2021〕7号)."""
    from shared.policy import resolve_pack
    try:
        policy = resolve_pack(region_code or "", dt.date(year, 12, 31))
    except LookupError:
        policy = None
    if policy is not None and policy.param("monitoring.range_line", None) is not None:
        line, used = line_of_year(policy.param("monitoring.range_line"), year)
        if line is not None:
            basis = "monitoring.range_line" + (f" of {used}" if used is not None and used != year else "")
            return {"line": Decimal(str(line)), "pack": policy.pack, "origin": policy.origin("monitoring.range_line"),
                    "year_of_figure": used, "basis": f"{basis}, {GUIDELINE}"}
    return {"line": DEFAULT_RANGE_LINE, "pack": policy.pack if policy else None, "origin": None,
            "year_of_figure": 2021,
            "basis": f"national floor 2021 (no monitoring.range_line in the packs), {GUIDELINE}"}


def elimination_min_months(region_code: str, on: dt.date) -> int:
    from shared.policy import resolve_pack
    try:
        value = resolve_pack(region_code or "", on).param("monitoring.elimination_min_months", None)
    except LookupError:
        value = None
    return int(value) if value is not None else DEFAULT_ELIMINATION_MIN_MONTHS


def latest_income(household: Any, as_of: dt.date) -> tuple[int, Decimal, dict] | None:
    """(year, per-capita net income, its history entry) of the latest income year up to ``as_of``."""
    history = (household.income_history if household is not None else None) or {}
    years = sorted((int(y) for y in history if str(y).isdigit() and int(y) <= as_of.year), reverse=True)
    for year in years:
        try:
            return year, Decimal(str(history[str(year)]["amount"])), history[str(year)]
        except (InvalidOperation, KeyError, TypeError):
            continue
    return None


async def household_of(session: AsyncSession, household_id: str):
    return (await session.execute(select(audit_households).where(
        audit_households.c.household_id == household_id))).first()
