"""Read models the consumer keeps beside the ledger, in the same transaction as the append.

Input is the ledger record itself (ID numbers already masked, with their keyed hash), so
the read models can be rebuilt from the ledger alone (``rebuild``). Every reader here is
tolerant: a field the producer did not send skips the fact that needs it, never the event.
Idempotency comes from the append: a duplicate event id is never projected twice.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit.monitoring.projection import MONITORING_PREFIX, project_monitoring
from services.audit.tables import (audit_entitlement_decisions, audit_entitlements, audit_households, audit_members,
                                   audit_monitoring_leads, audit_monitoring_objects, audit_pairings,
                                   audit_partner_access, audit_record_households, audit_villages, ledger_records)
from shared.events import as_aware, utcnow

log = logging.getLogger("audit.projections")

DECIDED = "entitlements.decided"
EXIT_ACTIONS = ("propose_exit", "approve_exit")
EXITED_STATUSES = ("exited",)
PAIR_WORDS = ("paired", "assigned", "created", "added", "started")
UNPAIR_WORDS = ("unpaired", "released", "ended", "removed", "deleted", "unassigned")


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime (the read models store UTC: SQLite keeps no offset)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = datetime.combine(date.fromisoformat(value[:10]), datetime.min.time())
        except ValueError:
            return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)


def to_fen(amount: Any) -> int | None:
    if amount is None:
        return None
    try:
        return int((Decimal(str(amount)) * 100).to_integral_value())
    except (InvalidOperation, ValueError):
        return None


def fen_to_yuan(fen: int | None) -> str:
    return f"{Decimal(fen or 0) / 100:.2f}"


def household_id_of(record: dict) -> str | None:
    data = record.get("data") or {}
    if isinstance(data.get("household_id"), str):
        return data["household_id"]
    subject = record.get("subject") or ""
    return subject.split("/", 1)[1] if subject.startswith("household/") else None


async def project_record(session: AsyncSession, record: dict) -> None:
    """Fold one freshly appended ledger record into the read models."""
    data = record.get("data")
    if not isinstance(data, dict):
        return
    type_, source = record.get("type") or "", record.get("source") or ""
    chain = record.get("chain_id") or ""
    if type_.startswith("ledger."):
        return
    if chain.startswith("jz.access") or type_.startswith(("access.", "partner.")) or source in ("access", "partner"):
        await _project_access(session, record, data)
        return
    if type_.startswith(("cadre.", "pairing.")):
        await _project_pairing_event(session, record, data)
        return
    if type_ == "village.updated" and isinstance(data.get("village"), dict):
        await _upsert_village(session, data["village"], record, data.get("version") or 0, authoritative=True)
        return
    if type_ == DECIDED:
        await _project_decided(session, record, data)
        return
    if type_.startswith("entitlement."):  # one event per entitlement: ledgers written before entitlements.decided
        await _project_entitlement(session, record, data)
        return
    if type_ == "assessment.changed":
        await _project_assessment(session, record, data)
        return
    if type_.startswith(MONITORING_PREFIX):
        await project_monitoring(session, record, data)
        return
    snapshots = [data["household"]] if isinstance(data.get("household"), dict) else []
    snapshots += [h for h in data.get("households") or [] if isinstance(h, dict)]
    for snapshot in snapshots:
        await _project_household(session, record, data, snapshot)


# ---------------------------------------------------------------- households


async def _ensure_household(session: AsyncSession, household_id: str, record: dict):
    batch = session.info.get(_BATCH)
    if batch is not None:
        return await batch.household(session, household_id, record)
    row = (await session.execute(select(audit_households).where(audit_households.c.household_id == household_id))).first()
    if row is not None:
        return row
    await session.execute(insert(audit_households).values(**_new_household(household_id, record)))
    return (await session.execute(select(audit_households).where(audit_households.c.household_id == household_id))).first()


def _new_household(household_id: str, record: dict) -> dict:
    """A household's read-model row before any fact about it is folded in (every column)."""
    return {**{column.name: None for column in audit_households.columns},
            "household_id": household_id, "version": 0, "status": "unknown", "categories": [], "relocated": False,
            "moved_in": False, "population": 0, "income_history": {}, "exit_override": False, "cadres": [],
            "first_record_id": record["id"], "last_record_id": record["id"], "updated_at": utcnow()}


