"""One-stop settlement for insurers (001 L369-L387): layers, year-to-date out-of-pocket, roster, records.

Coverage of a stay is judged on the **admission date**: the poor are admitted under
"treatment first, payment later" (先诊疗后付费, 001 L369), so whether the person is a
registered poor person is settled when they are admitted, and the whole stay follows it.
On that day the household's status (from its status history, not today's) must be
registered or returned, or exited within the pack's post-exit window measured to the
admission date; a death recorded after admission (during or after the stay) does not
matter, one before admission does. The layers are computed with the pack valid on the
discharge date, when the bill is settled.

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
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.policy import resolve_pack
from services.benefits.partners.access import client_of, record_access
from services.benefits.partners.lookup import (FoundPerson, find_person, id_hash, next_sequence, status_history,
                                               status_on)
from services.benefits.partners.service import take_write_turn
from services.benefits.partners.tables import (household_status_history, partner_sequences, person_lookup,
                                              settlement_ytd, settlements)
from services.benefits.rules.common import RuleContext, _add_years
from services.benefits.rules.health import HospitalBill, PersonContext, one_stop_settlement
from services.benefits.rules.safety_net import patient_safety_net
from services.benefits.tables import outbox
from shared.auth import Principal
from shared.bounds import MONEY_MAX
from shared.config import TOPIC_BENEFITS
from shared.db import json_dumps
from shared.events import Envelope, utcnow
from shared.idcard import mask_id_number
from shared.money import ZERO, format_yuan, yuan
from shared.outbox import add_to_outbox
from shared.problems import Problem, no_policy_pack_problem
from shared.snapshot import Household

log = logging.getLogger("benefits.settlement")

SCOPE = "settlement"
PROGRAM = "health.one_stop_settlement"


def _digest(value) -> str:
    return hashlib.sha256(json_dumps(value).encode()).hexdigest()


@dataclass(frozen=True)
class Coverage:
    """Whether a person is covered on a day, why, and the interval that answer holds for.

    Covered: ``effective_from`` is the start of the covered period (registration), and
    ``effective_to`` its last day when known (end of the post-exit window, death).
    Not covered: ``effective_from`` is the day the coverage ended (death, removal, the day
    after the window), ``effective_to`` is None.
    """
    covered: bool
    reason: str  # registered | returned | exited | deceased | removed | post_exit_window_ended | not_covered
    effective_from: dt.date | None = None
    effective_to: dt.date | None = None

    def to_json(self) -> dict:
        return {"covered": self.covered, "reason": self.reason,
                "effective_from": self.effective_from.isoformat() if self.effective_from else None,
                "effective_to": self.effective_to.isoformat() if self.effective_to else None}


NOT_COVERED = Coverage(False, "not_covered")
_COVERED_KINDS = ("registered", "returned")


def _exited_kind(entry) -> bool:
    return entry.status == "exited" or (entry.status == "monitored" and "marginal" not in (entry.categories or []))


def window_end(policy, exit_date: dt.date | None) -> dt.date | None:
    """Last day of the post-exit window (same rule as ``rules.common.post_exit_window_open``)."""
    until = policy.param("post_exit_policy_until", None)
    years = int(policy.param("post_exit_policy_years", Decimal(0)))
    ends = [until] if until is not None else []
    if years > 0 and exit_date is not None:
        ends.append(_add_years(exit_date, years) - dt.timedelta(days=1))
    return max(ends) if ends else None


def _covered_since(history, entry, identified_year: int | None) -> dt.date | None:
    """Start of the unbroken covered run (registered, returned, exited) that ``entry`` belongs to."""
    since, in_run = None, False
    for item in history:
        if item.status in _COVERED_KINDS or _exited_kind(item):
            if not in_run:
                since, in_run = item.effective_on, True
        else:
            in_run = False
        if item is entry:
            break
    if since is None and identified_year:
        since = dt.date(identified_year, 1, 1)
    return since


def coverage_on(day: dt.date, *, history, region_code: str, identified_year: int | None, deceased: bool,
                deceased_on: dt.date | None, resolve=resolve_pack) -> Coverage:
    """Coverage of one person on ``day`` from the household's status history (pure)."""
    if deceased and (deceased_on is None or deceased_on < day):
        return Coverage(False, "deceased", deceased_on)
    entry = status_on(history, day)
    if entry is None:
        return NOT_COVERED
    try:
        policy = resolve(region_code, day)
    except LookupError:  # before every pack of the region (the national one starts 2014): no programme yet
        return NOT_COVERED
    if not policy.enabled(PROGRAM):
        return NOT_COVERED
    until = deceased_on if deceased else None
    if entry.status in _COVERED_KINDS:
        return Coverage(True, entry.status, _covered_since(history, entry, identified_year), until)
    if _exited_kind(entry):
        end = window_end(policy, entry.exit_date)
        if end is not None and day <= end:
            return Coverage(True, "exited", _covered_since(history, entry, identified_year),
                            min(end, until) if until else end)
        return Coverage(False, "post_exit_window_ended",
                        end + dt.timedelta(days=1) if end is not None else entry.effective_on or entry.exit_date)
    if entry.status == "removed":
        return Coverage(False, "removed", entry.effective_on)
    return NOT_COVERED  # candidate, marginal: never on the roster, and the insurer learns nothing more


