"""Anomaly rules over the read models: what supervisors (督查) and auditors (审计) look for.

Each rule returns findings with the evidence that shows it (ledger record ids and event
ids, so a finding can be checked against the hash chain) and its own code. Rules read
pages, never whole tables.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit.supervision.common import china_date, end_of_day_utc, in_area
from services.audit.tables import (audit_entitlements, audit_households, audit_members, audit_monitoring_objects,
                                   audit_pairings, audit_partner_access)


@dataclass(frozen=True)
class Context:
    area: str | None
    as_of: dt.date
    no_visit_days: int = 90
    lookup_grace_days: int = 30
    limit: int = 200
    monitoring_lead_days: int = 15
    monitoring_measure_grace_days: int = 15


@dataclass(frozen=True)
class Rule:
    code: str
    title: str  # Chinese, as supervisors say it
    title_en: str
    severity: str
    basis: str  # why it matters, with the seed line where there is one
    run: Callable[[AsyncSession, Context], Awaitable[list[dict]]]


def finding(rule: str, household: Any, detail: str, record_ids: list, event_ids: list, **facts) -> dict:
    return {"rule": rule, "household_id": getattr(household, "household_id", None),
            "village_code": getattr(household, "village_code", None),
            "township_code": getattr(household, "township_code", None), "detail": detail,
            "evidence": {"record_ids": sorted({r for r in record_ids if r is not None}),
                         "event_ids": [e for e in dict.fromkeys(event_ids) if e]},
            "facts": facts}


async def iter_households(session: AsyncSession, *conditions, page: int = 500) -> AsyncIterator[Any]:
    last = ""
    while True:
        rows = (await session.execute(select(audit_households).where(
            audit_households.c.household_id > last, *[c for c in conditions if c is not None])
            .order_by(audit_households.c.household_id).limit(page))).all()
        for row in rows:
            yield row
        if len(rows) < page:
            return
        last = rows[-1].household_id


# ---------------------------------------------------------------- rules


async def entitlement_to_ineligible_person(session: AsyncSession, ctx: Context) -> list[dict]:
    h, e, m = audit_households, audit_entitlements, audit_members
    query = (select(e, h.c.status, h.c.village_code, h.c.township_code, h.c.last_record_id,
                    m.c.person_id.label("member_id"), m.c.deceased, m.c.record_id.label("member_record_id"))
             .join(h, h.c.household_id == e.c.household_id)
             .outerjoin(m, and_(m.c.household_id == e.c.household_id, m.c.person_id == e.c.person_id))
             .where(h.c.version > 0,
                    or_(h.c.status == "removed",
                        and_(e.c.person_id.is_not(None), or_(m.c.person_id.is_(None), m.c.deceased.is_(True)))))
             .order_by(e.c.household_id, e.c.program, e.c.person_key).limit(ctx.limit))
    if ctx.area:
        query = query.where(in_area(h, ctx.area))
    out = []
    for row in (await session.execute(query)).all():
        if row.status == "removed":
            why, ref = "household removed (剔除) but the entitlement is still current", row.last_record_id
        elif row.member_id is None:
            why, ref = f"person {row.person_id} is no longer a member of the household", row.last_record_id
        else:
            why, ref = f"person {row.person_id} is recorded as deceased", row.member_record_id
        out.append(finding("entitlement_to_ineligible_person", row,
                           f"{row.program}: {why}", [row.record_id, ref], [row.event_id],
                           program=row.program, person_id=row.person_id, status=row.status,
                           amount=f"{Decimal(row.amount_fen or 0) / 100:.2f}", unit=row.unit))
    return out


async def exit_overridden(session: AsyncSession, ctx: Context) -> list[dict]:
    h = audit_households
    out = []
    async for row in iter_households(session, h.c.exit_date.is_not(None), h.c.status.in_(("exited", "monitored")),
                                     in_area(h, ctx.area)):
        readiness = row.readiness_at_exit or {}
        unready = readiness.get("result") is False
        if not (row.exit_override or unready):
            continue
        steps = (row.exit_evidence or {}).get("steps", [])
        overridden = sorted({c for s in steps for c in s.get("overridden_criteria") or []}
                            | set(readiness.get("unmet") or [] if unready else []))
        # approval carries the proposal's override and reason: one reason, however many steps repeat it
        reasons = list(dict.fromkeys(s.get("reason") for s in steps if s.get("override") and s.get("reason")))
        out.append(finding("exit_overridden", row,
                           "exited although the exit-readiness assessment was not met"
                           + (f" (unmet: {', '.join(overridden)})" if overridden else ""),
                           [s.get("record_id") for s in steps] + [readiness.get("record_id")],
                           [s.get("event_id") for s in steps] + [readiness.get("event_id")],
                           exit_date=row.exit_date, override=bool(row.exit_override), unmet=overridden,
                           override_reasons=reasons, deciders=sorted({s.get("actor") for s in steps if s.get("actor")})))
        if len(out) >= ctx.limit:
            break
    return out


async def relocated_exit_not_moved_in(session: AsyncSession, ctx: Context) -> list[dict]:
    h = audit_households
    out = []
    async for row in iter_households(session, h.c.exit_date.is_not(None), h.c.status.in_(("exited", "monitored")),
                                     h.c.relocated.is_(True), in_area(h, ctx.area)):
        if row.moved_in_at_exit is not False and row.moved_in:
            continue
        steps = (row.exit_evidence or {}).get("steps", [])
        out.append(finding("relocated_exit_not_moved_in", row,
                           "relocated household exited before moving into its resettlement house"
                           if row.moved_in_at_exit is False else "relocated exited household has not moved in",
                           [row.last_record_id] + [s.get("record_id") for s in steps],
                           [s.get("event_id") for s in steps],
                           exit_date=row.exit_date, moved_in_at_exit=row.moved_in_at_exit, moved_in_now=row.moved_in))
        if len(out) >= ctx.limit:
            break
    return out


async def duplicate_id_number(session: AsyncSession, ctx: Context) -> list[dict]:
    h, m = audit_households, audit_members
    living = and_(m.c.id_hash.is_not(None), m.c.deceased.is_(False), h.c.status != "removed")
    groups = (await session.execute(
        select(m.c.id_hash).join(h, h.c.household_id == m.c.household_id).where(living)
        .group_by(m.c.id_hash).having(func.count(func.distinct(m.c.household_id)) > 1)
        .order_by(m.c.id_hash).limit(ctx.limit))).scalars().all()
    out = []
    for id_hash in groups:
        rows = (await session.execute(
            select(m.c.household_id, m.c.person_id, m.c.masked_id, m.c.record_id, h.c.village_code,
                   h.c.township_code, h.c.region_code, h.c.status)
            .join(h, h.c.household_id == m.c.household_id).where(living, m.c.id_hash == id_hash)
            .order_by(m.c.household_id))).all()
        if ctx.area and not any((r.village_code or r.region_code or "").startswith(ctx.area) for r in rows):
            continue
        out.append(finding("duplicate_id_number", rows[0],
                           f"the same ID number ({rows[0].masked_id}) is a living member of "
                           f"{len({r.household_id for r in rows})} households",
                           [r.record_id for r in rows], [],
                           masked_id=rows[0].masked_id, id_key=id_hash[:12],
                           households=[{"household_id": r.household_id, "person_id": r.person_id,
                                        "status": r.status, "village_code": r.village_code} for r in rows]))
    return out


def registration_date(row: Any) -> tuple[dt.date | None, str | None]:
    """When the household was registered, by its own business dates: the registration step of its
    procedure, else the last day of its ``identified_year`` (the latest it can have been registered, so
    a count from it never overstates the days). None when the registry recorded neither."""
    if row.registered_at is not None:
        return china_date(row.registered_at), "procedure"
    if row.identified_year:
        return dt.date(row.identified_year, 12, 31), "identified_year"
    return None, None


async def no_recent_visit(session: AsyncSession, ctx: Context) -> list[dict]:
    """Registered households whose last home visit, or with none their registration, lies more than
    ``no_visit_days`` before ``as_of``; counted in China calendar days, from the visit's ``visited_at``
    and the registration's procedure date or ``identified_year``, never from when an event arrived."""
    h = audit_households
    # on day ``as_of - threshold`` the count is exactly the threshold, which is not yet too long
    last_allowed = ctx.as_of - dt.timedelta(days=ctx.no_visit_days)
    cutoff = end_of_day_utc(last_allowed - dt.timedelta(days=1))
    never_visited = h.c.last_visit_at.is_(None)
    stale = or_(h.c.last_visit_at < cutoff,
                and_(never_visited, h.c.registered_at.is_not(None), h.c.registered_at < cutoff),
                and_(never_visited, h.c.registered_at.is_(None), h.c.identified_year < last_allowed.year))
    out = []
    async for row in iter_households(session, h.c.status == "registered", stale, in_area(h, ctx.area)):
        last = china_date(row.last_visit_at)
        registered_on, basis = registration_date(row)
        since = last or registered_on
        days = (ctx.as_of - since).days
        if last:
            detail = f"no home visit since {last.isoformat()}"
        elif basis == "procedure":
            detail = f"never visited since registration on {registered_on.isoformat()}"
        else:
            detail = f"never visited since registration (identified in {row.identified_year})"
        out.append(finding("no_recent_visit", row, detail + f": {days} days > {ctx.no_visit_days}",
                           [row.last_visit_record_id or row.first_record_id], [],
                           last_visit=last.isoformat() if last else None,
                           registered_on=registered_on.isoformat() if registered_on else None,
                           registered_basis=basis, identified_year=row.identified_year,
                           counted_from="last_visit" if last else basis,
                           days=days, threshold_days=ctx.no_visit_days))
        if len(out) >= ctx.limit:
            break
    return out