def _cadre_ids(snapshot: dict) -> list[str] | None:
    for key in ("cadres", "cadre_ids", "assistance_cadres", "paired_cadres"):
        value = snapshot.get(key)
        if isinstance(value, list):
            ids = []
            for item in value:
                if isinstance(item, str):
                    ids.append(item)
                elif isinstance(item, dict) and isinstance(item.get("id") or item.get("cadre_id"), str):
                    ids.append(item.get("id") or item.get("cadre_id"))
            return sorted(set(ids))
    return None


def _step_of(data: dict) -> dict | None:
    """The procedure step an event records: the registry sends it as ``transition`` (its step record,
    with ``at``, the business time of the step); ``step`` and flat fields are older shapes."""
    for key in ("step", "transition"):
        if isinstance(data.get(key), dict):
            step = dict(data[key])
            override = data.get("override")
            if isinstance(override, dict) and not step.get("overridden_criteria"):
                step["overridden_criteria"] = override.get("overridden_criteria") or []
            return step
    if "action" in data:
        return {k: data.get(k) for k in ("action", "override", "reason", "overridden_criteria")}
    return None


REGISTERING_ACTIONS = ("register", "announce")


def registration_time(step: dict | None) -> datetime | None:
    """When the procedure made the household ``registered`` (the step's own date, never the time the
    event was written or ingested); None when this event is not that step."""
    if not step:
        return None
    to_status = step.get("to_status")
    if to_status == "registered" or (to_status is None and step.get("action") in REGISTERING_ACTIONS):
        return parse_time(step.get("at"))
    return None


