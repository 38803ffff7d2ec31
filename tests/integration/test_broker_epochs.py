"""Broker epochs: a fresh broker gets only what some consumer has not applied, in order per key, before
anything newer; consumers never skip or misplace records of the new log; a relay stops quietly."""
from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from sqlalchemy import func, select

from services.registry.tables import outbox, relay_epochs
from shared.broker import BrokerProcess, broker_command, free_port, wait_until_answers
from shared.broker_epoch import EPOCH_TOPIC, EpochReader, ensure_markers
from shared.bus import Consumer, ensure_topics, true_end_offsets
from shared.config import TOPIC_REGISTRY, CommonSettings
from shared.envelope_codec import decode_all
from tests.helpers import eventually
from tests.integration.test_delivery_guarantees import read_topic
from tests.integration.test_outbox_relay import KEYS, _outbox_engine, _stage_events
from shared.db import make_sessionmaker, transaction
from shared.events import Envelope
from shared.outbox import add_to_outbox
from shared.outbox_relay import OutboxRelay

GROUPS = {TOPIC_REGISTRY: ["benefits", "audit"]}


def now(check):
    """``eventually`` polls async probes; these checks are plain."""
    async def probe():
        return check()
    return probe


def _settings(tmp_path, bootstrap: str, **extra) -> CommonSettings:
    return CommonSettings(var_dir=tmp_path, kafka_bootstrap=bootstrap, topic_consumer_groups=GROUPS,
                          relay_sweep_interval_s=0.01, **extra)


async def _stage_versions(engine, versions) -> int:
    sessionmaker = make_sessionmaker(engine)
    for version in versions:
        async with transaction(sessionmaker) as session:
            for key in KEYS:
                await add_to_outbox(session, outbox, TOPIC_REGISTRY, key, Envelope(
                    source="registry", type="household.updated", subject=f"household/{key}", sequence=version,
                    data={"household": {"id": key, "version": version}}))
    return len(versions) * len(KEYS)


async def _commit_everything(bootstrap: str, groups, upto: dict[int, int] | None = None) -> None:
    """Stand-in consumers: each group commits every partition to its end (or to ``upto[partition]``)."""
    partitions = [TopicPartition(TOPIC_REGISTRY, p) for p in range(6)]
    ends = await true_end_offsets(bootstrap, partitions)  # Tansu's ListOffsets can be one batch short
    for group in groups:
        committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await committer.start()
        try:
            committer.assign(partitions)
            offsets = {tp: (upto or {}).get(tp.partition, ends[tp]) for tp in partitions}
            await committer.commit({tp: offset for tp, offset in offsets.items() if offset > 0})
        finally:
            await committer.stop()


async def _unapplied(engine) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(select(func.count()).select_from(outbox).where(outbox.c.applied_at.is_(None)))


def _per_key_sequences(records) -> dict[str, list[int]]:
    by_key = defaultdict(list)
    for event in decode_all(records):
        by_key[event.subject].append(event.sequence)
    return by_key


async def test_a_fresh_broker_gets_the_unapplied_rows_first_and_in_order(databases, tmp_path):
    engine = await _outbox_engine(databases)
    await _stage_versions(engine, [1, 2, 3])
    first = BrokerProcess()
    await first.start()
    relay = OutboxRelay(engine, _settings(tmp_path, first.bootstrap))
    assert await relay.publish_pending() == 3 * len(KEYS)
    await relay.close()
    first.stop()  # nobody consumed: all 36 rows were lost with the broker's memory

    await _stage_versions(engine, [4, 5])  # newer rows wait while the broker is away
    second = BrokerProcess(port=first.port)
    await second.start()
    try:
        relay = OutboxRelay(engine, _settings(tmp_path, second.bootstrap))
        assert await relay.publish_pending() == 5 * len(KEYS)
        assert relay.replays == [(TOPIC_REGISTRY, 3 * len(KEYS))]
        await relay.close()
        by_key = _per_key_sequences(await read_topic(second.bootstrap, TOPIC_REGISTRY, 5 * len(KEYS)))
        # The fresh broker's log: every key v1..v5, each once, oldest first.
        assert by_key == {f"household/{key}": [1, 2, 3, 4, 5] for key in KEYS}
        async with engine.connect() as conn:
            stored = dict((await conn.execute(select(relay_epochs.c.topic, relay_epochs.c.rows_replayed))).all())
        assert stored == {TOPIC_REGISTRY: 3 * len(KEYS)}
    finally:
        second.stop()
        await engine.dispose()