@dataclass(frozen=True)
class _Status:
    status: str
    exit_date: dt.date | None
    categories: list
    effective_on: dt.date | None


async def _history_of(session: AsyncSession, found: FoundPerson) -> list:
    history = await status_history(session, found.household_id)
    if history:
        return list(history)
    snapshot = found.snapshot  # stored before the history existed: its current status, since ever
    exit_date = snapshot.get("exit_date")
    return [_Status(snapshot["status"], dt.date.fromisoformat(exit_date) if exit_date else None,
                    snapshot.get("categories") or [], None)]


async def stay_coverage(session: AsyncSession, found: FoundPerson | None, admission: dt.date) -> Coverage:
    if found is None:
        return NOT_COVERED
    return coverage_on(admission, history=await _history_of(session, found), region_code=found.region_code,
                       identified_year=found.snapshot.get("identified_year"),
                       deceased=bool(found.person.get("deceased")), deceased_on=found.deceased_on)


#: Why a stay is not covered, as the insurer is told (unknown people: only ``not_covered``).
REFUSAL_REASONS = {"deceased": "deceased_before_admission", "removed": "removed",
                   "post_exit_window_ended": "post_exit_window_ended", "not_covered": "not_covered"}


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
        await take_write_turn(session)
        await record_access(session, principal, scope=SCOPE, endpoint=endpoint, id_number=body["id_number"],
                            decision_id=result["settlement_id"], decision="replayed", eligible=result["eligible"])
        return result
    bill = HospitalBill(admission_date=body["admission_date"], discharge_date=body["discharge_date"],
                        hospital_level=body["hospital_level"], in_district=body["in_district"],
                        total_cost=body["total_cost"], in_policy_cost=body["in_policy_cost"])
    day = body["discharge_date"]
    found = await find_person(session, body["id_number"])
    coverage = await stay_coverage(session, found, body["admission_date"])
    covered = coverage.covered
    settlement_id = str(uuid.uuid4())
    total = yuan(bill.total_cost)
    if covered and bill.in_district:
        household = Household.model_validate(found.snapshot)
        try:
            policy = resolve_pack(household.region_code, day)  # the bill is settled at discharge
        except LookupError as exc:  # a discharge before every pack of the region: no rule settles it
            raise no_policy_pack_problem(exc, ["body", "discharge_date"]) from None
        await take_write_turn(session)
        ytd_before = await _lock_ytd(session, person_hash, day.year)
        stored = await _stored(session, client_id, claim_id)  # a concurrent resend may have won the lock
        if stored is not None:
            return _replay(stored, digest)
        dibao, tekun = patient_safety_net(RuleContext(household, policy, day), found.person_id)
        person = PersonContext(registered=True, dibao=dibao, tekun=tekun)
        computed = one_stop_settlement(bill, person, policy, ytd_before)
        if ytd_before + computed.patient_pays > MONEY_MAX:  # the year's column (NUMERIC(14, 2)) would overflow
            raise Problem(422, "Invalid request", f"The year's out-of-pocket total would exceed {MONEY_MAX}.", type_="https://jingzhun.dev/problems/validation",
                          errors=[{"loc": ["body", "total_cost"], "msg": "year-to-date total out of range"}])
        result = {**computed.to_json(), "reasons": [], "policy": {"pack": policy.pack, "version": policy.version}}
        await session.execute(update(settlement_ytd).where(settlement_ytd.c.id_hash == person_hash,
                                                           settlement_ytd.c.year == day.year)
                              .values(out_of_pocket=settlement_ytd.c.out_of_pocket + computed.patient_pays,
                                      stays=settlement_ytd.c.stays + 1, updated_at=utcnow()))
        patient_pays = computed.patient_pays
    else:
        # Not covered: only basic information, nothing about the person's situation.
        reasons = ["not_in_district"] if covered else [REFUSAL_REASONS[coverage.reason]]
        result = {"eligible": False, "layers": [], "patient_pays": format_yuan(total), "effective_ratio": "0.0000",
                  "year_to_date_out_of_pocket": None, "reasons": reasons}
        patient_pays = total
    result.update(settlement_id=settlement_id, claim_id=claim_id, id_number=mask_id_number(body["id_number"]),
                  coverage_judged_on=body["admission_date"].isoformat())
    now = utcnow()
    person_ref = {"household_id": found.household_id, "person_id": found.person_id} if found else None
    envelope = Envelope(source="benefits", type="settlement.decided", time=now, actor=principal.subject,
                        subject=f"household/{found.household_id}" if found else f"client/{client_id}",
                        data={**{k: v for k, v in result.items()}, "client_id": client_id,
                              "bill": {k: (v.isoformat() if isinstance(v, dt.date) else str(v))
                                       for k, v in request_view.items()}, **(person_ref or {})})
    await take_write_turn(session)
    await add_to_outbox(session, outbox, TOPIC_BENEFITS, found.household_id if found else client_id, envelope)
    paid = total - patient_pays
    await record_access(session, principal, scope=SCOPE, endpoint=endpoint, id_number=body["id_number"],
                        decision_id=settlement_id, decision="settled" if result["eligible"] else result["reasons"][0],
                        person=person_ref, eligible=result["eligible"],
                        outcome={"paid": format_yuan(paid), "patient_pays": format_yuan(patient_pays),
                                 "total_cost": format_yuan(total), "reasons": result["reasons"]})
    # No feed position yet (seq is null): ``sequence_settlements`` gives it after commit, so settlements
    # do not wait for each other on one sequence row (issue 15).
    await session.execute(insert(settlements).values(
        settlement_id=settlement_id, client_id=client_id, claim_id=claim_id, seq=None, id_hash=person_hash,
        id_masked=result["id_number"], household_id=found.household_id if found else None,
        person_id=found.person_id if found else None, year=day.year, eligible=result["eligible"],
        total_cost=total, patient_pays=patient_pays, body_hash=digest, request=request_view, result=result,
        created_at=now))
    log.info("settlement decided", extra={"fields": {"client_id": client_id, "settlement_id": settlement_id,
                                                     "id_number": result["id_number"],
                                                     "eligible": result["eligible"]}})
    return result


