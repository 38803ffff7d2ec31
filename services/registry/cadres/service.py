"""Cadres (帮扶干部, 第一书记, 驻村工作队) and their pairing with households (结对帮扶).

不脱贫不脱钩: a household keeps its assistance cadre until it has exited. Ending the only active
pairing of a household that has not exited is refused (409); a handover (another cadre already
paired) is allowed, so a transferred cadre can be replaced without the household going unassisted.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, ValidationError
from sqlalchemy import and_, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.common import StrictBody, invalid, problem_from_validation
from services.registry.households.merge_patch import apply_merge_patch
from services.registry.households.service import decode_cursor, encode_cursor, load_household
from services.registry.outbox import publish_household_event, publish_registry_event
from services.registry.tables import cadres, pairings, village_team
from shared.auth import Principal
from shared.bounds import Name
from shared.events import as_aware, utcnow
from shared.problems import Problem

CadreRole = Literal["pairing_cadre", "first_secretary", "work_team", "village_cadre", "township_cadre", "other"]
# Statuses in which a household has left poverty or the register, so its cadre may be released.
RELEASABLE = ("exited", "removed")
NOT_DELINKED = "https://jingzhun.dev/problems/not-exited-not-delinked"


class CadreIn(StrictBody):
    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:@-]{1,40}$",
                           description="Cadre id = the `sub` of the cadre's token (assigned if omitted)")
    name: Name = Field(min_length=1, max_length=64)
    unit: Name = Field(min_length=1, max_length=128, description="Sending unit (帮扶单位)")
    role: CadreRole = "pairing_cadre"
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 -]{5,20}$")
    area_code: str | None = Field(default=None, pattern=r"^\d{2,15}$")


def cadre_dict(row) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "unit": row.unit, "role": row.role, "phone": row.phone,
            "area_code": row.area_code, "version": row.version}


def _event_data(cadre: dict) -> dict:
    return {"cadre": {k: v for k, v in cadre.items() if k != "phone"}, "version": cadre["version"]}


def cadre_not_found(cadre_id: str) -> Problem:
    return Problem(404, "干部不存在 / Cadre not found", f"没有干部 {cadre_id} / No cadre {cadre_id}.")


def check_target_area(principal: Principal, area_code: str | None) -> None:
    """A write may not place a cadre outside the caller's area (decided on the code alone, before any
    look-up, so the 403 confirms nothing; an area-limited caller cannot clear a cadre's area either)."""
    if not principal.sees_area(area_code):
        raise Problem(403, "不在你的辖区 / Outside your area",
                      f"你的令牌限于辖区 {principal.area} / Your token is limited to area {principal.area}.",
                      type_="https://jingzhun.dev/problems/forbidden")


async def get_cadre(session: AsyncSession, cadre_id: str, principal: Principal, *, for_update: bool = False) -> dict:
    """404 for a cadre outside the caller's area too, so other areas' ids are not confirmed."""
    query = select(cadres).where(cadres.c.id == cadre_id)
    if for_update:
        query = query.with_for_update()
    row = (await session.execute(query)).first()
    if row is None or not principal.sees_area(row.area_code):
        raise cadre_not_found(cadre_id)
    return cadre_dict(row)


async def create_cadre(session: AsyncSession, body: CadreIn, principal: Principal) -> dict:
    if body.area_code is None and principal.area and not principal.is_admin:
        # An area-limited office registers its cadres in its own area, else it could not see them again.
        body = body.model_copy(update={"area_code": principal.area})
    check_target_area(principal, body.area_code)
    cadre_id = body.id or f"c-{uuid.uuid4().hex[:12]}"
    if await session.scalar(select(cadres.c.id).where(cadres.c.id == cadre_id)):
        raise Problem(409, "Cadre exists", f"Cadre {cadre_id} already exists.")
    now = utcnow()
    values = {**body.model_dump(exclude={"id"}), "id": cadre_id, "version": 1}
    await session.execute(insert(cadres).values(created_at=now, updated_at=now, **values))
    await publish_registry_event(session, "cadre.registered", f"cadre/{cadre_id}", cadre_id, _event_data(values), 1,
                                 actor=principal.subject)
    return values


async def patch_cadre(session: AsyncSession, cadre_id: str, patch: Any, principal: Principal) -> dict:
    if not isinstance(patch, dict) or "id" in patch:
        raise invalid(["body"], "a JSON merge patch object without id")
    before = await get_cadre(session, cadre_id, principal, for_update=True)
    merged = apply_merge_patch({k: v for k, v in before.items() if k not in ("version",)}, patch)
    try:
        body = CadreIn.model_validate(merged)
    except ValidationError as exc:
        raise problem_from_validation(exc, "Invalid cadre") from exc
    check_target_area(principal, body.area_code)  # no moving one's own cadre out of one's area
    after = {**body.model_dump(), "version": before["version"] + 1}
    await session.execute(update(cadres).where(cadres.c.id == cadre_id)
                          .values(updated_at=utcnow(), **{k: v for k, v in after.items() if k != "id"}))
    await publish_registry_event(session, "cadre.updated", f"cadre/{cadre_id}", cadre_id, _event_data(after),
                                 after["version"], actor=principal.subject)
    return after


