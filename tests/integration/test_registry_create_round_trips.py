"""A registry create is one statement on PostgreSQL (issue 15): same rows, same conflicts, same event, and the
relay's wake-up delivered with the commit only. Pooled connections are pinged after idling, not per checkout."""
from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url

from services.registry.app import create_app
from services.registry.households.service import create_household
from services.registry.tables import household_versions, households, outbox, person_index
from shared.auth import Principal, mint_token
from shared.config import RegistrySettings
from shared.db import make_engine, transaction
from shared.problems import Problem
from tests.helpers import household_body, running_app


@pytest.fixture
async def registry(databases, tmp_path):
    settings = RegistrySettings(var_dir=tmp_path, database_url=await databases.url("registry"),
                                kafka_bootstrap="127.0.0.1:1", log_json=False, dci_worker=False,
                                dci_consumer=False, monitoring_consumer=False)
    app = create_app(settings)
    async with running_app(app, mint_token(settings, "registry:read registry:write")) as client:
        client.app = app
        yield client


async def table_counts(app) -> dict[str, int]:
    async with app.state.sessionmaker() as session:
        return {table.name: await session.scalar(select(func.count()).select_from(table))
                for table in (households, person_index, household_versions, outbox)}


def _dsn(app) -> str:
    return app.state.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def _engine(app):
    return app.state.engine


async def test_create_writes_every_row_and_conflicts_write_nothing(registry):
    created = await registry.post("/v1/households", json=household_body())
    assert created.status_code == 201, created.text
    household_id = created.json()["id"]
    async with registry.app.state.sessionmaker() as session:
        stored = (await session.execute(select(households).where(households.c.id == household_id))).one()
        version = (await session.execute(select(household_versions))).one()
        claimed = (await session.execute(select(person_index))).all()
        staged = (await session.execute(select(outbox))).one()
    assert stored.version == 1 and stored.snapshot["id"] == household_id and stored.status == "candidate"
    assert (version.household_id, version.version, version.event_type, version.changed_paths) == (
        household_id, 1, "household.registered", [])
    assert version.snapshot == stored.snapshot and version.actor == stored.created_by
    living = {m["id_number"] for m in stored.snapshot["members"] if m.get("id_number") and not m.get("deceased")}
    assert {row.id_number for row in claimed} == living and {row.household_id for row in claimed} == {household_id}
    envelope = json.loads(staged.payload)
    assert (staged.key, envelope["type"], envelope["sequence"], envelope["signature"] is not None) == (
        household_id, "household.registered", 1, True)
    assert staged.attempts == 0 and staged.published_at is None

    before = await table_counts(registry.app)
    again = await registry.post("/v1/households", json=household_body())
    assert again.status_code == 409, again.text
    assert again.json()["type"].endswith("/person-conflict")
    assert {c["household_id"] for c in again.json()["conflicts"]} == {household_id}
    assert all("*" in c["id_number"] for c in again.json()["conflicts"])
    assert await table_counts(registry.app) == before


async def test_an_existing_id_is_409_and_changes_nothing(registry):
    office = Principal(subject="office", scopes=frozenset({"admin"}))
    async with transaction(registry.app.state.sessionmaker) as session:
        await create_household(session, household_body(), office, household_id="hh-fixed-1")
    before = await table_counts(registry.app)
    with pytest.raises(Problem) as raised:
        async with transaction(registry.app.state.sessionmaker) as session:
            await create_household(session, household_body("nankang-farmer", members=[]), office,
                                   household_id="hh-fixed-1")
    assert (raised.value.status, raised.value.title) == (409, "Household exists")
    assert await table_counts(registry.app) == before


async def test_concurrent_creates_of_one_person_give_one_household(registry):
    answers = await asyncio.gather(*(registry.post("/v1/households", json=household_body()) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409], [a.text for a in answers]
    counts = await table_counts(registry.app)
    assert counts["households"] == counts["household_versions"] == counts["outbox"] == 1


async def test_create_is_one_round_trip_on_postgres(registry):
    engine = _engine(registry.app)
    if engine.dialect.name != "postgresql":
        pytest.skip("the one-statement create is PostgreSQL's")
    await registry.post("/v1/households", json=household_body())  # warm: the token, prepared statements
    statements: list[str] = []
    event.listen(engine.sync_engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: statements.append(statement))
    listener = await asyncpg.connect(_dsn(registry.app))
    notified: list[str] = []
    await listener.add_listener("jz_outbox", lambda *args: notified.append(args[3]))
    try:
        created = await registry.post("/v1/households", json=household_body("nankang-farmer", members=[]))
        assert created.status_code == 201, created.text
        assert len(statements) == 1 and statements[0].lstrip().startswith("WITH taken"), statements
        refused = await registry.post("/v1/households", json=household_body())  # the first one's members
        assert refused.status_code == 409
        await asyncio.sleep(0.2)
        assert notified == ["jz.registry.v1"]  # the refused create notified nobody
    finally:
        await listener.close()


async def test_add_to_outbox_notifies_on_commit_only(registry):
    engine = _engine(registry.app)
    if engine.dialect.name != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    from shared.events import Envelope
    from shared.outbox import add_to_outbox
    listener = await asyncpg.connect(_dsn(registry.app))
    notified: list[str] = []
    await listener.add_listener("jz_outbox", lambda *args: notified.append(args[3]))
    try:
        async def stage(commit: bool) -> None:
            async with registry.app.state.sessionmaker() as session:
                await add_to_outbox(session, outbox, "jz.registry.v1", "k", Envelope(
                    source="registry", type="test.staged", subject="test/1", sequence=1, data={}))
                await (session.commit() if commit else session.rollback())

        await stage(False)
        await asyncio.sleep(0.2)
        assert notified == []
        await stage(True)
        await asyncio.sleep(0.2)
        assert notified == ["jz.registry.v1"]
    finally:
        await listener.close()
    assert (await table_counts(registry.app))["outbox"] == 1


async def test_idle_connection_dropped_by_the_server_is_replaced(databases):
    url = await databases.url("ping")
    if make_url(url).get_backend_name() != "postgresql":
        pytest.skip("pooled server connections are PostgreSQL's")
    engine = make_engine(url, pool_size=1, max_overflow=0, ping_after_idle_s=0.0)
    try:
        async with engine.connect() as conn:
            pid = await conn.scalar(text("SELECT pg_backend_pid()"))
        killer = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
        try:
            assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await killer.close()
        await asyncio.sleep(0.2)
        async with engine.connect() as conn:  # pinged, found dead, replaced: no error reaches the caller
            assert await conn.scalar(text("SELECT pg_backend_pid()")) != pid
    finally:
        await engine.dispose()
