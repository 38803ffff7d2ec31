"""``/v1/admin/dead-letters`` on benefits: a redrive runs the registry consumer's own handler."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.benefits.consumer import make_handler
from services.benefits.tables import dead_letters, processed_events
from shared.dead_letters import dead_letter_router


def consumer_handler(app):
    """The handler the running consumer uses; one built the same way when this process runs no consumer
    (``JZ_BENEFITS_RUN_CONSUMER=false``: an API replica can still redrive)."""
    handler = getattr(app.state, "dead_letter_handler", None)
    if handler is None:
        handler = app.state.dead_letter_handler = make_handler(app.state.sessionmaker, app.state.settings,
                                                               getattr(app.state, "packs", None))
    return handler


async def already_applied(session: AsyncSession, event_id: str) -> bool:
    """The consumer's event-id dedupe already holds the event."""
    return await session.scalar(select(processed_events.c.event_id)
                                .where(processed_events.c.event_id == event_id)) is not None


router = dead_letter_router(dead_letters, consumer_handler, already_applied)