async def _project_household(session: AsyncSession, record: dict, data: dict, snapshot: dict) -> None:
    household_id = snapshot.get("id") or household_id_of(record)
    if not isinstance(household_id, str):
        return
    row = await _ensure_household(session, household_id, record)
    when = parse_time(record.get("time")) or utcnow()
    version = snapshot.get("version") if isinstance(snapshot.get("version"), int) else data.get("version")
    version = version if isinstance(version, int) else 0
    values: dict[str, Any] = {"last_record_id": record["id"], "updated_at": utcnow()}

    # Visits count whatever the version (a late visit is still a visit).
    if record.get("type", "").startswith("visit."):
        visit = data.get("visit") if isinstance(data.get("visit"), dict) else {}
        visited_at = parse_time(visit.get("visited_at")) or when
        if row.last_visit_at is None or as_aware(row.last_visit_at) < visited_at:
            values.update(last_visit_at=visited_at, last_visit_record_id=record["id"])

    # Income is kept per year: an older version never overwrites a year a newer one reported.
    income = snapshot.get("income")
    history = dict(row.income_history or {})
    if isinstance(income, dict) and income.get("year") is not None and income.get("per_capita_net") is not None:
        key = str(income["year"])
        if key not in history or history[key].get("version", 0) <= version:
            history[key] = {"amount": str(income["per_capita_net"]), "record_id": record["id"],
                            "event_id": record.get("event_id"), "version": version}
            values["income_history"] = history

    step = _step_of(data)
    stale = version < (row.version or 0)
    if not stale:
        status = snapshot.get("status") or row.status
        village = snapshot.get("village") if isinstance(snapshot.get("village"), dict) else {}
        relocation = snapshot.get("relocation") if isinstance(snapshot.get("relocation"), dict) else {}
        categories = [c for c in snapshot.get("categories") or [] if isinstance(c, str)]
        members = [m for m in snapshot.get("members") or [] if isinstance(m, dict)]
        head = next((m for m in members if m.get("relation") == "head"), members[0] if members else {})
        exit_date = snapshot.get("exit_date") if isinstance(snapshot.get("exit_date"), str) else None
        values.update(
            version=version, status=status, region_code=snapshot.get("region_code") or row.region_code,
            village_code=village.get("code") or row.village_code, village_name=village.get("name") or row.village_name,
            township_code=village.get("township_code") or row.township_code,
            township_name=village.get("township_name") or row.township_name,
            head_name=head.get("name"), head_masked_id=head.get("id_number"),
            identified_year=snapshot.get("identified_year") if isinstance(snapshot.get("identified_year"), int) else None,
            exit_date=exit_date, exit_year=int(exit_date[:4]) if exit_date and exit_date[:4].isdigit() else None,
            categories=categories, relocated=bool(relocation.get("relocated")) or "relocated" in categories,
            moved_in=bool(relocation.get("moved_in")),
            population=sum(1 for m in members if not m.get("deceased")))
        # Registration is dated by its procedure step; a household brought in already registered has
        # no step, and the rules fall back to its identified_year (never to when the event arrived).
        registered_on = registration_time(step) if status == "registered" else None
        if registered_on is not None and row.registered_at is None:
            values["registered_at"] = registered_on
        if status in EXITED_STATUSES and row.status not in EXITED_STATUSES:
            values["readiness_at_exit"] = row.exit_readiness
            values["moved_in_at_exit"] = values["moved_in"]
        if members:
            rows = [{"household_id": household_id, "person_id": str(m.get("id") or f"#{i}"),
                     "masked_id": m.get("id_number"), "id_hash": m.get("id_number_hash"),
                     "deceased": bool(m.get("deceased")), "record_id": record["id"]} for i, m in enumerate(members)]
            batch = session.info.get(_BATCH)
            if batch is not None:
                batch.members[household_id] = rows
            else:
                await session.execute(delete(audit_members).where(audit_members.c.household_id == household_id))
                await session.execute(insert(audit_members), rows)
        if village.get("code"):
            await _upsert_village(session, village, record, 0, authoritative=False)
        cadres = _cadre_ids(snapshot)
        if cadres is not None:
            await _sync_snapshot_cadres(session, household_id, set(row.cadres or []), set(cadres), record, when)
            values["cadres"] = cadres

    if step and step.get("action") in EXIT_ACTIONS + ("reject_exit", "withdraw_exit"):
        evidence = dict(row.exit_evidence or {"steps": []})
        if step.get("action") == "propose_exit":
            evidence = {"steps": []}  # a new exit procedure starts
            values["exit_override"] = bool(step.get("override"))
        elif step.get("override"):
            values["exit_override"] = True
        evidence["steps"] = list(evidence.get("steps", [])) + [{
            "record_id": record["id"], "event_id": record.get("event_id"), "action": step.get("action"),
            "actor": step.get("actor") or record.get("actor"), "at": step.get("at") or record.get("time"),
            "reason": step.get("reason"), "override": bool(step.get("override")),
            "overridden_criteria": step.get("overridden_criteria") or []}]
        values["exit_evidence"] = evidence
        if step.get("action") in ("reject_exit", "withdraw_exit"):
            values["exit_override"] = False
    await _update_household(session, household_id, values)


async def _update_household(session: AsyncSession, household_id: str, values: dict) -> None:
    batch = session.info.get(_BATCH)
    if batch is not None:
        batch.update_household(household_id, values)
        return
    await session.execute(update(audit_households).where(audit_households.c.household_id == household_id)
                          .values(**values))