# --- roster and records ------------------------------------------------------------------

def roster_entry(row, as_of: dt.date) -> dict:
    """What the roster says about a look-up row on ``as_of``: covered or not, why, and since when.

    ``reason``: registered, returned, exited (within the post-exit window) when covered;
    deceased, removed, post_exit_window_ended, left_household or not_covered when not.
    ``effective_date``: the day that reason took effect (registration, return, exit, death,
    removal, the first day after the window).
    """
    if not row.in_household:
        return {"covered": False, "reason": "left_household", "effective_date": row.updated_at.date().isoformat()}
    current = _Status(row.status, row.exit_date, row.categories or [], None)
    coverage = coverage_on(as_of, history=[current], region_code=row.region_code,
                           identified_year=row.identified_year, deceased=row.deceased, deceased_on=row.deceased_on)
    if not coverage.covered:
        effective = row.status_since if coverage.reason == "removed" else coverage.effective_from
        return {"covered": False, "reason": coverage.reason,
                "effective_date": effective.isoformat() if effective else None}
    since = coverage.effective_from
    effective = row.exit_date if coverage.reason == "exited" else (row.status_since or since)
    category = {"registered": "registered", "returned": "returned"}.get(row.status, "exited_in_window")
    return {"covered": True, "reason": coverage.reason, "effective_date": effective.isoformat() if effective else None,
            "coverage_from": since.isoformat() if since else None,
            "coverage_until": coverage.effective_to.isoformat() if coverage.effective_to else None,
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
        entry = roster_entry(row, as_of)
        if not entry["covered"] and cursor == 0:
            continue
        items.append({"person_ref": row.id_hash[:24], "id_number": row.id_masked, "change_seq": row.roster_seq,
                      **entry})
    next_cursor = str(rows[-1].roster_seq) if rows else (str(cursor) if cursor else None)
    await record_access(session, principal, scope=SCOPE, endpoint="GET /v1/settlements/roster",
                        decision=f"{len(items)} persons")
    return {"items": items, "next_cursor": next_cursor, "as_of": as_of.isoformat(),
            "more": len(rows) == limit}


# --- coverage look-up ----------------------------------------------------------------------

async def coverage_lookup(session: AsyncSession, principal: Principal, id_numbers: list[str], as_of: dt.date) -> dict:
    """Coverage on ``as_of`` of each submitted ID number, in the submitted order.

    The insurer's policyholders are matched by the keyed hash the look-up table is built on:
    the clear numbers are hashed here and never stored, logged or sent to audit.
    """
    hashes = [id_hash(number) for number in id_numbers]
    rows = {row.id_hash: row for row in (await session.execute(
        select(person_lookup).where(person_lookup.c.id_hash.in_(set(hashes)),
                                    person_lookup.c.in_household.is_(True)))).all()}
    histories: dict[str, list] = {}
    if rows:
        for entry in (await session.execute(
                select(household_status_history).where(household_status_history.c.household_id.in_(
                    {row.household_id for row in rows.values()}))
                .order_by(household_status_history.c.household_id, household_status_history.c.version))).all():
            histories.setdefault(entry.household_id, []).append(entry)
    items, persons = [], {}
    for number, key in zip(id_numbers, hashes):
        row = rows.get(key)
        if row is None:
            coverage = NOT_COVERED
        else:
            history = histories.get(row.household_id) or [_Status(row.status, row.exit_date, row.categories or [],
                                                                  None)]
            coverage = coverage_on(as_of, history=history, region_code=row.region_code,
                                   identified_year=row.identified_year, deceased=row.deceased,
                                   deceased_on=row.deceased_on)
            persons[key] = {"household_id": row.household_id, "person_id": row.person_id}
        items.append({"id_number_masked": mask_id_number(number), **coverage.to_json(), "programme": PROGRAM})
    covered = sum(1 for item in items if item["covered"])
    counts = {"submitted": len(items), "matched": sum(1 for key in hashes if key in rows), "covered": covered}
    await record_access(session, principal, scope=SCOPE, endpoint="POST /v1/settlements/coverage:lookup",
                        decision=f"lookup: {counts['submitted']} submitted, {covered} covered",
                        outcome={**counts, "as_of": as_of.isoformat(), "persons": list(persons.values())})
    return {"as_of": as_of.isoformat(), "items": items, **counts}


#: Settlements given their feed position per transaction by ``sequence_settlements``.
SEQUENCE_BATCH = 1000


async def sequence_settlements(session: AsyncSession, batch: int = SEQUENCE_BATCH) -> int:
    """Give up to ``batch`` committed settlements without a feed position theirs; how many got one.

    Run in its own transaction, committed before the feed is read. The sequence row's lock is taken
    first, so sequencing transactions follow one another, each numbering after the last: the positions
    committed at any moment are 1..N with no gap, and a settlement committed later gets a larger one. A
    reader whose cursor is at N therefore never skips a row (what seq-in-commit-order gave before, without
    every settlement queuing on the row; issue 15). Order within a batch: created_at, then id."""
    unsequenced = select(settlements.c.settlement_id).where(settlements.c.seq.is_(None))
    if await session.scalar(unsequenced.limit(1)) is None:
        return 0  # nothing to number: no lock, no write (a row committed from now on waits for the next read)
    await take_write_turn(session)
    await session.execute(update(partner_sequences).where(partner_sequences.c.name == "settlements")
                          .values(value=partner_sequences.c.value))  # the lock, before anything is read
    pending = (await session.execute(
        unsequenced.order_by(settlements.c.created_at, settlements.c.settlement_id).limit(batch))).scalars().all()
    if not pending:
        return 0
    first = await next_sequence(session, "settlements", len(pending))
    await session.execute(update(settlements).where(settlements.c.settlement_id == bindparam("b_id"))
                          .values(seq=bindparam("b_seq")),
                          [{"b_id": settlement_id, "b_seq": first + offset}
                           for offset, settlement_id in enumerate(pending)])
    return len(pending)


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

