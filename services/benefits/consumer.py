"""Consumes ``jz.registry.v1``: keeps the latest snapshot per household and recomputes.

Idempotent twice over: an event id already processed changes nothing, and a household
version at or below the stored one is ignored (redelivery, replay, reordering).
"""
from __future__ import annotations

import logging
from datetime import date, timedelta, timezone

from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.benefits.entitlements.service import recompute_household, recompute_households
from services.benefits.monitoring.service import record_observation
from shared.policy import PackRegistry
from services.benefits.tables import dead_letters, household_snapshots, processed_events, villages
from services.benefits.partners.lookup import index_persons
from shared.bus import Consumer, PoisonMessage
from shared.config import TOPIC_REGISTRY, BenefitsSettings
from shared.dead_letters import durable_dead_letter_hook
from shared.db import transaction
from shared.events import Envelope, utcnow
from shared.signing import SignatureError, TrustedKeys, trusted_keys, verified_envelope
from shared.clock import evaluation_date as clock_evaluation_date

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
            for envelope in envelopes:
                await apply_registry_event(session, envelope, evaluation_date(settings), packs)
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
