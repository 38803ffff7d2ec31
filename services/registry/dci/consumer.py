"""Household changes → DCI notifications: the consumer of ``jz.registry.v1`` (group ``registry-dci``).

The registry's own events, published through its outbox, are the feed (not a poll of the tables): each
household event is verified with the keyring (a forged one is dead-lettered, never notified), its version is
read back from ``household_versions`` with the version before it, and every active subscription whose event
type it is, whose filter the new version matches, whose time window holds it and whose caller may see the
household gets one notification staged in ``dci_deliveries`` (the worker delivers it). Staging is idempotent
(``notify:<code>:<household>:<version>``), so a redelivered event notifies nobody twice; the offset is
committed after the database commit (shared/bus.py), so a crash loses none.

Event types: ``REGISTER`` (household.registered), ``DEREGISTER`` (the status became exited or removed),
``NewHouseHoldMember`` (a living member id not in the version before) and ``UPDATE`` (every new version; an
extension of this registry, documented in docs/dci.md).
"""
from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime

from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.dci import queries, records
from services.registry.dci.envelope import callback_header, now_utc, timestamp
from services.registry.dci.service import NOTIFY_RECORD_TYPE, REG_TYPE, Caller
from services.registry.households.service import area_code_of
from services.registry.tables import dci_deliveries, dci_subscriptions, dead_letters, household_versions, households
from shared.bus import Consumer, PoisonMessage
from shared.clock import china_now
from shared.config import TOPIC_REGISTRY, RegistrySettings
from shared.dead_letters import durable_dead_letter_hook
from shared.signing import SignatureError, SigningConfigError, TrustedKeys, trusted_keys, verified_envelope

log = logging.getLogger("registry.dci.consumer")

GROUP_ID = "registry-dci"
LEFT = ("exited", "removed")


def event_types(event_type: str, before: dict | None, after: dict) -> set[str]:
    """The DCI event types one new household version is."""
    kinds = {"UPDATE"}
    if event_type == "household.registered":
        kinds.add("REGISTER")
    if after.get("status") in LEFT and (before or {}).get("status") not in LEFT:
        kinds.add("DEREGISTER")
    if before is not None:
        living_before = {m.get("id") for m in before.get("members") or [] if not m.get("deceased")}
        if any(m.get("id") not in living_before for m in after.get("members") or [] if not m.get("deceased")):
            kinds.add("NewHouseHoldMember")
    return kinds


async def _versions(session: AsyncSession, household_id: str, version: int) -> tuple[dict | None, dict | None, dict]:
    """The version before, this version, and the times a record shows (registered, this version's change)."""
    rows = (await session.execute(select(household_versions.c.version, household_versions.c.snapshot,
                                         household_versions.c.at).where(
        household_versions.c.household_id == household_id,
        household_versions.c.version.in_([version - 1, version])))).all()
    found = {row.version: row for row in rows}
    created = await session.scalar(select(households.c.created_at).where(households.c.id == household_id))
    times = {"created_at": created, "updated_at": found[version].at if version in found else None}
    before, after = found.get(version - 1), found.get(version)
    return (before.snapshot if before else None), (after.snapshot if after else None), times


def _notification(subscription, snapshot: dict, kind: str, *, registry_id: str, members: list[dict] | None,
                  event_id: str, times: dict) -> tuple[dict, dict]:
    caller = Caller(**subscription.caller).principal()
    clear = caller.is_admin
    if subscription.response_entity == "Member":
        found = [records.person_record(member, snapshot, clear=clear) for member in members or []]
    else:
        found = [records.household_record(snapshot, clear=clear, **times)]
    reference = f"{snapshot['id']}@{snapshot['version']}"
    items = [{"reference_id": reference if len(found) == 1 else f"{reference}#{index + 1}", "timestamp": timestamp(),
              "data": {"version": "1.0.0", "reg_type": REG_TYPE, "reg_event_type": kind,
                       "response_entity": subscription.response_entity, "reg_records": record}}
             for index, record in enumerate(found)]
    if subscription.locale:
        for item in items:
            item["locale"] = subscription.locale
    message = {"transaction_id": uuid.uuid4().hex, "notify_event": items}
    header = callback_header("notify", registry_id=registry_id, receiver_id=subscription.sender_id, status="succ",
                             total=len(items), completed=len(items))
    header["meta"] = {"subscription_code": subscription.code, "event_id": event_id,
                      "notify_record_type": NOTIFY_RECORD_TYPE[subscription.response_entity]}
    return header, message


