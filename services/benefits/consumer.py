"""Consumes ``jz.registry.v1``: keeps the latest snapshot per household and recomputes.

Idempotent twice over: an event id already processed changes nothing, and a household
version at or below the stored one is ignored (redelivery, replay, reordering).
"""
from __future__ import annotations

import logging
from datetime import date, timedelta, timezone

from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.benefits.entitlements.service import recompute_household, recompute_households
from services.benefits.monitoring.service import observation_of, record_observation, same_observation
from shared.policy import PackRegistry
from services.benefits.tables import dead_letters, household_snapshots, income_observations, processed_events, villages
from services.benefits.partners.lookup import index_persons, index_persons_many, person_rows
from shared.bus import Consumer, PoisonMessage
from shared.config import TOPIC_REGISTRY, BenefitsSettings
from shared.dead_letters import durable_dead_letter_hook
from shared.db import transaction
from shared.events import Envelope, utcnow
from shared.signing import SignatureError, TrustedKeys, trusted_keys, verified_envelope
from shared.clock import evaluation_date as clock_evaluation_date
from shared.clock import today_in_china

log = logging.getLogger("benefits.consumer")

GROUP_ID = "benefits"
CHINA = timezone(timedelta(hours=8))


def evaluation_date(settings: BenefitsSettings) -> date:
    """The configured policy date, else today in China (not the machine's UTC day: shared/clock.py)."""
    return clock_evaluation_date(settings)


async def _already_processed(session: AsyncSession, event_id: str) -> bool:
    if await session.scalar(select(processed_events.c.event_id).where(processed_events.c.event_id == event_id)):
        return True
    await session.execute(insert(processed_events).values(event_id=event_id, processed_at=utcnow()))
    return False


def recorded_on(envelope: Envelope) -> date | None:
    """The China-local day the registry recorded the event."""
    return envelope.time.astimezone(CHINA).date() if envelope.time else None


async def store_snapshot(session: AsyncSession, snapshot: dict, observed_on: date | None = None) -> bool:
    """Upsert the snapshot if it is newer than the stored one; True when it was.

    ``observed_on``: the day the registry recorded the version (dates status changes and deaths).
    """
    stored = await session.scalar(select(household_snapshots.c.version)
                                  .where(household_snapshots.c.household_id == snapshot["id"]))
    if stored is not None and stored >= snapshot["version"]:
        return False
    village = snapshot.get("village") or {}
    values = {"version": snapshot["version"], "region_code": snapshot["region_code"],
              "village_code": village.get("code"), "township_code": village.get("township_code"),
              "status": snapshot["status"], "snapshot": snapshot, "updated_at": utcnow()}
    if stored is None:
        await session.execute(insert(household_snapshots).values(household_id=snapshot["id"], **values))
    else:
        await session.execute(update(household_snapshots)
                              .where(household_snapshots.c.household_id == snapshot["id"]).values(**values))
    await index_persons(session, snapshot, observed_on)  # partner look-up by ID number, status history, insurers' roster
    await record_observation(session, snapshot, observed_on)  # income history for risk elimination
    return True


async def apply_registry_event(session: AsyncSession, envelope: Envelope, as_of: date,
                               packs: PackRegistry | None = None) -> int:
    if await _already_processed(session, envelope.id):
        return 0
    if envelope.type.startswith(("household.", "person.")) and "household" in envelope.data:
        snapshot = envelope.data["household"]
        # A change takes effect on the day it was recorded; a system run on a fixed evaluation date
        # (the demo) has not reached later days, so the change takes effect on that date at the latest.
        observed_on = min(filter(None, (recorded_on(envelope), as_of)))
        if not await store_snapshot(session, snapshot, observed_on):
            return 0
        return await recompute_household(session, snapshot, as_of, cause_event_id=envelope.id,
                                         actor=envelope.actor, packs=packs)
    if envelope.type == "village.updated":
        return await _apply_village(session, envelope, as_of, packs)
    return 0  # visits and other facts that do not change entitlements by themselves


