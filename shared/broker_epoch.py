"""Broker epochs: how a relay and a consumer know they still talk to the broker they think they do.

The development broker keeps everything in memory, so a restart is a *fresh* broker: same address,
empty log. Anything that keeps going as if nothing happened breaks order (a relay sends newer rows
before the retained older ones are replayed) or skips records (a consumer fetches at an offset of
the old log). Kafka has no conditional produce and Tansu creates topics on first use, so neither
"who created the topic" nor a produce error tells a fresh broker apart.

So the broker carries its own identity: the topic ``jz.epochs.v1`` (one partition, never
compacted) holds one *marker* per data topic, written by whoever first needs it on this broker::

    key = "jz.registry.v1"
    value = {"epoch": "<uuid>", "topic": "jz.registry.v1", "start": {"0": 0, "1": 0, ...}, "by": "...", "at": "..."}

The first marker per topic wins (later ones from a race are ignored by everyone). ``start`` is the
topic's end offset per partition when the marker was written: records below it were sent before
anybody knew this broker (a relay's last in-flight batch) and are skipped by consumers, because the
relay replays them in order. A relay compares a topic's marker epoch with the epoch it adopted
(stored in its database) before and after every batch; a consumer compares after every fetch.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import uuid
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import ClusterAuthorizationFailedError, TopicAuthorizationFailedError
from aiokafka.structs import TopicPartition

from shared.config import CommonSettings
from shared.events import utcnow

log = logging.getLogger("broker_epoch")

EPOCH_TOPIC = "jz.epochs.v1"
_EPOCH_PARTITION = TopicPartition(EPOCH_TOPIC, 0)


@dataclass(frozen=True)
class TopicEpoch:
    topic: str
    epoch: str
    start: dict[int, int] = field(default_factory=dict)

    def start_of(self, partition: int) -> int:
        return self.start.get(partition, 0)


@dataclass(frozen=True)
class BrokerEpochs:
    """What the broker's epoch topic says right now: the first marker per topic."""

    topics: dict[str, TopicEpoch] = field(default_factory=dict)

    def epoch_of(self, topic: str) -> str | None:
        marker = self.topics.get(topic)
        return marker.epoch if marker else None

    def same_for(self, other: "BrokerEpochs", topics) -> bool:
        return all(self.epoch_of(t) == other.epoch_of(t) and self.epoch_of(t) is not None for t in topics)


def _parse_marker(raw: bytes | None) -> TopicEpoch | None:
    try:
        value = json.loads(raw or b"")
        return TopicEpoch(topic=str(value["topic"]), epoch=str(value["epoch"]),
                          start={int(p): int(o) for p, o in (value.get("start") or {}).items()})
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # not a marker (garbage on the topic): ignored, never fatal


class EpochReader:
    """Reads the epoch topic from its beginning; one fetch (about a millisecond) when markers exist."""

    def __init__(self, bootstrap: str, settings: CommonSettings | None = None, *, empty_wait_ms: int = 150) -> None:
        from shared.bus import kafka_client_options
        self.bootstrap = bootstrap
        self.settings = settings
        self.empty_wait_ms = empty_wait_ms
        self._reader: AIOKafkaConsumer | None = None
        self._options = kafka_client_options(settings)

    async def _ensure(self) -> AIOKafkaConsumer:
        if self._reader is None:
            reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                      auto_offset_reset="earliest", fetch_max_wait_ms=10,
                                      request_timeout_ms=5000, **self._options)
            await reader.start()
            reader.assign([_EPOCH_PARTITION])
            self._reader = reader
        return self._reader

    async def read(self, timeout_s: float = 3.0) -> BrokerEpochs:
        """The markers now; TimeoutError when the broker does not answer in time (aiokafka itself would
        keep retrying a dead broker for as long as one waits)."""
        try:
            return await asyncio.wait_for(self._read(), timeout_s)
        except BaseException:
            await self.close()  # a broken connection is rebuilt on the next read
            raise

    async def _read(self) -> BrokerEpochs:
        """Exactly the records from the log start to the end offset asked for first (ListOffsets, no
        prefetch): a fetch still in flight from an earlier read may answer from another offset, so only
        the next expected offset is taken. The first marker per topic is all that counts, so markers
        written after the end asked for do not matter. (Tansu answers the end as the base offset of the
        last batch; markers are single-record batches, so it is exact for them.)"""
        reader = await self._ensure()
        begin = (await reader.beginning_offsets([_EPOCH_PARTITION]))[_EPOCH_PARTITION]
        end = (await reader.end_offsets([_EPOCH_PARTITION]))[_EPOCH_PARTITION]
        topics: dict[str, TopicEpoch] = {}
        expected = begin
        reader.seek(_EPOCH_PARTITION, expected)
        while expected < end:
            batch = await reader.getmany(_EPOCH_PARTITION, timeout_ms=200, max_records=500)
            records = batch.get(_EPOCH_PARTITION, [])
            if records and records[0].offset > expected:  # an answer for a later position: ask again
                reader.seek(_EPOCH_PARTITION, expected)
                continue
            for record in records:
                if record.offset != expected:
                    continue  # already seen (an answer for an earlier position)
                expected += 1
                marker = _parse_marker(record.value)
                if marker is not None and marker.topic not in topics:
                    topics[marker.topic] = marker
                if expected >= end:
                    break
        return BrokerEpochs(topics)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await stop_quietly(reader)


