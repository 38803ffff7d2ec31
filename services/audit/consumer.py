"""Consumes every topic, appends each event to the chain of its topic partition and folds
it into the read models, all in one transaction; also runs the daily checkpoint.

An event is appended only once both its signatures check out (``signature`` over the envelope,
``ledger_signature`` over what the ledger keeps, which is stored with the record); anything else
is dead-lettered with the reason and nothing is written."""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit.ledger.service import (CHECKPOINT_CHAIN, append_event, append_events, chain_heads, chain_id_for,
                                          create_checkpoint, latest_checkpoint)
from services.audit.projections import parse_time, project_record, project_records
from services.audit.tables import dead_letters
from shared.bus import Consumer, PoisonMessage
from shared.config import TOPICS, AuditSettings
from shared.dead_letters import durable_dead_letter_hook
from shared.db import transaction
from shared.events import Envelope, utcnow
from shared.signing import SignatureError, TrustedKeys, trusted_keys, verified_envelope

log = logging.getLogger("audit.consumer")

GROUP_ID = "audit"
CHINA = timezone(timedelta(hours=8))


async def ingest(session: AsyncSession, envelope: Envelope, chain_id: str, settings: AuditSettings) -> dict | None:
    """Append and project; None (and nothing written) when the event id is already in the ledger."""
    record = await append_event(session, envelope, chain_id, settings.hash_algorithm)
    if record is not None:
        await project_record(session, record)
    return record


def trusted_event(raw: bytes, trusted: TrustedKeys) -> Envelope:
    """The event in ``raw`` once both signatures check out; a ``PoisonMessage`` saying why not."""
    try:
        return verified_envelope(raw, trusted, ledger=True)
    except SignatureError as exc:
        raise PoisonMessage(str(exc)) from exc
    except (ValueError, ValidationError) as exc:
        raise PoisonMessage(f"unparsable event: {exc}") from exc


def make_handler(sessionmaker, settings: AuditSettings):
    trusted = trusted_keys(settings)

    async def handle(record) -> None:
        envelope = trusted_event(record.value, trusted)
        async with transaction(sessionmaker) as session:
            await ingest(session, envelope, chain_id_for(record.topic, record.partition), settings)
    return handle


def make_batch_handler(sessionmaker, settings: AuditSettings):
    """A partition's records in one transaction: one chain-head read, one multi-row append, then the
    projections in order, their read models read and written once for the batch (``project_records``);
    the same ledger and read models as handling them one by one."""
    trusted = trusted_keys(settings)

    async def handle_batch(records) -> None:
        # One bad record fails the batch; the consumer then handles one by one and dead-letters just it.
        envelopes = [trusted_event(record.value, trusted) for record in records]
        chain_id = chain_id_for(records[0].topic, records[0].partition)
        async with transaction(sessionmaker) as session:
            await project_records(session, await append_events(session, envelopes, chain_id, settings.hash_algorithm))
    return handle_batch


async def run_audit_consumer(app: FastAPI) -> None:
    settings: AuditSettings = app.state.settings
    if not settings.run_consumer:
        return
    handler = make_handler(app.state.sessionmaker, settings)
    app.state.dead_letter_handler = handler  # what a redrive runs (services/audit/dead_letters)
    consumer = Consumer(settings, list(TOPICS), GROUP_ID, handler,
                        name="audit-consumer",
                        batch_handler=make_batch_handler(app.state.sessionmaker, settings),
                        on_dead_letter=durable_dead_letter_hook(app.state.sessionmaker, dead_letters))
    app.state.consumer = consumer
    try:
        await consumer.run()
    finally:
        consumer.stop()


def daily_checkpoint_id(day) -> str:
    return f"checkpoint-daily-{day.isoformat()}"


async def checkpoint_if_due(sessionmaker: async_sessionmaker[AsyncSession], settings: AuditSettings,
                            interval_s: float, now: datetime | None = None) -> dict | None:
    """Write the day's checkpoint if the latest one is older than the interval (China date in its id,
    so two replicas write it once)."""
    now = now or utcnow()
    async with transaction(sessionmaker) as session:
        latest = await latest_checkpoint(session)
        if latest is not None and (now - (parse_time(latest["time"]) or now)).total_seconds() < interval_s:
            return None
        heads = await chain_heads(session, exclude=[CHECKPOINT_CHAIN])
        if not heads:
            return None  # an empty ledger: an all-zero checkpoint would commit to nothing
        return await create_checkpoint(session, settings.hash_algorithm, now=now, trigger="daily", heads=heads,
                                       trusted=trusted_keys(settings),
                                       event_id=daily_checkpoint_id(now.astimezone(CHINA).date())
                                       if interval_s >= 86400 else None)


async def run_checkpoint_scheduler(app: FastAPI) -> None:
    settings: AuditSettings = app.state.settings
    extras = app.state.audit
    if not (settings.run_consumer and extras.checkpoint_schedule):
        return
    while True:
        try:
            written = await checkpoint_if_due(app.state.sessionmaker, settings, extras.checkpoint_interval_s)
            if written:
                log.info("checkpoint %s: merkle root %s over %d chains", written["id"],
                         written["data"]["merkle_root"], written["data"]["chains"])
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - try again next round; the ledger itself is untouched
            log.warning("checkpoint failed", exc_info=True)
        await asyncio.sleep(min(600.0, max(1.0, extras.checkpoint_interval_s / 24)))