async def _upsert_village(session: AsyncSession, village: dict, record: dict, version: int, *,
                          authoritative: bool) -> None:
    code = village.get("code")
    if not isinstance(code, str):
        return
    values = {"name": village.get("name"), "township_code": village.get("township_code"),
              "township_name": village.get("township_name"), "record_id": record["id"]}
    batch = session.info.get(_BATCH)
    if batch is not None:
        await batch.upsert_village(session, code, village, values, version, authoritative)
        return
    row = (await session.execute(select(audit_villages).where(audit_villages.c.code == code))).first()
    if row is None:
        await session.execute(insert(audit_villages).values(code=code, version=version if authoritative else 0,
                                                            data=village, **values))
    elif authoritative and version >= (row.version or 0):
        await session.execute(update(audit_villages).where(audit_villages.c.code == code)
                              .values(version=version, data={**(row.data or {}), **village}, **values))
    elif not authoritative and not row.version:
        merged = {**(row.data or {}), **{k: v for k, v in village.items() if v is not None}}
        await session.execute(update(audit_villages).where(audit_villages.c.code == code)
                              .values(data=merged, **{k: v for k, v in values.items() if v is not None}))


# ---------------------------------------------------------------- cadre pairing


async def _pair(session, household_id: str, cadre_id: str, record: dict, when: datetime) -> None:
    open_row = (await session.execute(select(audit_pairings.c.id).where(
        audit_pairings.c.household_id == household_id, audit_pairings.c.cadre_id == cadre_id,
        audit_pairings.c.unpaired_at.is_(None)))).first()
    if open_row is None:
        await session.execute(insert(audit_pairings).values(household_id=household_id, cadre_id=cadre_id,
                                                            paired_at=when, paired_record_id=record["id"]))


async def _unpair(session, household_id: str, cadre_id: str, record: dict, when: datetime) -> None:
    open_row = (await session.execute(select(audit_pairings.c.id).where(
        audit_pairings.c.household_id == household_id, audit_pairings.c.cadre_id == cadre_id,
        audit_pairings.c.unpaired_at.is_(None)))).first()
    if open_row is None:
        await session.execute(insert(audit_pairings).values(household_id=household_id, cadre_id=cadre_id,
                                                            unpaired_at=when, unpaired_record_id=record["id"]))
    else:
        await session.execute(update(audit_pairings).where(audit_pairings.c.id == open_row.id)
                              .values(unpaired_at=when, unpaired_record_id=record["id"]))


async def _sync_snapshot_cadres(session, household_id, before: set[str], after: set[str], record, when) -> None:
    for cadre_id in sorted(after - before):
        await _pair(session, household_id, cadre_id, record, when)
    for cadre_id in sorted(before - after):
        await _unpair(session, household_id, cadre_id, record, when)


async def _project_pairing_event(session: AsyncSession, record: dict, data: dict) -> None:
    household_id = household_id_of(record)
    if household_id is None and isinstance(data.get("household"), dict):
        household_id = data["household"].get("id")
    cadre = data.get("cadre") if isinstance(data.get("cadre"), dict) else {}
    # the registry's pairing.started / pairing.ended carry the pairing record itself
    pairing = data.get("pairing") if isinstance(data.get("pairing"), dict) else {}
    cadre_id = data.get("cadre_id") or cadre.get("id") or pairing.get("cadre_id")
    if not isinstance(household_id, str) or not isinstance(cadre_id, str):
        return
    word = (data.get("action") or record["type"].split(".", 1)[-1] or "").lower()
    ended = any(w in word for w in UNPAIR_WORDS)
    business_time = pairing.get("ended_at") if ended else pairing.get("started_at")
    when = (parse_time(business_time or data.get("at") or data.get("time")) or parse_time(record.get("time"))
            or utcnow())
    await _ensure_household(session, household_id, record)
    if ended:
        await _unpair(session, household_id, cadre_id, record, when)
    elif any(w in word for w in PAIR_WORDS):
        await _pair(session, household_id, cadre_id, record, when)


# ---------------------------------------------------------------- benefits decisions


