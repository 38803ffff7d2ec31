"""Home visits (入户走访) from the cadre app: idempotent, resumable, and careful with late arrivals.

* ``client_visit_id`` makes a visit idempotent: a resend returns the stored first result and writes
  nothing (the unique index settles a race between two resends). A "resend" whose content differs
  (household, time, observations, guarantees, location, notes) is another visit under a reused id:
  409 naming the stored visit, and nothing written, rather than silently dropping it.
* A cadre token (subject = cadre id) records visits only for households paired with that cadre or in
  a village whose work team the cadre is on; ``admin`` may record any.
* Observations of household facts (income, guarantees, housing, water, relocation, member health)
  update the household through ``save_new_version`` with the visit as provenance. A fact observed
  more recently than the visit (by another visit or an office write) is kept: the visit's value for
  it is reported under ``ignored``.
* Every visit publishes ``visit.recorded`` (key = household id) with the household snapshot.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import Field, ValidationError, field_validator
from sqlalchemy import bindparam, delete, insert, select, text, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.cadres.service import may_visit
from services.registry.common import StrictBody, as_utc, invalid, problem_from_validation
from services.registry.households.facts import MEMBER_FACTS, facts_of, observed_facts, record_facts
from services.registry.households.merge_patch import changed_paths as changed_paths_of
from services.registry.households.service import (check_loaded, claims_change, decode_cursor, encode_cursor,
                                                  load_household, prepare_new_version, row_values, save_new_version)
from services.registry.outbox import publish_household_event
from services.registry.tables import fact_provenance, household_versions, households, outbox, pairings, village_team
from services.registry.tables import visits
from shared.auth import Principal
from shared.bounds import FreeText
from shared.config import TOPIC_REGISTRY
from shared.db import transaction
from shared.events import Envelope, as_aware, utcnow
from shared.outbox import lane_of, signed_payload
from shared.personal_data import event_form, identity_hasher
from shared.problems import Problem
from shared.snapshot import (Disability, Guarantees, Health, Housing, Income, LabourCapacity, Relocation, SelfCare,
                             Water, strict_variant)

MAX_BATCH = 500
# Phones' clocks drift; a visit "from the future" beyond this is a wrong clock, not a visit.
CLOCK_SKEW = timedelta(minutes=10)
# No visit predates the targeted-poverty registry; any time past LATEST_VISIT is refused by CLOCK_SKEW anyway.
EARLIEST_VISIT, LATEST_VISIT = datetime(1990, 1, 1), datetime(2100, 12, 31)
EVENT_VISIT_RECORDED = "visit.recorded"


class Location(StrictBody):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class MemberObservation(StrictBody):
    id: str = Field(min_length=1, max_length=40, description="The member's registry person id")
    health: Health | None = None
    disability: strict_variant(Disability) | None = None  # type: ignore[valid-type]
    self_care: SelfCare | None = None
    bedridden: bool | None = None
    labour_capacity: LabourCapacity | None = None


class Observations(StrictBody):
    income: strict_variant(Income) | None = None  # type: ignore[valid-type]
    housing: strict_variant(Housing) | None = None  # type: ignore[valid-type]
    water: strict_variant(Water) | None = None  # type: ignore[valid-type]
    relocation: strict_variant(Relocation) | None = None  # type: ignore[valid-type]
    members: list[MemberObservation] = Field(default_factory=list)


class VisitIn(StrictBody):
    client_visit_id: uuid.UUID
    household_id: str = Field(min_length=1, max_length=40)
    visited_at: datetime = Field(description="When the visit happened (RFC 3339; without offset = China time); "
                                             f"from {EARLIEST_VISIT.year} to now")
    location: Location | None = None
    guarantees: strict_variant(Guarantees) | None = None  # type: ignore[valid-type]
    observations: Observations | None = None
    notes: FreeText | None = Field(default=None, max_length=4000)

    @field_validator("visited_at")
    @classmethod
    def _plausible_time(cls, value: datetime) -> datetime:
        # Year 1 or 9999 overflow the conversion to UTC (500); the upper bound is checked against the
        # clock (CLOCK_SKEW) once the request's "now" is known, this one only keeps the arithmetic safe.
        if not EARLIEST_VISIT <= value.replace(tzinfo=None) <= LATEST_VISIT:
            raise ValueError(f"走访时间须在 {EARLIEST_VISIT.year} 年之后且不晚于现在 / visited_at must be after "
                             f"{EARLIEST_VISIT.year} and not in the future")
        return value


def parse_visit(raw: Any, loc: tuple = ("body",)) -> VisitIn:
    try:
        return VisitIn.model_validate(raw)
    except ValidationError as exc:
        raise problem_from_validation(exc, "Invalid visit", prefix=loc) from exc


def observed_values(visit: VisitIn) -> dict[str, Any]:
    """fact → observed value, only for what the cadre actually reported."""
    facts: dict[str, Any] = {}
    if visit.guarantees is not None:
        for key, value in visit.guarantees.model_dump(mode="json", exclude_unset=True).items():
            facts[f"guarantees.{key}"] = value
    obs = visit.observations
    if obs is None:
        return facts
    if obs.income is not None:
        facts["income"] = obs.income.model_dump(mode="json")
    for group in ("housing", "water", "relocation"):
        model = getattr(obs, group)
        if model is not None:
            for key, value in model.model_dump(mode="json", exclude_unset=True).items():
                facts[f"{group}.{key}"] = value
    for member in obs.members:
        for key, value in member.model_dump(mode="json", exclude_unset=True).items():
            if key != "id":
                facts[f"members.{member.id}.{key}"] = value
    return facts


def _apply(snapshot: dict, facts: dict[str, Any]) -> dict:
    after = {**snapshot, "members": [dict(m) for m in snapshot["members"]]}
    by_id = {m["id"]: m for m in after["members"]}
    for fact, value in facts.items():
        parts = fact.split(".")
        if parts[0] == "income":
            after["income"] = value
        elif parts[0] == "members":
            by_id[parts[1]][parts[2]] = value
        else:
            after[parts[0]] = {**(after.get(parts[0]) or {}), parts[1]: value}
    return after


def _visit_public(row_or_values: dict) -> dict:
    return {key: row_or_values[key] for key in ("id", "client_visit_id", "household_id", "cadre_id")} | {
        "visited_at": as_aware(row_or_values["visited_at"]).isoformat(),
        "recorded_at": as_aware(row_or_values["recorded_at"]).isoformat(), **row_or_values["payload"]}


async def _stored(session: AsyncSession, client_visit_id: str):
    return (await session.execute(select(visits).where(visits.c.client_visit_id == client_visit_id))).first()


def _payload(visit: VisitIn) -> dict:
    """What is stored of a visit besides its ids and time (also what a resend is compared on)."""
    return visit.model_dump(mode="json", exclude={"client_visit_id", "household_id", "visited_at"}, exclude_none=True)


def _differences(row, visit: VisitIn) -> list[str]:
    """The parts of a resent visit that differ from the stored one: household, time, and every payload field.

    The stored payload is the same dump in JSON form, so equal submissions compare equal field by field.
    """
    differs = []
    if row.household_id != visit.household_id:
        differs.append("household_id")
    if as_aware(row.visited_at) != as_utc(visit.visited_at):
        differs.append("visited_at")
    stored, submitted = row.payload or {}, _payload(visit)
    differs += sorted(k for k in set(stored) | set(submitted) if stored.get(k) != submitted.get(k))
    return differs


def _replay(row, principal: Principal, visit: VisitIn) -> dict:
    """The stored first result for a resend; 409 when the id was used by someone else or for another visit."""
    if row.cadre_id != principal.subject and not principal.is_admin:
        raise Problem(409, "client_visit_id already used", "Another caller recorded a visit with this "
                      "client_visit_id; generate a fresh UUID per visit.", type_="https://jingzhun.dev/problems/conflict")
    differs = _differences(row, visit)
    if differs:
        visit_id, visited_at = row.result["visit_id"], as_aware(row.visited_at).isoformat()
        raise Problem(409, "client_visit_id already used for another visit",
                      f"client_visit_id {visit.client_visit_id} already names visit {visit_id} (household "
                      f"{row.household_id}, visited at {visited_at}); this one differs in {', '.join(differs)} and "
                      f"was not recorded. Generate a fresh UUID per visit. 该 client_visit_id 已用于走访 {visit_id}"
                      f"(户 {row.household_id},走访时间 {visited_at}),本次提交的内容不同({', '.join(differs)}),"
                      f"未记录:每次走访请生成新的 UUID。",
                      type_="https://jingzhun.dev/problems/conflict",
                      stored_visit={"visit_id": visit_id, "household_id": row.household_id, "visited_at": visited_at},
                      differs=differs)
    return row.result


async def record_visit(sessionmaker: async_sessionmaker[AsyncSession], visit: VisitIn, principal: Principal, *,
                       now: datetime) -> tuple[int, dict]:
    """(201, result) for a new visit; (200, first result) for a resend."""
    client_visit_id = str(visit.client_visit_id)
    try:
        async with transaction(sessionmaker) as session:
            stored = await _stored(session, client_visit_id)
            if stored is not None:
                return 200, _replay(stored, principal, visit)
            return 201, await _record_new(session, visit, client_visit_id, principal, now)
    except IntegrityError:
        # two resends raced: the other one committed first; answer with its result
        async with sessionmaker() as session:
            stored = await _stored(session, client_visit_id)
        if stored is None:
            raise
        return 200, _replay(stored, principal, visit)


def _visited_at(visit: VisitIn, now: datetime) -> datetime:
    visited_at = as_utc(visit.visited_at)
    if visited_at > now.astimezone(timezone.utc) + CLOCK_SKEW:
        raise invalid(["body", "visited_at"], "visited_at is in the future (check the phone's clock)")
    return visited_at


def _observed_facts(visit: VisitIn, snapshot: dict) -> dict:
    """The facts the visit observed; observations about people not in the household are refused."""
    facts = observed_values(visit)
    member_ids = {m["id"] for m in snapshot["members"]}
    unknown = sorted({f.split(".")[1] for f in facts if f.startswith("members.")} - member_ids)
    if unknown:
        raise invalid(["body", "observations", "members"], f"not members of this household: {', '.join(unknown)}")
    return facts


def _split_by_newer(facts: dict, newest: dict, visited_at: datetime) -> tuple[dict, list[dict]]:
    """A late visit never overwrites a fact observed after it: those facts are ignored, with the source."""
    applied, ignored = {}, []
    for fact, value in facts.items():
        known = newest.get(fact)
        if known is not None and known["observed_at"] > visited_at:
            ignored.append({"fact": fact, "reason": "a newer observation exists",
                            "newer_observed_at": known["observed_at"].isoformat(), "newer_source": known["source"]})
        else:
            applied[fact] = value
    return applied, ignored


async def _record_new(session: AsyncSession, visit: VisitIn, client_visit_id: str, principal: Principal,
                      now: datetime) -> dict:
    visited_at = _visited_at(visit, now)
    snapshot = await load_household(session, visit.household_id, principal, for_update=True)
    if not principal.is_admin and not await may_visit(session, principal.subject, snapshot):
        raise _forbidden(principal.subject, visit.household_id)
    facts = _observed_facts(visit, snapshot)

    visit_id = f"v-{uuid.uuid4().hex[:16]}"
    newest = await observed_facts(session, snapshot["id"])
    applied, ignored = _split_by_newer(facts, newest, visited_at)
    source = f"visit:{visit_id}"
    changed_paths: list[str] = []
    if applied:
        after = _apply(snapshot, applied)
        recorded: set[str] = set()
        if after != snapshot:
            changed_paths = changed_paths_of({k: v for k, v in snapshot.items() if k != "version"},
                                             {k: v for k, v in after.items() if k != "version"})
            recorded = set(facts_of(changed_paths, after["members"]))  # save_new_version records these
            snapshot = await save_new_version(
                session, snapshot, after, event_type="household.updated", actor=principal.subject,
                note=f"visit {visit_id}", observed_at=visited_at, source=source,
                extra={"provenance": {"visit_id": visit_id, "client_visit_id": client_visit_id,
                                      "visited_at": visited_at.isoformat()}})
        # facts the visit confirmed without changing them are newer observations too
        await record_facts(session, snapshot["id"], sorted(set(applied) - recorded), observed_at=visited_at,
                           source=source, version=snapshot["version"])

    payload = _payload(visit)
    recorded_at = utcnow()
    result = {"visit_id": visit_id, "client_visit_id": client_visit_id, "household_id": snapshot["id"],
              "visited_at": visited_at.isoformat(), "recorded_at": recorded_at.isoformat(),
              "household_version": snapshot["version"], "applied": sorted(applied), "ignored": ignored,
              "changed_paths": changed_paths}
    values = {"id": visit_id, "client_visit_id": client_visit_id, "household_id": snapshot["id"],
              "cadre_id": principal.subject, "visited_at": visited_at, "recorded_at": recorded_at,
              "payload": payload, "result": result}
    await session.execute(insert(visits).values(**values))
    await publish_household_event(session, EVENT_VISIT_RECORDED, snapshot, actor=principal.subject,
                                  extra={"visit": {**_visit_public(values), "result": result}})
    return result


def _failed(index: int, client_visit_id: Any, problem: Problem) -> dict:
    return {"index": index, "client_visit_id": client_visit_id, "status": problem.status, "problem": problem.body()}


def _forbidden(cadre_id: str, household_id: str) -> Problem:
    return Problem(403, "Not your household", f"Cadre {cadre_id} is not paired with household "
                   f"{household_id}; a cadre records visits only for their own households.",
                   type_="https://jingzhun.dev/problems/forbidden")


async def record_batch_one_by_one(sessionmaker: async_sessionmaker[AsyncSession], items: list[Any],
                                  principal: Principal, *, now: datetime) -> list[dict]:
    """Each visit in its own transaction (``record_visit``): the reference semantics of a batch.

    ``record_batch`` falls back to this when it meets a concurrent writer; tests compare with it.
    """
    results = []
    for index, raw in enumerate(items):
        client_visit_id = raw.get("client_visit_id") if isinstance(raw, dict) else None
        try:
            visit = parse_visit(raw, loc=("body", "visits", index))
            status, result = await record_visit(sessionmaker, visit, principal, now=now)
            results.append({"index": index, "client_visit_id": str(visit.client_visit_id), "status": status,
                            "result": result})
        except Problem as problem:
            results.append(_failed(index, client_visit_id, problem))
    return results


class _Concurrent(Exception):
    """Another writer changed a household (or recorded one of the visits) while the batch ran."""


class _Household:
    """A touched household inside a batch: its current snapshot and fact provenance, in memory."""

    __slots__ = ("snapshot", "loaded_version", "newest", "touched")

    def __init__(self, snapshot: dict, newest: dict[str, dict]) -> None:
        self.snapshot = snapshot
        self.loaded_version = snapshot["version"]
        self.newest = newest
        self.touched: set[str] = set()

    def observe(self, facts, *, observed_at: datetime, source: str, version: int) -> None:
        for fact in facts:
            self.newest[fact] = {"observed_at": observed_at, "source": source[:80], "version": version}
            self.touched.add(fact)


class _Staged:
    """Rows a batch writes at its end, in the order the one-by-one path would have written them."""

    def __init__(self) -> None:
        self.visits: list[dict] = []
        self.versions: list[dict] = []
        self.events: list[dict] = []

    def event(self, event_type: str, snapshot: dict, actor: str | None, extra: dict) -> None:
        envelope = Envelope(source="registry", type=event_type, subject=f"household/{snapshot['id']}",
                            sequence=snapshot["version"],
                            # no clear ID number leaves the registry (shared.personal_data.event_form)
                            data=event_form({"household": snapshot, "version": snapshot["version"], **extra},
                                            identity_hasher()), actor=actor)
        self.events.append({"event_id": envelope.id, "topic": TOPIC_REGISTRY, "key": snapshot["id"],
                            "lane": lane_of(snapshot["id"]), "payload": envelope,  # signed when inserted
                            "created_at": utcnow(), "attempts": 0})


async def record_batch(sessionmaker: async_sessionmaker[AsyncSession], items: list[Any], principal: Principal, *,
                       now: datetime) -> list[dict]:
    """Per-item results exactly as if each visit were recorded on its own, in index order.

    One transaction per batch: what every item needs (stored client_visit_ids, the households,
    the cadre's pairings and teams, fact provenance) is read once, the items are applied in
    memory in index order (an item that fails changes nothing), and the rows are written at the
    end with a few executemany statements. If another writer got in the way (a household changed,
    a visit recorded concurrently), the whole batch is rolled back and recorded one by one.
    """
    try:
        return await _record_batch_together(sessionmaker, items, principal, now=now)
    except (_Concurrent, IntegrityError):
        return await record_batch_one_by_one(sessionmaker, items, principal, now=now)


async def _record_batch_together(sessionmaker: async_sessionmaker[AsyncSession], items: list[Any],
                                 principal: Principal, *, now: datetime) -> list[dict]:
    results: list[dict | None] = [None] * len(items)
    parsed: list[tuple[int, VisitIn, str]] = []
    for index, raw in enumerate(items):
        try:
            visit = parse_visit(raw, loc=("body", "visits", index))
        except Problem as problem:
            results[index] = _failed(index, raw.get("client_visit_id") if isinstance(raw, dict) else None, problem)
            continue
        parsed.append((index, visit, str(visit.client_visit_id)))
    if not parsed:
        return results  # type: ignore[return-value]

    async with transaction(sessionmaker) as session:
        stored: dict[str, Any] = {row.client_visit_id: row for row in (await session.execute(
            select(visits.c.client_visit_id, visits.c.cadre_id, visits.c.result, visits.c.household_id,
                   visits.c.visited_at, visits.c.payload)
            .where(visits.c.client_visit_id.in_(sorted({cvid for _, _, cvid in parsed}))))).all()}
        wanted = sorted({visit.household_id for _, visit, cvid in parsed if cvid not in stored})
        touched: dict[str, _Household] = {}
        paired: set[str] = set()
        teams: set[str] = set()
        if wanted:
            rows = (await session.execute(select(households.c.id, households.c.snapshot)
                                          .where(households.c.id.in_(wanted))
                                          .order_by(households.c.id).with_for_update())).all()
            newest: dict[str, dict[str, dict]] = {row.id: {} for row in rows}
            if rows:
                for row in (await session.execute(select(fact_provenance).where(
                        fact_provenance.c.household_id.in_(list(newest))))).all():
                    newest[row.household_id][row.fact] = {"observed_at": as_aware(row.observed_at),
                                                          "source": row.source, "version": row.version}
            touched = {row.id: _Household(row.snapshot, newest[row.id]) for row in rows}
            if not principal.is_admin and rows:
                paired = set((await session.execute(select(pairings.c.household_id).where(
                    pairings.c.household_id.in_(list(touched)), pairings.c.cadre_id == principal.subject,
                    pairings.c.ended_at.is_(None)))).scalars())
                teams = set((await session.execute(select(village_team.c.village_code).where(
                    village_team.c.cadre_id == principal.subject, village_team.c.ended_at.is_(None)))).scalars())

        staged = _Staged()
        for index, visit, cvid in parsed:
            try:
                if cvid in stored:
                    status, result = 200, _replay(stored[cvid], principal, visit)
                else:
                    status, result = 201, _record_in_memory(visit, cvid, principal, now, touched, paired, teams,
                                                            staged)
                    stored[cvid] = _Replayable(principal.subject, result, staged.visits[-1])
                results[index] = {"index": index, "client_visit_id": cvid, "status": status, "result": result}
            except Problem as problem:
                results[index] = _failed(index, cvid, problem)
        await _write(session, touched, staged)
    return results  # type: ignore[return-value]


class _Replayable:
    """A visit recorded earlier in the same batch, shaped like its stored row for ``_replay``."""

    __slots__ = ("cadre_id", "result", "household_id", "visited_at", "payload")

    def __init__(self, cadre_id: str, result: dict, values: dict) -> None:
        self.cadre_id, self.result = cadre_id, result
        self.household_id, self.visited_at, self.payload = values["household_id"], values["visited_at"], values["payload"]


def _record_in_memory(visit: VisitIn, client_visit_id: str, principal: Principal, now: datetime,
                      touched: dict[str, _Household], paired: set[str], teams: set[str], staged: _Staged) -> dict:
    """``_record_new`` against the batch's in-memory households; raises before changing anything."""
    visited_at = _visited_at(visit, now)
    household = touched.get(visit.household_id)
    snapshot = check_loaded(household.snapshot if household else None, visit.household_id, principal)
    assert household is not None
    if not principal.is_admin and snapshot["id"] not in paired and \
            (snapshot.get("village") or {}).get("code") not in teams:
        raise _forbidden(principal.subject, visit.household_id)
    facts = _observed_facts(visit, snapshot)

    visit_id = f"v-{uuid.uuid4().hex[:16]}"
    applied, ignored = _split_by_newer(facts, household.newest, visited_at)
    source = f"visit:{visit_id}"
    changed_paths: list[str] = []
    new_version: tuple[dict, list[str]] | None = None
    recorded: set[str] = set()
    if applied:
        after = _apply(snapshot, applied)
        if after != snapshot:
            changed_paths = changed_paths_of({k: v for k, v in snapshot.items() if k != "version"},
                                             {k: v for k, v in after.items() if k != "version"})
            recorded = set(facts_of(changed_paths, after["members"]))
            new_version = prepare_new_version(snapshot, after)  # the last thing that may refuse the item
            if claims_change(snapshot, new_version[0]):
                raise _Concurrent("a visit changes the person index; record one by one")

    # from here on nothing refuses the item: apply it to the batch's state
    actor = principal.subject
    if new_version is not None:
        snapshot, paths = new_version
        household.snapshot = snapshot
        staged.versions.append({"household_id": snapshot["id"], "version": snapshot["version"],
                                "event_type": "household.updated", "changed_paths": paths, "snapshot": snapshot,
                                "actor": actor, "note": f"visit {visit_id}", "at": utcnow()})
        household.observe(facts_of(paths, snapshot["members"]), observed_at=visited_at, source=source,
                          version=snapshot["version"])
        staged.event("household.updated", snapshot, actor, {
            "changed_paths": paths, "provenance": {"visit_id": visit_id, "client_visit_id": client_visit_id,
                                                   "visited_at": visited_at.isoformat()}})
    if applied:
        household.observe(sorted(set(applied) - recorded), observed_at=visited_at, source=source,
                          version=snapshot["version"])

    payload = _payload(visit)
    recorded_at = utcnow()
    result = {"visit_id": visit_id, "client_visit_id": client_visit_id, "household_id": snapshot["id"],
              "visited_at": visited_at.isoformat(), "recorded_at": recorded_at.isoformat(),
              "household_version": snapshot["version"], "applied": sorted(applied), "ignored": ignored,
              "changed_paths": changed_paths}
    values = {"id": visit_id, "client_visit_id": client_visit_id, "household_id": snapshot["id"],
              "cadre_id": actor, "visited_at": visited_at, "recorded_at": recorded_at,
              "payload": payload, "result": result}
    staged.visits.append(values)
    staged.event(EVENT_VISIT_RECORDED, snapshot, actor, {"visit": {**_visit_public(values), "result": result}})
    return result


async def _write(session: AsyncSession, touched: dict[str, _Household], staged: _Staged) -> None:
    for household_id, household in touched.items():
        if household.snapshot["version"] == household.loaded_version:
            continue
        done = await session.execute(update(households).where(
            households.c.id == household_id, households.c.version == household.loaded_version).values(
            updated_at=utcnow(), **row_values(household.snapshot)))
        if done.rowcount != 1:
            raise _Concurrent(f"household {household_id} changed while the batch ran")
    if staged.versions:
        await session.execute(insert(household_versions), staged.versions)
    facts = [(household_id, fact, household.newest[fact]) for household_id, household in touched.items()
             for fact in sorted(household.touched)]
    if facts:
        # delete + insert is a portable upsert (as record_facts); the households are locked
        await session.execute(delete(fact_provenance).where(
            fact_provenance.c.household_id == bindparam("b_household_id"),
            fact_provenance.c.fact == bindparam("b_fact")),
            [{"b_household_id": household_id, "b_fact": fact} for household_id, fact, _ in facts])
        await session.execute(insert(fact_provenance), [
            {"household_id": household_id, "fact": fact, **known} for household_id, fact, known in facts])
    if staged.visits:
        await session.execute(insert(visits), staged.visits)
    if staged.events:
        await session.execute(insert(outbox), [{**row, "payload": signed_payload(session, row["payload"])}
                                               for row in staged.events])
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            await session.execute(text("SELECT pg_notify('jz_outbox', :topic)"), {"topic": TOPIC_REGISTRY})


async def list_visits(session: AsyncSession, household_id: str, principal: Principal, *, cursor: str | None,
                      limit: int) -> tuple[list[dict], str | None]:
    snapshot = await load_household(session, household_id, principal)
    if not principal.has("registry:read") and not await may_visit(session, principal.subject, snapshot):
        raise Problem(403, "Not your household", "A cadre reads the visits of their own households only.",
                      type_="https://jingzhun.dev/problems/forbidden")
    query = (select(visits).where(visits.c.household_id == household_id)
             .order_by(visits.c.visited_at.desc(), visits.c.id.desc()).limit(limit + 1))
    if cursor:
        at, _, visit_id = decode_cursor(cursor).partition("|")
        try:
            at_value = datetime.fromisoformat(at)
        except ValueError as exc:
            raise Problem(400, "Invalid cursor", "The cursor is not one this API returned.") from exc
        query = query.where(tuple_(visits.c.visited_at, visits.c.id) < tuple_(at_value, visit_id))
    rows = (await session.execute(query)).all()
    items = [{**_visit_public(row._mapping), "result": row.result} for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(f"{as_aware(last.visited_at).isoformat()}|{last.id}")
    return items, next_cursor


__all__ = ["MAX_BATCH", "MEMBER_FACTS", "VisitIn", "list_visits", "parse_visit", "record_batch",
           "record_batch_one_by_one", "record_visit"]
