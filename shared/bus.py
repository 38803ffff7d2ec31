"""Kafka producer and consumer wrappers on aiokafka.

The bundled development broker has no idempotent producer, so idempotence is off;
the outbox plus idempotent consumers give exactly-once effects.
"""
from __future__ import annotations

import asyncio
import logging
import socket
import time
import traceback
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord, TopicPartition

from shared.broker_epoch import BrokerEpochs, EpochReader, ensure_markers, stop_quietly
from shared.config import TOPICS, CommonSettings, dlq_topic

log = logging.getLogger("bus")


def kafka_client_options(settings: CommonSettings | None) -> dict:
    """Security options for every aiokafka client (producer, consumer, admin) from the settings.

    Production authenticates each process as its own principal (SASL/SCRAM) so the broker's ACLs
    decide who may write which topic; the embedded development broker speaks PLAINTEXT.
    """
    if settings is None:
        return {}
    protocol = settings.kafka_security_protocol
    options: dict = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        if not (settings.kafka_sasl_username and settings.kafka_sasl_password):
            raise ValueError(f"JZ_KAFKA_SECURITY_PROTOCOL={protocol} needs JZ_KAFKA_SASL_USERNAME and "
                             "JZ_KAFKA_SASL_PASSWORD (this process's Kafka principal)")
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_sasl_username,
                       sasl_plain_password=settings.kafka_sasl_password)
    if protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context
        options["ssl_context"] = create_ssl_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    return options


def make_producer(bootstrap: str, settings: CommonSettings | None = None, **kwargs) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all",
                            linger_ms=kwargs.pop("linger_ms", 2),
                            request_timeout_ms=kwargs.pop("request_timeout_ms", 10000),
                            **kafka_client_options(settings), **kwargs)


async def broker_reachable(bootstrap: str, timeout: float = 1.0) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    except (OSError, asyncio.TimeoutError):
        return False
    writer.close()
    return True


async def ensure_topics(bootstrap: str, partitions: int, topics=TOPICS,
                        settings: CommonSettings | None = None, *, with_dlq: bool = True) -> list[str]:
    """Create each topic (and its ``.dlq`` twin unless ``with_dlq`` is off); returns the names that did not
    exist yet. The broker-epoch topic keeps its markers forever (no retention, no compaction)."""
    from shared.broker_epoch import EPOCH_TOPIC
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka_client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for topic in topics for t in ((topic, dlq_topic(topic)) if with_dlq else (topic,))]
        missing = [t for t in wanted if t not in existing]
        if missing:
            try:
                await admin.create_topics([
                    NewTopic(t, 1 if t == EPOCH_TOPIC else partitions, 1,
                             topic_configs={"retention.ms": "-1", "cleanup.policy": "delete"}
                             if t == EPOCH_TOPIC else None)
                    for t in missing])
            except TopicAlreadyExistsError:
                pass
        return missing
    finally:
        await admin.close()


