"""A benefits app with a bank and an insurer client, on SQLite and PostgreSQL."""
from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select

from services.benefits.app import create_app
from services.benefits.consumer import apply_registry_event
from services.benefits.tables import outbox
from shared.auth import mint_token
from shared.config import BenefitsSettings
from shared.db import transaction
from shared.events import Envelope
from shared.idcard import make_id_number
from tests.helpers import example, running_app

AS_OF = dt.date(2020, 6, 30)
FARMER_ID = "360782197803150018"  # p1 of hh-nk-0001, registered, full labour
ELDERLY_ID = "360782194806120013"  # q1 of hh-nk-0002, registered, dibao
UNKNOWN_ID = make_id_number("360782", dt.date(1970, 1, 1), 123)


def household(household_id: str, *, region: str = "360703", status: str = "registered", exit_date=None,
              version: int = 1, numbers: list[str] | None = None, base: str = "nankang-farmer", **extra) -> dict:
    """An example household under a new id, with fresh (or given) ID numbers."""
    snapshot = copy.deepcopy(example(base)["household"])
    snapshot.update(id=household_id, version=version, region_code=region, status=status, exit_date=exit_date,
                    **extra)
    for index, member in enumerate(snapshot["members"]):
        member["id"] = f"{household_id}-p{index + 1}"
        if numbers is not None:
            member["id_number"] = numbers[index]
    return snapshot


def new_number(seed: int, region: str = "360782") -> str:
    return make_id_number(region, dt.date(1980, 1, 1) + dt.timedelta(days=seed % 9000), seed % 1000)


async def store(app, snapshot: dict) -> None:
    envelope = Envelope(source="registry", type="household.registered", subject=f"household/{snapshot['id']}",
                        sequence=snapshot["version"], data={"household": snapshot, "version": snapshot["version"]})
    async with transaction(app.state.sessionmaker) as session:
        await apply_registry_event(session, envelope, AS_OF)


@dataclass
class Partners:
    app: object
    settings: BenefitsSettings
    admin: httpx.AsyncClient
    bank: httpx.AsyncClient
    insurer: httpx.AsyncClient
    bank_id: str
    insurer_id: str
    bank_secret: str
    insurer_secret: str

    def client(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test",
                                 headers={"Authorization": f"Bearer {token}"})

    async def outbox_payloads(self) -> list[dict]:
        async with self.app.state.sessionmaker() as session:
            rows = (await session.execute(select(outbox.c.topic, outbox.c.payload).order_by(outbox.c.id))).all()
        return [{"topic": r.topic, **json.loads(r.payload)} for r in rows]


async def token_for(client: httpx.AsyncClient, client_id: str, secret: str, scope: str | None = None) -> str:
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    if scope:
        form["scope"] = scope
    response = await client.post("/oauth/token", data=form)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


async def make_partners(settings: BenefitsSettings, households: list[dict]):
    app = create_app(settings)
    admin_token = mint_token(settings, "admin", subject="ops-admin")
    async with running_app(app, admin_token) as admin:
        for snapshot in households:
            await store(app, snapshot)
        bank = (await admin.post("/v1/partners/clients", json={"name": "Nankang RCB", "scopes": ["credit"]})).json()
        insurer = (await admin.post("/v1/partners/clients",
                                    json={"name": "PICC Ganzhou", "scopes": ["settlement"]})).json()
        bank_token = await token_for(admin, bank["client_id"], bank["client_secret"])
        insurer_token = await token_for(admin, insurer["client_id"], insurer["client_secret"])
        partners = Partners(app, settings, admin, None, None, bank["client_id"], insurer["client_id"],
                            bank["client_secret"], insurer["client_secret"])
        async with partners.client(bank_token) as bank_client, partners.client(insurer_token) as insurer_client:
            partners.bank, partners.insurer = bank_client, insurer_client
            yield partners


def base_households() -> list[dict]:
    return [copy.deepcopy(example("nankang-farmer")["household"]),
            copy.deepcopy(example("nankang-dibao-elderly")["household"])]


def settings_for(url: str, tmp_path, **overrides) -> BenefitsSettings:
    values = dict(var_dir=tmp_path, database_url=url, kafka_bootstrap="127.0.0.1:1", log_json=False,
                  run_consumer=False, evaluation_date=AS_OF, partner_rate_per_s=1000.0, partner_burst=1000)
    values.update(overrides)
    return BenefitsSettings(**values)


@pytest.fixture
async def partners(databases, tmp_path):
    settings = settings_for(await databases.url("benefits"), tmp_path)
    async for value in make_partners(settings, base_households()):
        yield value
