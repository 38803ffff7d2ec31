"""A registry app per test on SQLite and PostgreSQL, with benefits stubbed at the HTTP layer."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from services.registry.app import create_app
from services.registry.common import china_now
from services.registry.tables import households, outbox
from shared.auth import mint_token
from shared.config import RegistrySettings
from tests.helpers import running_app


class BenefitsStub:
    """Answers POST /v1/evaluate with an exit_readiness assessment the test controls."""

    def __init__(self) -> None:
        self.unmet: list[str] = []
        self.calls: list[dict] = []
        self.down = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("benefits is down", request=request)
        body = json.loads(request.content)
        self.calls.append({"body": body, "authorization": request.headers.get("authorization"),
                           "url": str(request.url)})
        return httpx.Response(200, json={
            "policy": {"pack": "nankang-2020", "version": "1", "chain": []}, "entitlements": [],
            "assessments": [{"kind": "exit_readiness", "result": not self.unmet, "unmet": self.unmet,
                             "explanation": [], "source": {"seed": "004", "lines": "L22"}}]})


class Clock:
    def __init__(self) -> None:
        self.now = china_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
async def registry(databases, tmp_path):
    settings = RegistrySettings(var_dir=tmp_path, database_url=await databases.url("registry"),
                                kafka_bootstrap="127.0.0.1:1", log_json=False)
    stub = BenefitsStub()
    app = create_app(settings, benefits_transport=httpx.MockTransport(stub.handler))
    clock = Clock()
    token = mint_token(settings, "registry:read registry:write", subject="office-1")
    async with running_app(app, token) as client:
        app.state.clock = clock
        client.app, client.settings, client.benefits, client.clock = app, settings, stub, clock

        def auth(scopes: str, **kw) -> dict:
            return {"Authorization": f"Bearer {mint_token(settings, scopes, **kw)}"}
        client.token_headers = auth
        client.admin = auth("admin", subject="admin-1")
        yield client


async def count(app, table) -> int:
    async with app.state.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(table))


async def state_counts(app, *tables) -> tuple[int, ...]:
    return tuple([await count(app, households), await count(app, outbox)] + [await count(app, t) for t in tables])


async def events(app, household_id: str | None = None) -> list[dict]:
    async with app.state.sessionmaker() as session:
        query = select(outbox.c.payload).order_by(outbox.c.id)
        if household_id:
            query = query.where(outbox.c.key == household_id)
        return [json.loads(p) for p in (await session.execute(query)).scalars()]
