"""Publishes outbox rows to Kafka, in order per key, and refills a fresh broker with what is unapplied.

Wake-up: PostgreSQL ``LISTEN jz_outbox`` (the writer's ``pg_notify``, sent with its row), on SQLite a change of
the database file (two ``stat`` calls per ``outbox_poll_interval_s``); while the outbox stays empty the passes
themselves back off to one per ``outbox_idle_poll_max_s`` (the safety net for a lost notification).
Claiming: a relay takes a lane with a transaction-scoped advisory lock and its rows with
``FOR UPDATE SKIP LOCKED``, so two relays never publish the same row, nor rows of one
key out of order.

Broker epochs (shared/broker_epoch.py): before and after every batch the relay reads the broker's
epoch marker of each topic and compares it with the epoch it adopted (``relay_epochs``). A new
epoch means a fresh broker: under an exclusive lock the relay marks every published row that some
consumer has not applied as pending again, records the epoch, and only then goes on — so the
replayed rows and the new ones leave in one id order per lane, and nothing newer reaches the fresh
broker first. "Applied" comes from the consumer groups' committed offsets, swept about once a
second into ``applied_at`` using the partition and offset each produce ack returned; a restart with
nothing unapplied replays nothing. Published rows stay for the retention period so an operator can
still resend the whole tail (``jingzhun relay --replay``) after a disaster.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from datetime import timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from sqlalchemy import MetaData, bindparam, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.broker_epoch import BrokerEpochs, EpochReader, ensure_markers, stop_quietly
from shared.bus import kafka_client_options, make_producer
from shared.config import OUTBOX_TOPICS, CommonSettings
from shared.db import make_sessionmaker
from shared.events import utcnow
from shared.outbox import NOTIFY_CHANNEL, define_outbox, define_relay_epochs

log = logging.getLogger("relay")

_METADATA = MetaData()
_OUTBOX = define_outbox(_METADATA)
_RELAY_EPOCHS = define_relay_epochs(_METADATA)
_ADVISORY_NAMESPACE = 7_301_001  # arbitrary, stable: "jingzhun outbox" advisory lock class
_ALL_LANES = -1
_BROKER_CALL_TIMEOUT_S = 4.0  # lane batches hold it shared, adopting a new broker epoch holds it exclusively


class EpochChanged(Exception):
    """The broker is not the one this outbox's topics were last replayed into."""