async def partitions_of(bootstrap: str, topic: str, settings: CommonSettings | None = None) -> list[TopicPartition]:
    """The topic's partitions from fresh metadata (empty when the topic does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **kafka_client_options(settings))
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
        for entry in described:
            if entry.get("topic") == topic and not entry.get("error_code"):
                return sorted(TopicPartition(topic, p["partition"]) for p in entry.get("partitions", []))
        return []
    finally:
        await admin.close()


class PoisonMessage(Exception):
    """A handler raises this when retrying cannot help (e.g. unparsable payload)."""


Handler = Callable[[ConsumerRecord], Awaitable[None]]
BatchHandler = Callable[[list[ConsumerRecord]], Awaitable[None]]
#: Called after a record went to the ``.dlq`` topic, with the record, the consumer group and the error
#: text: a service keeps its own durable copy for operators (the in-memory broker forgets its DLQ).
DeadLetterHook = Callable[[ConsumerRecord, str, str], Awaitable[None]]


def process_started_at() -> float:
    """Wall-clock time (epoch seconds) this process started, from /proc (Linux); now elsewhere.

    Resume times are measured from process start, not from when the consumer object was built.
    """
    import os
    try:
        with open("/proc/self/stat") as stat:
            start_ticks = int(stat.read().rpartition(")")[2].split()[19])
        with open("/proc/uptime") as uptime:
            up = float(uptime.read().split()[0])
        return time.time() - up + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


class Consumer:
    """Consumes topics in a group, one message at a time per partition.

    The handler does its own database transaction; the offset is committed only after
    the handler returned, i.e. after the database commit. A message that keeps failing
    after bounded retries goes to the topic's ``.dlq`` twin with the error, then its
    offset is committed: nothing is dropped and the partition keeps moving.
    """

    def __init__(self, settings: CommonSettings, topics: list[str], group_id: str, handler: Handler,
                 *, name: str = "consumer", batch_handler: BatchHandler | None = None,
                 on_dead_letter: DeadLetterHook | None = None) -> None:
        self.settings, self.topics, self.group_id, self.handler, self.name = settings, topics, group_id, handler, name
        self.batch_handler = batch_handler
        self.on_dead_letter = on_dead_letter
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._reader: EpochReader | None = None
        self._epochs: BrokerEpochs | None = None
        self._epoch_checked_at = 0.0
        self._stopping = asyncio.Event()
        self.processed = 0
        self.dead_lettered = 0
        # What /readyz reports: "starting" until the first fetch, "running", "restarting" while the broker
        # is away or the broker epoch changed; times are epoch seconds.
        self._state = "starting"
        self.started_at = process_started_at()
        self.state_since = self.started_at
        self.first_event_at: float | None = None
        self.last_event_at: float | None = None
        self.last_error: str | None = None

    async def _start_clients(self) -> None:
        # Assigned partitions, not a group subscription: a restarted consumer fetches at once instead of
        # waiting for the group to notice its dead predecessor (seconds of session timeout and rebalance).
        # Offsets are still committed to the group, which is what the relay reads as "applied".
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, group_id=self.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=200,
            fetch_max_wait_ms=self.settings.consumer_fetch_max_wait_ms, **kafka_client_options(self.settings))
        self._producer = make_producer(self.settings.kafka_bootstrap, self.settings)
        self._reader = EpochReader(self.settings.kafka_bootstrap, self.settings)
        await self._consumer.start()
        await self._producer.start()
        await self._position()

    def _my_partitions(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        index, count = (int(part) for part in self.settings.consumer_member.split("/"))
        return [tp for tp in partitions if tp.partition % count == index]

    async def _position(self) -> None:
        """Take this member's partitions of the current broker epoch, each from its committed offset but
        never below the epoch's start (records below it were sent before the broker was known: the relay
        replays them in order)."""
        assert self._consumer is not None and self._reader is not None
        epochs = await ensure_markers(self.settings.kafka_bootstrap, self.topics, self.settings,
                                      reader=self._reader, by=self.name)
        partitions = []
        for topic in self.topics:
            partitions += self._my_partitions(await partitions_of(self.settings.kafka_bootstrap, topic, self.settings))
        self._consumer.assign(partitions)
        for tp in partitions:
            committed = await self._consumer.committed(tp)
            self._consumer.seek(tp, max(committed or 0, epochs.topics[tp.topic].start_of(tp.partition)))
        self._epochs = epochs
        self._epoch_checked_at = time.monotonic()
        self.state = "running"

    async def _epoch_still_holds(self) -> bool:
        """False (and repositioned) when the broker's epoch is no longer the one the positions belong to."""
        assert self._reader is not None
        current = await self._reader.read()
        self._epoch_checked_at = time.monotonic()
        if current.same_for(self._epochs, self.topics):
            return True
        log.warning("%s: the broker's epoch changed (a fresh broker); taking positions anew", self.name)
        self.state = "restarting"
        await self._position()
        return False

    async def _stop_clients(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                await stop_quietly(client)  # shutting down or reconnecting anyway
        if self._reader is not None:
            await self._reader.close()
        self._consumer = self._producer = self._reader = None

    async def run(self) -> None:
        """Run until ``stop()``; reconnects with backoff while the broker is away."""
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                await self._start_clients()
                backoff = 0.5
                self.state = "running"
                await self._loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - broker outages must not kill the service
                self.state, self.last_error = "restarting", f"{type(exc).__name__}: {exc}"
                log.warning("%s: broker error, reconnecting", self.name, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
            finally:
                await self._stop_clients()

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, value: str) -> None:
        if value != self._state:
            self._state, self.state_since = value, time.time()

    def stop(self) -> None:
        self._stopping.set()

    async def lag(self) -> int | None:
        """Records fetched by the broker's count but not yet handled here (None when not connected).

        From the client's own high-water marks and positions: no broker round trip, so /readyz stays cheap.
        """
        consumer = self._consumer
        if consumer is None:
            return None
        total = 0
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await consumer.position(tp)
            except Exception:  # noqa: BLE001 - no position yet (being reset)
                continue
            total += max(0, highwater - position)
        return total

    async def status(self, behind_threshold: int = 1000) -> dict:
        """The consumer's part of /readyz: state (starting | running | behind | restarting), lag, counts."""
        lag = await self.lag()
        state = self.state
        if state == "running" and lag is not None and lag > behind_threshold:
            state = "behind"
        return {"state": state, "lag": lag, "processed": self.processed, "dead_lettered": self.dead_lettered,
                "started_at": self.started_at, "state_since": self.state_since,
                "first_event_at": self.first_event_at,
                "last_event_at": self.last_event_at, "last_error": self.last_error}

    async def _loop(self) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            batches = await self._consumer.getmany(timeout_ms=200, max_records=200)
            if batches:
                # Records handled only if they came from the broker the positions belong to: after a broker
                # restart a fetch at an old offset would skip or misplace records of the fresh log.
                if not await self._epoch_still_holds():
                    continue
            elif time.monotonic() - self._epoch_checked_at > 2.0:
                try:
                    await self._epoch_still_holds()
                except Exception as exc:  # noqa: BLE001 - broker away: say so, keep trying
                    self.state, self.last_error = "restarting", f"{type(exc).__name__}: {exc}"
                    self._epoch_checked_at = time.monotonic()
                    continue
                self.state = "running"
            for tp, records in batches.items():
                if self.batch_handler is not None and len(records) > 1:
                    await self._handle_batch(records)
                else:
                    for record in records:
                        await self._handle_with_retries(record)
                if not await self._commit(tp, records[-1].offset + 1):
                    break  # positions were taken anew: the rest of this fetch belongs to the old broker
                self.processed += len(records)
                self._note_processed()

    async def _commit(self, tp: TopicPartition, offset: int) -> bool:
        """Commit only to the broker the records came from. A commit that waited out a broker restart and
        landed in the fresh broker would claim offsets of the old log there: the relay would count the
        fresh broker's rows as applied and this consumer would start past them. So the epoch is checked
        right before, and a commit that cannot finish within ``consumer_commit_timeout_s`` (less than the
        launcher's broker restart delay) fails instead of waiting for the next broker."""
        if not await self._epoch_still_holds():
            return False
        assert self._consumer is not None
        await asyncio.wait_for(self._consumer.commit({tp: offset}), self.settings.consumer_commit_timeout_s)
        return True

    def _note_processed(self) -> None:
        self.last_event_at = time.time()
        if self.first_event_at is None:
            self.first_event_at = self.last_event_at
            log.info("%s: first event processed %.2f s after process start", self.name,
                     self.first_event_at - self.started_at)

    async def _handle_batch(self, records: list[ConsumerRecord]) -> None:
        """A partition's batch in one database transaction; if anything in it fails, fall back to
        one record at a time, which retries and dead-letters exactly the record at fault."""
        assert self.batch_handler is not None
        try:
            await self.batch_handler(records)
            return
        except Exception as exc:  # noqa: BLE001
            log.info("%s: batch of %d failed (%s); handling one by one", self.name, len(records), exc)
        for record in records:
            await self._handle_with_retries(record)

    async def _handle_with_retries(self, record: ConsumerRecord) -> None:
        attempts = self.settings.consumer_max_retries
        for attempt in range(1, attempts + 1):
            try:
                await self.handler(record)
                return
            except PoisonMessage as exc:
                await self._dead_letter(record, exc)
                return
            except Exception as exc:  # noqa: BLE001 - every failure is retried, then dead-lettered
                if attempt == attempts:
                    await self._dead_letter(record, exc)
                    return
                log.warning("%s: attempt %d failed for %s@%d/%d: %s", self.name, attempt, record.topic,
                            record.partition, record.offset, exc)
                await asyncio.sleep(self.settings.consumer_retry_backoff_s * 2 ** (attempt - 1))

    async def _dead_letter(self, record: ConsumerRecord, exc: Exception) -> None:
        assert self._producer is not None
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        headers = list(record.headers or []) + [
            ("error", error.encode()[:4000]), ("source_topic", record.topic.encode()),
            ("source_partition", str(record.partition).encode()), ("source_offset", str(record.offset).encode()),
            ("consumer_group", self.group_id.encode())]
        await self._producer.send_and_wait(dlq_topic(record.topic), record.value, key=record.key, headers=headers)
        if self.on_dead_letter is not None:
            await self.on_dead_letter(record, self.group_id, error)
        self.dead_lettered += 1
        log.error("%s: sent %s@%d/%d to DLQ: %s", self.name, record.topic, record.partition, record.offset, error)


async def true_end_offsets(bootstrap: str, partitions: list[TopicPartition],
                           settings: CommonSettings | None = None) -> dict[TopicPartition, int]:
    """End offsets that also hold on the development broker.

    Tansu may answer ListOffsets with the base offset of the last record batch rather
    than one past its last record, so read the tail from there and take the highest
    offset actually seen (on Apache Kafka this reads nothing and changes nothing).
    """
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                              **kafka_client_options(settings))
    await reader.start()
    try:
        ends = dict(await reader.end_offsets(partitions))
        reader.assign(partitions)
        for tp in partitions:
            reader.seek(tp, ends[tp])
        while True:
            batches = await reader.getmany(timeout_ms=300)
            if not batches:
                return ends
            for tp, records in batches.items():
                ends[tp] = max(ends[tp], records[-1].offset + 1)
    finally:
        await reader.stop()


async def consumer_lag(bootstrap: str, group_id: str, topics: list[str],
                       settings: CommonSettings | None = None) -> int:
    """Messages the group has not committed yet (used by the ordered shutdown).

    Reads committed offsets through a consumer of the group (OffsetFetch via the group
    coordinator), which the development broker supports; it never joins or commits.
    """
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
                             **kafka_client_options(settings))
    await probe.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in (probe.partitions_for_topic(t) or [])]
        if not partitions:
            return 0
        ends = await true_end_offsets(bootstrap, partitions, settings)
        lag = 0
        for tp in partitions:
            committed = await probe.committed(tp)
            lag += max(0, ends[tp] - (committed or 0))
        return lag
    finally:
        await probe.stop()
