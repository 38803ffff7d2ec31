"""Automatic leads through the real broker: a household registered inside the monitoring range goes
registry → jz.registry.v1 → benefits (monitoring_range turns true) → jz.benefits.v1 → the registry's consumer,
which records exactly one ``platform`` lead; a redelivery records none and a forged event is dead-lettered."""
from __future__ import annotations

import datetime as dt
import json
import uuid

import httpx
from sqlalchemy import func, select

from services.benefits.app import create_app as create_benefits
from services.benefits.tables import outbox as benefits_outbox
from services.registry.app import create_app as create_registry
from services.registry.tables import dead_letters, monitoring_leads
from shared.auth import mint_token
from shared.bus import make_producer
from shared.config import TOPIC_BENEFITS, BenefitsSettings, RegistrySettings
from shared.outbox_relay import OutboxRelay
from tests.helpers import eventually, household_body, running_app

AS_OF = dt.date(2021, 6, 30)
GUARANTEED = {"food": True, "clothing": True, "compulsory_education": True, "basic_medical": True,
              "housing_safety": True, "drinking_water": True}


async def count(app, table) -> int:
    async with app.state.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(table))


async def publish(app, settings) -> int:
    relay = OutboxRelay(app.state.engine, settings)
    try:
        return await relay.publish_pending()
    finally:
        await relay.close()


async def test_benefits_risk_detected_becomes_one_platform_lead(databases, broker, tmp_path):
    common = dict(var_dir=tmp_path, kafka_bootstrap=broker.bootstrap, log_json=False)
    registry_settings = RegistrySettings(database_url=await databases.url("registry"), **common)
    benefits_settings = BenefitsSettings(database_url=await databases.url("benefits"), evaluation_date=AS_OF,
                                         **common)
    benefits = create_benefits(benefits_settings)
    registry = create_registry(registry_settings, benefits_transport=httpx.ASGITransport(app=benefits))
    admin = mint_token(registry_settings, "admin", subject="admin-1")
    async with running_app(benefits), running_app(registry, admin) as client:
        body = household_body(status="exited", exit_date="2019-12-20", guarantees=dict(GUARANTEED),
                              income={"year": 2021, "per_capita_net": "5000.00"})
        created = await client.post("/v1/households", json=body)
        assert created.status_code == 201, created.text
        hid = created.json()["id"]
        assert await publish(registry, registry_settings) >= 1  # household.registered → jz.registry.v1

        async def risk_detected():
            async with benefits.state.sessionmaker() as session:
                rows = (await session.execute(select(benefits_outbox.c.payload))).scalars().all()
            return [e for e in map(json.loads, rows) if e["type"] == "monitoring.risk_detected"]
        [event] = await eventually(risk_detected, timeout=60)
        assert event["data"]["household_id"] == hid
        await publish(benefits, benefits_settings)  # decisions and monitoring.risk_detected → jz.benefits.v1

        async def platform_leads():
            listed = await client.get("/v1/monitoring/leads", params={"household_id": hid})
            return listed.json()["items"]
        [lead] = await eventually(platform_leads, timeout=60)
        assert lead["channel"] == "platform" and lead["status"] == "open"
        assert lead["client_lead_id"] == f"benefits:{event['id']}" and lead["source_event_id"] == event["id"]
        assert lead["recorded_by"] == "service:benefits" and lead["risk_causes"]
        assert "monitoring_range" in lead["notes"]

        # a redelivery records nothing; a forged copy (content changed under the genuine signature) is refused
        consumer = registry.state.monitoring_consumer
        seen = consumer.processed
        forged = json.loads(json.dumps(event))
        forged["id"] = str(uuid.uuid4())
        forged["data"]["risk_causes"] = ["disaster"]
        producer = make_producer(broker.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(TOPIC_BENEFITS, json.dumps(event).encode(), key=hid.encode())
            await producer.send_and_wait(TOPIC_BENEFITS, json.dumps(forged).encode(), key=hid.encode())
        finally:
            await producer.stop()

        async def both_handled():
            return consumer.processed >= seen + 2 and await count(registry, dead_letters) == 1
        await eventually(both_handled, timeout=60)
        assert await count(registry, monitoring_leads) == 1
        async with registry.state.sessionmaker() as session:
            kept = (await session.execute(select(dead_letters))).first()
        assert kept.event_id == forged["id"] and "bad signature" in kept.error
