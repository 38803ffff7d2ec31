"""The transactional outbox: events are rows written in the same transaction as the change."""
from __future__ import annotations

import zlib
from datetime import datetime

from sqlalchemy import (BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, Text, func,
                        insert, select)
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events import Envelope, utcnow
from shared.signing import sign_envelope, signer_for

#: Rows are spread over lanes by key; a relay owns a whole lane while it publishes,
#: which keeps per-key order even when several relays share one outbox.
OUTBOX_LANES = 16


def lane_of(key: str) -> int:
    return zlib.crc32(key.encode()) % OUTBOX_LANES


def define_outbox(metadata: MetaData) -> Table:
    return Table(
        "outbox", metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False, unique=True),
        Column("topic", String(128), nullable=False),
        Column("key", String(128), nullable=False),
        Column("lane", Integer, nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Column("attempts", Integer, nullable=False, default=0),
        Column("last_error", Text, nullable=True),
        # Where the broker put the row (from the produce ack) and when every consumer group of its topic
        # had committed past it: a fresh broker is refilled with published rows not yet applied, only.
        Column("kafka_partition", Integer, nullable=True),
        Column("kafka_offset", BigInteger, nullable=True),
        Column("applied_at", DateTime(timezone=True), nullable=True),
        Index("ix_outbox_pending", "lane", "published_at", "id"),
        Index("ix_outbox_published_at", "published_at"),
        Index("ix_outbox_unapplied", "applied_at", "topic", "kafka_partition", "kafka_offset"),
    )


def define_relay_epochs(metadata: MetaData) -> Table:
    """The broker epoch (shared/broker_epoch.py) each topic of this outbox was last replayed into."""
    return Table(
        "relay_epochs", metadata,
        Column("topic", String(128), primary_key=True),
        Column("epoch", String(64), nullable=False),
        Column("adopted_at", DateTime(timezone=True), nullable=False),
        Column("rows_replayed", Integer, nullable=False, default=0),
    )


def signed_payload(session: AsyncSession, envelope: Envelope) -> str:
    """The outbox payload of an event, signed with the key of the service whose database this is.

    Every producer of outbox rows (one at a time or in bulk) goes through here, so nothing leaves a
    service unsigned; the relay publishes the payload byte for byte.
    """
    return sign_envelope(envelope, signer_for(session, envelope.source)).to_bytes().decode()


#: The channel writers notify on commit and the relay listens on (PostgreSQL); the payload names the topic.
NOTIFY_CHANNEL = "jz_outbox"


def outbox_row(session: AsyncSession, topic: str, key: str, envelope: Envelope, *, now: datetime | None = None) -> dict:
    """The ``outbox`` columns of a staged event (signed), for callers that insert it themselves."""
    return {"event_id": envelope.id, "topic": topic, "key": key, "lane": lane_of(key),
            "payload": signed_payload(session, envelope), "created_at": now or utcnow(), "attempts": 0}


def is_postgres(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


async def add_to_outbox(session: AsyncSession, outbox: Table, topic: str, key: str,
                        envelope: Envelope) -> None:
    """Stage an event (signed); it is published only if the surrounding transaction commits.

    On PostgreSQL the row and the relay's wake-up (``pg_notify``, delivered at commit, dropped on rollback) are
    one statement: one round trip instead of two."""
    staged = insert(outbox).values(**outbox_row(session, topic, key, envelope))
    if is_postgres(session):
        staged_cte = staged.returning(outbox.c.id).cte("staged")
        await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, topic)).select_from(staged_cte))
    else:
        await session.execute(staged)