class OutboxRelay:
    def __init__(self, engine: AsyncEngine, settings: CommonSettings, *, name: str = "relay",
                 producer: AIOKafkaProducer | None = None, topics=()) -> None:
        self.engine, self.settings, self.name = engine, settings, name
        self.sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
        self.is_postgres = engine.dialect.name == "postgresql"
        # This outbox's topics (any other topic found in its rows counts too): a fresh broker gets their
        # markers even before the first row of a topic is written.
        self.topics = set(topics) or set(OUTBOX_TOPICS.get(getattr(settings, "service_name", ""), ()))
        self._producer = producer
        self._own_producer = producer is None
        self._reader: EpochReader | None = None
        self._group_probes: dict[str, AIOKafkaConsumer] = {}
        self._adopted: dict[str, str] | None = None
        self._next_sweep = 0.0
        self._next_beat = 0.0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._listening = False  # PostgreSQL: LISTEN is up, so a commit wakes the relay
        self._unapplied = True  # the last sweep found published rows not yet applied (unknown: assume so)
        database = engine.url.database if engine.dialect.name == "sqlite" else None
        self._database_file = database if database and database != ":memory:" and not database.startswith("file:") else None
        self.published = 0
        self.replays: list[tuple[str, int]] = []  # (topic, rows) per adopted broker epoch

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            # A batch that cannot be delivered within this time fails instead of waiting for a broker to come
            # back: the launcher waits longer than this before it starts a new one, so a send from before a
            # broker restart never lands in the fresh broker ahead of the replay.
            producer = make_producer(self.settings.kafka_bootstrap, self.settings,
                                     request_timeout_ms=self.settings.relay_send_timeout_ms)
            await producer.start()
            self._producer = producer
        return self._producer

    def _epoch_reader(self) -> EpochReader:
        if self._reader is None:
            self._reader = EpochReader(self.settings.kafka_bootstrap, self.settings)
        return self._reader

    async def close(self) -> None:
        await self._drop_producer()

    async def _drop_producer(self) -> None:
        """Close every broker client (after an error they are rebuilt on the next pass)."""
        if self._own_producer and self._producer is not None:
            producer, self._producer = self._producer, None
            await stop_quietly(producer)
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        probes, self._group_probes = self._group_probes, {}
        for probe in probes.values():
            await stop_quietly(probe)

    async def publish_pending(self) -> int:
        """One pass over every lane; returns how many rows were published."""
        total = await self._publish_lanes()
        replays_before = len(self.replays)
        await self._sweep_applied_if_due()
        if len(self.replays) > replays_before:  # the sweep found a fresh broker: refill it now
            total += await self._publish_lanes()
        return total

    async def _publish_lanes(self) -> int:
        total = 0
        async with self.engine.connect() as conn:
            lanes = (await conn.execute(select(_OUTBOX.c.lane).where(_OUTBOX.c.published_at.is_(None))
                                        .distinct())).scalars().all()
        for lane in sorted(lanes):
            while True:
                try:
                    count = await self._publish_lane_batch(lane)
                except EpochChanged:
                    await self.adopt_broker_epoch()
                    continue  # the lane again, from its lowest pending row (replayed ones included)
                total += count
                if count < self.settings.outbox_batch_size:
                    break
        self.published += total
        return total

    # -- broker epochs ------------------------------------------------------------------------------
    async def _adopted_epochs(self) -> dict[str, str]:
        if self._adopted is None:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(select(_RELAY_EPOCHS.c.topic, _RELAY_EPOCHS.c.epoch))).all()
            self._adopted = {row.topic: row.epoch for row in rows}
        return self._adopted

    async def _epochs_for(self, topics) -> BrokerEpochs:
        """The broker's epochs, if every topic's marker is the one this outbox adopted; else EpochChanged."""
        epochs = await self._epoch_reader().read()
        adopted = await self._adopted_epochs()
        if any(epochs.epoch_of(topic) is None or epochs.epoch_of(topic) != adopted.get(topic) for topic in topics):
            raise EpochChanged(", ".join(sorted(topics)))
        return epochs

    async def _outbox_topics(self, session: AsyncSession) -> set[str]:
        found = (await session.execute(select(_OUTBOX.c.topic).where(_OUTBOX.c.applied_at.is_(None))
                                       .distinct())).scalars().all()
        return self.topics | set(found)

    async def adopt_broker_epoch(self) -> list[tuple[str, int]]:
        """A fresh broker (or first start): mark unapplied published rows pending again, per topic whose
        epoch changed, and remember the new epoch — all before anything else is published."""
        replayed = []
        async with self.sessionmaker() as session:
            async with session.begin():
                if self.is_postgres:  # wait until no lane batch is in flight, keep new ones out
                    await session.execute(text("SELECT pg_advisory_xact_lock(:ns, :all)"),
                                          {"ns": _ADVISORY_NAMESPACE, "all": _ALL_LANES})
                else:
                    # SQLite: a write first, so this transaction holds the database's write lock before it reads
                    # which epochs are adopted. Without it the driver began the transaction only at the first
                    # UPDATE: two relays could both read "not adopted" and replay the same rows twice
                    # (test_two_relays_adopting_one_fresh_broker_replay_once, seen under load).
                    await session.execute(update(_RELAY_EPOCHS).where(_RELAY_EPOCHS.c.topic == "")
                                          .values(epoch=_RELAY_EPOCHS.c.epoch))
                topics = await self._outbox_topics(session)
                epochs = await ensure_markers(self.settings.kafka_bootstrap, sorted(topics), self.settings,
                                              reader=self._epoch_reader(), by=self.name)
                adopted = {row.topic: row.epoch for row in
                           (await session.execute(select(_RELAY_EPOCHS.c.topic, _RELAY_EPOCHS.c.epoch))).all()}
                for topic in sorted(topics):
                    epoch = epochs.epoch_of(topic)
                    if epoch is None or adopted.get(topic) == epoch:
                        continue  # another relay of this outbox adopted it already
                    result = await session.execute(
                        update(_OUTBOX).where(_OUTBOX.c.topic == topic, _OUTBOX.c.published_at.is_not(None),
                                              _OUTBOX.c.applied_at.is_(None))
                        .values(published_at=None, kafka_partition=None, kafka_offset=None))
                    count = result.rowcount or 0
                    values = {"epoch": epoch, "adopted_at": utcnow(), "rows_replayed": count}
                    if topic in adopted:
                        await session.execute(update(_RELAY_EPOCHS).where(_RELAY_EPOCHS.c.topic == topic)
                                              .values(**values))
                    else:
                        await session.execute(insert(_RELAY_EPOCHS).values(topic=topic, **values))
                    replayed.append((topic, count))
        self._adopted = None
        for topic, count in replayed:
            # The chaos suite reads this line: "replay <topic>: <n> rows".
            log.warning("replay %s: %d rows (broker epoch %s, %s)", topic, count, epochs.epoch_of(topic), self.name)
        self.replays.extend(replayed)
        return replayed

    # -- applied positions --------------------------------------------------------------------------
    async def _group_probe(self, group: str) -> AIOKafkaConsumer:
        probe = self._group_probes.get(group)
        if probe is None:
            probe = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, group_id=group,
                                     enable_auto_commit=False, **kafka_client_options(self.settings))
            await probe.start()
            self._group_probes[group] = probe
        return probe

    async def _sweep_applied_if_due(self) -> None:
        if time.monotonic() >= self._next_sweep:
            self._next_sweep = time.monotonic() + self.settings.relay_sweep_interval_s
            await self.sweep_applied()

    async def sweep_applied(self) -> int:
        """Mark published rows that every consumer group of their topic has committed past as applied."""
        async with self.engine.connect() as conn:
            places = (await conn.execute(
                select(_OUTBOX.c.topic, _OUTBOX.c.kafka_partition).where(
                    _OUTBOX.c.applied_at.is_(None), _OUTBOX.c.kafka_partition.is_not(None)).distinct())).all()
        self._unapplied = bool(places)
        if not places:
            return 0
        topics = {place.topic for place in places}
        try:
            await self._epochs_for(topics)
        except EpochChanged:
            # Their offsets belong to a broker that is gone; the rows go to the new one (nothing may be
            # pending, so no batch would notice the new broker otherwise).
            await self.adopt_broker_epoch()
            return 0
        marked = 0
        groups_of = self.settings.topic_consumer_groups
        for place in places:
            groups = groups_of.get(place.topic)
            if not groups:
                continue  # nobody known consumes it: never counted as applied, always replayed
            tp = TopicPartition(place.topic, place.kafka_partition)
            committed = []
            for group in groups:
                # Bounded: with the broker away aiokafka would look for the group coordinator forever.
                probe = await asyncio.wait_for(self._group_probe(group), _BROKER_CALL_TIMEOUT_S)
                committed.append(await asyncio.wait_for(probe.committed(tp), _BROKER_CALL_TIMEOUT_S) or 0)
            applied_below = min(committed)
            try:
                # Offsets read while the broker was replaced would be another log's: check again after.
                await self._epochs_for({place.topic})
            except EpochChanged:
                await self.adopt_broker_epoch()
                return marked
            async with self.sessionmaker() as session, session.begin():
                result = await session.execute(update(_OUTBOX).where(
                    _OUTBOX.c.applied_at.is_(None), _OUTBOX.c.topic == place.topic,
                    _OUTBOX.c.kafka_partition == place.kafka_partition,
                    _OUTBOX.c.kafka_offset < applied_below).values(applied_at=utcnow()))
                marked += result.rowcount or 0
        return marked

    async def _publish_lane_batch(self, lane: int) -> int:
        async with self.sessionmaker() as session:
            async with session.begin():
                if self.is_postgres:
                    await session.execute(text("SELECT pg_advisory_xact_lock_shared(:ns, :all)"),
                                          {"ns": _ADVISORY_NAMESPACE, "all": _ALL_LANES})
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
                topics = {row.topic for row in rows}
                before = await self._epochs_for(topics)
                producer = await self._ensure_producer()
                futures = [await producer.send(row.topic, row.payload.encode(), key=row.key.encode())
                           for row in rows]
                # Kafka keeps per-partition order of sends from one producer; wait for all acks
                # before marking, so a crash here means a resend (duplicates are fine downstream).
                acks = await asyncio.gather(*futures)
                after = await self._epoch_reader().read()
                if not after.same_for(before, topics):
                    # The broker changed while the batch was in flight: leave the rows pending; adopting the
                    # new epoch resends them in order. Should not happen (send timeout < restart delay).
                    log.error("%s: broker epoch changed during a batch of %d rows; they stay pending",
                              self.name, len(rows))
                    raise EpochChanged(", ".join(sorted(topics)))
                now = utcnow()
                await session.execute(
                    update(_OUTBOX).where(_OUTBOX.c.id == bindparam("row_id"))
                    .values(published_at=now, kafka_partition=bindparam("partition"),
                            kafka_offset=bindparam("offset")),
                    [{"row_id": row.id, "partition": ack.partition, "offset": ack.offset}
                     for row, ack in zip(rows, acks)])
                return len(rows)

    async def pending(self) -> int:
        async with self.engine.connect() as conn:
            return await conn.scalar(select(func.count()).select_from(_OUTBOX)
                                     .where(_OUTBOX.c.published_at.is_(None)))

    async def replay_retained(self) -> int:
        """Disaster recovery: mark every row created within the retention period as unpublished again,
        applied or not (a fresh broker on its own gets only the unapplied ones)."""
        since = utcnow() - timedelta(days=self.settings.outbox_retention_days)
        async with self.sessionmaker() as session, session.begin():
            result = await session.execute(update(_OUTBOX).where(
                _OUTBOX.c.published_at.is_not(None), _OUTBOX.c.created_at >= since).values(
                published_at=None, kafka_partition=None, kafka_offset=None, applied_at=None))
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
                await conn.add_listener(NOTIFY_CHANNEL, lambda *_: self._wake.set())
                conn.add_termination_listener(lambda *_: self._listening_lost())
                self._listening = True
                self._wake.set()  # a commit may have gone unheard while not listening: look once
                try:
                    while not self._stopping.is_set() and not conn.is_closed():
                        try:
                            await asyncio.wait_for(self._stopping.wait(), 5.0)
                        except asyncio.TimeoutError:
                            pass
                finally:
                    self._listening = False
                    await conn.close()
            except Exception:  # noqa: BLE001
                self._listening = False
                await asyncio.sleep(1)

    def _listening_lost(self) -> None:
        self._listening = False
        self._wake.set()

    def _idle_wait(self, wait: float) -> float:
        """The next wait after a pass that published nothing: doubling up to ``outbox_idle_poll_max_s`` when a
        commit wakes the relay anyway (PostgreSQL while listening; SQLite, whose file changes are watched),
        bounded by the sweep while published rows wait to be applied (a fresh broker is found by the sweep)."""
        interval = self.settings.outbox_poll_interval_s
        if self.is_postgres and not self._listening:
            return interval
        longest = self.settings.outbox_idle_poll_max_s
        if self._unapplied:
            longest = min(longest, self.settings.relay_sweep_interval_s)
        return max(interval, min(wait * 2, longest))

    def _file_stamp(self) -> tuple | None:
        """SQLite: what changes whenever any process commits to the database (the file and its WAL)."""
        if self._database_file is None:
            return None
        stamp = []
        for path in (self._database_file, self._database_file + "-wal"):
            try:
                info = os.stat(path)
                stamp.append((info.st_mtime_ns, info.st_size))
            except OSError:
                stamp.append(None)
        return tuple(stamp)

    async def _pause(self, wait: float, stamp: tuple | None) -> None:
        """Until woken, ``wait`` has passed, or (SQLite) the database changed since ``stamp`` was taken, looked at
        every ``outbox_poll_interval_s`` (two stat calls instead of a query per outbox)."""
        deadline = time.monotonic() + wait
        step = wait if stamp is None else self.settings.outbox_poll_interval_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=min(step, remaining))
                break
            except asyncio.TimeoutError:
                pass
            if stamp is not None and self._file_stamp() != stamp:
                break
        self._wake.clear()

    async def run(self, *, drain_on_stop: bool = True) -> None:
        listener = asyncio.create_task(self._listen())
        interval = self.settings.outbox_poll_interval_s
        wait = interval
        try:
            await self.purge_expired()
            while not self._stopping.is_set():
                self._heartbeat()
                stamp = self._file_stamp()  # before the pass: a commit during it is seen as a change
                try:
                    published = await self.publish_pending()
                    wait = interval if published else self._idle_wait(wait)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - broker down: keep rows, retry later
                    log.warning("%s: publish failed (%s); will retry", self.name, exc)
                    await self._drop_producer()
                    wait = min(max(wait * 2, 0.2), 5.0)
                    stamp = None  # retry after the backoff even if nothing changes
                await self._pause(wait, stamp)
            if drain_on_stop:
                await self._drain()
        finally:
            listener.cancel()
            await self._drop_producer()

    def _heartbeat(self) -> None:
        """Touch the heartbeat file (a liveness probe's evidence that the loop turns) every few seconds.
        It beats while the broker is away too: an outage is not a reason to restart the relay."""
        path = self.settings.relay_heartbeat_file
        if path is None or time.monotonic() < self._next_beat:
            return
        self._next_beat = time.monotonic() + 5.0
        try:
            path.touch()
        except OSError as exc:
            log.warning("%s: cannot touch heartbeat file %s: %s", self.name, path, exc)

    async def _drain_once(self) -> None:
        await self.publish_pending()
        await self.sweep_applied()

    async def _drain(self) -> None:
        """Last pass on stop. With the broker away it gives up quietly: the rows stay pending for the next
        start, which is all a drain can promise."""
        try:
            await asyncio.wait_for(self._drain_once(), _BROKER_CALL_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 (the broker is away, or too slow to drain before stopping)
            try:
                left = await self.pending()
            except Exception:  # noqa: BLE001
                left = "some"
            log.warning("%s: stopping without a final drain (%s: %s); %s rows stay pending", self.name,
                        type(exc).__name__, exc, left)