def poverty_line(region_code: str, year: int) -> tuple[Decimal, str] | None:
    """The line an income of ``year`` is judged against: the pack's identification line, else the
    national line of that year (policy data read through the shared policy library)."""
    from shared.policy import resolve_pack
    try:
        policy = resolve_pack(region_code or "", dt.date(year, 12, 31))
    except LookupError:
        return None
    line = policy.param("identification.income_line", None)
    if line is None:
        by_year = policy.param("poverty_line", {}) or {}
        line = by_year.get(year, by_year.get(str(year)))
    if line is None:
        return None
    return Decimal(str(line)), policy.pack


async def above_line_not_exited(session: AsyncSession, ctx: Context) -> list[dict]:
    h = audit_households
    out = []
    async for row in iter_households(session, h.c.status.in_(("registered", "returned")), in_area(h, ctx.area)):
        history = row.income_history or {}
        years = sorted(int(y) for y in history if str(y).isdigit() and int(y) <= ctx.as_of.year)
        above = []
        for year in years:
            line = poverty_line(row.region_code or row.village_code or "", year)
            try:
                amount = Decimal(str(history[str(year)]["amount"]))
            except (InvalidOperation, KeyError, TypeError):
                continue
            if line is not None and amount > line[0]:
                above.append((year, amount, line))
        runs = [(a, b) for a, b in zip(above, above[1:]) if b[0] == a[0] + 1]
        if not runs:
            continue
        first, second = runs[-1]
        out.append(finding("above_line_not_exited", row,
                           f"per-capita net income above the line in {first[0]} ({first[1]} > {first[2][0]}) and "
                           f"{second[0]} ({second[1]} > {second[2][0]}) but the household is still {row.status}",
                           [history[str(first[0])].get("record_id"), history[str(second[0])].get("record_id")],
                           [history[str(first[0])].get("event_id"), history[str(second[0])].get("event_id")],
                           years=[{"year": y, "income": str(a), "line": str(ln[0]), "pack": ln[1]}
                                  for y, a, ln in (first, second)]))
        if len(out) >= ctx.limit:
            break
    return out