async def _project_decided(session: AsyncSession, record: dict, data: dict) -> None:
    """One ``entitlements.decided`` record: every entitlement and assessment its household version decided,
    folded as the one-per-entitlement events were (one decision row per listed entitlement)."""
    entitlements = [item for item in data.get("entitlements") or [] if isinstance(item, dict)]
    await _project_entitlements(session, record, data, entitlements)
    for item in data.get("assessments") or []:
        if isinstance(item, dict):
            await _project_assessment(session, record, {**item, "household_version": data.get("household_version")})


async def _project_entitlement(session: AsyncSession, record: dict, data: dict) -> None:
    """An ``entitlement.granted|changed|revoked`` record (one entitlement per event)."""
    change = data.get("change") or record["type"].split(".", 1)[1]
    await _project_entitlements(session, record, data, [{**data, "change": change}])


def _change_of(item: dict, before: dict, after: dict) -> str:
    change = item.get("change")
    if isinstance(change, str) and change:
        return change[:16]
    return "granted" if not before else "revoked" if not after else "changed"


async def _project_entitlements(session: AsyncSession, record: dict, data: dict, items: list[dict]) -> None:
    """The decision rows of one record (``item`` = position in its list) and the entitlements in force, with a
    few statements whatever the number of items; an older version arriving late does not undo a newer one."""
    household_id = household_id_of(record)
    if not isinstance(household_id, str):
        return
    when = parse_time(record.get("time")) or utcnow()
    version = data.get("household_version") if isinstance(data.get("household_version"), int) else None
    pack = (data.get("policy") or {}).get("pack") if isinstance(data.get("policy"), dict) else None
    decisions: list[dict] = []
    current: dict[tuple[str, str], dict | None] = {}  # (program, person key) -> row in force, None if revoked
    for index, item in enumerate(items):
        program = item.get("program")
        if not isinstance(program, str):
            continue
        before = item.get("before") if isinstance(item.get("before"), dict) else {}
        after = item.get("after") if isinstance(item.get("after"), dict) else {}
        change = _change_of(item, before, after)
        person_id = item.get("person_id") or after.get("person_id") or before.get("person_id")
        decided = after if change != "revoked" else before
        decisions.append({"record_id": record["id"], "item": index, "household_id": household_id, "program": program,
                          "person_id": person_id, "change": change, "amount_fen": to_fen(decided.get("amount")),
                          "unit": decided.get("unit"), "time": when})
        current[(program, person_id or "")] = None if change == "revoked" else {
            "household_id": household_id, "program": program, "person_key": person_id or "", "person_id": person_id,
            "amount_fen": to_fen(after.get("amount")), "unit": after.get("unit"), "period": after.get("period"),
            "pack": pack, "household_version": version, "record_id": record["id"], "event_id": record["event_id"],
            "time": when}
    if not decisions:
        return
    batch = session.info.get(_BATCH)
    if batch is not None:
        await batch.decide(session, household_id, version, decisions, current)
        return
    await session.execute(insert(audit_entitlement_decisions), decisions)
    e = audit_entitlements.c
    stored = {(r.program, r.person_key): r.household_version for r in (await session.execute(
        select(e.program, e.person_key, e.household_version).where(e.household_id == household_id))).all()}
    if version is not None:
        current = {key: row for key, row in current.items()
                   if stored.get(key) is None or version >= stored[key]}
    replaced = [key for key in current if key in stored]
    if replaced:
        await session.execute(delete(audit_entitlements).where(
            e.household_id == household_id, tuple_(e.program, e.person_key).in_(replaced)))
    rows = [row for row in current.values() if row is not None]
    if rows:
        await session.execute(insert(audit_entitlements), rows)


async def _project_assessment(session: AsyncSession, record: dict, data: dict) -> None:
    household_id = household_id_of(record)
    after = data.get("after") if isinstance(data.get("after"), dict) else None
    if not isinstance(household_id, str) or data.get("kind") != "exit_readiness" or after is None:
        return
    await _ensure_household(session, household_id, record)
    await _update_household(session, household_id, {"exit_readiness": {
        "result": after.get("result"), "unmet": after.get("unmet") or [], "record_id": record["id"],
        "event_id": record.get("event_id"), "household_version": data.get("household_version"),
        "time": record.get("time")}})


