"""A DCI subscription notified of a household change through the real broker (issue 14): the registry's
outbox → relay → jz.registry.v1 → the registry's DCI consumer (group registry-dci) → the worker → the
subscriber's /registry/notify. A redelivered event notifies nobody twice; a forged one is dead-lettered."""
from __future__ import annotations

import json
import uuid

from sqlalchemy import func, select

from services.registry.tables import dci_deliveries, dead_letters
from shared.bus import make_producer
from shared.config import TOPIC_REGISTRY
from shared.outbox_relay import OutboxRelay
from tests.helpers import eventually
from tests.integration.registry.dci.spec import validate_exchange
from tests.integration.registry.dci.support import Partner, dci_registry, now_ts, register


async def publish(app, settings) -> int:
    relay = OutboxRelay(app.state.engine, settings)
    try:
        return await relay.publish_pending()
    finally:
        await relay.close()


async def test_a_subscriber_is_notified_of_a_new_member_through_the_broker(databases, broker, tmp_path):
    async with dci_registry(databases, tmp_path, kafka_bootstrap=broker.bootstrap, run_consumer=True,
                            monitoring_consumer=False) as dci:
        partner = Partner(dci, dci.settings)
        await register(dci, partner)
        household = dci.households[0]
        subscribe = {"transaction_id": uuid.uuid4().hex, "subscribe_request": [{
            "reference_id": "sub-1", "timestamp": now_ts(), "subscribe_criteria": {
                "reg_event_type": "NewHouseHoldMember", "filter_type": "idtype-value", "response_entity": "Household",
                "notify_record_type": "spdci-extensions-social:Household",
                "filter": {"type": "HOUSEHOLD_ID", "value": household["id"]}}}]}
        header = partner.header("subscribe")
        response = await partner.post("/registry/subscribe", header, subscribe)
        assert validate_exchange("/registry/subscribe", partner.envelope(header, subscribe), response.status_code,
                                 response.json()) == []
        [answer] = await eventually(lambda: _at(dci, "/registry/on-subscribe"), timeout=15)
        code = answer["message"]["subscribe_response"][0]["subscriptions"][0]["code"]

        member = {"name": "钟小山", "id_number": "360703201003150013", "sex": "M", "birth_date": "2010-03-15",
                  "relation": "child"}
        assert (await dci.post(f"/v1/households/{household['id']}/members", json=member)).status_code in (200, 201)
        assert await publish(dci.app, dci.settings) >= 3  # two registrations and the new member's version
        [notify] = await eventually(lambda: _at(dci, "/registry/notify"), timeout=30)
        assert notify["header"]["meta"]["subscription_code"] == code
        [event] = notify["message"]["notify_event"]
        assert event["data"]["reg_event_type"] == "NewHouseHoldMember"
        assert event["reference_id"] == f"{household['id']}@{household['version'] + 1}"
        assert dci.receiver.problems == []

        # the same event again (a redelivery) and a forged one written straight to the topic
        async with dci.app.state.sessionmaker() as session:
            from services.registry.tables import outbox
            last = (await session.execute(select(outbox.c.payload).where(outbox.c.topic == TOPIC_REGISTRY)
                                          .order_by(outbox.c.id.desc()))).scalars().first()
        forged = json.loads(last)
        forged["id"] = str(uuid.uuid4())
        forged["sequence"] = forged["data"]["version"] = household["version"] + 7
        producer = make_producer(broker.bootstrap, dci.settings)
        await producer.start()
        try:
            await producer.send_and_wait(TOPIC_REGISTRY, last.encode() if isinstance(last, str) else last,
                                         key=household["id"].encode())
            await producer.send_and_wait(TOPIC_REGISTRY, json.dumps(forged).encode(), key=household["id"].encode())
        finally:
            await producer.stop()

        async def dead_lettered():
            async with dci.app.state.sessionmaker() as session:
                return await session.scalar(select(func.count()).select_from(dead_letters).where(
                    dead_letters.c.consumer_group == "registry-dci"))
        assert await eventually(dead_lettered, timeout=30) == 1
        async with dci.app.state.sessionmaker() as session:
            notifications = await session.scalar(select(func.count()).select_from(dci_deliveries).where(
                dci_deliveries.c.kind == "notify"))
        assert notifications == 1, "the redelivered event notified nobody twice, the forged one nobody at all"
        assert len(dci.receiver.at("/registry/notify")) == 1


async def _at(dci, path):
    return dci.receiver.at(path)
