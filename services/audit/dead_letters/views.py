"""``/v1/admin/dead-letters`` on audit: a redrive runs the ledger consumer's own handler (both signatures
checked, appended to the chain of the message's source partition, projected)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit.consumer import make_handler
from services.audit.tables import dead_letters, ledger_records
from shared.dead_letters import dead_letter_router


def consumer_handler(app):
    """The handler the running consumer uses; one built the same way when this process runs no consumer."""
    handler = getattr(app.state, "dead_letter_handler", None)
    if handler is None:
        handler = app.state.dead_letter_handler = make_handler(app.state.sessionmaker, app.state.settings)
    return handler


async def already_applied(session: AsyncSession, event_id: str) -> bool:
    """The ledger already holds the event (its id is unique there)."""
    return await session.scalar(select(ledger_records.c.id).where(ledger_records.c.event_id == event_id)) is not None


router = dead_letter_router(dead_letters, consumer_handler, already_applied)
