"""One-stop settlement for insurers (001 L369-L387): layers, year-to-date out-of-pocket, roster, records.

A stay is settled once per insurer claim id: a resend returns the stored result and
changes nothing. The person's year-to-date out-of-pocket lives in ``settlement_ytd``;
its row is locked (PostgreSQL) or the database write lock is held (SQLite) before the
stay is computed, so two stays of one person settle one after the other and the
"50% above 10,000 a year" relief is neither missed nor paid twice.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from decimal import Decimal

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.benefits.packs import resolve_pack
from services.benefits.partners.access import client_of, record_access
from services.benefits.partners.lookup import FoundPerson, find_person, id_hash, next_sequence, roster_relevant
from services.benefits.partners.tables import person_lookup, settlement_ytd, settlements
from services.benefits.rules.common import _add_years, registered_in_effect
from services.benefits.rules.health import HospitalBill, PersonContext, one_stop_settlement
from services.benefits.tables import outbox
from shared.auth import Principal
from shared.config import TOPIC_BENEFITS
from shared.db import json_dumps
from shared.events import Envelope, utcnow
from shared.idcard import mask_id_number
from shared.money import ZERO, format_yuan, yuan
from shared.outbox import add_to_outbox
from shared.problems import Problem
from shared.snapshot import Household

log = logging.getLogger("benefits.settlement")

SCOPE = "settlement"
PROGRAM = "health.one_stop_settlement"


def _digest(value) -> str:
    return hashlib.sha256(json_dumps(value).encode()).hexdigest()


def covered_on(found: FoundPerson | None, day: dt.date):
    """(covered, policy, household) for the person on ``day``."""
    if found is None or found.person.get("deceased"):
        return False, None, None
    household = Household.model_validate(found.snapshot)
    policy = resolve_pack(household.region_code, day)
    covered = (household.status != "removed" and policy.enabled(PROGRAM)
               and registered_in_effect(household, policy, day))
    return covered, policy, household


async def _lock_ytd(session: AsyncSession, person_hash: str, year: int) -> Decimal:
    """Create the person's year row if needed and lock it for the rest of the transaction."""
    dialect = session.bind.dialect.name
    values = dict(id_hash=person_hash, year=year, out_of_pocket=ZERO, stays=0, updated_at=utcnow())
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert
        await session.execute(pg_insert(settlement_ytd).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert
        await session.execute(sqlite_insert(settlement_ytd).values(**values).on_conflict_do_nothing())
    query = select(settlement_ytd.c.out_of_pocket).where(settlement_ytd.c.id_hash == person_hash,
                                                         settlement_ytd.c.year == year)
    if dialect == "postgresql":
        query = query.with_for_update()
    return Decimal(await session.scalar(query))


async def _stored(session: AsyncSession, client_id: str, claim_id: str):
    return (await session.execute(select(settlements.c.body_hash, settlements.c.result)
                                  .where(settlements.c.client_id == client_id, settlements.c.claim_id == claim_id))
            ).first()


def _replay(stored, digest: str) -> dict:
    if stored.body_hash != digest:
        raise Problem(409, "Claim id reused", "This claim_id was already settled with a different bill.",
                      type_="https://jingzhun.dev/problems/settlement/claim_id_reused", code="claim_id_reused")
    return {**stored.result, "replayed": True}


async def one_stop(session: AsyncSession, principal: Principal, body: dict) -> dict:
    client_id = client_of(principal)
    person_hash = id_hash(body["id_number"])
    request_view = {k: v for k, v in body.items() if k not in ("id_number", "claim_id")}
    digest = _digest({"person": person_hash, **request_view})
    claim_id = body.get("claim_id") or f"auto-{digest[:32]}"
    endpoint = "POST /v1/settlements/one-stop"
    stored = await _stored(session, client_id, claim_id)
    if stored is not None:
        result = _replay(stored, digest)
        await record_access(session, principal, scope=SCOPE, endpoint=endpoint, id_number=body["id_number"],
                            decision_id=result["settlement_id"], decision="replayed")
        return result
    bill = HospitalBill(admission_date=body["admission_date"], discharge_date=body["discharge_date"],
                        hospital_level=body["hospital_level"], in_district=body["in_district"],
                        total_cost=body["total_cost"], in_policy_cost=body["in_policy_cost"])
    day = body["discharge_date"]
    found = await find_person(session, body["id_number"])
    covered, policy, household = covered_on(found, day)
    settlement_id = str(uuid.uuid4())
    total = yuan(bill.total_cost)
    if covered and bill.in_district:
        ytd_before = await _lock_ytd(session, person_hash, day.year)
        stored = await _stored(session, client_id, claim_id)  # a concurrent resend may have won the lock
        if stored is not None:
            return _replay(stored, digest)
        person = PersonContext(registered=True, dibao="dibao" in household.categories,
                               tekun=bool({"tekun_dispersed", "tekun_concentrated"} & set(household.categories)))
        computed = one_stop_settlement(bill, person, policy, ytd_before)
        result = {**computed.to_json(), "reasons": [], "policy": {"pack": policy.pack, "version": policy.version}}
        await session.execute(update(settlement_ytd).where(settlement_ytd.c.id_hash == person_hash,
                                                           settlement_ytd.c.year == day.year)
                              .values(out_of_pocket=settlement_ytd.c.out_of_pocket + computed.patient_pays,
                                      stays=settlement_ytd.c.stays + 1, updated_at=utcnow()))
        patient_pays = computed.patient_pays
    else:
        # Not covered: only basic information, nothing about the person's situation.
        reasons = ["not_in_district"] if covered else ["not_covered"]
        result = {"eligible": False, "layers": [], "patient_pays": format_yuan(total), "effective_ratio": "0.0000",
                  "year_to_date_out_of_pocket": None, "reasons": reasons}
        patient_pays = total
    result.update(settlement_id=settlement_id, claim_id=claim_id, id_number=mask_id_number(body["id_number"]))
    now = utcnow()
    seq = await next_sequence(session, "settlements")
    await session.execute(insert(settlements).values(
        settlement_id=settlement_id, client_id=client_id, claim_id=claim_id, seq=seq, id_hash=person_hash,
        id_masked=result["id_number"], household_id=found.household_id if found else None,
        person_id=found.person_id if found else None, year=day.year, eligible=result["eligible"],
        total_cost=total, patient_pays=patient_pays, body_hash=digest, request=request_view, result=result,
        created_at=now))
    person_ref = {"household_id": found.household_id, "person_id": found.person_id} if found else None
    envelope = Envelope(source="benefits", type="settlement.decided", time=now, actor=principal.subject,
                        subject=f"household/{found.household_id}" if found else f"client/{client_id}",
                        data={**{k: v for k, v in result.items()}, "client_id": client_id,
                              "bill": {k: (v.isoformat() if isinstance(v, dt.date) else str(v))
                                       for k, v in request_view.items()}, **(person_ref or {})})
    await add_to_outbox(session, outbox, TOPIC_BENEFITS, found.household_id if found else client_id, envelope)
    await record_access(session, principal, scope=SCOPE, endpoint=endpoint, id_number=body["id_number"],
                        decision_id=settlement_id, decision="settled" if result["eligible"] else "not_covered",
                        person=person_ref)
    log.info("settlement decided", extra={"fields": {"client_id": client_id, "settlement_id": settlement_id,
                                                     "id_number": result["id_number"],
                                                     "eligible": result["eligible"]}})
    return result


# --- roster and records ------------------------------------------------------------------

def _coverage(row, as_of: dt.date) -> dict | None:
    """The roster entry of a look-up row, or None when the person is not covered on ``as_of``."""
    if not roster_relevant(dict(row._mapping)):
        return None
    policy = resolve_pack(row.region_code, as_of)
    if not policy.enabled(PROGRAM):
        return None
    coverage_until = None
    if row.status in ("exited", "monitored"):
        until = policy.param("post_exit_policy_until", None)
        years = int(policy.param("post_exit_policy_years", Decimal(0)))
        ends = [until] if until is not None else []
        if years > 0 and row.exit_date is not None:
            ends.append(_add_years(row.exit_date, years) - dt.timedelta(days=1))
        if not ends:
            return None
        coverage_until = max(ends)
        if coverage_until < as_of:
            return None
    category = {"registered": "registered", "returned": "returned"}.get(row.status, "exited_in_window")
    return {"coverage_from": dt.date(row.identified_year, 1, 1).isoformat() if row.identified_year else None,
            "coverage_until": coverage_until.isoformat() if coverage_until else None,
            "category": category, "categories": row.categories}


async def roster_page(session: AsyncSession, principal: Principal, cursor: int, limit: int, as_of: dt.date) -> dict:
    """Covered persons and every change since ``cursor`` (0 = from the start), oldest change first.

    Each item is the person's current state; ``covered: false`` tells the insurer to drop them.
    From the start (cursor 0), persons never covered are left out.
    """
    rows = (await session.execute(select(person_lookup).where(person_lookup.c.roster_seq > cursor)
                                  .order_by(person_lookup.c.roster_seq).limit(limit))).all()
    items = []
    for row in rows:
        coverage = _coverage(row, as_of)
        item = {"person_ref": row.id_hash[:24], "id_number": row.id_masked, "covered": coverage is not None,
                "change_seq": row.roster_seq}
        if coverage is not None:
            item.update(coverage)
        elif cursor == 0:
            continue
        items.append(item)
    next_cursor = str(rows[-1].roster_seq) if rows else (str(cursor) if cursor else None)
    await record_access(session, principal, scope=SCOPE, endpoint="GET /v1/settlements/roster",
                        decision=f"{len(items)} persons")
    return {"items": items, "next_cursor": next_cursor, "as_of": as_of.isoformat(),
            "more": len(rows) == limit}


async def records_page(session: AsyncSession, principal: Principal, cursor: int, limit: int) -> dict:
    query = select(settlements.c.seq, settlements.c.result, settlements.c.request, settlements.c.client_id,
                   settlements.c.created_at).where(settlements.c.seq > cursor)
    if not principal.is_admin:
        query = query.where(settlements.c.client_id == client_of(principal))
    rows = (await session.execute(query.order_by(settlements.c.seq).limit(limit))).all()
    items = [{**row.result, "seq": row.seq, "client_id": row.client_id,
              "bill": {k: (v if not isinstance(v, dt.date) else v.isoformat()) for k, v in row.request.items()},
              "recorded_at": row.created_at.isoformat()} for row in rows]
    await record_access(session, principal, scope=SCOPE, endpoint="GET /v1/settlements",
                        decision=f"{len(items)} records")
    return {"items": items, "next_cursor": str(rows[-1].seq) if rows else (str(cursor) if cursor else None),
            "more": len(rows) == limit}