async def cadre_unpaired_before_exit(session: AsyncSession, ctx: Context) -> list[dict]:
    p, h = audit_pairings, audit_households
    query = (select(p, h.c.exit_date, h.c.status, h.c.village_code, h.c.township_code, h.c.region_code)
             .join(h, h.c.household_id == p.c.household_id)
             .where(p.c.unpaired_at.is_not(None), p.c.unpaired_at < end_of_day_utc(ctx.as_of))
             .order_by(p.c.household_id, p.c.id))
    if ctx.area:
        query = query.where(in_area(h, ctx.area))
    out = []
    for row in (await session.execute(query)).all():
        unpaired_on = china_date(row.unpaired_at)
        exit_date = dt.date.fromisoformat(row.exit_date) if row.exit_date else None
        if exit_date is not None and unpaired_on >= exit_date:
            continue
        replaced = bool((await session.execute(select(p.c.id).where(
            p.c.household_id == row.household_id, p.c.id != row.id, p.c.paired_at <= row.unpaired_at,
            or_(p.c.unpaired_at.is_(None), p.c.unpaired_at > row.unpaired_at)).limit(1))).first())
        out.append(finding("cadre_unpaired_before_exit", row,
                           f"cadre {row.cadre_id} unpaired on {unpaired_on.isoformat()} "
                           + (f"before the household exited on {exit_date.isoformat()}" if exit_date
                              else "while the household has not exited (不脱贫不脱钩)"),
                           [row.unpaired_record_id, row.paired_record_id], [],
                           cadre_id=row.cadre_id, unpaired_on=unpaired_on.isoformat(),
                           exit_date=row.exit_date, replaced=replaced))
        if len(out) >= ctx.limit:
            break
    return out


