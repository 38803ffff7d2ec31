"""Consumes every topic and appends each event to the chain of its topic partition."""
from __future__ import annotations

from fastapi import FastAPI
from pydantic import ValidationError

from services.audit.ledger.service import append_event, chain_id_for
from shared.bus import Consumer, PoisonMessage
from shared.config import TOPICS, AuditSettings
from shared.db import transaction
from shared.events import Envelope

GROUP_ID = "audit"


def make_handler(sessionmaker, settings: AuditSettings):
    async def handle(record) -> None:
        try:
            envelope = Envelope.from_bytes(record.value)
        except (ValueError, ValidationError) as exc:
            raise PoisonMessage(f"unparsable event: {exc}") from exc
        async with transaction(sessionmaker) as session:
            await append_event(session, envelope, chain_id_for(record.topic, record.partition),
                               settings.hash_algorithm)
    return handle


async def run_audit_consumer(app: FastAPI) -> None:
    settings: AuditSettings = app.state.settings
    if not settings.run_consumer:
        return
    consumer = Consumer(settings, list(TOPICS), GROUP_ID, make_handler(app.state.sessionmaker, settings),
                        name="audit-consumer")
    app.state.consumer = consumer
    try:
        await consumer.run()
    finally:
        consumer.stop()
