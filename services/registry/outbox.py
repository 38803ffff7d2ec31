"""Registry events, staged in the outbox inside the caller's transaction.

Clear ID numbers never leave the registry: every event's data goes through
``shared.personal_data.event_form`` (mask + keyed hash with the identity key), here, at the one
place where registry data becomes an envelope.
"""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.tables import outbox
from shared.config import TOPIC_REGISTRY
from shared.events import Envelope
from shared.outbox import add_to_outbox, outbox_row
from shared.personal_data import event_form, identity_hasher


def household_envelope(event_type: str, snapshot: dict, *, actor: str | None, extra: dict | None = None) -> Envelope:
    data = event_form({"household": snapshot, "version": snapshot["version"], **(extra or {})},
                      identity_hasher())
    return Envelope(source="registry", type=event_type, subject=f"household/{snapshot['id']}",
                    sequence=snapshot["version"], data=data, actor=actor)


async def publish_household_event(session: AsyncSession, event_type: str, snapshot: dict, *,
                                  actor: str | None, extra: dict | None = None) -> Envelope:
    envelope = household_envelope(event_type, snapshot, actor=actor, extra=extra)
    await add_to_outbox(session, outbox, TOPIC_REGISTRY, snapshot["id"], envelope)
    return envelope


def household_event_row(session: AsyncSession, event_type: str, snapshot: dict, *, actor: str | None,
                        now=None) -> dict:
    """``publish_household_event``'s outbox row, for a caller that writes it in its own statement."""
    envelope = household_envelope(event_type, snapshot, actor=actor)
    return outbox_row(session, TOPIC_REGISTRY, snapshot["id"], envelope, now=now)


async def publish_village_event(session: AsyncSession, event_type: str, village: dict, version: int, *,
                                actor: str | None) -> Envelope:
    envelope = Envelope(source="registry", type=event_type, subject=f"village/{village['code']}",
                        sequence=version, data=event_form({"village": village, "version": version}, identity_hasher()),
                        actor=actor)
    await add_to_outbox(session, outbox, TOPIC_REGISTRY, village["code"], envelope)
    return envelope


async def publish_registry_event(session: AsyncSession, event_type: str, subject: str, key: str, data: dict,
                                 sequence: int | None, *, actor: str | None) -> Envelope:
    """Events about things other than a household or village (cadres): same topic and envelope."""
    envelope = Envelope(source="registry", type=event_type, subject=subject, sequence=sequence,
                        data=event_form(data, identity_hasher()), actor=actor)
    await add_to_outbox(session, outbox, TOPIC_REGISTRY, key, envelope)
    return envelope


async def publish_household_events_bulk(session: AsyncSession, event_type: str, snapshots: list[dict], *,
                                        actor: str | None) -> None:
    """``publish_household_event`` for many households in one statement (ledger import)."""
    from sqlalchemy import insert, text

    from shared.events import utcnow
    from shared.outbox import lane_of, signed_payload
    now = utcnow()
    id_hasher = identity_hasher()
    rows = []
    for snapshot in snapshots:
        envelope = Envelope(source="registry", type=event_type, subject=f"household/{snapshot['id']}",
                            sequence=snapshot["version"],
                            data=event_form({"household": snapshot, "version": snapshot["version"]}, id_hasher),
                            actor=actor)
        rows.append({"event_id": envelope.id, "topic": TOPIC_REGISTRY, "key": snapshot["id"],
                     "lane": lane_of(snapshot["id"]), "payload": signed_payload(session, envelope), "created_at": now,
                     "attempts": 0})
    if not rows:
        return
    await session.execute(insert(outbox), rows)
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_notify('jz_outbox', :topic)"), {"topic": TOPIC_REGISTRY})