async def ensure_markers(bootstrap: str, topics, settings: CommonSettings | None = None, *,
                         reader: EpochReader | None = None, by: str | None = None,
                         partitions: int | None = None) -> BrokerEpochs:
    """Markers for ``topics`` on this broker, writing the missing ones (start = the topics' end offsets now).

    Idempotent and safe to race: after writing, the epoch topic is read again and the first marker per
    topic is what everybody uses.
    """
    from shared.bus import ensure_topics, make_producer, true_end_offsets
    own_reader = reader is None
    reader = reader or EpochReader(bootstrap, settings)
    try:
        epochs = await reader.read()
        missing = [t for t in topics if t not in epochs.topics]
        if not missing:
            return epochs
        count = partitions or (settings.topic_partitions if settings else CommonSettings().topic_partitions)
        try:
            # The data topics and the epoch topic (no .dlq twins here: a relay's principal cannot see those).
            await ensure_topics(bootstrap, count, missing, settings, with_dlq=False)
            await ensure_topics(bootstrap, 1, [EPOCH_TOPIC], settings, with_dlq=False)
        except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError) as exc:
            # Production: topics are made by the kafka-init job with their retention; this principal may
            # not create any. If one is really missing, the marker write below says so.
            log.info("not creating topics (%s); expecting them to exist", type(exc).__name__)
        producer: AIOKafkaProducer = make_producer(bootstrap, settings)
        await producer.start()
        try:
            from shared.bus import partitions_of
            for topic in missing:
                tps = await partitions_of(bootstrap, topic, settings)
                ends = await true_end_offsets(bootstrap, tps, settings) if tps else {}
                marker = {"epoch": str(uuid.uuid4()), "topic": topic,
                          "start": {str(tp.partition): offset for tp, offset in sorted(ends.items())},
                          "by": by or socket.gethostname(), "at": utcnow().isoformat()}
                await producer.send_and_wait(EPOCH_TOPIC, json.dumps(marker).encode(), key=topic.encode(),
                                             partition=0)
                log.info("broker epoch %s for %s (start %s) by %s", marker["epoch"], topic, marker["start"],
                         marker["by"])
        finally:
            await producer.stop()
        # Another writer may have raced us: the first marker per topic is the one that counts.
        for _ in range(20):
            epochs = await reader.read()
            if all(t in epochs.topics for t in topics):
                return epochs
            await asyncio.sleep(0.05)
        raise RuntimeError(f"broker epoch markers for {missing} written but not readable")
    finally:
        if own_reader:
            await reader.close()


async def stop_quietly(client) -> None:
    """Stop an aiokafka client without letting its internals' errors out: with the broker away, ``stop()``
    can raise a connection error or the CancelledError of its own fetch task. A cancellation of the
    caller itself is passed on."""
    try:
        await client.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception:  # noqa: BLE001 - closing anyway
        pass