async def _apply_village(session: AsyncSession, envelope: Envelope, as_of: date,
                         packs: PackRegistry | None = None) -> int:
    """A village change fans out to every household of the village."""
    village, version = envelope.data["village"], envelope.data.get("version", envelope.sequence or 0)
    stored = await session.scalar(select(villages.c.version).where(villages.c.code == village["code"]))
    if stored is not None and stored >= version:
        return 0
    if stored is None:
        await session.execute(insert(villages).values(code=village["code"], version=version, data=village,
                                                      updated_at=utcnow()))
    else:
        await session.execute(update(villages).where(villages.c.code == village["code"])
                              .values(version=version, data=village, updated_at=utcnow()))
    # Locked (PostgreSQL) so another consumer member applying a household's newer version waits: its newer
    # decisions must not reach the outbox before the fan-out's.
    rows = (await session.execute(select(household_snapshots.c.household_id, household_snapshots.c.snapshot)
                                  .where(household_snapshots.c.village_code == village["code"])
                                  .with_for_update())).all()
    snapshots = []
    for row in rows:
        snapshot = {**row.snapshot, "village": {**(row.snapshot.get("village") or {}), **village}}
        await session.execute(update(household_snapshots).where(household_snapshots.c.household_id == row.household_id)
                              .values(snapshot=snapshot, updated_at=utcnow()))
        snapshots.append(snapshot)
    # One batch: the village's stored entitlements are read with one query, written with a few.
    result = await recompute_households(session, snapshots, as_of, cause_event_id=envelope.id,
                                        actor=envelope.actor, packs=packs)
    return result.decisions


def _household_snapshot(envelope: Envelope) -> dict | None:
    if envelope.type.startswith(("household.", "person.")) and isinstance(envelope.data.get("household"), dict):
        return envelope.data["household"]
    return None


async def apply_registry_events(session: AsyncSession, envelopes: list[Envelope], as_of: date,
                                packs: PackRegistry | None = None) -> int:
    """``apply_registry_event`` for each envelope in order, in the caller's transaction, with multi-row
    statements: consecutive household events go as one group (``_apply_households``) while their
    households and members' ID hashes are distinct; a household seen again, or any other event (a village
    fan-out), closes the group first. Returns the decisions, as the calls one by one would."""
    total, group, households, hashes = 0, [], set(), set()

    async def flush() -> None:
        nonlocal total, group
        if group:
            total += await _apply_households(session, group, as_of, packs)
        group = []
        households.clear()
        hashes.clear()

    for envelope in envelopes:
        snapshot = _household_snapshot(envelope)
        if snapshot is None:
            await flush()
            total += await apply_registry_event(session, envelope, as_of, packs)
            continue
        keys = {row["id_hash"] for row in person_rows(snapshot)}
        if snapshot["id"] in households or keys & hashes:
            await flush()
        group.append(envelope)
        households.add(snapshot["id"])
        hashes.update(keys)
    await flush()
    return total


async def _apply_households(session: AsyncSession, envelopes: list[Envelope], as_of: date,
                            packs: PackRegistry | None) -> int:
    """Household events of distinct households, in order: what ``apply_registry_event`` does for each
    (processed-event check, newer-version check, snapshot, person index, status history, income history,
    recompute), each step one or a few statements for the whole group."""
    ids = [e.id for e in envelopes]
    seen = set((await session.execute(select(processed_events.c.event_id)
                                      .where(processed_events.c.event_id.in_(ids)))).scalars())
    fresh = [e for e in envelopes if e.id not in seen]
    if not fresh:
        return 0
    now = utcnow()
    await session.execute(insert(processed_events), [{"event_id": e.id, "processed_at": now} for e in fresh])
    snapshots = {e.id: e.data["household"] for e in fresh}
    stored = dict((await session.execute(select(household_snapshots.c.household_id, household_snapshots.c.version)
                                         .where(household_snapshots.c.household_id.in_(
                                             [s["id"] for s in snapshots.values()])))).all())
    newer = [e for e in fresh if stored.get(snapshots[e.id]["id"]) is None
             or stored[snapshots[e.id]["id"]] < snapshots[e.id]["version"]]
    if not newer:
        return 0
    inserts, updates, items = [], [], []
    for envelope in newer:
        snapshot = snapshots[envelope.id]
        village = snapshot.get("village") or {}
        values = {"version": snapshot["version"], "region_code": snapshot["region_code"],
                  "village_code": village.get("code"), "township_code": village.get("township_code"),
                  "status": snapshot["status"], "snapshot": snapshot, "updated_at": now}
        if snapshot["id"] in stored:
            updates.append({"b_household_id": snapshot["id"], **values})
        else:
            inserts.append({"household_id": snapshot["id"], **values})
        items.append((snapshot, min(filter(None, (recorded_on(envelope), as_of)))))
    if inserts:
        await session.execute(insert(household_snapshots), inserts)
    if updates:
        await session.execute(update(household_snapshots)
                              .where(household_snapshots.c.household_id == bindparam("b_household_id")), updates)
    await index_persons_many(session, items)  # partner look-up by ID number, status history, insurers' roster
    await _record_observations(session, items)  # income history for risk elimination
    result = await recompute_households(session, [snapshot for snapshot, _ in items], as_of, cause_event_id=None,
                                        packs=packs, causes={snapshots[e.id]["id"]: (e.id, e.actor) for e in newer})
    return result.decisions


