"""Issue 10 item 6: dead letters an operator can act on.

On a real broker, benefits and audit dead-letter a forged (unsigned) registry event and a genuine one their
handler fails on; each keeps a durable copy that the admin routes list and show. A redrive of the forged one
fails again (409, still open); once the fault is fixed the genuine one is redriven through the normal handler
and its effect lands exactly once, however often it is redriven. The ``jingzhun dlq`` commands do the same
over HTTP against the live apps.
"""
from __future__ import annotations

import asyncio
import base64
import json
import uuid

import uvicorn
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from sqlalchemy import func, select
from typer.testing import CliRunner

import services.audit.consumer as audit_consumer
import services.benefits.consumer as benefits_consumer
from services.audit.app import create_app as create_audit
from services.audit.dead_letters.views import consumer_handler as audit_consumer_handler
from services.audit.tables import dead_letters as audit_dead_letters, ledger_records
from services.benefits.app import create_app as create_benefits
from services.benefits.tables import (dead_letters as benefits_dead_letters, household_snapshots,
                                      outbox as benefits_outbox, processed_events)
from services.registry.app import create_app as create_registry
from shared.auth import mint_token
from shared.config import TOPIC_REGISTRY, AuditSettings, BenefitsSettings, RegistrySettings
from shared.db import make_engine, make_sessionmaker
from shared.dead_letters import consumer_record, durable_dead_letter_hook, get_dead_letter
from shared.migrate import upgrade_to_head
from shared.outbox_relay import OutboxRelay
from tests.helpers import eventually, household_body, running_app, signed_bytes
from tests.integration.audit.support import registry_event, snapshot
from tests.integration.test_delivery_guarantees import read_topic


async def scalar(app, query):
    async with app.state.sessionmaker() as session:
        return await session.scalar(query)


def effects(benefits, audit, event_id: str):
    """What a registry event leaves behind: benefits' dedupe row, snapshot version, decisions; the ledger."""
    async def read() -> dict:
        return {"processed": await scalar(benefits, select(func.count()).select_from(processed_events)
                                          .where(processed_events.c.event_id == event_id)),
                "version": await scalar(benefits, select(household_snapshots.c.version)),
                "decisions": await scalar(benefits, select(func.count()).select_from(benefits_outbox)),
                "ledger": await scalar(audit, select(func.count()).select_from(ledger_records)
                                       .where(ledger_records.c.event_id == event_id)),
                "ledger_total": await scalar(audit, select(func.count()).select_from(ledger_records))}
    return read


async def dead_lettered(app, n: int) -> bool:
    consumer = getattr(app.state, "consumer", None)
    return consumer is not None and consumer.dead_lettered >= n


