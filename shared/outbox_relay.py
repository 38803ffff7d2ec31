"""Publishes outbox rows to Kafka, in order per key, and keeps the retained tail.

Wake-up: PostgreSQL ``LISTEN jz_outbox`` (the writer's ``pg_notify``) or a short poll.
Claiming: a relay takes a lane with a transaction-scoped advisory lock and its rows with
``FOR UPDATE SKIP LOCKED``, so two relays never publish the same row, nor rows of one
key out of order. Rows stay after publishing for the retention period so a fresh
development broker can be refilled (``replay_retained``).
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from aiokafka import AIOKafkaProducer
from sqlalchemy import MetaData, delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.bus import make_producer
from shared.config import CommonSettings
from shared.db import make_sessionmaker
from shared.events import utcnow
from shared.outbox import define_outbox

log = logging.getLogger("relay")

_OUTBOX = define_outbox(MetaData())
_ADVISORY_NAMESPACE = 7_301_001  # arbitrary, stable: "jingzhun outbox" advisory lock class


class OutboxRelay:
    def __init__(self, engine: AsyncEngine, settings: CommonSettings, *, name: str = "relay",
                 producer: AIOKafkaProducer | None = None) -> None:
        self.engine, self.settings, self.name = engine, settings, name
        self.sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
        self.is_postgres = engine.dialect.name == "postgresql"
        self._producer = producer
        self._own_producer = producer is None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.published = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = make_producer(self.settings.kafka_bootstrap, self.settings)
            await producer.start()
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        await self._drop_producer()

    async def _drop_producer(self) -> None:
        if self._own_producer and self._producer is not None:
            try:
                await self._producer.stop()
            except Exception:  # noqa: BLE001
                pass
            self._producer = None

    async def publish_pending(self) -> int:
        """One pass over every lane; returns how many rows were published."""
        total = 0
        async with self.engine.connect() as conn:
            lanes = (await conn.execute(select(_OUTBOX.c.lane).where(_OUTBOX.c.published_at.is_(None))
                                        .distinct())).scalars().all()
        for lane in sorted(lanes):
            while True:
                count = await self._publish_lane_batch(lane)
                total += count
                if count < self.settings.outbox_batch_size:
                    break
        self.published += total
        return total

    async def _publish_lane_batch(self, lane: int) -> int:
        async with self.sessionmaker() as session:
            async with session.begin():
                if self.is_postgres:
                    got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:ns, :lane)"),
                                               {"ns": _ADVISORY_NAMESPACE, "lane": lane})
                    if not got:
                        return 0  # another relay owns this lane right now
                # On SQLite, count the attempt first: this write takes the database's write lock, so
                # a second relay waits here and then finds the rows already published.
                batch_ids = (select(_OUTBOX.c.id).where(_OUTBOX.c.lane == lane, _OUTBOX.c.published_at.is_(None))
                             .order_by(_OUTBOX.c.id).limit(self.settings.outbox_batch_size))
                if not self.is_postgres:
                    await session.execute(update(_OUTBOX).where(_OUTBOX.c.id.in_(batch_ids.scalar_subquery()))
                                          .values(attempts=_OUTBOX.c.attempts + 1))
                query = (select(_OUTBOX.c.id, _OUTBOX.c.topic, _OUTBOX.c.key, _OUTBOX.c.payload)
                         .where(_OUTBOX.c.lane == lane, _OUTBOX.c.published_at.is_(None))
                         .order_by(_OUTBOX.c.id).limit(self.settings.outbox_batch_size))
                if self.is_postgres:
                    query = query.with_for_update(skip_locked=True)
                rows = (await session.execute(query)).all()
                if not rows:
                    return 0
                producer = await self._ensure_producer()
                futures = [await producer.send(row.topic, row.payload.encode(), key=row.key.encode())
                           for row in rows]
                # Kafka keeps per-partition order of sends from one producer; wait for all acks
                # before marking, so a crash here means a resend (duplicates are fine downstream).
                await asyncio.gather(*futures)
                await session.execute(update(_OUTBOX).where(_OUTBOX.c.id.in_([r.id for r in rows]))
                                      .values(published_at=utcnow()))
                return len(rows)

    async def pending(self) -> int:
        async with self.engine.connect() as conn:
            return await conn.scalar(select(func.count()).select_from(_OUTBOX)
                                     .where(_OUTBOX.c.published_at.is_(None)))

    async def replay_retained(self) -> int:
        """Mark rows published within the retention period as unpublished again."""
        since = utcnow() - timedelta(days=self.settings.outbox_retention_days)
        async with self.sessionmaker() as session, session.begin():
            result = await session.execute(update(_OUTBOX).where(
                _OUTBOX.c.published_at.is_not(None), _OUTBOX.c.created_at >= since).values(published_at=None))
            return result.rowcount or 0

    async def purge_expired(self) -> int:
        before = utcnow() - timedelta(days=self.settings.outbox_retention_days)
        async with self.sessionmaker() as session, session.begin():
            result = await session.execute(delete(_OUTBOX).where(
                _OUTBOX.c.published_at.is_not(None), _OUTBOX.c.published_at < before))
            return result.rowcount or 0

    async def _listen(self) -> None:
        """PostgreSQL wake-up on commit of an outbox row; polling remains the safety net."""
        if not self.is_postgres:
            return
        import asyncpg
        from sqlalchemy.engine import make_url
        url = make_url(self.engine.url).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
        while not self._stopping.is_set():
            try:
                conn = await asyncpg.connect(dsn)
                await conn.add_listener("jz_outbox", lambda *_: self._wake.set())
                try:
                    await self._stopping.wait()
                finally:
                    await conn.close()
            except Exception:  # noqa: BLE001
                await asyncio.sleep(1)

    async def run(self, *, drain_on_stop: bool = True) -> None:
        listener = asyncio.create_task(self._listen())
        backoff = self.settings.outbox_poll_interval_s
        try:
            await self.purge_expired()
            while not self._stopping.is_set():
                try:
                    await self.publish_pending()
                    backoff = self.settings.outbox_poll_interval_s
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - broker down: keep rows, retry later
                    log.warning("%s: publish failed (%s); will retry", self.name, exc)
                    await self._drop_producer()
                    backoff = min(max(backoff * 2, 0.2), 5.0)
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=backoff)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
            if drain_on_stop:
                await self.publish_pending()
        finally:
            listener.cancel()
            await self._drop_producer()
