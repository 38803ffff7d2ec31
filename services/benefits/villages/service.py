"""Village exit assessments from what benefits stores: the village records (``villages``, filled from the
registry's ``village.updated`` events) and the household snapshots (``household_snapshots``).

Counting rule (documented in docs/benefits.md, "Village exit"):

* poor population: living (not deceased) members of the village's households that have not exited on the
  evaluation date: status ``registered`` or ``returned``, and an exited (or monitored after exit)
  household whose ``exit_date`` lies after the date;
* counted population: living members of every ``registered``, ``returned``, ``exited`` or ``monitored``
  household (candidates and removed households are not in the register);
* the incidence's denominator is the village's 户籍 population (``population`` of the registry's village
  record, "相对贫困人口占村户籍人口", 002 L33); without it, the counted population (an upper bound of the
  incidence, see rules/village_exit.py);
* village income (Shaoguan): the record's ``per_capita_income`` when the registry sends one, else the
  member-weighted mean per-capita net income of the counted households for the latest income year not after
  the evaluation year (the registry's village model has no income of its own).

Households are streamed, one query per village; the whole table is never loaded.
"""
from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select, union
from sqlalchemy.ext.asyncio import AsyncSession

from services.benefits.rules.village_exit import VillageStats, has_standard, village_exit
from services.benefits.tables import household_snapshots, villages
from shared.policy import PackRegistry, default_registry
from shared.policy.coverage import coverage

COUNTED_STATUSES = ("registered", "returned", "exited", "monitored")
#: The registry's indicator names (services/registry/villages VillageIndicators) where the packs spell
#: them differently (village_exit.indicators, 003 L83).
INDICATOR_ALIASES = {"housing_security": "housing_safety", "good_committees": "good_village_committee"}
STREAM_BATCH = 500


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def indicators_of(record: dict) -> dict[str, bool | None]:
    raw = record.get("indicators") if isinstance(record.get("indicators"), dict) else {}
    return {INDICATOR_ALIASES.get(name, name): value for name, value in raw.items()
            if name != "poverty_incidence_pct"}


def is_poor_on(status: str, snapshot: dict, as_of: dt.date) -> bool:
    if status in ("registered", "returned"):
        return True
    exited_after = (_date(snapshot.get("exit_date")) or dt.date.min) > as_of
    marginal = "marginal" in (snapshot.get("categories") or [])
    return status in ("exited", "monitored") and not marginal and exited_after


async def village_stats(session: AsyncSession, code: str, record: dict, as_of: dt.date) -> VillageStats:
    query = (select(household_snapshots.c.status, household_snapshots.c.snapshot)
             .where(household_snapshots.c.village_code == code, household_snapshots.c.status.in_(COUNTED_STATUSES))
             .order_by(household_snapshots.c.household_id).execution_options(yield_per=STREAM_BATCH))
    households = counted = poor = 0
    incomes: dict[int, list[tuple[Decimal, int]]] = {}
    async for status, snapshot in await session.stream(query):
        living = sum(1 for member in snapshot.get("members") or [] if not member.get("deceased"))
        households += 1
        counted += living
        if is_poor_on(status, snapshot, as_of):
            poor += living
        income = snapshot.get("income") or {}
        amount, year = _decimal(income.get("per_capita_net")), income.get("year")
        if amount is not None and isinstance(year, int) and year <= as_of.year and living:
            incomes.setdefault(year, []).append((amount, living))
    year, per_capita, basis = as_of.year, _decimal(record.get("per_capita_income")), None
    if per_capita is not None:
        basis = "village_record"
    elif incomes:
        year = max(incomes)
        people = sum(n for _, n in incomes[year])
        per_capita = (sum(amount * n for amount, n in incomes[year]) / people).quantize(Decimal("0.01"), ROUND_HALF_UP)
        basis = "households"
    population = record.get("population")
    reported = (record.get("indicators") or {}).get("poverty_incidence_pct") \
        if isinstance(record.get("indicators"), dict) else None
    return VillageStats(code=code, year=year,
                        registered_population=population if isinstance(population, int) and population > 0 else None,
                        poor_population=poor, per_capita_income=per_capita, indicators=indicators_of(record),
                        counted_population=counted, households=households,
                        reported_incidence_pct=_decimal(reported), income_basis=basis)