async def stage_notifications(session: AsyncSession, event_type: str, household_id: str, version: int, *,
                              event_id: str, event_time: datetime, registry_id: str) -> int:
    """Stage the notifications one household version owes its subscribers (the caller commits)."""
    before, after, times = await _versions(session, household_id, version)
    if after is None:
        raise PoisonMessage(f"{event_type} for {household_id} version {version}, which the registry does not hold")
    kinds = event_types(event_type, before, after)
    subscriptions = (await session.execute(select(dci_subscriptions).where(
        dci_subscriptions.c.status == "subscribe", dci_subscriptions.c.reg_event_type.in_(kinds)))).all()
    staged = 0
    as_of = china_now().date()
    for subscription in subscriptions:
        if subscription.start_time and event_time < subscription.start_time:
            continue
        if subscription.end_time and event_time > subscription.end_time:
            continue
        caller = Caller(**subscription.caller).principal()
        if not caller.sees_area(area_code_of(after)):
            continue  # another area's household: the subscriber is not told it exists
        criteria = queries.parse_criteria(subscription.filter_type, subscription.filter,
                                          entity=subscription.response_entity)
        matched = queries.matches(criteria, after, as_of=as_of)
        if not matched:
            continue
        key = f"notify:{subscription.code}:{household_id}:{version}"
        if await session.scalar(select(dci_deliveries.c.id).where(dci_deliveries.c.dedup_key == key)):
            continue  # a redelivered event: notified already
        header, message = _notification(subscription, after, subscription.reg_event_type, registry_id=registry_id,
                                        members=matched if isinstance(matched, list) else None, event_id=event_id,
                                        times=times)
        now = now_utc()
        await session.execute(insert(dci_deliveries).values(
            dedup_key=key, kind="notify", sender_id=subscription.sender_id, subscription_code=subscription.code,
            url=subscription.notify_uri, action="notify", header=header, message=message, status="pending",
            attempts=0, next_attempt_at=now, created_at=now))
        staged += 1
    return staged


async def apply_registry_event(sessionmaker: async_sessionmaker[AsyncSession], raw: bytes, trusted: TrustedKeys, *,
                               registry_id: str) -> int:
    """Notifications staged for one event of ``jz.registry.v1`` (0 for events about other things)."""
    try:
        wire = json.loads(raw)
    except ValueError as exc:
        raise PoisonMessage(f"unparsable registry event: {exc}") from exc
    if not isinstance(wire, dict) or not str(wire.get("subject") or "").startswith("household/"):
        return 0  # villages, cadres: no DCI event type is about them
    try:
        envelope = verified_envelope(raw, trusted)
    except SignatureError as exc:
        raise PoisonMessage(str(exc)) from exc
    except (ValueError, ValidationError) as exc:
        raise PoisonMessage(f"unparsable registry event: {exc}") from exc
    if envelope.source != "registry" or not envelope.type.startswith("household."):
        return 0
    version = envelope.sequence or (envelope.data or {}).get("version")
    if not isinstance(version, int):
        raise PoisonMessage(f"{envelope.type} without a household version")
    household_id = envelope.subject.split("/", 1)[1]
    async with sessionmaker() as session:
        staged = await stage_notifications(session, envelope.type, household_id, version, event_id=envelope.id,
                                           event_time=envelope.time, registry_id=registry_id)
        await session.commit()
    return staged


async def run_dci_consumer(app: FastAPI) -> None:
    """Background task of the registry app (``JZ_REGISTRY_DCI_CONSUMER=false`` or run_consumer=false: off)."""
    settings: RegistrySettings = app.state.settings
    if not (settings.run_consumer and settings.dci_consumer):
        return
    try:
        trusted = trusted_keys(settings)
    except SigningConfigError as exc:
        log.error("DCI consumer not started, no notifications: %s", exc)
        return
    worker = getattr(app.state, "dci_worker", None)

    async def handle(record) -> None:
        staged = await apply_registry_event(app.state.sessionmaker, record.value, trusted,
                                            registry_id=settings.dci_receiver_id)
        if staged and worker is not None:
            worker.wake.set()

    consumer = Consumer(settings, [TOPIC_REGISTRY], GROUP_ID, handle, name="registry-dci-consumer",
                        on_dead_letter=durable_dead_letter_hook(app.state.sessionmaker, dead_letters))
    app.state.dci_consumer = consumer
    await consumer.run()
