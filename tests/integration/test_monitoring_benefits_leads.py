"""防止返贫监测 (issue 13), benefits side on SQLite and PostgreSQL: the automatic lead
(`monitoring.risk_detected`) once per crossing into the range, after a registry change or a threshold change
(a recompute job), through the real broker signed; the elimination criteria over the stored income history."""
from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal

from sqlalchemy import select

from services.benefits.app import create_app
from services.benefits.consumer import apply_registry_event
from services.benefits.recompute.scope import Scope
from services.benefits.recompute.service import create_job, run_job
from services.benefits.tables import income_observations, outbox
from shared.auth import mint_token
from shared.bus import make_producer
from shared.config import TOPIC_BENEFITS, TOPIC_REGISTRY, BenefitsSettings
from shared.db import transaction
from shared.events import Envelope
from shared.outbox_relay import OutboxRelay
from shared.policy import default_registry
from shared.signing import trusted_keys, verified_envelope
from tests.helpers import eventually, example, running_app, signed_bytes
from tests.integration.test_delivery_guarantees import read_topic

AS_OF = dt.date(2021, 6, 30)
CHINA = dt.timezone(dt.timedelta(hours=8))
GUARANTEED = {"food": True, "clothing": True, "compulsory_education": True, "basic_medical": True,
              "housing_safety": True, "drinking_water": True}


def settings_for(tmp_path, url: str, **overrides) -> BenefitsSettings:
    values = dict(var_dir=tmp_path, database_url=url, kafka_bootstrap="127.0.0.1:1", log_json=False,
                  run_consumer=False, evaluation_date=AS_OF)
    values.update(overrides)
    return BenefitsSettings(**values)


def household(household_id: str, version: int, per_capita: str, status: str = "exited", year: int = 2021) -> dict:
    """The contract's Nankang farmer (4 living members), exited, with the given 2021 income."""
    snapshot = copy.deepcopy(example("nankang-farmer")["household"])
    snapshot.update(id=household_id, version=version, status=status, exit_date="2019-12-20",
                    income={"year": year, "per_capita_net": per_capita}, guarantees=dict(GUARANTEED))
    return snapshot


def event(snapshot: dict, day: str | None = None) -> Envelope:
    time = dt.datetime.fromisoformat(day).replace(hour=10, tzinfo=CHINA) if day else None
    extra = {"time": time} if time else {}
    return Envelope(source="registry", type="household.updated", subject=f"household/{snapshot['id']}",
                    sequence=snapshot["version"], data={"household": snapshot}, actor="cadre-7", **extra)


async def apply(app, envelope: Envelope, as_of: dt.date = AS_OF) -> None:
    async with transaction(app.state.sessionmaker) as session:
        await apply_registry_event(session, envelope, as_of)


async def leads(app) -> list[dict]:
    async with app.state.sessionmaker() as session:
        payloads = (await session.execute(select(outbox.c.payload).order_by(outbox.c.id))).scalars().all()
    return [e for e in map(json.loads, payloads) if e["type"] == "monitoring.risk_detected"]


async def start(databases, tmp_path, **overrides):
    settings = settings_for(tmp_path, await databases.url("benefits"), **overrides)
    app = create_app(settings)
    return app, settings


# --- one lead per crossing (registry changes) ------------------------------------------------------