def not_assessed(reason_zh: str, reason_en: str) -> dict[str, str]:
    return {"kind": "village_exit", "reason": f"{reason_zh} / {reason_en}"}


async def assess(session: AsyncSession, code: str, record: dict | None, as_of: dt.date,
                 packs: PackRegistry | None) -> dict[str, Any]:
    """The village's answer: its exit assessment, or `not_assessed` saying why there is none."""
    registry = packs or default_registry()
    record = record or {}
    answer: dict[str, Any] = {
        "village_code": code, "as_of": as_of.isoformat(),
        "village": {key: record.get(key) for key in ("name", "township_code", "township_name", "is_poor_village",
                                                     "is_deep_poverty_village", "exit_year")},
        "policy": None, "assessments": [], "not_assessed": []}
    try:
        policy = registry.resolve(code, as_of)
    except LookupError:
        answer["not_assessed"].append(not_assessed(f"{as_of} 没有适用于 {code} 的政策包",
                                                   f"no policy pack for {code} is valid on {as_of}"))
        return answer
    answer["policy"] = {**policy.policy_ref(), **coverage(registry, code, as_of)}
    if not has_standard(policy):
        lapsed = answer["policy"].get("lapsed")
        why_en = f"pack {policy.pack} has no village-exit standard"
        why_zh = f"政策包 {policy.pack} 没有贫困村退出标准"
        if lapsed:
            why_en += f" (the local pack {lapsed['pack']} is not valid on {as_of}: valid {lapsed['valid_from']}" \
                      f" to {lapsed['valid_to']})"
            why_zh += f"（本地政策包 {lapsed['pack']} 在 {as_of} 不在有效期内）"
        answer["not_assessed"].append(not_assessed(why_zh, why_en))
        return answer
    stats = await village_stats(session, code, record, as_of)
    answer["assessments"].append(village_exit(stats, policy).model_dump(mode="json"))
    return answer


async def village_record(session: AsyncSession, code: str) -> dict | None:
    return await session.scalar(select(villages.c.data).where(villages.c.code == code))


async def known_village(session: AsyncSession, code: str) -> tuple[bool, dict | None]:
    """A village is known to benefits by its record or by one of its households."""
    record = await village_record(session, code)
    if record is not None:
        return True, record
    household = await session.scalar(select(household_snapshots.c.household_id)
                                     .where(household_snapshots.c.village_code == code).limit(1))
    return household is not None, None


async def village_assessments(session: AsyncSession, code: str, as_of: dt.date,
                              packs: PackRegistry | None) -> dict[str, Any] | None:
    known, record = await known_village(session, code)
    return await assess(session, code, record, as_of, packs) if known else None


async def area_assessments(session: AsyncSession, area: str | None, as_of: dt.date, packs: PackRegistry | None,
                           *, cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
    """Villages under ``area`` (code prefix) in code order, ``limit`` per page, from their records and
    their households alike (a village whose record has not arrived yet is still listed)."""
    from_records = select(villages.c.code.label("code"))
    from_households = select(household_snapshots.c.village_code.label("code")).where(
        household_snapshots.c.village_code.is_not(None))
    if area:
        from_records = from_records.where(villages.c.code.startswith(area, autoescape=True))
        from_households = from_households.where(household_snapshots.c.village_code.startswith(area, autoescape=True))
    codes = union(from_records, from_households).subquery()
    query = select(codes.c.code).order_by(codes.c.code).limit(limit + 1)
    if cursor:
        query = query.where(codes.c.code > cursor)
    page = list((await session.execute(query)).scalars())
    more, page = len(page) > limit, page[:limit]
    records = dict((await session.execute(select(villages.c.code, villages.c.data)
                                          .where(villages.c.code.in_(page)))).all()) if page else {}
    items = [await assess(session, code, records.get(code), as_of, packs) for code in page]
    return items, (page[-1] if more else None)
