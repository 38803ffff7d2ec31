"""Nothing lost, nothing duplicated: broker outages and consumers dying mid-message."""
from __future__ import annotations

import asyncio
import json

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select

from services.audit.app import create_app as create_audit
from services.audit.tables import ledger_records
from services.benefits.app import create_app as create_benefits
from services.benefits.tables import entitlement_history, entitlements, outbox as benefits_outbox
from services.registry.app import create_app as create_registry
from services.registry.tables import outbox as registry_outbox
from shared.auth import mint_token
from shared.broker import BrokerProcess
from shared.bus import Consumer
from shared.config import TOPIC_BENEFITS, TOPIC_REGISTRY, AuditSettings, BenefitsSettings, RegistrySettings
from shared.envelope_codec import decode_all
from shared.outbox_relay import OutboxRelay
from shared.signing import trusted_keys
from tests.helpers import eventually, household_body, running_app, signed_bytes


async def count(app, table) -> int:
    async with app.state.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(table))


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    records: list = []
    try:
        async def probe():
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
            return len(records) >= expected
        await eventually(probe, timeout=timeout, interval=0)
        return records
    finally:
        await consumer.stop()


async def test_write_succeeds_while_broker_is_down_and_is_delivered_after_it_returns(databases, tmp_path):
    down = BrokerProcess()  # port chosen, broker not started: the broker is "down"
    settings = RegistrySettings(var_dir=tmp_path, database_url=await databases.url("registry"),
                                kafka_bootstrap=down.bootstrap, log_json=False)
    app = create_registry(settings)
    async with running_app(app, mint_token(settings, "registry:read registry:write")) as client:
        created = await client.post("/v1/households", json=household_body())
        assert created.status_code == 201
        relay = OutboxRelay(app.state.engine, settings)
        with pytest.raises(Exception):
            await relay.publish_pending()  # broker unreachable: the row stays pending
        await relay.close()
        assert await relay.pending() == 1

        await down.start()  # the broker comes back
        try:
            task = asyncio.create_task(relay.run())
            await eventually(lambda: _zero(relay.pending()))
            relay.stop()
            await task
            records = await read_topic(down.bootstrap, TOPIC_REGISTRY, 1)
        finally:
            down.stop()
    events = decode_all(records)
    assert [e.type for e in events] == ["household.registered"]
    assert events[0].subject == f"household/{created.json()['id']}"
    assert events[0].data["household"]["version"] == 1


async def _zero(awaitable) -> bool:
    return await awaitable == 0


class SimulatedCrash(BaseException):
    """Stands for the process dying: not an Exception, so no retry or DLQ catches it."""


def crash_after_first_commit(handler):
    state = {"crashed": False}

    async def wrapped(record):
        await handler(record)  # the database transaction has committed here
        if not state["crashed"]:
            state["crashed"] = True
            raise SimulatedCrash()  # ...and the process dies before the offset commit
    return wrapped


async def test_consumers_killed_between_db_commit_and_offset_commit_duplicate_nothing(databases, broker, tmp_path):
    common = {"var_dir": tmp_path, "kafka_bootstrap": broker.bootstrap, "log_json": False, "run_consumer": False}
    registry_settings = RegistrySettings(database_url=await databases.url("registry"), **common)
    benefits_settings = BenefitsSettings(database_url=await databases.url("benefits"),
                                         evaluation_date="2020-06-30", **common)
    audit_settings = AuditSettings(database_url=await databases.url("audit"), **common)
    registry, benefits, audit = (create_registry(registry_settings), create_benefits(benefits_settings),
                                 create_audit(audit_settings))
    from services.audit.consumer import make_handler as audit_handler
    from services.benefits.consumer import make_handler as benefits_handler

    token = mint_token(registry_settings, "admin")  # admin brings a registered household in directly
    async with running_app(registry, token) as client, running_app(benefits), running_app(audit):
        assert (await client.post("/v1/households", json=household_body(status="registered"))).status_code == 201
        relay = OutboxRelay(registry.state.engine, registry_settings)
        assert await relay.publish_pending() == 1
        await relay.close()

        # 1st life of each consumer: processes the event, commits its DB transaction, dies.
        for app, settings, topics, make in ((benefits, benefits_settings, [TOPIC_REGISTRY], benefits_handler),
                                            (audit, audit_settings, [TOPIC_REGISTRY], audit_handler)):
            consumer = Consumer(settings, topics, app.title, crash_after_first_commit(
                make(app.state.sessionmaker, settings)))
            with pytest.raises(SimulatedCrash):
                await asyncio.wait_for(consumer.run(), 60)

        granted = await count(benefits, entitlements)
        history = await count(benefits, entitlement_history)
        decisions = await count(benefits, benefits_outbox)
        ledger = await count(audit, ledger_records)
        # one entitlements.decided event for the household version, listing every entitlement granted
        assert granted > 0 and history == granted and decisions == 1 and ledger == 1
        async with benefits.state.sessionmaker() as session:
            [payload] = (await session.execute(select(benefits_outbox.c.payload))).scalars().all()
        decided = json.loads(payload)
        assert decided["type"] == "entitlements.decided" and len(decided["data"]["entitlements"]) == granted

        # 2nd life: the uncommitted offset makes Kafka redeliver the same event.
        for app, settings, make in ((benefits, benefits_settings, benefits_handler),
                                    (audit, audit_settings, audit_handler)):
            consumer = Consumer(settings, [TOPIC_REGISTRY], app.title, make(app.state.sessionmaker, settings))
            task = asyncio.create_task(consumer.run())
            await eventually(lambda c=consumer: _true(c.processed >= 1), timeout=60)
            consumer.stop()
            await task

        assert await count(benefits, entitlements) == granted
        assert await count(benefits, entitlement_history) == history
        assert await count(benefits, benefits_outbox) == decisions
        assert await count(audit, ledger_records) == 1