async def serve(app) -> tuple[uvicorn.Server, asyncio.Task, str]:
    """The app (lifespan already running) on a real port, so the CLI talks plain HTTP to it."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: _true(server.started), timeout=10, interval=0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


async def _true(value) -> bool:
    return bool(value)


async def cli(*args: str):
    from jingzhun_cli.main import app
    return await asyncio.to_thread(CliRunner().invoke, app, ["dlq", *args])


async def test_dead_letters_are_kept_listed_shown_and_redriven_once(databases, broker, tmp_path, monkeypatch):
    common = {"var_dir": tmp_path, "kafka_bootstrap": broker.bootstrap, "log_json": False,
              "consumer_retry_backoff_s": 0.01, "consumer_max_retries": 2}
    registry_settings = RegistrySettings(database_url=await databases.url("registry"), run_consumer=False, **common)
    benefits_settings = BenefitsSettings(database_url=await databases.url("benefits"), evaluation_date="2020-06-30",
                                         **common)
    audit_settings = AuditSettings(database_url=await databases.url("audit"), checkpoint_schedule=False, **common)
    registry, benefits, audit = (create_registry(registry_settings), create_benefits(benefits_settings),
                                 create_audit(audit_settings))
    admin = mint_token(registry_settings, "admin", subject="operator-1")
    async with running_app(registry, admin) as reg, running_app(benefits, admin) as ben, \
            running_app(audit, admin) as aud:
        created = await reg.post("/v1/households", json=household_body(status="registered"))
        assert created.status_code == 201, created.text
        household_id = created.json()["id"]
        relay = OutboxRelay(registry.state.engine, registry_settings)
        assert await relay.publish_pending() == 1
        [genuine_record] = await read_topic(broker.bootstrap, TOPIC_REGISTRY, 1)
        await eventually(lambda: _true(all(getattr(a.state, "consumer", None) and a.state.consumer.processed >= 1
                                           for a in (benefits, audit))), timeout=60)

        # --- 1. a forged event: unsigned, at version 101
        forged = json.loads(genuine_record.value)
        forged["id"] = forged_id = str(uuid.uuid4())
        forged["sequence"] = forged["data"]["household"]["version"] = 101
        for field in ("signer", "signature", "ledger_signature"):
            forged.pop(field, None)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=False)
        await producer.start()
        try:
            await producer.send_and_wait(TOPIC_REGISTRY, json.dumps(forged).encode(), key=household_id.encode())
        finally:
            await producer.stop()
        await eventually(lambda: dead_lettered(benefits, 1), timeout=60)
        await eventually(lambda: dead_lettered(audit, 1), timeout=60)

        for client, group in ((ben, "benefits"), (aud, "audit")):
            listed = await client.get("/v1/admin/dead-letters")
            assert listed.status_code == 200, listed.text
            [item] = listed.json()["items"]
            assert listed.json()["next_cursor"] is None
            assert (item["consumer_group"], item["topic"], item["partition"], item["offset"]) == \
                (group, TOPIC_REGISTRY, genuine_record.partition, genuine_record.offset + 1)
            assert (item["event_id"], item["event_type"], item["subject"]) == \
                (forged_id, "household.registered", f"household/{household_id}")
            assert "PoisonMessage" in item["error"] and "unsigned" in item["error"], item["error"]
            assert item["redriven_at"] is None and item["redrive_outcome"] is None
            assert "value" not in item and "headers" not in item
            shown = (await client.get(f"/v1/admin/dead-letters/{item['id']}")).json()
            assert shown["value_encoding"] == "json" and shown["value"]["id"] == forged_id
            assert shown["value"]["sequence"] == 101 and shown["key"] == household_id
            member = shown["value"]["data"]["household"]["members"][0]
            # shown as the ledger keeps it: the mask stays, the birth date becomes its year
            assert "*" in member["id_number"] and "birth_date" not in member and member["birth_year"] == 1978
            assert not any(h["key"] == "error" for h in shown["headers"])  # the record's own headers
            again = await client.post(f"/v1/admin/dead-letters/{item['id']}:redrive")
            assert again.status_code == 409, again.text
            assert again.headers["content-type"].startswith("application/problem+json")
            assert "unsigned" in again.json()["error"] and "unsigned" in again.json()["detail"]
            still = (await client.get(f"/v1/admin/dead-letters/{item['id']}")).json()
            assert still["redriven_at"] is None and still["redrive_outcome"].startswith("failed: ")
        assert await scalar(benefits, select(household_snapshots.c.version)) == 1  # the forgery changed nothing

        # --- 2. a genuine event both handlers fail on (a fault), then the fault is fixed
        broken = {"on": True}
        real_store, real_project = benefits_consumer.store_snapshot, audit_consumer.project_record

        async def failing_store(*args, **kwargs):
            if broken["on"]:
                raise RuntimeError("benefits store unavailable")
            return await real_store(*args, **kwargs)

        async def failing_project(*args, **kwargs):
            if broken["on"]:
                raise RuntimeError("audit projection unavailable")
            return await real_project(*args, **kwargs)
        monkeypatch.setattr(benefits_consumer, "store_snapshot", failing_store)
        monkeypatch.setattr(audit_consumer, "project_record", failing_project)

        current = (await reg.get(f"/v1/households/{household_id}")).json()
        patched = await reg.patch(f"/v1/households/{household_id}", headers={"If-Match": str(current["version"])},
                                  json={"income": {"year": 2019, "per_capita_net": "4100.00"}})
        assert patched.status_code == 200, patched.text
        assert await relay.publish_pending() == 1
        await relay.close()
        await eventually(lambda: dead_lettered(benefits, 2), timeout=60)
        await eventually(lambda: dead_lettered(audit, 2), timeout=60)
        [v2_record] = [r for r in await read_topic(broker.bootstrap, TOPIC_REGISTRY, 3)
                       if r.offset == genuine_record.offset + 2]
        v2_id = json.loads(v2_record.value)["id"]
        read_effects = effects(benefits, audit, v2_id)
        before = await read_effects()
        assert (before["processed"], before["version"], before["ledger"]) == (0, 1, 0)

        rows = {}
        for client, group in ((ben, "benefits"), (aud, "audit")):
            open_items = (await client.get("/v1/admin/dead-letters", params={"status": "open"})).json()["items"]
            assert [i["event_id"] for i in open_items] == [forged_id, v2_id]
            rows[group] = open_items[1]
            assert "unavailable" in rows[group]["error"], rows[group]
        broken["on"] = False

        # benefits over the API: applied, the snapshot stored once
        first = await ben.post(f"/v1/admin/dead-letters/{rows['benefits']['id']}:redrive")
        assert first.status_code == 200, first.text
        assert first.json()["outcome"] == "applied" and first.json()["redriven_at"]
        after_benefits = await read_effects()
        assert (after_benefits["processed"], after_benefits["version"]) == (1, 2)

        # audit through the CLI, over real HTTP
        servers = [await serve(benefits), await serve(audit)]
        monkeypatch.setenv("JZ_BENEFITS_URL", servers[0][2])
        monkeypatch.setenv("JZ_AUDIT_URL", servers[1][2])
        try:
            listed = await cli("list", "--token", admin)
            assert listed.exit_code == 0, listed.output
            assert "3 dead letter(s)" in listed.output and "unsigned" in listed.output, listed.output
            as_json = [json.loads(line) for line in (await cli("list", "--json", "--status", "all", "--token",
                                                               admin)).output.splitlines()]
            outcomes = {(i["service"], i["event_id"]): i["redrive_outcome"] for i in as_json}
            assert len(as_json) == 4 and outcomes[("benefits", v2_id)] == "applied"
            assert outcomes[("audit", v2_id)] is None
            assert all(outcomes[(name, forged_id)].startswith("failed: ") for name in ("benefits", "audit"))
            shown = await cli("show", str(rows["audit"]["id"]), "--service", "audit", "--token", admin)
            assert shown.exit_code == 0 and v2_id in shown.output and "birth_year" in shown.output, shown.output
            redriven = await cli("redrive", str(rows["audit"]["id"]), "--service", "audit", "--token", admin)
            assert redriven.exit_code == 0 and "applied" in redriven.output, redriven.output
            applied = await read_effects()
            assert applied["ledger"] == 1 and applied["ledger_total"] == before["ledger_total"] + 1

            # every open one: only the forgeries are left, and they fail again (exit 1, counted)
            every = await cli("redrive", "--all-open", "--service", "benefits", "--token", admin)
            assert every.exit_code == 1, every.output
            assert "1 open dead letter(s) redriven: 0 applied, 0 already applied, 1 failed again" in \
                " ".join(every.output.split())  # rich wraps at the runner's 80 columns
            assert (await cli("show", "1", "--token", admin)).exit_code == 2  # ids are per service: name it
            missing = await cli("show", "999", "--service", "audit", "--token", admin)
            assert missing.exit_code == 1 and "404" in missing.output
        finally:
            for server, task, _ in servers:
                server.should_exit = True
                await task

        # --- 3. redriving again answers the first outcome and changes nothing
        settled = await read_effects()
        for client, group in ((ben, "benefits"), (aud, "audit")):
            shown = (await client.get(f"/v1/admin/dead-letters/{rows[group]['id']}")).json()
            assert shown["redrive_outcome"] == "applied" and shown["redriven_by"] == "operator-1"
            twice = await client.post(f"/v1/admin/dead-letters/{rows[group]['id']}:redrive")
            assert twice.status_code == 200, twice.text
            assert twice.json() == {"id": rows[group]["id"], "outcome": "applied", "redriven_at": shown["redriven_at"]}
            redriven = (await client.get("/v1/admin/dead-letters", params={"status": "redriven"})).json()["items"]
            assert [i["event_id"] for i in redriven] == [v2_id]
            assert [i["event_id"] for i in (await client.get("/v1/admin/dead-letters")).json()["items"]] == [forged_id]
        # ... and the handler itself, run once more on the stored message, is a no-op (event-id dedupe)
        for app, table, group in ((benefits, benefits_dead_letters, "benefits"), (audit, audit_dead_letters, "audit")):
            async with app.state.sessionmaker() as session:
                row = (await session.execute(select(table).where(table.c.id == rows[group]["id"]))).first()
            record = consumer_record(row)
            assert record.value == v2_record.value
            assert (record.topic, record.partition, record.offset) == (TOPIC_REGISTRY, v2_record.partition,
                                                                       v2_record.offset)
            await app.state.dead_letter_handler(record)
        assert await read_effects() == settled
        assert settled["processed"] == 1 and settled["ledger"] == 1 and settled["version"] == 2

        # --- the door: unknown parameters, unknown ids, callers without admin
        bad = await ben.get("/v1/admin/dead-letters", params={"state": "open"})
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "state"]
        assert (await aud.get("/v1/admin/dead-letters", params={"status": "closed"})).status_code == 422
        for path in ("/v1/admin/dead-letters/424242", "/v1/admin/dead-letters/424242:redrive"):
            method = aud.post if path.endswith(":redrive") else aud.get
            response = await method(path)
            assert response.status_code == 404 and "424242" in response.json()["detail"], response.text
        reader = {"Authorization": f"Bearer {mint_token(registry_settings, 'audit:read benefits:read')}"}
        for client in (ben, aud):
            assert (await client.get("/v1/admin/dead-letters", headers=reader)).status_code == 403
            assert (await client.post(f"/v1/admin/dead-letters/{rows['audit']['id']}:redrive",
                                      headers=reader)).status_code == 403
        verdict = (await aud.get("/v1/audit/verify")).json()
        assert verdict["ok"] and verdict["records_checked"] == 2, verdict
    print(f"\ndead letters ({databases.backend}): forged kept by both groups and refused again (409); the failing "
          f"v2 redriven once per service (API and CLI), a second redrive and a direct re-run changed nothing")


async def test_the_hook_keeps_one_row_per_source_position_and_any_bytes(databases):
    """A redelivery dead-lettered again is stored once; garbage (not JSON, not UTF-8 key, NUL in the error)
    is kept as it came, event fields left empty, and shown base64 with a clear ID number masked."""
    engine = make_engine(await databases.url("audit"))
    try:
        await upgrade_to_head("audit", engine)
        sessionmaker = make_sessionmaker(engine)
        keep = durable_dead_letter_hook(sessionmaker, audit_dead_letters)
        raw = b"\xff\xfe not json 360782197803150018 \x00"
        record = ConsumerRecord(topic="jz.access.v1", partition=2, offset=7, timestamp=0, timestamp_type=0,
                                key=b"\xff", value=raw, checksum=None, serialized_key_size=1,
                                serialized_value_size=len(raw),
                                headers=[("traceparent", b"00-ab-cd-01"), ("bin", b"\x00")])
        await keep(record, "audit", "PoisonMessage: unparsable event: \x00 junk")
        await keep(record, "audit", "PoisonMessage: unparsable event: \x00 junk")  # redelivered, failed again
        async with sessionmaker() as session:
            rows = (await session.execute(select(audit_dead_letters))).all()
        [row] = rows
        assert (row.event_id, row.event_type, row.subject, row.key) == (None, None, None, None)
        assert "\x00" not in row.error and row.error.startswith("PoisonMessage")
        rebuilt = consumer_record(row)
        assert rebuilt.value == raw and rebuilt.headers == (("traceparent", b"00-ab-cd-01"), ("bin", b"\x00"))
        shown = await get_dead_letter(sessionmaker, audit_dead_letters, row.id)
        assert shown["value_encoding"] == "base64"
        assert base64.b64decode(shown["value"]) == raw.replace(b"360782197803150018", b"360782********0018")
        assert shown["headers"] == [{"key": "traceparent", "value": "00-ab-cd-01"}, {"key": "bin", "base64": "AA=="}]
    finally:
        await engine.dispose()


async def test_a_redrive_after_the_event_went_through_meanwhile_says_already_applied(databases, tmp_path):
    """E.g. a replay delivered the event again and it succeeded: the redrive is the handler's no-op, and it
    says so. This process runs no consumer (an API replica): the handler is built the consumer's way."""
    settings = AuditSettings(database_url=await databases.url("audit"), var_dir=tmp_path, run_consumer=False,
                             kafka_bootstrap="127.0.0.1:1", log_json=False, checkpoint_schedule=False)
    app = create_audit(settings)
    async with running_app(app, mint_token(settings, "admin")) as client:
        raw = signed_bytes(registry_event("household.registered", snapshot("hh-dead-letter")), tmp_path)
        record = ConsumerRecord(topic=TOPIC_REGISTRY, partition=0, offset=5, timestamp=0, timestamp_type=0,
                                key=b"hh-dead-letter", value=raw, checksum=None, serialized_key_size=14,
                                serialized_value_size=len(raw), headers=[])
        await durable_dead_letter_hook(app.state.sessionmaker, audit_dead_letters)(
            record, "audit", "OperationalError: the database is restarting")
        await audit_consumer_handler(app)(record)  # the replay's delivery went through
        [item] = (await client.get("/v1/admin/dead-letters")).json()["items"]
        redriven = await client.post(f"/v1/admin/dead-letters/{item['id']}:redrive")
        assert redriven.status_code == 200, redriven.text
        assert redriven.json()["outcome"] == "already applied"
        assert await scalar(app, select(func.count()).select_from(ledger_records)) == 1
        assert (await client.get("/v1/admin/dead-letters")).json()["items"] == []