async def _record_observations(session: AsyncSession, items: list[tuple[dict, date]]) -> None:
    """``record_observation`` for many households (each once): one read of their last rows, one insert."""
    o = income_observations.c
    latest = (select(func.max(o.id)).where(o.household_id.in_([s["id"] for s, _ in items]))
              .group_by(o.household_id).scalar_subquery())
    last = {row.household_id: dict(row._mapping) for row in (await session.execute(
        select(o.household_id, o.income_year, o.per_capita_net, o.living_members, o.rigid_total)
        .where(o.id.in_(latest)))).all()}
    now, rows = utcnow(), []
    for snapshot, observed_on in items:
        facts = observation_of(snapshot)
        if snapshot["id"] in last and same_observation(last[snapshot["id"]], facts):
            continue
        rows.append({"household_id": snapshot["id"], "household_version": snapshot["version"],
                     "observed_on": observed_on or today_in_china(), "recorded_at": now, **facts})
    if rows:
        await session.execute(insert(income_observations), rows)


def trusted_event(raw: bytes, trusted: TrustedKeys) -> Envelope:
    """The registry event in ``raw`` once its signature checks out; a ``PoisonMessage`` saying why not.

    Nothing is stored before this: a forged snapshot at a high version would otherwise make the
    genuine versions look stale.
    """
    try:
        return verified_envelope(raw, trusted)
    except SignatureError as exc:
        raise PoisonMessage(str(exc)) from exc
    except (ValueError, ValidationError) as exc:
        raise PoisonMessage(f"unparsable registry event: {exc}") from exc


def make_handler(sessionmaker: async_sessionmaker[AsyncSession], settings: BenefitsSettings,
                 packs: PackRegistry | None = None):
    trusted = trusted_keys(settings)

    async def handle(record) -> None:
        envelope = trusted_event(record.value, trusted)
        async with transaction(sessionmaker) as session:
            await apply_registry_event(session, envelope, evaluation_date(settings), packs)
    return handle


def make_batch_handler(sessionmaker: async_sessionmaker[AsyncSession], settings: BenefitsSettings,
                       packs: PackRegistry | None = None):
    """A partition's events applied in order in one transaction (one commit instead of many)."""
    trusted = trusted_keys(settings)

    async def handle_batch(records) -> None:
        # One bad record fails the batch; the consumer then handles one by one and dead-letters just it.
        envelopes = [trusted_event(record.value, trusted) for record in records]
        async with transaction(sessionmaker) as session:
            await apply_registry_events(session, envelopes, evaluation_date(settings), packs)
    return handle_batch


async def run_registry_consumer(app: FastAPI) -> None:
    settings: BenefitsSettings = app.state.settings
    if not settings.run_consumer:
        return
    handler = make_handler(app.state.sessionmaker, settings, getattr(app.state, "packs", None))
    app.state.dead_letter_handler = handler  # what a redrive runs (services/benefits/dead_letters)
    consumer = Consumer(settings, [TOPIC_REGISTRY], GROUP_ID, handler,
                        name="benefits-consumer",
                        batch_handler=make_batch_handler(app.state.sessionmaker, settings,
                                                         getattr(app.state, "packs", None)),
                        on_dead_letter=durable_dead_letter_hook(app.state.sessionmaker, dead_letters))
    app.state.consumer = consumer
    try:
        await consumer.run()
    finally:
        consumer.stop()