async def test_a_lead_once_per_crossing_after_registry_changes(databases, tmp_path):
    app, settings = await start(databases, tmp_path)
    async with running_app(app, mint_token(settings, "benefits:read")):
        incomes = ["9000.00", "5000.00", "5200.00", "9000.00", "4000.00", "4100.00"]
        #           outside     in (lead)  stays in   out        in (lead)  stays in
        for version, income in enumerate(incomes, 1):
            await apply(app, event(household("hh-cross", version, income)))
        found = await leads(app)
        assert [(e["data"]["household_version"], e["data"]["trigger"]) for e in found] == \
            [(2, "registry_change"), (5, "registry_change")]
        first = found[0]
        assert first["source"] == "benefits" and first["subject"] == "household/hh-cross" and first["sequence"] == 2
        assert first["signature"] and first["signer"]
        data = first["data"]
        assert set(data) == {"household_id", "household_version", "as_of", "trigger", "risk_causes", "assessment"}
        assert data["as_of"] == "2021-06-30" and data["risk_causes"] == ["income_drop"]
        assert data["assessment"]["kind"] == "monitoring_range" and data["assessment"]["result"] is True
        assert data["assessment"]["unmet"] == ["income_below_range"]
        assert data["assessment"]["explanation"][0] == {
            "condition": "per-capita net income of 2021 at or above the 2021 range line 6000", "value": "5000.00",
            "passed": False}
        assert data["assessment"]["source"]["document"] == "中农组发〔2021〕7号"
        # A redelivered event changes nothing and raises nothing.
        await apply(app, event(household("hh-cross", 5, "4000.00")))
        assert len(await leads(app)) == 2


async def test_a_threshold_change_raises_leads_once(databases, tmp_path):
    """The range line raised 6000 -> 6500 for 2021 (a recompute job): 6200 and 6499.99 enter the range,
    6500 and 9000 do not; a second job finds them inside already and raises nothing."""
    app, settings = await start(databases, tmp_path)
    async with running_app(app, mint_token(settings, "benefits:read")):
        for index, income in enumerate(["6200.00", "6499.99", "6500.00", "9000.00"]):
            await apply(app, event(household(f"hh-t{index}", 1, income)))
        assert await leads(app) == []
        raised = default_registry().with_overrides("cn-national", {"monitoring.range_line": {2021: Decimal(6500)}})
        for _ in range(2):
            async with transaction(app.state.sessionmaker) as session:
                job = await create_job(session, Scope(kind="all"), AS_OF, batch_size=3, requested_by="office-1")
            assert (await run_job(app.state.sessionmaker, job["id"], raised))["status"] == "done"
        found = await leads(app)
        assert sorted((e["data"]["household_id"], e["data"]["trigger"]) for e in found) == \
            [("hh-t0", "threshold_change"), ("hh-t1", "threshold_change")]
        assert "the 2021 range line 6500" in found[0]["data"]["assessment"]["explanation"][0]["condition"]


async def test_rigid_expenses_raise_a_lead_with_their_causes(databases, tmp_path):
    app, settings = await start(databases, tmp_path)
    async with running_app(app, mint_token(settings, "benefits:read")):
        snapshot = household("hh-rigid", 1, "8000.00")  # household net income 8000 x 4 = 32000
        snapshot["rigid_expenses"] = {"year": 2021, "medical": "30000.00", "disaster": "2000.01"}
        await apply(app, event(snapshot))
        (lead,) = await leads(app)
        assert lead["data"]["risk_causes"] == ["rigid_expense", "illness", "disaster"]
        assert lead["data"]["assessment"]["explanation"][1]["value"] == "32000.01"


# --- through the real broker ---------------------------------------------------------------------

async def test_leads_through_the_broker_exactly_once_per_crossing_and_signed(databases, broker, tmp_path):
    app, settings = await start(databases, tmp_path, kafka_bootstrap=broker.bootstrap, run_consumer=True)
    incomes = ["9000.00", "5000.00", "5100.00", "9000.00", "4000.00"]
    envelopes = [event(household("hh-broker", version, income)) for version, income in enumerate(incomes, 1)]
    async with running_app(app, mint_token(settings, "benefits:read")):
        producer = make_producer(broker.bootstrap)
        await producer.start()
        try:
            for envelope in [*envelopes, envelopes[1]]:  # the last one is a redelivery of the first crossing
                await producer.send_and_wait(TOPIC_REGISTRY, signed_bytes(envelope, tmp_path), key=b"hh-broker")
        finally:
            await producer.stop()

        async def caught_up():
            consumer = getattr(app.state, "consumer", None)
            return consumer is not None and consumer.processed >= len(envelopes) + 1

        await eventually(caught_up, timeout=60)
        relay = OutboxRelay(app.state.engine, settings)
        try:
            published = await relay.publish_pending()
        finally:
            await relay.close()
        staged = await leads(app)
        assert len(staged) == 2
        records = await read_topic(broker.bootstrap, TOPIC_BENEFITS, published)
        trusted = trusted_keys(settings)
        on_topic = [verified_envelope(record.value, trusted) for record in records]  # raises unless signed
        risk = [e for e in on_topic if e.type == "monitoring.risk_detected"]
        assert [(e.data["household_version"], e.data["trigger"]) for e in risk] == \
            [(2, "registry_change"), (5, "registry_change")]
        assert {record.key for record in records} == {b"hh-broker"}
        assert sorted(e.id for e in risk) == sorted(e["id"] for e in staged)