async def partner_lookup_without_benefit(session: AsyncSession, ctx: Context) -> list[dict]:
    a = audit_partner_access
    d = audit_partner_access.alias("delivery")
    cutoff = end_of_day_utc(ctx.as_of) - dt.timedelta(days=ctx.lookup_grace_days)
    followed = exists().where(d.c.kind == "delivery", d.c.client_id == a.c.client_id,
                              d.c.person_key == a.c.person_key, d.c.time >= a.c.time)
    query = (select(a, audit_households.c.village_code, audit_households.c.township_code,
                    audit_households.c.region_code)
             .outerjoin(audit_households, audit_households.c.household_id == a.c.household_id)
             .where(a.c.kind == "lookup", a.c.person_key.is_not(None), a.c.time < cutoff, ~followed)
             .order_by(a.c.client_id, a.c.person_key, a.c.time).limit(ctx.limit * 20))
    if ctx.area:
        query = query.where(in_area(audit_households, ctx.area))
    groups: dict[tuple, list] = {}
    for row in (await session.execute(query)).all():
        groups.setdefault((row.client_id, row.person_key), []).append(row)
    out = []
    for (client_id, _), rows in list(groups.items())[:ctx.limit]:
        first = rows[0]
        out.append(finding("partner_lookup_without_benefit", first,
                           f"partner {client_id} looked up {first.masked_id or first.person_id or 'a person'} "
                           f"{len(rows)} time(s); no loan or settlement followed within {ctx.lookup_grace_days} days",
                           [r.record_id for r in rows], [r.event_id for r in rows],
                           client_id=client_id, masked_id=first.masked_id, lookups=len(rows),
                           eligible=[r.eligible for r in rows], first_lookup=first.time.isoformat()))
        out[-1]["household_id"] = first.household_id
    return out


# ---------------------------------------------------------------- monitoring (防止返贫动态监测, docs/monitoring.md)


async def monitoring_lead_not_verified(session: AsyncSession, ctx: Context) -> list[dict]:
    """A lead still open on ``as_of`` more than N China calendar days after it was reported (N days is not
    yet too long): no monitoring object opened from it, not dismissed, not merged."""
    from services.audit.monitoring.service import overdue_leads
    leads, _ = await overdue_leads(session, ctx.area, ctx.as_of, ctx.monitoring_lead_days, limit=ctx.limit)
    out = []
    for lead in leads:
        out.append(finding("monitoring_lead_not_verified", _Where(lead),
                           f"lead {lead['lead_id']} ({lead['channel']}) reported on {lead['reported_on']} is still "
                           f"not verified: {lead['days_open']} days > {ctx.monitoring_lead_days}",
                           [lead["record_id"]], [lead["event_id"]],
                           lead_id=lead["lead_id"], channel=lead["channel"], risk_causes=lead["risk_causes"],
                           reported_on=lead["reported_on"], days=lead["days_open"],
                           threshold_days=ctx.monitoring_lead_days))
    return out


async def monitoring_object_without_measures(session: AsyncSession, ctx: Context) -> list[dict]:
    """An identified object, monitored (or in elimination) on ``as_of``, with no assistance measure recorded
    by then, more than the grace days after its identification (data entry)."""
    from services.audit.monitoring.service import objects_without_measures
    found, _ = await objects_without_measures(session, ctx.area, ctx.as_of, ctx.monitoring_measure_grace_days,
                                              limit=ctx.limit)
    return [finding("monitoring_object_without_measures", _Where(o),
                    f"monitoring object {o['object_id']} ({o['category']}) identified on "
                    f"{o['identified_on']} has no assistance measure: {o['days_since_identification']} days > "
                    f"{ctx.monitoring_measure_grace_days}",
                    [o["record_id"]], [o["event_id"]],
                    object_id=o["object_id"], case_no=o["case_no"], category=o["category"], status=o["status"],
                    identified_on=o["identified_on"], days=o["days_since_identification"],
                    grace_days=ctx.monitoring_measure_grace_days) for o in found]