async def _true(value: bool) -> bool:
    return value


async def test_a_message_that_keeps_failing_goes_to_the_dlq_with_its_error(broker, tmp_path):
    from aiokafka import AIOKafkaProducer
    settings = BenefitsSettings(var_dir=tmp_path, kafka_bootstrap=broker.bootstrap, consumer_max_retries=2,
                                consumer_retry_backoff_s=0.01)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
    await producer.start()
    await producer.send_and_wait(TOPIC_BENEFITS, b'{"not": "an envelope"}', key=b"k")
    await producer.send_and_wait(TOPIC_BENEFITS, b'{"id": "e2", "source": "x", "type": "t", "subject": "s"}', key=b"k")
    await producer.stop()
    seen: list[str] = []

    async def handler(record):
        from shared.events import Envelope
        envelope = Envelope.from_bytes(record.value)  # the first message fails validation every time
        seen.append(envelope.id)

    consumer = Consumer(settings, [TOPIC_BENEFITS], "dlq-test", handler)
    task = asyncio.create_task(consumer.run())
    await eventually(lambda: _true(consumer.processed >= 2), timeout=60)
    consumer.stop()
    await task
    assert seen == ["e2"] and consumer.dead_lettered == 1
    dead = await read_topic(broker.bootstrap, TOPIC_BENEFITS + ".dlq", 1)
    headers = dict(dead[0].headers)
    assert dead[0].value == b'{"not": "an envelope"}'
    assert b"ValidationError" in headers["error"] and headers["source_topic"] == TOPIC_BENEFITS.encode()


async def test_batched_consumption_builds_the_same_ledger_and_isolates_a_poison_message(broker, tmp_path):
    """Audit takes a partition's records in one transaction; one bad record is dead-lettered alone."""
    from aiokafka import AIOKafkaProducer

    from services.audit.consumer import make_batch_handler, make_handler
    from services.audit.ledger.service import verify_ledger
    from shared.events import Envelope

    settings = AuditSettings(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/audit.db",
                             kafka_bootstrap=broker.bootstrap, run_consumer=False, log_json=False,
                             consumer_retry_backoff_s=0.01, consumer_max_retries=2)
    app = create_audit(settings)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
    await producer.start()
    good = [Envelope(source="registry", type="household.updated", subject="household/hh-1", sequence=n,
                     data={"household": {"id": "hh-1", "version": n}}) for n in range(1, 41)]
    for index, envelope in enumerate(good):
        await producer.send(TOPIC_REGISTRY, signed_bytes(envelope, tmp_path), key=b"hh-1", partition=0)
        if index == 20:
            await producer.send(TOPIC_REGISTRY, b"not json", key=b"hh-1", partition=0)
    await producer.flush()
    await producer.stop()
    async with running_app(app):
        consumer = Consumer(settings, [TOPIC_REGISTRY], "audit-batch-test",
                            make_handler(app.state.sessionmaker, settings),
                            batch_handler=make_batch_handler(app.state.sessionmaker, settings))
        task = asyncio.create_task(consumer.run())
        await eventually(lambda: _true(consumer.processed >= 41), timeout=60)
        consumer.stop()
        await task
        assert consumer.dead_lettered == 1
        assert await count(app, ledger_records) == 40
        async with app.state.sessionmaker() as session:
            seqs = (await session.execute(select(ledger_records.c.seq, ledger_records.c.event_id)
                                          .order_by(ledger_records.c.seq))).all()
        assert [row.event_id for row in seqs] == [e.id for e in good]  # chain order = topic order
        verdict = await verify_ledger(app.state.sessionmaker, "sha256", trusted_keys(settings))
        assert verdict["ok"] and verdict["records_checked"] >= 40