# ---------------------------------------------------------------- partner access


def access_kind(endpoint: str) -> str:
    endpoint = endpoint.lower()
    if "eligibility" in endpoint or (endpoint.startswith("/registry/") and endpoint.endswith("search")):
        return "lookup"  # a bank's eligibility question, or a DCI partner's search of the registry
    if any(word in endpoint for word in ("loans", "one-stop", "interest-claims", "settlements/one")):
        return "delivery"
    return "other"


async def _project_access(session: AsyncSession, record: dict, data: dict) -> None:
    endpoint = str(data.get("endpoint") or record.get("type") or "")
    person = data.get("person") if isinstance(data.get("person"), dict) else {}
    masked = data.get("id_number") or person.get("id_number")
    id_hash = data.get("id_number_hash") or person.get("id_number_hash")
    person_id = data.get("person_id") or person.get("id")
    eligible = data.get("eligible")
    if not isinstance(eligible, bool):
        decision = data.get("decision")
        eligible = decision.get("eligible") if isinstance(decision, dict) else (
            decision in ("eligible", "approved", "granted") if isinstance(decision, str) else None)
        eligible = eligible if isinstance(eligible, bool) else None
    # Prefer exact identities; a masked number alone can be shared by two people.
    person_key = id_hash or person_id or masked
    await session.execute(insert(audit_partner_access).values(
        record_id=record["id"], event_id=record["event_id"], client_id=data.get("client_id") or record.get("actor"),
        scope=data.get("scope"), endpoint=endpoint[:128], kind=access_kind(endpoint),
        person_key=str(person_key)[:96] if person_key else None, masked_id=masked if isinstance(masked, str) else None,
        person_id=person_id if isinstance(person_id, str) else None,
        household_id=data.get("household_id") if isinstance(data.get("household_id"), str) else None,
        decision_id=str(data["decision_id"])[:64] if data.get("decision_id") else None, eligible=eligible,
        time=parse_time(data.get("time")) or parse_time(record.get("time")) or utcnow()))


# ---------------------------------------------------------------- many records at once


_BATCH = "jz_audit_projection_batch"


class _Row:
    """Attribute access to a cached row, as a database row gives it (a copy: later changes do not show)."""
    __slots__ = ("_values",)

    def __init__(self, values: dict) -> None:
        self._values = dict(values)

    def __getattr__(self, name: str):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None