async def test_a_restart_with_everything_applied_replays_nothing_and_a_partial_one_only_the_rest(databases, tmp_path):
    engine = await _outbox_engine(databases)
    total = await _stage_versions(engine, [1, 2])
    first = BrokerProcess()
    await first.start()
    relay = OutboxRelay(engine, _settings(tmp_path, first.bootstrap))
    await relay.publish_pending()
    await _commit_everything(first.bootstrap, ["benefits"])  # audit has applied nothing yet
    assert await relay.sweep_applied() == 0
    assert await _unapplied(engine) == total
    await _commit_everything(first.bootstrap, ["audit"])
    assert await relay.sweep_applied() == total
    assert await _unapplied(engine) == 0
    await relay.close()
    first.stop()

    second = BrokerProcess(port=first.port)
    await second.start()
    try:
        relay = OutboxRelay(engine, _settings(tmp_path, second.bootstrap))
        await _stage_versions(engine, [3])
        assert await relay.publish_pending() == len(KEYS)  # only the new rows: nothing is missing downstream
        assert relay.replays == [(TOPIC_REGISTRY, 0)]
        # Both groups apply only partition 0 up to one record: exactly the other rows are unapplied.
        async with engine.connect() as conn:
            in_p0 = (await conn.execute(select(outbox.c.kafka_offset).where(
                outbox.c.kafka_partition == 0, outbox.c.applied_at.is_(None)))).scalars().all()
        await _commit_everything(second.bootstrap, ["benefits", "audit"], upto={0: 1, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0})
        assert await relay.sweep_applied() == (1 if in_p0 else 0)
        left = await _unapplied(engine)
        await relay.close()
        second.stop()

        third = BrokerProcess(port=first.port)
        await third.start()
        relay = OutboxRelay(engine, _settings(tmp_path, third.bootstrap))
        assert await relay.publish_pending() == left
        assert relay.replays == [(TOPIC_REGISTRY, left)]
        await relay.close()
        third.stop()
    finally:
        second.stop()
        await engine.dispose()


async def test_two_relays_adopting_one_fresh_broker_replay_once(databases, tmp_path):
    await _two_relays_adopt_one_fresh_broker(databases, tmp_path)


async def test_two_relays_reading_the_epochs_at_the_same_moment_replay_once(databases, tmp_path, monkeypatch):
    """Both relays read the broker's epoch markers, slowly, before either has adopted them: on SQLite the
    first one's adoption used to start its transaction only at its first write, so both read "not adopted"
    and replayed every row twice (seen on a loaded CI machine)."""
    import shared.outbox_relay

    async def slow_markers(*args, **kwargs):
        found = await ensure_markers(*args, **kwargs)
        await asyncio.sleep(0.3)
        return found
    monkeypatch.setattr(shared.outbox_relay, "ensure_markers", slow_markers)
    await _two_relays_adopt_one_fresh_broker(databases, tmp_path)


async def _two_relays_adopt_one_fresh_broker(databases, tmp_path) -> None:
    engine = await _outbox_engine(databases)
    total = await _stage_events(engine, versions_per_key=3)
    first = BrokerProcess()
    await first.start()
    relay = OutboxRelay(engine, _settings(tmp_path, first.bootstrap))
    await relay.publish_pending()
    await relay.close()
    first.stop()
    second = BrokerProcess(port=first.port)
    await second.start()
    try:
        relays = [OutboxRelay(engine, _settings(tmp_path, second.bootstrap, outbox_batch_size=5), name=f"r{n}")
                  for n in (1, 2)]
        await asyncio.gather(*(r.publish_pending() for r in relays))
        await asyncio.gather(*(r.publish_pending() for r in relays))
        for r in relays:
            await r.close()
        replayed = [count for r in relays for _, count in r.replays]
        assert sorted(replayed, reverse=True)[0] == total and sum(replayed) == total  # one adopted, one saw it done
        records = await read_topic(second.bootstrap, TOPIC_REGISTRY, total)
        assert len(records) == total
        assert all(seq == sorted(seq) for seq in _per_key_sequences(records).values())
    finally:
        second.stop()
        await engine.dispose()