async def list_cadres(session: AsyncSession, principal: Principal, *, unit: str | None, area_code: str | None,
                      cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
    query = select(cadres).order_by(cadres.c.id).limit(limit + 1)
    if unit:
        query = query.where(cadres.c.unit == unit)
    if area_code:
        query = query.where(cadres.c.area_code.startswith(area_code, autoescape=True))
    if principal.area and not principal.is_admin:
        query = query.where(cadres.c.area_code.startswith(principal.area, autoescape=True))
    if cursor:
        query = query.where(cadres.c.id > decode_cursor(cursor))
    rows = (await session.execute(query)).all()
    return [cadre_dict(r) for r in rows[:limit]], (encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)


def pairing_dict(row) -> dict[str, Any]:
    return {"id": row.id, "household_id": row.household_id, "cadre_id": row.cadre_id,
            "started_at": as_aware(row.started_at).isoformat(), "started_by": row.started_by,
            "ended_at": row.ended_at and as_aware(row.ended_at).isoformat(), "ended_by": row.ended_by,
            "end_reason": row.end_reason}


def _active(household_id: str):
    return and_(pairings.c.household_id == household_id, pairings.c.ended_at.is_(None))


async def pair(session: AsyncSession, household_id: str, cadre_id: str, principal: Principal, *,
               at: datetime | None = None) -> dict:
    """``at``: when the pairing began, for pairings brought in from before the system (default now)."""
    snapshot = await load_household(session, household_id, principal, for_update=True)
    await get_cadre(session, cadre_id, principal)  # only a cadre the caller may see
    if snapshot["status"] == "removed":
        raise Problem(409, "Household removed", "A removed household (剔除) is not paired with cadres.")
    if await session.scalar(select(pairings.c.id).where(_active(household_id), pairings.c.cadre_id == cadre_id)):
        raise Problem(409, "Already paired", f"Cadre {cadre_id} is already paired with household {household_id}.")
    now = at or utcnow()
    result = await session.execute(insert(pairings).values(household_id=household_id, cadre_id=cadre_id,
                                                           started_at=now, started_by=principal.subject)
                                   .returning(pairings))
    pairing = pairing_dict(result.first())
    await publish_household_event(session, "pairing.started", snapshot, actor=principal.subject,
                                  extra={"pairing": pairing})
    return pairing


async def unpair(session: AsyncSession, household_id: str, cadre_id: str, reason: str | None,
                 principal: Principal, *, at: datetime | None = None) -> dict:
    snapshot = await load_household(session, household_id, principal, for_update=True)
    row = (await session.execute(select(pairings).where(_active(household_id), pairings.c.cadre_id == cadre_id))
           ).first()
    if row is None:
        raise Problem(404, "Not paired", f"Cadre {cadre_id} is not paired with household {household_id}.")
    others = await session.scalar(select(pairings.c.id).where(_active(household_id), pairings.c.cadre_id != cadre_id)
                                  .limit(1))
    if snapshot["status"] not in RELEASABLE and not (snapshot["status"] == "monitored" and snapshot.get("exit_date")) \
            and others is None:
        raise Problem(409, "Household has not exited (不脱贫不脱钩)",
                      f"Household {household_id} is {snapshot['status']}: it keeps its assistance cadre until it "
                      "has exited. Pair the replacement cadre first to hand over.", type_=NOT_DELINKED,
                      status_of_household=snapshot["status"])
    now = at or utcnow()
    await session.execute(update(pairings).where(pairings.c.id == row.id)
                          .values(ended_at=now, ended_by=principal.subject, end_reason=reason))
    pairing = pairing_dict((await session.execute(select(pairings).where(pairings.c.id == row.id))).first())
    await publish_household_event(session, "pairing.ended", snapshot, actor=principal.subject,
                                  extra={"pairing": pairing})
    return pairing


async def household_pairings(session: AsyncSession, household_id: str, principal: Principal) -> list[dict]:
    await load_household(session, household_id, principal)
    rows = (await session.execute(select(pairings).where(pairings.c.household_id == household_id)
                                  .order_by(pairings.c.id))).all()
    return [pairing_dict(r) for r in rows]


async def may_visit(session: AsyncSession, cadre_id: str, snapshot: dict) -> bool:
    """A cadre visits the households paired with them, and those of a village whose team they are on."""
    if await session.scalar(select(pairings.c.id).where(_active(snapshot["id"]), pairings.c.cadre_id == cadre_id)):
        return True
    village_code = (snapshot.get("village") or {}).get("code")
    return bool(village_code and await session.scalar(select(village_team.c.id).where(
        village_team.c.village_code == village_code, village_team.c.cadre_id == cadre_id,
        village_team.c.ended_at.is_(None))))
