"""Administrative areas: province → city → county → township → village → villager group.

Codes follow GB/T 2260 and the statistical division codes: 2 digits province, 4 city, 6 county,
9 township, 12 village, 15 villager group (14 accepted); a parent is the code's prefix one level up
and must exist. Village changes publish ``village.updated`` (data: the village in snapshot shape
plus its flags and work team, and the area's version); other levels publish ``area.updated``.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from sqlalchemy import and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.common import StrictBody, invalid, problem_from_validation
from services.registry.households.merge_patch import apply_merge_patch
from services.registry.households.service import decode_cursor, encode_cursor, save_new_version
from services.registry.imports.tabular import parse_bool, read_table
from services.registry.outbox import publish_registry_event, publish_village_event
from services.registry.tables import areas, cadres, households, village_team
from shared.auth import Principal
from shared.bounds import Name
from shared.events import utcnow
from shared.money import Money
from shared.problems import Problem

Level = Literal["province", "city", "county", "township", "village", "group"]
LEVEL_BY_LENGTH: dict[int, Level] = {2: "province", 4: "city", 6: "county", 9: "township", 12: "village",
                                     14: "group", 15: "group"}
PARENT_LENGTH = {4: 2, 6: 4, 9: 6, 12: 9, 14: 12, 15: 12}
TEAM_ROLES = ("first_secretary", "team_leader", "team_member")


class VillageIndicators(StrictBody):
    """十一有一低于 (003 L83): each 'has' item, and the poverty incidence (exit: below 3%)."""

    featured_industry: bool | None = None
    housing_security: bool | None = None
    basic_medical: bool | None = None
    compulsory_education: bool | None = None
    road_access: bool | None = None
    drinking_water: bool | None = None
    electricity: bool | None = None
    public_services: bool | None = None
    television: bool | None = None
    collective_income: bool | None = None
    good_committees: bool | None = None
    poverty_incidence_pct: Decimal | None = Field(default=None, ge=0, le=100)


class AreaFlags(StrictBody):
    is_poor: bool = Field(default=False, description="贫困县 / 贫困村")
    is_deep_poverty: bool = Field(default=False, description="深度贫困村 (villages)")
    exit_year: int | None = Field(default=None, ge=1980, le=2100, description="摘帽 / 出列 year")
    collective_income: Money | None = Field(default=None, description="Village collective income, yuan per year")
    population: int | None = Field(default=None, ge=0, description="Registered (户籍) population: the denominator "
                                                                   "of the poverty incidence")
    indicators: VillageIndicators | None = None


class AreaIn(StrictBody):
    code: str = Field(pattern=r"^\d{2}(\d{2}(\d{2}(\d{3}(\d{3}(\d{2,3})?)?)?)?)?$")
    name: Name = Field(min_length=1, max_length=128)
    level: Level | None = None
    flags: AreaFlags = Field(default_factory=AreaFlags)

    @model_validator(mode="after")
    def _level_matches_code(self):
        expected = LEVEL_BY_LENGTH[len(self.code)]
        if self.level is not None and self.level != expected:
            raise ValueError(f"a {len(self.code)}-digit code is a {expected}, not a {self.level}")
        self.level = expected
        return self


def parent_of(code: str) -> str | None:
    length = PARENT_LENGTH.get(len(code))
    return code[:length] if length else None


def area_dict(row) -> dict[str, Any]:
    return {"code": row.code, "name": row.name, "level": row.level, "parent_code": row.parent_code,
            "flags": row.flags, "version": row.version}


async def get_area(session: AsyncSession, code: str, principal: Principal, *, for_update: bool = False) -> dict:
    """404 for an area outside the caller's area too, so other areas' codes are not confirmed."""
    if not principal.sees_area(code):
        raise area_not_found(code)
    query = select(areas).where(areas.c.code == code)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    if row is None:
        raise area_not_found(code)
    return area_dict(row)


def area_not_found(code: str) -> Problem:
    return Problem(404, "区划不存在 / Area not found", f"没有行政区划 {code} / No administrative area {code}.")


async def village_team_of(session: AsyncSession, code: str) -> dict[str, Any]:
    rows = (await session.execute(select(village_team.c.cadre_id, village_team.c.role).where(
        village_team.c.village_code == code, village_team.c.ended_at.is_(None)).order_by(village_team.c.id))).all()
    return {"first_secretary": next((r.cadre_id for r in rows if r.role == "first_secretary"), None),
            "team_leader": next((r.cadre_id for r in rows if r.role == "team_leader"), None),
            "members": [r.cadre_id for r in rows if r.role == "team_member"]}


async def village_payload(session: AsyncSession, area: dict) -> dict[str, Any]:
    """The village as ``village.updated`` carries it: snapshot-shaped, plus flags and work team."""
    township = (await session.execute(select(areas.c.code, areas.c.name).where(
        areas.c.code == area["parent_code"]))).first()
    flags = area["flags"]
    return {"code": area["code"], "name": area["name"],
            "township_code": township.code if township else area["parent_code"],
            "township_name": township.name if township else "",
            "is_poor_village": bool(flags.get("is_poor")), "is_deep_poverty_village": bool(flags.get("is_deep_poverty")),
            "exit_year": flags.get("exit_year"), "collective_income": flags.get("collective_income"),
            "population": flags.get("population"), "indicators": flags.get("indicators"),
            "work_team": await village_team_of(session, area["code"])}


# The village fields a household snapshot carries (API.md); the rest stays on the area.
SNAPSHOT_VILLAGE_FIELDS = ("code", "name", "township_code", "township_name", "is_poor_village",
                           "is_deep_poverty_village")


async def refresh_village_households(session: AsyncSession, village: dict, actor: str) -> int:
    """Bring the village part of every household in the village up to date.

    Each household whose copy differs gets a new version and a ``household.updated`` event
    (changed paths ``village.*``), so registry reads and the events agree with the area.
    """
    wanted = {field: village.get(field) for field in SNAPSHOT_VILLAGE_FIELDS}
    rows = (await session.execute(select(households.c.snapshot).where(households.c.village_code == village["code"])
                                  .order_by(households.c.id).with_for_update())).scalars().all()
    refreshed = 0
    for before in rows:
        current = before.get("village") or {}
        if all(current.get(field) == value for field, value in wanted.items()):
            continue
        await save_new_version(session, before, {**before, "village": {**current, **wanted}},
                               event_type="household.updated", actor=actor,
                               note=f"village {village['code']} updated", strict=False)
        refreshed += 1
    return refreshed


async def _publish(session: AsyncSession, area: dict, actor: str) -> None:
    if area["level"] == "village":
        payload = await village_payload(session, area)
        await publish_village_event(session, "village.updated", payload, area["version"], actor=actor)
        await refresh_village_households(session, payload, actor)
    else:
        await publish_registry_event(session, "area.updated", f"area/{area['code']}", area["code"],
                                     {"area": area, "version": area["version"]}, area["version"], actor=actor)


def _check_area_scope(principal: Principal, code: str) -> None:
    if not principal.sees_area(code):
        raise Problem(403, "Outside your area", f"Your token is limited to area {principal.area}.",
                      type_="https://jingzhun.dev/problems/forbidden")


async def upsert_area(session: AsyncSession, body: AreaIn, principal: Principal) -> tuple[str, dict]:
    """('created' | 'updated' | 'unchanged', area). Unchanged writes nothing and publishes nothing."""
    _check_area_scope(principal, body.code)
    parent = parent_of(body.code)
    if parent and not await session.scalar(select(areas.c.code).where(areas.c.code == parent)):
        raise invalid(["body", "code"], f"parent area {parent} does not exist; load areas top-down")
    flags = body.flags.model_dump(mode="json", exclude_none=True)
    existing = (await session.execute(select(areas).where(areas.c.code == body.code).with_for_update())).first()
    if existing is None:
        area = {"code": body.code, "name": body.name, "level": body.level, "parent_code": parent, "flags": flags,
                "version": 1}
        await session.execute(insert(areas).values(updated_at=utcnow(), **area))
        outcome = "created"
    else:
        if existing.name == body.name and existing.flags == flags:
            return "unchanged", area_dict(existing)
        area = {**area_dict(existing), "name": body.name, "flags": flags, "version": existing.version + 1}
        await session.execute(update(areas).where(areas.c.code == body.code)
                              .values(name=body.name, flags=flags, version=area["version"], updated_at=utcnow()))
        outcome = "updated"
    await _publish(session, area, principal.subject)
    return outcome, area


async def patch_area(session: AsyncSession, code: str, patch: Any, principal: Principal) -> dict:
    if not isinstance(patch, dict) or set(patch) - {"name", "flags"}:
        raise invalid(["body"], "a merge patch may change name and flags only")
    before = await get_area(session, code, principal, for_update=True)
    merged = apply_merge_patch({"code": code, "name": before["name"], "flags": before["flags"]}, patch)
    try:
        body = AreaIn.model_validate(merged)
    except ValidationError as exc:
        raise problem_from_validation(exc, "Invalid area") from exc
    return (await upsert_area(session, body, principal))[1]


async def list_areas(session: AsyncSession, principal: Principal, *, parent_code: str | None, level: str | None,
                     cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
    query = select(areas).order_by(areas.c.code).limit(limit + 1)
    if parent_code:
        query = query.where(areas.c.parent_code == parent_code)
    if level:
        query = query.where(areas.c.level == level)
    if principal.area and not principal.is_admin:
        query = query.where(areas.c.code.startswith(principal.area, autoescape=True))
    if cursor:
        query = query.where(areas.c.code > decode_cursor(cursor))
    rows = (await session.execute(query)).all()
    return [area_dict(r) for r in rows[:limit]], (encode_cursor(rows[limit - 1].code) if len(rows) > limit else None)


async def set_village_team(session: AsyncSession, code: str, first_secretary: str | None, team_leader: str | None,
                           members: list[str], principal: Principal) -> dict:
    area = await get_area(session, code, principal, for_update=True)
    if area["level"] != "village":
        raise invalid(["path", "code"], f"{code} is a {area['level']}, not a village")
    wanted = [(c, "first_secretary") for c in [first_secretary] if c] + \
             [(c, "team_leader") for c in [team_leader] if c] + [(c, "team_member") for c in members]
    ids = {c for c, _ in wanted}
    if len(ids) != len(wanted):
        raise invalid(["body"], "a cadre holds one role in a village team")
    # A cadre outside the caller's area is as unknown as a missing one (its id is not confirmed).
    known = {cadre_id for cadre_id, area_code in (await session.execute(
        select(cadres.c.id, cadres.c.area_code).where(cadres.c.id.in_(ids)))).all()
        if principal.sees_area(area_code)} if ids else set()
    if ids - known:
        raise invalid(["body"], f"unknown cadres: {', '.join(sorted(ids - known))}")
    now = utcnow()
    await session.execute(update(village_team).where(and_(village_team.c.village_code == code,
                                                          village_team.c.ended_at.is_(None))).values(ended_at=now))
    if wanted:
        await session.execute(insert(village_team), [{"village_code": code, "cadre_id": c, "role": r, "started_at": now}
                                                     for c, r in wanted])
    area = {**area, "version": area["version"] + 1}
    await session.execute(update(areas).where(areas.c.code == code).values(version=area["version"], updated_at=now))
    await _publish(session, area, principal.subject)
    return await village_team_of(session, code)


# ---------------------------------------------------------------- CSV / XLSX bulk load

AREA_COLUMNS = {
    "code": ("code", "代码", "区划代码", "行政区划代码"), "name": ("name", "名称", "区划名称"),
    "level": ("level", "级别", "层级"), "is_poor": ("is_poor", "贫困村", "贫困县", "是否贫困"),
    "is_deep_poverty": ("is_deep_poverty", "深度贫困村"), "exit_year": ("exit_year", "退出年度", "出列年度", "摘帽年度"),
    "collective_income": ("collective_income", "集体经济收入"),
    "population": ("population", "人口", "户籍人口", "总人口"),
    "poverty_incidence_pct": ("poverty_incidence_pct", "贫困发生率"),
}
INDICATOR_COLUMNS = {
    "featured_industry": "有特色产业", "housing_security": "有住房保障", "basic_medical": "有基本医疗保障",
    "compulsory_education": "有义务教育保障", "road_access": "有路通村屯", "drinking_water": "有饮用水",
    "electricity": "有电用", "public_services": "有公共服务设施", "television": "有电视看",
    "collective_income_has": "有村集体经济收入", "good_committees": "有好的两委班子",
}
LEVEL_WORDS = {"省": "province", "市": "city", "县": "county", "乡": "township", "镇": "township", "乡镇": "township",
               "村": "village", "组": "group", "村民小组": "group"}


def _column_map(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, title in enumerate(header):
        for key, names in AREA_COLUMNS.items():
            if title in names:
                found[key] = index
        for key, name in INDICATOR_COLUMNS.items():
            if title in (key, name):
                found[f"ind:{key}"] = index
    return found


def parse_area_rows(data: bytes, filename: str | None) -> tuple[list[tuple[int, AreaIn]], list[dict]]:
    header, rows = read_table(data, filename)
    columns = _column_map(header)
    errors: list[dict] = []
    for required in ("code", "name"):
        if required not in columns:
            errors.append({"row": 1, "column": AREA_COLUMNS[required][0], "message": "required column missing"})
    if errors:
        return [], errors
    parsed = []
    for offset, row in enumerate(rows):
        line = offset + 2
        cell = {key: row[index] for key, index in columns.items()}
        try:
            flags: dict[str, Any] = {}
            for key in ("is_poor", "is_deep_poverty"):
                if cell.get(key):
                    flags[key] = parse_bool(cell[key])
            if cell.get("exit_year"):
                flags["exit_year"] = int(cell["exit_year"])
            if cell.get("collective_income"):
                flags["collective_income"] = cell["collective_income"]
            if cell.get("population"):
                flags["population"] = int(cell["population"])
            indicators = {("collective_income" if k == "collective_income_has" else k): parse_bool(cell[f"ind:{k}"])
                          for k in INDICATOR_COLUMNS if cell.get(f"ind:{k}")}
            if cell.get("poverty_incidence_pct"):
                indicators["poverty_incidence_pct"] = cell["poverty_incidence_pct"].rstrip("%")
            if indicators:
                flags["indicators"] = indicators
            level = cell.get("level") or None
            parsed.append((line, AreaIn.model_validate({"code": cell["code"], "name": cell["name"],
                                                         "level": LEVEL_WORDS.get(level, level), "flags": flags})))
        except ValidationError as exc:
            for error in exc.errors():
                errors.append({"row": line, "column": ".".join(str(p) for p in error["loc"]) or "row",
                               "message": error["msg"]})
        except ValueError as exc:
            errors.append({"row": line, "column": "flags", "message": str(exc)})
    codes = [area.code for _, area in parsed]
    seen: set[str] = set()
    for line, area in parsed:
        if area.code in seen:
            errors.append({"row": line, "column": "code", "message": f"area {area.code} appears twice"})
        seen.add(area.code)
    del codes
    return parsed, errors


async def load_areas(session: AsyncSession, data: bytes, filename: str | None, principal: Principal, *,
                     parsed_rows: tuple[list, list[dict]] | None = None) -> dict:
    """Validate the whole file, then upsert top-down in one transaction (all or nothing). A server passes
    ``parsed_rows`` (``parse_area_rows`` run off the event loop)."""
    parsed, errors = parsed_rows if parsed_rows is not None else parse_area_rows(data, filename)
    in_file = {area.code for _, area in parsed}
    for line, area in parsed:
        parent = parent_of(area.code)
        if parent and parent not in in_file and not await session.scalar(
                select(areas.c.code).where(areas.c.code == parent)):
            errors.append({"row": line, "column": "code", "message": f"parent area {parent} is neither in the file "
                                                                     "nor loaded"})
        if not principal.sees_area(area.code):
            errors.append({"row": line, "column": "code", "message": f"outside your area {principal.area}"})
    if errors:
        raise Problem(422, "Invalid area file", f"{len(errors)} problem(s); nothing was loaded.",
                      type_="https://jingzhun.dev/problems/validation", report={"rows": len(parsed), "errors": errors},
                      errors=[{"loc": ["file", e["row"], e["column"]], "msg": e["message"]} for e in errors[:1000]])
    outcomes = {"created": 0, "updated": 0, "unchanged": 0}
    for _, area in sorted(parsed, key=lambda item: len(item[1].code)):
        outcome, _ = await upsert_area(session, area, principal)
        outcomes[outcome] += 1
    return {"rows": len(parsed), **outcomes}