class Recorder:
    def __init__(self):
        self.seen: list[tuple[int, int, bytes]] = []

    async def __call__(self, record) -> None:
        self.seen.append((record.partition, record.offset, record.value))


async def _produce(bootstrap: str, values, partition: int = 0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(TOPIC_REGISTRY, value, key=b"k", partition=partition)
    finally:
        await producer.stop()


async def test_a_consumer_takes_the_fresh_log_from_its_start_instead_of_its_old_offset(tmp_path):
    port = free_port()
    first = BrokerProcess(port=port)
    await first.start()
    settings = CommonSettings(var_dir=tmp_path, kafka_bootstrap=first.bootstrap)
    recorder = Recorder()
    consumer = Consumer(settings, [TOPIC_REGISTRY], "benefits", recorder, name="t")
    task = asyncio.create_task(consumer.run())
    try:
        await _produce(first.bootstrap, [b"old-%d" % n for n in range(3)])
        await eventually(now(lambda: len(recorder.seen) == 3), timeout=20)
        first.stop()  # the consumer's position (3) belongs to a log that no longer exists
        second = BrokerProcess(port=port)
        await second.start()
        # More records than the old position before the consumer fetches: without epochs it would resume
        # at offset 3 and never see new-0..new-2.
        await _produce(second.bootstrap, [b"new-%d" % n for n in range(6)])
        await eventually(now(lambda: sum(1 for *_, v in recorder.seen if v.startswith(b"new")) >= 6), timeout=30)
        new = [value for *_, value in recorder.seen if value.startswith(b"new")]
        assert new == [b"new-%d" % n for n in range(6)]  # all of them, in order, none skipped
        assert consumer.state == "running"
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 15)
        second.stop()


async def test_records_sent_before_the_broker_had_an_epoch_are_skipped_by_consumers(tmp_path):
    port = free_port()
    import subprocess
    process = subprocess.Popen(broker_command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bootstrap = f"127.0.0.1:{port}"
    try:
        await wait_until_answers(bootstrap)
        await ensure_topics(bootstrap, 1, [TOPIC_REGISTRY])
        await _produce(bootstrap, [b"stray-1", b"stray-2"])  # a relay's last batch from before the restart
        epochs = await ensure_markers(bootstrap, [TOPIC_REGISTRY], partitions=1)
        assert epochs.topics[TOPIC_REGISTRY].start_of(0) == 2
        await _produce(bootstrap, [b"replayed-1"])
        recorder = Recorder()
        consumer = Consumer(CommonSettings(var_dir=tmp_path, kafka_bootstrap=bootstrap), [TOPIC_REGISTRY],
                            "audit", recorder)
        task = asyncio.create_task(consumer.run())
        await eventually(now(lambda: len(recorder.seen) >= 1), timeout=20)
        await asyncio.sleep(0.5)
        consumer.stop()
        await asyncio.wait_for(task, 15)
        assert [value for *_, value in recorder.seen] == [b"replayed-1"]
        # The first marker per topic wins: a second ensure does not move the start.
        again = await ensure_markers(bootstrap, [TOPIC_REGISTRY], partitions=1)
        assert again.epoch_of(TOPIC_REGISTRY) == epochs.epoch_of(TOPIC_REGISTRY)
        reader = EpochReader(bootstrap)
        assert (await reader.read()).epoch_of(TOPIC_REGISTRY) == epochs.epoch_of(TOPIC_REGISTRY)
        await reader.close()
    finally:
        process.terminate()
        process.wait(5)


async def test_a_relay_stopped_while_the_broker_is_gone_stops_quietly_and_keeps_its_rows(databases, tmp_path, caplog):
    engine = await _outbox_engine(databases)
    broker = BrokerProcess()
    await broker.start()
    heartbeat = tmp_path / "relay.alive"
    relay = OutboxRelay(engine, _settings(tmp_path, broker.bootstrap, outbox_poll_interval_s=0.05,
                                          relay_heartbeat_file=heartbeat))
    task = asyncio.create_task(relay.run())
    try:
        await _stage_versions(engine, [1])
        await eventually(now(lambda: relay.published == len(KEYS)), timeout=45)
        assert heartbeat.exists()  # the liveness probe's evidence that the loop turns
        broker.stop()
        await _stage_versions(engine, [2])
        await asyncio.sleep(0.5)
        with caplog.at_level(logging.WARNING, logger="relay"):
            relay.stop()
            await asyncio.wait_for(task, 30)  # returns: no exception escapes the drain
        assert await relay.pending() == len(KEYS)
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
        assert any("stay pending" in r.getMessage() for r in caplog.records)
        assert heartbeat.stat().st_mtime > 0
    finally:
        if not task.done():
            task.cancel()
        await engine.dispose()


async def test_the_epoch_topic_holds_one_marker_per_topic(broker):
    reader = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None, enable_auto_commit=False,
                              auto_offset_reset="earliest")
    await reader.start()
    try:
        tp = TopicPartition(EPOCH_TOPIC, 0)
        reader.assign([tp])
        batch = await reader.getmany(tp, timeout_ms=2000)
        markers = [json.loads(r.value) for r in batch.get(tp, [])]
    finally:
        await reader.stop()
    assert sorted(m["topic"] for m in markers) == ["jz.access.v1", "jz.benefits.v1", "jz.registry.v1"]
    assert all(set(m["start"].values()) == {0} and len(m["start"]) == 6 for m in markers)