async def _eliminated(session: AsyncSession, ctx: Context) -> AsyncIterator[Any]:
    from services.audit.monitoring.service import in_monitoring_area, iter_objects
    o = audit_monitoring_objects
    async for row in iter_objects(session, o.c.status == "eliminated", o.c.eliminated_at.is_not(None),
                                  o.c.eliminated_at < end_of_day_utc(ctx.as_of), in_monitoring_area(o, ctx.area)):
        yield row


async def monitoring_eliminated_too_soon(session: AsyncSession, ctx: Context) -> list[dict]:
    """Risk eliminated although benefits' elimination answer kept as the county confirmation's evidence
    shows fewer months above the range than the pack's ``monitoring.elimination_min_months`` (6), or is
    missing."""
    from services.audit.monitoring.service import elimination_min_months
    out = []
    async for row in _eliminated(session, ctx):
        evidence = row.elimination_evidence or {}
        assessment = evidence.get("benefits_assessment")
        eliminated_on = china_date(row.eliminated_at)
        needed = elimination_min_months(row.region_code or row.village_code or "", eliminated_on)
        months = assessment.get("months_above_range") if isinstance(assessment, dict) else None
        if isinstance(months, (int, float)) and not isinstance(months, bool) and months >= needed:
            continue
        if not isinstance(assessment, dict):
            why = "without benefits' elimination assessment in the county confirmation's evidence"
        elif months is None:
            why = "with no months above the range in benefits' assessment"
        else:
            why = f"after {months} months above the range (< {needed})"
        out.append(finding("monitoring_eliminated_too_soon", row,
                           f"monitoring object {row.id} eliminated on {eliminated_on.isoformat()} {why}",
                           [evidence.get("record_id") or row.record_id], [evidence.get("event_id") or row.event_id],
                           object_id=row.id, case_no=row.case_no, category=row.category,
                           eliminated_on=eliminated_on.isoformat(), months_above_range=months,
                           min_months=needed, confirmed_by=evidence.get("actor"),
                           eligible=assessment.get("eligible") if isinstance(assessment, dict) else None,
                           above_range_since=assessment.get("above_range_since") if isinstance(assessment, dict)
                           else None))
        if len(out) >= ctx.limit:
            break
    return out


async def monitoring_eliminated_inside_range(session: AsyncSession, ctx: Context) -> list[dict]:
    """Risk eliminated while the household's latest per-capita net income (its latest registry snapshot,
    income years up to ``as_of``) is below the monitoring range line of its province and income year.
    A household whose income audit never received is not judged."""
    from services.audit.monitoring.service import household_of, latest_income, range_line
    out = []
    async for row in _eliminated(session, ctx):
        household = await household_of(session, row.household_id)
        income = latest_income(household, ctx.as_of)
        if income is None:
            continue
        year, amount, entry = income
        region = row.region_code or (household.region_code if household is not None else None) or ""
        line = range_line(region, year)
        if amount >= line["line"]:
            continue
        eliminated_on = china_date(row.eliminated_at)
        evidence = row.elimination_evidence or {}
        out.append(finding("monitoring_eliminated_inside_range", row,
                           f"monitoring object {row.id} eliminated on {eliminated_on.isoformat()} "
                           f"while the household's {year} per-capita net income {amount} is below the range "
                           f"line {line['line']}",
                           [evidence.get("record_id") or row.record_id, entry.get("record_id")],
                           [evidence.get("event_id") or row.event_id, entry.get("event_id")],
                           object_id=row.id, case_no=row.case_no, eliminated_on=eliminated_on.isoformat(),
                           income_year=year, income=str(amount), range_line=str(line["line"]),
                           line_basis=line["basis"], pack=line["pack"], line_origin=line["origin"],
                           line_year=line["year_of_figure"]))
        if len(out) >= ctx.limit:
            break
    return out