class ProjectionBatch:
    """The rows the household, village, member and entitlement projections read and write while a batch of
    records is folded in (``project_records``): read once for the whole batch, changed in memory in record
    order exactly as the statements one record at a time would change them, and written at the end with a
    few multi-row statements. Before (issue 15) a registry record and its ``entitlements.decided`` cost about
    13 statements; the audit consumer fell behind a registry taking 80 households a second.
    Other projections (pairings, partner access, monitoring) still write as they go: none of them reads
    these tables."""

    def __init__(self) -> None:
        self.households: dict[str, dict] = {}  # household id -> full row
        self.looked_up: set[str] = set()  # household ids read from the database (found or not)
        self.new_households: set[str] = set()
        self.changed_households: set[str] = set()
        self.villages: dict[str, dict | None] = {}  # code -> full row, None: not stored
        self.new_villages: set[str] = set()
        self.changed_villages: set[str] = set()
        self.members: dict[str, list[dict]] = {}  # household id -> its member rows (the latest snapshot's)
        self.entitlements: dict[str, dict[tuple[str, str], dict]] = {}  # household id -> (program, person) -> row
        self.changed_entitlements: set[str] = set()
        self.decisions: list[dict] = []

    async def preload(self, session: AsyncSession, records: list[dict]) -> None:
        households, villages = set(), set()
        for record in records:
            data = record.get("data") if isinstance(record.get("data"), dict) else {}
            if isinstance(household_id_of(record), str):
                households.add(household_id_of(record))
            snapshots = [data["household"]] if isinstance(data.get("household"), dict) else []
            snapshots += [h for h in data.get("households") or [] if isinstance(h, dict)]
            for snapshot in snapshots:
                if isinstance(snapshot.get("id"), str):
                    households.add(snapshot["id"])
                if isinstance(snapshot.get("village"), dict) and isinstance(snapshot["village"].get("code"), str):
                    villages.add(snapshot["village"]["code"])
            if isinstance(data.get("village"), dict) and isinstance(data["village"].get("code"), str):
                villages.add(data["village"]["code"])
        await self._load_households(session, sorted(households))
        await self._load_entitlements(session, sorted(households))
        await self._load_villages(session, sorted(villages))

    async def _load_households(self, session: AsyncSession, ids: list[str]) -> None:
        ids = [i for i in ids if i not in self.looked_up]
        self.looked_up.update(ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for row in (await session.execute(select(audit_households)
                                              .where(audit_households.c.household_id.in_(chunk)))).all():
                self.households[row.household_id] = dict(row._mapping)

    async def _load_entitlements(self, session: AsyncSession, ids: list[str]) -> None:
        ids = [i for i in ids if i not in self.entitlements]
        for household_id in ids:
            self.entitlements[household_id] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for row in (await session.execute(select(audit_entitlements)
                                              .where(audit_entitlements.c.household_id.in_(chunk)))).all():
                self.entitlements[row.household_id][(row.program, row.person_key)] = dict(row._mapping)

    async def _load_villages(self, session: AsyncSession, codes: list[str]) -> None:
        codes = [c for c in codes if c not in self.villages]
        for code in codes:
            self.villages[code] = None
        for start in range(0, len(codes), 500):
            chunk = codes[start:start + 500]
            for row in (await session.execute(select(audit_villages).where(audit_villages.c.code.in_(chunk)))).all():
                self.villages[row.code] = dict(row._mapping)

    async def household(self, session: AsyncSession, household_id: str, record: dict) -> _Row:
        """``_ensure_household``: the household's row, created (in memory) when it is not stored."""
        if household_id not in self.households:
            await self._load_households(session, [household_id])  # not among the preloaded
        if household_id not in self.households:
            self.households[household_id] = _new_household(household_id, record)
            self.new_households.add(household_id)
        return _Row(self.households[household_id])

    def update_household(self, household_id: str, values: dict) -> None:
        self.households[household_id].update(values)
        self.changed_households.add(household_id)

    async def upsert_village(self, session: AsyncSession, code: str, village: dict, values: dict, version: int,
                             authoritative: bool) -> None:
        """``_upsert_village`` on the cached row."""
        if code not in self.villages:
            await self._load_villages(session, [code])
        row = self.villages[code]
        if row is None:
            self.villages[code] = {"code": code, "version": version if authoritative else 0, "data": village, **values}
            self.new_villages.add(code)
        elif authoritative and version >= (row["version"] or 0):
            row.update(version=version, data={**(row["data"] or {}), **village}, **values)
            self.changed_villages.add(code)
        elif not authoritative and not row["version"]:
            row.update(data={**(row["data"] or {}), **{k: v for k, v in village.items() if v is not None}},
                       **{k: v for k, v in values.items() if v is not None})
            self.changed_villages.add(code)

    async def decide(self, session: AsyncSession, household_id: str, version: int | None, decisions: list[dict],
                     current: dict[tuple[str, str], dict | None]) -> None:
        """``_project_entitlements`` on the cached entitlements in force."""
        self.decisions += decisions
        if household_id not in self.entitlements:
            await self._load_entitlements(session, [household_id])
        stored = self.entitlements[household_id]
        for key, row in current.items():
            known = stored.get(key)
            if version is not None and known is not None and known["household_version"] is not None \
                    and version < known["household_version"]:
                continue  # an older decision arriving late does not undo a newer one
            if row is None:
                stored.pop(key, None)
            else:
                stored[key] = row
        self.changed_entitlements.add(household_id)

    async def flush(self, session: AsyncSession) -> None:
        """Write what the batch changed: households, villages, members, entitlements in force, decision rows."""
        await _write_rows(session, audit_households, "household_id",
                          [self.households[i] for i in sorted(self.new_households)],
                          [self.households[i] for i in sorted(self.changed_households - self.new_households)])
        await _write_rows(session, audit_villages, "code", [self.villages[c] for c in sorted(self.new_villages)],
                          [self.villages[c] for c in sorted(self.changed_villages - self.new_villages)])
        await _replace_rows(session, audit_members, {i: self.members[i] for i in sorted(self.members)})
        await _replace_rows(session, audit_entitlements, {i: list(self.entitlements[i].values())
                                                          for i in sorted(self.changed_entitlements)})
        for start in range(0, len(self.decisions), 1000):
            await session.execute(insert(audit_entitlement_decisions), self.decisions[start:start + 1000])


async def _write_rows(session: AsyncSession, table, key: str, new: list[dict], changed: list[dict]) -> None:
    """Insert ``new`` rows and rewrite every column of ``changed`` ones (one executemany)."""
    for start in range(0, len(new), 500):
        await session.execute(insert(table), new[start:start + 500])
    if changed:
        await session.execute(update(table).where(table.c[key] == bindparam("b_key")),
                              [{**{k: v for k, v in row.items() if k != key}, "b_key": row[key]} for row in changed])


async def _replace_rows(session: AsyncSession, table, rows_by_household: dict[str, list[dict]]) -> None:
    """The households' rows in ``table`` become exactly ``rows_by_household``."""
    ids = list(rows_by_household)
    for start in range(0, len(ids), 500):
        await session.execute(delete(table).where(table.c.household_id.in_(ids[start:start + 500])))
    rows = [row for household_rows in rows_by_household.values() for row in household_rows]
    for start in range(0, len(rows), 500):
        await session.execute(insert(table), rows[start:start + 500])


async def project_records(session: AsyncSession, records: list[dict]) -> None:
    """``project_record`` for each record in order, in the caller's transaction, with the household,
    village, member and entitlement read models read once and written once for them all
    (``ProjectionBatch``): the same read models as projecting them one at a time."""
    if not records:
        return
    if len(records) == 1:
        await project_record(session, records[0])
        return
    batch = ProjectionBatch()
    await batch.preload(session, records)
    session.info[_BATCH] = batch
    try:
        for record in records:
            await project_record(session, record)
    finally:
        session.info.pop(_BATCH, None)
    await batch.flush(session)


# ---------------------------------------------------------------- rebuild


PROJECTION_TABLES = (audit_households, audit_members, audit_villages, audit_entitlements,
                     audit_entitlement_decisions, audit_pairings, audit_partner_access, audit_record_households,
                     audit_monitoring_leads, audit_monitoring_objects)


async def rebuild(sessionmaker: async_sessionmaker[AsyncSession], page_size: int = 2000) -> int:
    """Drop the read models and replay the ledger into them (oldest first). Returns records replayed."""
    from services.audit.ledger.service import record_view
    async with sessionmaker() as session, session.begin():
        for table in PROJECTION_TABLES:
            await session.execute(delete(table))
    last, count = 0, 0
    while True:
        async with sessionmaker() as session, session.begin():
            rows = (await session.execute(select(ledger_records).where(ledger_records.c.id > last)
                                          .order_by(ledger_records.c.id).limit(page_size))).all()
            if not rows:
                return count
            await project_records(session, [record_view(row) for row in rows])
            count += len(rows)
            last = rows[-1].id
