"""Registry events, staged in the outbox inside the caller's transaction."""
from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.tables import outbox
from shared.config import TOPIC_REGISTRY
from shared.events import Envelope
from shared.outbox import add_to_outbox


async def publish_household_event(session: AsyncSession, event_type: str, snapshot: dict, *,
                                  actor: str | None, extra: dict | None = None) -> Envelope:
    data = {"household": snapshot, "version": snapshot["version"], **(extra or {})}
    envelope = Envelope(source="registry", type=event_type, subject=f"household/{snapshot['id']}",
                        sequence=snapshot["version"], data=data, actor=actor)
    await add_to_outbox(session, outbox, TOPIC_REGISTRY, snapshot["id"], envelope)
    return envelope


async def publish_village_event(session: AsyncSession, event_type: str, village: dict, version: int, *,
                                actor: str | None) -> Envelope:
    envelope = Envelope(source="registry", type=event_type, subject=f"village/{village['code']}",
                        sequence=version, data={"village": village, "version": version}, actor=actor)
    await add_to_outbox(session, outbox, TOPIC_REGISTRY, village["code"], envelope)
    return envelope