class _Where:
    """A finding's household and area from a monitoring item (a dict)."""

    def __init__(self, item: dict):
        self.household_id = item.get("household_id")
        self.village_code = item.get("village_code")
        self.township_code = item.get("township_code")


RULES: dict[str, Rule] = {r.code: r for r in (
    Rule("entitlement_to_ineligible_person", "向已剔除或已故人员发放待遇", "Entitlements to removed or deceased people",
         "high", "虚报冒领 (false claims), 002 L119; 003 L73", entitlement_to_ineligible_person),
    Rule("exit_overridden", "未达标强制退出（虚假脱贫/数字脱贫风险）", "Exit overridden past exit readiness",
         "high", "真实脱贫, penalties for fake exit, 000 L403; 弄虚作假, 004 L202", exit_overridden),
    Rule("relocated_exit_not_moved_in", "搬迁户未入住即退出", "Relocated household exited before moving in",
         "high", "relocated households exit only after moving in, 001 L929", relocated_exit_not_moved_in),
    Rule("duplicate_id_number", "同一身份证号出现在两个家庭", "Same ID number in two households",
         "high", "accurate data (数据准确), 000 L403", duplicate_id_number),
    Rule("no_recent_visit", "长期未入户走访", "Registered household not visited for too long",
         "medium", "assistance cadres visit their households; 走过场 forbidden, 004 L202", no_recent_visit),
    Rule("above_line_not_exited", "收入连续两年超标未退出", "Above the line for two years but not exited",
         "medium", "精准: exit when the standard is met, 000 L403", above_line_not_exited),
    Rule("cadre_unpaired_before_exit", "未脱贫先脱钩", "Cadre unpaired before the household exited",
         "medium", "不脱贫不脱钩; weak pairing → accountability, 000 L402", cadre_unpaired_before_exit),
    Rule("partner_lookup_without_benefit", "合作机构查询后无业务（疑似探查）", "Partner look-up followed by nothing",
         "low", "partners see only what their job needs; every look-up is on the record", partner_lookup_without_benefit),
    Rule("monitoring_lead_not_verified", "监测线索逾期未核实", "Monitoring lead not verified in time",
         "medium", "发现的风险及时核查认定，应纳尽纳 (discover and verify promptly, include everyone who qualifies), "
         "中农组发〔2021〕7号; the period is a setting, JZ_AUDIT_MONITORING_LEAD_DAYS (15)",
         monitoring_lead_not_verified),
    Rule("monitoring_object_without_measures", "监测对象未落实帮扶措施", "Monitoring object without assistance measures",
         "high", "对监测对象及时落实针对性帮扶措施 (targeted assistance for every monitoring object), "
         "中农组发〔2021〕7号; grace after identification JZ_AUDIT_MONITORING_MEASURE_GRACE_DAYS (15)",
         monitoring_object_without_measures),
    Rule("monitoring_eliminated_too_soon", "风险消除不满半年（收入稳定超过监测范围）",
         "Risk eliminated without six months above the range", "high",
         "收入持续稳定超过监测范围半年以上方可标注风险消除 (income stably above the range for at least half a "
         "year), 中农组发〔2021〕7号; monitoring.elimination_min_months", monitoring_eliminated_too_soon),
    Rule("monitoring_eliminated_inside_range", "收入仍在监测范围内即标注风险消除",
         "Risk eliminated while the income is inside the range", "high",
         "监测范围：人均纯收入低于当年监测线（2021 年不低于 6000 元，各省调整）(the range: below the year's line, "
         "6,000 yuan floor in 2021), 中农组发〔2021〕7号; monitoring.range_line", monitoring_eliminated_inside_range),
)}


async def find_anomalies(session: AsyncSession, ctx: Context, rules: list[str] | None = None) -> dict[str, Any]:
    items, counts = [], {}
    for code, rule in RULES.items():
        if rules and code not in rules:
            continue
        found = await rule.run(session, ctx)
        counts[code] = len(found)
        for item in found:
            items.append({**item, "title": rule.title, "title_en": rule.title_en, "severity": rule.severity,
                          "basis": rule.basis})
    return {"as_of": ctx.as_of.isoformat(), "area": ctx.area, "counts": counts, "items": items,
            "truncated": [code for code, n in counts.items() if n >= ctx.limit], "next_cursor": None}