# --- the elimination criteria --------------------------------------------------------------------

async def test_elimination_answer_over_the_stored_history(databases, tmp_path):
    app, settings = await start(databases, tmp_path, evaluation_date=dt.date(2021, 12, 31))
    as_of = dt.date(2021, 12, 31)
    history = [("2021-01-10", "5000.00", 2020), ("2021-03-15", "6500.00", 2021), ("2021-05-01", "7000.00", 2021)]
    async with running_app(app, mint_token(settings, "benefits:read")) as client:
        for version, (day, income, year) in enumerate(history, 1):
            await apply(app, event(household("hh-elim", version, income, status="monitored", year=year), day), as_of)
        # Another area's household, for the area check.
        other = household("hh-other", 1, "7000.00", status="monitored")
        other.update(region_code="360702", village={"code": "360702100201", "township_code": "360702100"})
        await apply(app, event(other, "2021-01-10"), as_of)
        async with app.state.sessionmaker() as session:
            days = (await session.execute(select(income_observations.c.observed_on)
                                          .where(income_observations.c.household_id == "hh-elim")
                                          .order_by(income_observations.c.id))).scalars().all()
        assert days == [dt.date(2021, 1, 10), dt.date(2021, 3, 15), dt.date(2021, 5, 1)]

        url = "/v1/households/hh-elim/monitoring/elimination"
        early = (await client.get(url, params={"as_of": "2021-09-14"})).json()
        assert (early["eligible"], early["months_above_range"], early["above_range_since"]) == (False, 5, "2021-03-15")
        assert early["unmet"] == ["income_above_range_months"] and early["as_of"] == "2021-09-14"
        assert early["explanation"][0]["value"] == 5 and early["explanation"][0]["passed"] is False
        ready = (await client.get(url, params={"as_of": "2021-09-15"})).json()
        assert (ready["eligible"], ready["months_above_range"]) == (True, 6)
        assert set(ready) >= {"household_id", "eligible", "months_above_range", "above_range_since", "explanation",
                              "source", "as_of"}
        assert ready["source"]["document"] == "中农组发〔2021〕7号"
        default = (await client.get(url)).json()  # the evaluation date, 2021-12-31: 9 whole months
        assert (default["as_of"], default["months_above_range"], default["eligible"]) == ("2021-12-31", 9, True)
        assert (await client.get("/v1/households/hh-nobody/monitoring/elimination")).status_code == 404
        assert (await client.get(url, params={"as_of": "not-a-date"})).status_code == 422
        before = (await client.get(url, params={"as_of": "2020-06-30"})).json()
        assert before["eligible"] is False and before["unmet"] == ["in_force"]
        # A day before every policy pack (the national one starts 2014) has no rule: 422 naming as_of, not 500.
        ancient = await client.get(url, params={"as_of": "1990-01-01"})
        assert ancient.status_code == 422 and ancient.headers["content-type"].startswith("application/problem+json")
        assert ancient.json()["errors"][0]["loc"] == ["query", "as_of"] and "1990-01-01" in ancient.json()["detail"]

        area = {"Authorization": "Bearer " + mint_token(settings, "benefits:read", area="360702")}
        hidden = await client.get(url, headers=area)
        assert hidden.status_code == 404 and hidden.headers["content-type"].startswith("application/problem+json")
        assert (await client.get("/v1/households/hh-other/monitoring/elimination", headers=area)).status_code == 200
