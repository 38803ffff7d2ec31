"""The registry's consumer of ``jz.benefits.v1``: benefits' ``monitoring.risk_detected`` becomes a
``platform`` lead (平台分析), deduplicated per household like any lead.

Only that event type is acted on; benefits' decisions and every other type on the topic are skipped without
a look at their contents. A ``monitoring.risk_detected`` is verified with the keyring before anything is
stored (signed by benefits' key; a forged or unsigned one goes to the DLQ and into ``dead_letters``).
Idempotent by event id: the lead's ``client_lead_id`` is ``"benefits:" + event id`` (unique), so a
redelivery records nothing. The offset is committed after the database commit (shared/bus.py).
"""
from __future__ import annotations

import json
import logging
from datetime import datetime

from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.monitoring.leads import NewLead, record_lead
from services.registry.tables import dead_letters
from shared.auth import Principal
from shared.bus import Consumer, PoisonMessage
from shared.clock import china_now
from shared.config import TOPIC_BENEFITS, RegistrySettings
from shared.dead_letters import durable_dead_letter_hook
from shared.problems import Problem
from shared.signing import SignatureError, SigningConfigError, TrustedKeys, trusted_keys, verified_envelope

log = logging.getLogger("registry.monitoring.consumer")

GROUP_ID = "registry"
RISK_DETECTED = "monitoring.risk_detected"
PLATFORM = Principal(subject="service:benefits", scopes=frozenset({"registry:write"}))
KNOWN_CAUSES = {"illness", "disability", "schooling", "disaster", "lack_of_land", "lack_of_water", "lack_of_skills",
                "lack_of_labour", "lack_of_capital", "poor_transport", "low_motivation", "accident", "epidemic",
                "income_drop", "rigid_expense"}
# benefits' assessment names its unmet criteria; as lead risk causes they read so:
UNMET_AS_CAUSE = {"income_below_range": "income_drop", "rigid_expense": "rigid_expense"}


def _event_type(raw: bytes) -> str | None:
    try:
        wire = json.loads(raw)
    except ValueError as exc:
        raise PoisonMessage(f"unparsable benefits event: {exc}") from exc
    return wire.get("type") if isinstance(wire, dict) else None


def lead_of(envelope) -> NewLead:
    """The platform lead an event asks for (PoisonMessage when its data is not what the contract says)."""
    if envelope.source != "benefits":
        raise PoisonMessage(f"monitoring.risk_detected from {envelope.source!r}; only benefits raises it")
    data = envelope.data or {}
    household_id = data.get("household_id")
    if not isinstance(household_id, str) or not household_id:
        raise PoisonMessage("monitoring.risk_detected without household_id")
    causes = [c for c in data.get("risk_causes") or [] if c in KNOWN_CAUSES]
    unmet = ((data.get("assessment") or {}).get("unmet")) or []
    causes += [UNMET_AS_CAUSE[u] for u in unmet if u in UNMET_AS_CAUSE]
    if not causes:
        causes = ["income_drop"]
    trigger = data.get("trigger") or "registry_change"
    as_of = data.get("as_of")
    notes = (f"benefits: monitoring_range turned true ({trigger}"
             + (f", household version {data.get('household_version')}" if data.get("household_version") else "")
             + (f", as of {as_of}" if as_of else "") + ")")
    reported_at = envelope.time or china_now()
    return NewLead(f"benefits:{envelope.id}", household_id, "platform", causes, reported_at, notes,
                   source_event_id=envelope.id)


async def apply_benefits_event(sessionmaker: async_sessionmaker[AsyncSession], raw: bytes, trusted: TrustedKeys,
                               *, now: datetime) -> dict | None:
    """The lead recorded (or replayed) for a ``monitoring.risk_detected``; None for every other event."""
    if _event_type(raw) != RISK_DETECTED:
        return None
    try:
        envelope = verified_envelope(raw, trusted)
    except SignatureError as exc:
        raise PoisonMessage(str(exc)) from exc
    except (ValueError, ValidationError) as exc:
        raise PoisonMessage(f"unparsable benefits event: {exc}") from exc
    lead = lead_of(envelope)
    try:
        _, body = await record_lead(sessionmaker, lead, PLATFORM, now=now, check_cadre=False)
    except Problem as problem:
        if problem.status == 404:  # the registry has no such household: retrying cannot help
            raise PoisonMessage(f"monitoring.risk_detected for unknown household {lead.household_id}") from problem
        raise
    return body


def make_handler(sessionmaker: async_sessionmaker[AsyncSession], settings: RegistrySettings):
    trusted = trusted_keys(settings)

    async def handle(record) -> None:
        await apply_benefits_event(sessionmaker, record.value, trusted, now=china_now())
    return handle


async def run_monitoring_consumer(app: FastAPI) -> None:
    """Background task of the registry app (JZ_REGISTRY_MONITORING_CONSUMER=false, or run_consumer=false, turns
    it off). Not ``app.state.consumer``: the registry's readiness does not hang on the broker, it keeps taking
    writes while the broker is away; the consumer's status is under ``app.state.monitoring_consumer``."""
    settings: RegistrySettings = app.state.settings
    if not (settings.run_consumer and settings.monitoring_consumer):
        return
    try:
        handler = make_handler(app.state.sessionmaker, settings)
    except SigningConfigError as exc:  # production without JZ_EVENT_TRUSTED_KEYS_FILE: no event is trusted
        log.error("monitoring consumer not started, no automatic leads: %s", exc)
        return
    app.state.dead_letter_handler = handler
    consumer = Consumer(settings, [TOPIC_BENEFITS], GROUP_ID, handler, name="registry-monitoring-consumer",
                        on_dead_letter=durable_dead_letter_hook(app.state.sessionmaker, dead_letters))
    app.state.monitoring_consumer = consumer
    try:
        await consumer.run()
    finally:
        consumer.stop()