def test_a_consumer_member_takes_its_share_of_partitions(tmp_path):
    partitions = [TopicPartition(TOPIC_REGISTRY, p) for p in range(6)]
    shares = [Consumer(CommonSettings(var_dir=tmp_path, consumer_member=f"{i}/3"), [TOPIC_REGISTRY], "g", None)
              ._my_partitions(partitions) for i in range(3)]
    assert [[tp.partition for tp in share] for share in shares] == [[0, 3], [1, 4], [2, 5]]


async def test_a_commit_never_lands_in_a_broker_the_records_did_not_come_from(tmp_path):
    """The chaos suite lost events this way: audit handled a batch from the old broker, its commit waited
    out the restart and landed in the fresh broker's group; the relay then counted the fresh broker's rows as
    applied and audit started past them."""
    port = free_port()
    first = BrokerProcess(port=port)
    await first.start()
    release = asyncio.Event()
    seen: list[bytes] = []

    async def slow_handler(record) -> None:
        seen.append(record.value)
        if record.value == b"old-0":
            await release.wait()  # the broker is replaced while this record is being handled

    consumer = Consumer(CommonSettings(var_dir=tmp_path, kafka_bootstrap=first.bootstrap), [TOPIC_REGISTRY],
                        "audit", slow_handler, name="t")
    task = asyncio.create_task(consumer.run())
    second = BrokerProcess(port=port)
    try:
        await _produce(first.bootstrap, [b"old-0"])
        await eventually(now(lambda: b"old-0" in seen), timeout=20)
        first.stop()
        await second.start()
        await _produce(second.bootstrap, [b"new-%d" % n for n in range(3)])
        release.set()
        await eventually(now(lambda: seen[-3:] == [b"new-0", b"new-1", b"new-2"]), timeout=30)
        probe = AIOKafkaConsumer(bootstrap_servers=second.bootstrap, group_id="audit", enable_auto_commit=False)
        await probe.start()
        commits = []

        async def committed_once():
            commits.append(await probe.committed(TopicPartition(TOPIC_REGISTRY, 0)))
            return commits[-1] == 3
        try:
            await eventually(committed_once, timeout=15)
        finally:
            await probe.stop()
        # The fresh log's own offsets, never the old batch's "1" (which would have skipped new-0).
        assert set(commits) <= {None, 3}, commits
    finally:
        release.set()
        consumer.stop()
        await asyncio.wait_for(task, 15)
        second.stop()
