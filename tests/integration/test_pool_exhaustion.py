"""Overload shows as 503 + Retry-After, not 500: the PostgreSQL pool keeps its connections and has no
overflow (shared.db.make_engine), so when every one stays in use for the pool's timeout the request is
answered "busy" in the caller's language."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.registry.app import create_app as create_registry
from shared.auth import mint_token
from shared.config import RegistrySettings
from shared.db import make_engine
from tests.helpers import running_app


async def test_a_request_that_finds_every_connection_taken_is_503_busy(databases, tmp_path):
    url = await databases.url("registry")
    if not url.startswith("postgresql"):
        pytest.skip("the pool without overflow is PostgreSQL's (SQLite has one file and its own lock)")
    settings = RegistrySettings(var_dir=tmp_path, database_url=url, kafka_bootstrap="127.0.0.1:1", log_json=False)
    app = create_registry(settings)
    small = make_engine(url, pool_size=1, pool_timeout=0.3)
    try:
        async with running_app(app, mint_token(settings, "registry:read registry:write")) as client:
            app.state.sessionmaker = async_sessionmaker(small, expire_on_commit=False)
            async with small.connect() as held:  # the only connection, kept busy
                await held.execute(text("SELECT 1"))
                busy = await client.get("/v1/households/hh-none", headers={"Accept-Language": "zh-CN"})
                # An idempotent write finds the pool busy in the idempotency layer, before the app's handlers.
                keyed = await client.post("/v1/cadres", json={"name": "钟干部"},
                                          headers={"Idempotency-Key": "k-busy-1"})
            after = await client.get("/v1/households/hh-none")
    finally:
        await small.dispose()
    assert busy.status_code == 503, busy.text
    assert busy.headers["retry-after"] == "1"
    assert busy.headers["content-type"] == "application/problem+json"
    assert busy.json()["type"] == "https://jingzhun.dev/problems/busy" and busy.json()["title"] == "服务繁忙"
    assert after.status_code == 404  # the connection back in the pool: answered as usual
    assert keyed.status_code == 503 and keyed.headers["retry-after"] == "1", keyed.text
    assert keyed.json()["type"] == "https://jingzhun.dev/problems/busy"
