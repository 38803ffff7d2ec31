"""The relay: per-key order with competing relays, and replay into a fresh development broker."""
from __future__ import annotations

import asyncio
from collections import defaultdict

from services.registry.tables import metadata as registry_metadata, outbox
from shared.broker import BrokerProcess
from shared.config import TOPIC_REGISTRY, CommonSettings
from shared.db import make_engine, make_sessionmaker, transaction
from shared.envelope_codec import decode_all
from shared.events import Envelope
from shared.migrate import upgrade_to_head
from shared.outbox import add_to_outbox
from shared.outbox_relay import OutboxRelay
from tests.integration.test_delivery_guarantees import read_topic

KEYS = [f"hh-{index:03d}" for index in range(12)]


async def _outbox_engine(databases):
    engine = make_engine(await databases.url("registry"))
    await upgrade_to_head("registry", engine)
    return engine


async def _stage_events(engine, versions_per_key: int) -> int:
    sessionmaker = make_sessionmaker(engine)
    for version in range(1, versions_per_key + 1):
        async with transaction(sessionmaker) as session:
            for key in KEYS:
                await add_to_outbox(session, outbox, TOPIC_REGISTRY, key, Envelope(
                    source="registry", type="household.updated", subject=f"household/{key}", sequence=version,
                    data={"household": {"id": key, "version": version}}))
    return versions_per_key * len(KEYS)


async def test_two_relays_publish_every_row_once_in_order_per_key(databases, broker, tmp_path):
    engine = await _outbox_engine(databases)
    total = await _stage_events(engine, versions_per_key=20)
    settings = CommonSettings(var_dir=tmp_path, kafka_bootstrap=broker.bootstrap, outbox_batch_size=7)
    relays = [OutboxRelay(engine, settings, name=f"relay-{n}") for n in (1, 2)]
    await asyncio.gather(*(relay.publish_pending() for relay in relays))
    await asyncio.gather(*(relay.publish_pending() for relay in relays))  # whatever one skipped (lane locked)
    for relay in relays:
        await relay.close()
    assert await relays[0].pending() == 0
    if engine.dialect.name == "postgresql":
        assert all(relay.published > 0 for relay in relays) or sum(r.published for r in relays) == total

    events = decode_all(await read_topic(broker.bootstrap, TOPIC_REGISTRY, total))
    assert len(events) == total and len({e.id for e in events}) == total  # each row exactly once
    by_key = defaultdict(list)
    for event in events:
        by_key[event.subject].append(event.sequence)
    assert all(sequences == sorted(sequences) for sequences in by_key.values())
    await engine.dispose()


async def test_fresh_broker_gets_the_retained_tail_replayed(databases, tmp_path):
    engine = await _outbox_engine(databases)
    total = await _stage_events(engine, versions_per_key=2)
    first = BrokerProcess()
    await first.start()
    settings = CommonSettings(var_dir=tmp_path, kafka_bootstrap=first.bootstrap)
    relay = OutboxRelay(engine, settings)
    assert await relay.publish_pending() == total
    await relay.close()
    first.stop()  # the in-memory broker is gone, and its messages with it

    second = BrokerProcess(port=first.port)
    await second.start()
    try:
        relay = OutboxRelay(engine, settings)
        assert await relay.pending() == 0
        assert await relay.replay_retained() == total
        assert await relay.publish_pending() == total
        await relay.close()
        events = decode_all(await read_topic(second.bootstrap, TOPIC_REGISTRY, total))
        assert len({e.id for e in events}) == total
    finally:
        second.stop()
        await engine.dispose()
