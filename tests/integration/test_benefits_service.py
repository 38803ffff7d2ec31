"""Benefits service on SQLite and PostgreSQL: evaluate, event-driven recompute, bulk recompute
jobs, simulation, policies and office lists."""
from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import shutil
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bench.datagen import generate_households
from services.benefits.app import create_app
from services.benefits.consumer import apply_registry_event, store_snapshot
from services.benefits.engine import evaluate
from shared.policy import POLICIES_DIR, PolicyPackError
from services.benefits.recompute.scope import Scope
from services.benefits.recompute.service import create_job, get_job, run_job
from services.benefits.tables import (assessments, entitlement_history, entitlements, household_snapshots, outbox,
                                      processed_events, recompute_jobs, villages)
from shared.auth import mint_token
from shared.bus import make_producer
from shared.config import TOPIC_REGISTRY, BenefitsSettings
from shared.db import transaction
from shared.events import Envelope
from tests.helpers import EXAMPLES_DIR, eventually, example, running_app, signed_bytes

AS_OF = dt.date(2020, 6, 30)
ALL_TABLES = (household_snapshots, processed_events, entitlements, entitlement_history, assessments, villages,
              recompute_jobs, outbox)


def settings_for(tmp_path, url: str, **overrides) -> BenefitsSettings:
    values = dict(var_dir=tmp_path, database_url=url, kafka_bootstrap="127.0.0.1:1", log_json=False,
                  run_consumer=False, evaluation_date=AS_OF)
    values.update(overrides)
    return BenefitsSettings(**values)


@pytest.fixture
async def service(databases, tmp_path):
    """Factory: a running benefits app on a fresh (or given) database of the current backend."""
    stack = []

    async def start(url: str | None = None, **overrides):
        settings = settings_for(tmp_path, url or await databases.url("benefits"), **overrides)
        app = create_app(settings)
        token = mint_token(settings, "benefits:read benefits:evaluate admin")
        context = running_app(app, token)
        client = await context.__aenter__()
        client.app, client.settings, client.url = app, settings, settings.database_url
        stack.append(context)
        return client

    async def stop(client):
        for context in list(stack):
            if getattr(context, "_client", None) is client:
                pass
        await stack.pop().__aexit__(None, None, None)

    start.stop = stop
    yield start
    while stack:
        await stack.pop().__aexit__(None, None, None)


def household(name: str = "nankang-farmer", household_id: str | None = None, version: int = 1, **changes) -> dict:
    snapshot = copy.deepcopy(example(name)["household"])
    snapshot["version"] = version
    if household_id:
        snapshot["id"] = household_id
    for path, value in changes.items():
        target = snapshot
        *parents, leaf = path.split("__")
        for part in parents:
            target = target[part]
        target[leaf] = value
    return snapshot


def household_event(snapshot: dict, event_type: str = "household.updated") -> Envelope:
    return Envelope(source="registry", type=event_type, subject=f"household/{snapshot['id']}",
                    sequence=snapshot["version"], data={"household": snapshot}, actor="cadre-7")


async def apply(app, envelope: Envelope) -> int:
    async with transaction(app.state.sessionmaker) as session:
        return await apply_registry_event(session, envelope, AS_OF)


async def table_counts(app) -> dict[str, int]:
    async with app.state.sessionmaker() as session:
        return {t.name: await session.scalar(select(func.count()).select_from(t)) for t in ALL_TABLES}


async def decision_events(app) -> list[dict]:
    async with app.state.sessionmaker() as session:
        payloads = (await session.execute(select(outbox.c.payload).order_by(outbox.c.id))).scalars().all()
    return [json.loads(p) for p in payloads]


def decision_items(events: list[dict]) -> list[dict]:
    """Every entitlement and assessment the ``entitlements.decided`` events list, each with its event's
    envelope fields (household, cause, sequence, policy) beside it; other events are left out."""
    items = []
    for e in events:
        if e["type"] != "entitlements.decided":
            continue
        common = {"household_id": e["data"]["household_id"], "cause_event_id": e["data"]["cause_event_id"],
                  "policy": e["data"]["policy"], "sequence": e["sequence"], "event_id": e["id"]}
        items += [{**common, **item} for item in e["data"]["entitlements"]]
        items += [{**common, **item, "change": "assessed"} for item in e["data"]["assessments"]]
    return items


def decisions_of(events: list[dict]) -> set[tuple]:
    return {(i["change"], i.get("program") or i.get("kind"), i.get("person_id")) for i in decision_items(events)}


def expected_decisions(before: dict | None, after: dict) -> set[tuple]:
    """What the diff must announce, from two pure evaluations."""
    def material(evaluation):
        if evaluation is None:
            return {}, {}
        result = evaluation.to_json()
        ents = {(e["program"], e["person_id"]): (e["amount"], e["unit"], e["period"])
                for e in result["entitlements"] if e["eligible"]}
        asmt = {a["kind"]: (a["result"], a["unmet"]) for a in result["assessments"]}
        return ents, asmt
    old_e, old_a = material(evaluate(before, AS_OF) if before else None)
    new_e, new_a = material(evaluate(after, AS_OF))
    found = set()
    for key in set(old_e) | set(new_e):
        if old_e.get(key) != new_e.get(key):
            change = "granted" if key not in old_e else "revoked" if key not in new_e else "changed"
            found.add((change, key[0], key[1]))
    for kind in new_a:
        if old_a.get(kind) != new_a[kind]:
            found.add(("assessed", kind, None))
    return found


# --- evaluate -----------------------------------------------------------------------------------

async def test_evaluate_returns_every_example_expectation(service):
    client = await service()
    for path in sorted(EXAMPLES_DIR.glob("*.json")):
        case = example(path.stem)
        response = await client.post("/v1/evaluate", json={"household": case["household"], "as_of": case["as_of"]})
        assert response.status_code == 200, response.text
        result = response.json()
        assert set(result) == {"as_of", "policy", "entitlements", "assessments"}
        assert result["as_of"] == case["as_of"]
        for key, expected in case["expected"].items():
            if key.startswith("assessment."):
                found = [a for a in result["assessments"] if a["kind"] == key.removeprefix("assessment.")]
                assert len(found) == 1 and found[0]["result"] == expected["result"], (path.stem, key)
                if "unmet" in expected:
                    assert found[0]["unmet"] == expected["unmet"], (path.stem, key)
                continue
            found = [e for e in result["entitlements"]
                     if e["program"] == key and e["person_id"] == expected.get("person_id")]
            assert len(found) == 1, (path.stem, key)
            assert found[0]["eligible"] and found[0]["amount"] == expected["amount"], (path.stem, key, found[0])
            if "unit" in expected:
                assert found[0]["unit"] == expected["unit"]
    assert all(count == 0 for count in (await table_counts(client.app)).values())


@pytest.mark.parametrize("body, expected_loc", [
    ({"as_of": "2020-06-30"}, ["body", "household"]),
    ({"household": {"id": "x", "version": 1}, "as_of": "2020-06-30"}, ["body", "household"]),
    ({"household": "not-an-object", "as_of": "2020-06-30"}, ["body", "household"]),
    ({"household": example("nankang-farmer")["household"], "as_of": "2020-13-40"}, ["body", "as_of"]),
    ({"household": example("nankang-farmer")["household"], "as_of": "1999-01-01"}, ["body", "as_of"]),
])
async def test_evaluate_bad_input_is_422_and_stores_nothing(service, body, expected_loc):
    client = await service()
    response = await client.post("/v1/evaluate", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["errors"]
    assert any(e["loc"][: len(expected_loc)] == expected_loc for e in problem["errors"]), problem
    assert all(count == 0 for count in (await table_counts(client.app)).values())


# --- event-driven recompute ---------------------------------------------------------------------

async def test_registry_change_produces_exactly_the_changed_decisions(service):
    client = await service()
    v1 = household(household_id="hh-change", version=1)
    first = household_event(v1, "household.created")
    decisions = await apply(client.app, first)
    events = await decision_events(client.app)
    assert [e["type"] for e in events] == ["entitlements.decided"]  # one event for the whole version
    assert decisions_of(events) == expected_decisions(None, v1)
    assert decisions == len(expected_decisions(None, v1)) > 5
    granted = {i["program"]: i["after"] for i in decision_items(events) if i["change"] == "granted"}
    assert granted["industry.crop_livestock"]["amount"] == "4500.00" and granted["industry.crop_livestock"]["source"]
    assert all(i["before"] is None and i["after"]["explanation"] for i in decision_items(events) if i["change"] == "granted")
    async with client.app.state.sessionmaker() as session:
        rows = (await session.execute(select(entitlement_history))).all()
    assert sorted((r.program, r.person_id) for r in rows) == sorted(
        (i["program"], i["person_id"]) for i in decision_items(events) if i["change"] == "granted")
    assert {r.decision_event_id for r in rows} == {events[0]["id"]}

    v2 = household(household_id="hh-change", version=2, production__pigs_sheep=3,
                   production__land_rented_out={"farmland_mu": 0, "mountain_mu": 0})
    second = household_event(v2)
    before = len(await decision_events(client.app))
    decisions = await apply(client.app, second)
    new_events = (await decision_events(client.app))[before:]
    assert len(new_events) == 1 and new_events[0]["subject"] == "household/hh-change"
    assert decisions_of(new_events) == expected_decisions(v1, v2) == {
        ("changed", "industry.crop_livestock", None),
        ("revoked", "industry.land_transfer_out", None)}
    assert decisions == 2 and new_events[0]["data"]["household_version"] == 2
    changed = next(i for i in decision_items(new_events) if i["change"] == "changed")
    assert changed["before"]["amount"] == "4500.00" and changed["after"]["amount"] == "5000.00"
    assert changed["cause_event_id"] == second.id and changed["sequence"] == 2
    assert changed["policy"]["pack"] == "nankang-2020"
    revoked = next(i for i in decision_items(new_events) if i["change"] == "revoked")
    assert revoked["after"] is None and revoked["before"]["explanation"]

    counts = await table_counts(client.app)
    # Redelivery of the same event, and a replayed old version under a new event id: nothing.
    assert await apply(client.app, second) == 0
    assert await apply(client.app, household_event(v1)) == 0
    after = await table_counts(client.app)
    assert after["outbox"] == counts["outbox"] and after["entitlement_history"] == counts["entitlement_history"]

    history = (await client.get("/v1/households/hh-change/entitlements/history", params={"limit": 500})).json()
    assert len(history["items"]) == counts["entitlement_history"]
    current = (await client.get("/v1/households/hh-change/entitlements")).json()
    assert current["household_version"] == 2
    amounts = {e["program"]: e["amount"] for e in current["entitlements"] if e["person_id"] is None}
    assert amounts["industry.crop_livestock"] == "5000.00" and "industry.land_transfer_out" not in amounts


async def test_village_update_fans_out_to_its_households_only(service):
    client = await service()
    inside = [household(household_id=f"hh-v{i}") for i in range(3)]
    outside = household(household_id="hh-other", village__code="360703105299")
    for snapshot in inside + [outside]:
        await apply(client.app, household_event(snapshot, "household.created"))
    before = len(await decision_events(client.app))
    village = {**inside[0]["village"], "is_deep_poverty_village": False}
    event = Envelope(source="registry", type="village.updated", subject=f"village/{village['code']}", sequence=2,
                     data={"village": village, "version": 2})
    decisions = await apply(client.app, event)
    new_events = (await decision_events(client.app))[before:]
    assert decisions == len(decision_items(new_events)) > 0
    assert sorted(e["data"]["household_id"] for e in new_events) == sorted(s["id"] for s in inside)  # one each
    moved = [{**s, "village": village} for s in inside]
    for old, new in zip(inside, moved):
        mine = [e for e in new_events if e["data"]["household_id"] == old["id"]]
        assert decisions_of(mine) == expected_decisions(old, new)
    transport = [i for i in decision_items(new_events) if i.get("program") == "employment.transport"]
    assert len(transport) == 3 and all(i["cause_event_id"] == event.id for i in transport)
    assert await apply(client.app, event) == 0  # redelivered


async def test_registry_event_through_the_broker(databases, broker, tmp_path):
    settings = settings_for(tmp_path, await databases.url("benefits"), kafka_bootstrap=broker.bootstrap,
                            run_consumer=True)
    app = create_app(settings)
    v1 = household(household_id="hh-broker", version=1)
    v2 = household(household_id="hh-broker", version=2, production__pigs_sheep=3)
    first, second = household_event(v1, "household.created"), household_event(v2)
    async with running_app(app, mint_token(settings, "benefits:read")) as client:
        producer = make_producer(broker.bootstrap)
        await producer.start()
        try:
            for envelope in (first, first, second):  # the second copy of `first` is a redelivery
                await producer.send_and_wait(TOPIC_REGISTRY, signed_bytes(envelope, tmp_path), key=b"hh-broker")
        finally:
            await producer.stop()

        async def caught_up():
            consumer = getattr(app.state, "consumer", None)
            return consumer is not None and consumer.processed >= 3

        await eventually(caught_up, timeout=60)
        events = await decision_events(app)
        assert decisions_of(events) == expected_decisions(None, v1) | expected_decisions(v1, v2)
        assert [e["sequence"] for e in events] == [1, 2]  # one event per version, the redelivery none
        assert len(decision_items(events)) == len(expected_decisions(None, v1)) + len(expected_decisions(v1, v2))
        assert app.state.consumer.dead_lettered == 0
        current = (await client.get("/v1/households/hh-broker/entitlements")).json()
        assert current["household_version"] == 2


# --- bulk recompute jobs ------------------------------------------------------------------------

async def seed_snapshots(app, snapshots) -> None:
    async with transaction(app.state.sessionmaker) as session:
        for snapshot in snapshots:
            await store_snapshot(session, snapshot)


async def state_of(app) -> tuple:
    async with app.state.sessionmaker() as session:
        current = sorted((r.household_id, r.program, r.person_key, str(r.amount))
                         for r in (await session.execute(select(entitlements))).all())
        judged = sorted((r.household_id, r.kind, r.result) for r in (await session.execute(select(assessments))).all())
        history = Counter((r.household_id, r.program, r.person_id, r.change, json.dumps(r.after, sort_keys=True))
                          for r in (await session.execute(select(entitlement_history))).all())
    events = Counter((i["change"], i["household_id"], i.get("program") or i.get("kind"), i.get("person_id"))
                     for i in decision_items(await decision_events(app)))
    return current, judged, history, events


async def test_recompute_job_resumes_after_interruption_like_one_run(service, databases):
    snapshots = generate_households(23, seed=7)
    interrupted = await service()
    await seed_snapshots(interrupted.app, snapshots)
    async with transaction(interrupted.app.state.sessionmaker) as session:
        job = await create_job(session, Scope(kind="all"), AS_OF, batch_size=5)
    assert job["status"] == "pending" and job["total"] == 23
    partial = await run_job(interrupted.app.state.sessionmaker, job["id"], interrupted.app.state.packs,
                            max_batches=1)
    assert partial["status"] == "running" and partial["processed"] == 5
    assert partial["last_household_id"] == sorted(s["id"] for s in snapshots)[4]
    url = interrupted.url
    await service.stop(interrupted)

    restarted = await service(url)  # start-up resumes unfinished jobs

    async def finished():
        async with restarted.app.state.sessionmaker() as session:
            current = await get_job(session, job["id"])
        return current if current["status"] == "done" else None

    resumed = await eventually(finished)
    assert resumed["processed"] == 23 and resumed["finished_at"]
    via_api = (await restarted.get(f"/v1/jobs/{job['id']}")).json()
    assert via_api["status"] == "done" and via_api["decisions"] == resumed["decisions"]

    single = await service(await databases.url("benefits_single"))
    await seed_snapshots(single.app, snapshots)
    async with transaction(single.app.state.sessionmaker) as session:
        other = await create_job(session, Scope(kind="all"), AS_OF, batch_size=5)
    done = await run_job(single.app.state.sessionmaker, other["id"], single.app.state.packs)
    assert done["status"] == "done" and done["decisions"] == resumed["decisions"]

    resumed_state, single_state = await state_of(restarted.app), await state_of(single.app)
    assert resumed_state == single_state
    current, _, history, events = resumed_state
    assert all(count == 1 for count in history.values()), "a decision was recorded twice"
    assert all(count == 1 for count in events.values()), "a decision was announced twice"
    assert sum(events.values()) == resumed["decisions"]
    expected = sum(len(expected_decisions(None, s)) for s in snapshots)
    assert resumed["decisions"] == expected
    assert len(current) == sum(1 for s in snapshots for e in evaluate(s, AS_OF).entitlements if e.eligible)

    # Nothing changed since: a second job emits no decision and writes no row.
    async with transaction(restarted.app.state.sessionmaker) as session:
        again = await create_job(session, Scope(kind="all"), AS_OF, batch_size=5)
    rerun = await run_job(restarted.app.state.sessionmaker, again["id"], restarted.app.state.packs)
    assert rerun["status"] == "done" and rerun["processed"] == 23 and rerun["decisions"] == 0
    assert await state_of(restarted.app) == resumed_state


def changed_policy_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "policies-changed"
    shutil.copytree(POLICIES_DIR, folder)
    path = folder / "nankang-2020.yaml"
    text = path.read_text(encoding="utf-8")
    old = "  crop_livestock.household_cap:\n    value: 8000\n"
    assert old in text
    path.write_text(text.replace(old, "  crop_livestock.household_cap:\n    value: 5000\n"), encoding="utf-8")
    return folder


async def test_policy_change_recompute_emits_only_what_changed_as_simulated(service, tmp_path):
    snapshots = generate_households(40, seed=11)
    before_change = await service()
    await seed_snapshots(before_change.app, snapshots)
    started = await before_change.post("/v1/recompute", json={"scope": {"kind": "all"}})
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    assert started.headers["location"] == f"/v1/jobs/{job_id}"

    async def done(client, job):
        async def probe():
            body = (await client.get(f"/v1/jobs/{job}")).json()
            return body if body["status"] in ("done", "failed") else None
        return await eventually(probe)

    assert (await done(before_change, job_id))["status"] == "done"
    simulated = (await before_change.post("/v1/simulate", json={
        "pack": "nankang-2020", "overrides": {"crop_livestock.household_cap": 5000}, "scope": {"kind": "all"}})).json()
    url = before_change.url
    outbox_before = len(await decision_events(before_change.app))
    await service.stop(before_change)

    after_change = await service(url, policies_dir=changed_policy_folder(tmp_path))
    started = await after_change.post("/v1/recompute", json={"scope": {"kind": "region", "code": "360703"},
                                                             "as_of": "2020-06-30", "batch_size": 7})
    assert started.status_code == 202, started.text
    job = await done(after_change, started.json()["id"])
    assert job["status"] == "done" and job["processed"] == 40
    new_events = (await decision_events(after_change.app))[outbox_before:]
    items = decision_items(new_events)
    assert {e["type"] for e in new_events} == {"entitlements.decided"}
    assert {i.get("program") for i in items} <= {"industry.crop_livestock"}
    assert all(i["change"] == "changed" for i in items)
    crop = next(p for p in simulated["programs"] if p["program"] == "industry.crop_livestock")
    assert job["decisions"] == len(items) == len(new_events) == crop["households_affected"] == job["households_changed"]
    assert all(i["after"]["amount"] == "5000.00" for i in items)
    delta = sum(Decimal(i["after"]["amount"]) - Decimal(i["before"]["amount"]) for i in items)
    assert str(delta) == crop["delta"]


@pytest.mark.parametrize("body", [
    {"scope": {"kind": "region"}},
    {"scope": {"kind": "village", "code": "36%"}},
    {"scope": {"kind": "all", "code": "36"}},
    {"scope": {"kind": "county", "code": "36"}},
    {"scope": {"kind": "all"}, "as_of": "yesterday"},
    {"scope": {"kind": "all"}, "as_of": "1999-01-01"},
])
async def test_recompute_bad_scope_is_422_and_creates_no_job(service, body):
    client = await service()
    response = await client.post("/v1/recompute", json=body)
    assert response.status_code == 422, response.text
    assert (await table_counts(client.app))["recompute_jobs"] == 0
    assert (await client.get("/v1/jobs/nope")).status_code == 404


async def test_recompute_needs_admin(service):
    client = await service()
    token = mint_token(client.settings, "benefits:read benefits:evaluate")
    response = await client.post("/v1/recompute", json={"scope": {"kind": "all"}},
                                 headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403


# --- simulation ---------------------------------------------------------------------------------

async def test_simulation_is_read_only_and_computes_deltas(service):
    client = await service()
    small = household(household_id="hh-s1")                                  # crop_livestock 4500
    large = household(household_id="hh-s2", production__pigs_sheep=10,      # 3500 + 5000 = 8500 -> cap 8000
                      village=household("nankang-dibao-elderly")["village"])
    elderly = household("nankang-dibao-elderly", household_id="hh-s3")      # no crop_livestock
    for snapshot in (small, large, elderly):
        await apply(client.app, household_event(snapshot, "household.created"))
    crop = {s["id"]: evaluate(s, AS_OF).entitlement("industry.crop_livestock") for s in (small, large, elderly)}
    assert crop["hh-s1"].amount == Decimal("4500.00") and crop["hh-s2"].amount == Decimal("8000.00")
    assert crop["hh-s3"] is None or not crop["hh-s3"].eligible
    counts = await table_counts(client.app)

    response = await client.post("/v1/simulate", json={
        "pack": "nankang-2020", "as_of": "2020-06-30", "scope": {"kind": "region", "code": "360703"},
        "overrides": {"crop_livestock.household_cap": "5000", "crop_livestock.rates": {"pigs_sheep": 600}}})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["households_evaluated"] == 3 and result["households_under_pack"] == 3
    assert result["households_affected"] == 2
    programs = {p["program"]: p for p in result["programs"]}
    # hh-s1: 3500 + 2 x 600 = 4700 (+200); hh-s2: capped at 5000 (-3000)
    assert programs["industry.crop_livestock"] == {
        "program": "industry.crop_livestock", "units": ["year"] if "year" in programs["industry.crop_livestock"]["units"]
        else programs["industry.crop_livestock"]["units"], "households_affected": 2,
        "amount_before": "12500.00", "amount_after": "9700.00", "delta": "-2800.00",
        "households_gained": 0, "households_lost": 0, "households_changed": 2}
    assert all(p["delta"] == "0.00" and p["households_affected"] == 0
               for name, p in programs.items() if name != "industry.crop_livestock")
    townships = {t["township_code"]: t for t in result["townships"]}
    assert townships["360703105"]["households_affected"] == 1 and townships["360703105"]["delta"] == "200.00"
    assert townships["360703105"]["township_name"] == "隆木乡"
    assert townships["360703102"]["households_affected"] == 1 and townships["360703102"]["delta"] == "-3000.00"
    assert result["total"]["delta"] == "-2800.00"
    before_total = sum((e.amount for s in (small, large, elderly) for e in evaluate(s, AS_OF).entitlements
                        if e.eligible), Decimal(0))
    assert Decimal(result["total"]["amount_before"]) == before_total
    assert await table_counts(client.app) == counts  # read-only

    village_only = (await client.post("/v1/simulate", json={
        "pack": "nankang-2020", "overrides": {"crop_livestock.household_cap": 5000},
        "scope": {"kind": "village", "code": large["village"]["code"]}})).json()
    assert village_only["households_evaluated"] == 2 and village_only["total"]["delta"] == "-3000.00"
    # A parent pack's parameter reaches its descendants' households through the chain ...
    inherited = (await client.post("/v1/simulate", json={"pack": "ganzhou-2016", "overrides": {
        "chronic_outpatient.annual_cap": 3000, "post_exit_policy_until": "2019-12-31"}})).json()
    assert inherited["households_under_pack"] == 3 and inherited["households_affected"] == 0
    # ... but a parameter only a child pack states is not the parent's to change.
    not_there = await client.post("/v1/simulate", json={"pack": "ganzhou-2016", "overrides": {
        "crop_livestock.household_cap": 1}})
    assert not_there.status_code == 422


@pytest.mark.parametrize("overrides, loc", [
    ({"no.such.parameter": 1}, ["body", "overrides", "no.such.parameter"]),
    ({"crop_livestock.household_cap": "lots"}, ["body", "overrides", "crop_livestock.household_cap"]),
    ({"crop_livestock.rates": 5}, ["body", "overrides", "crop_livestock.rates"]),
    ({"crop_livestock.rates": {"unicorns": 5}}, ["body", "overrides", "crop_livestock.rates", "unicorns"]),
    ({}, ["body", "overrides"]),
])
async def test_simulation_bad_overrides_are_422(service, overrides, loc):
    client = await service()
    response = await client.post("/v1/simulate", json={"pack": "nankang-2020", "overrides": overrides})
    assert response.status_code == 422, response.text
    assert any(e["loc"][: len(loc)] == loc for e in response.json()["errors"]), response.json()
    unknown = await client.post("/v1/simulate", json={"pack": "atlantis-2020", "overrides": {"x": 1}})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["loc"] == ["body", "pack"]


async def test_simulation_override_the_rules_cannot_use_is_422_not_500(service):
    client = await service()
    await seed_snapshots(client.app, generate_households(30, seed=3))
    response = await client.post("/v1/simulate", json={
        "pack": "cn-national", "overrides": {"identification.income_line": {"nested": [1, 2]}}})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "overrides"]


# --- policies and start-up validation -----------------------------------------------------------

async def test_policies_list_and_resolved_pack_with_origins(service):
    client = await service()
    listed = (await client.get("/v1/policies")).json()
    names = {p["name"] for p in listed["items"]}
    assert {"cn-national", "jiangxi-2018", "ganzhou-2016", "nankang-2020", "shaoguan-2016", "qinzhou-2016"} <= names
    assert listed["next_cursor"] is None
    applies = (await client.get("/v1/policies", params={"region": "360703", "as_of": "2020-06-30"})).json()
    assert applies["applies"]["pack"] == "nankang-2020"

    pack = (await client.get("/v1/policies/nankang-2020")).json()
    assert pack["chain"][0] == "nankang-2020" and pack["chain"][-1] == "cn-national"
    cap = pack["parameters"]["crop_livestock.household_cap"]
    assert cap == {"value": "8000", "origin": "nankang-2020", "source": {"seed": "001", "lines": "L236"},
                   "default_not_in_seeds": False, "note": None}
    origins = {p["origin"] for p in pack["parameters"].values()}
    assert {"nankang-2020", "ganzhou-2016"} <= origins
    assert all(p["source"] or (p["default_not_in_seeds"] and p["note"]) for p in pack["parameters"].values())
    missing = await client.get("/v1/policies/atlantis-2020")
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert (await client.get("/v1/policies", headers={"Authorization": ""})).status_code == 401


async def test_service_refuses_to_start_on_a_broken_pack(databases, tmp_path):
    folder = tmp_path / "policies-broken"
    shutil.copytree(POLICIES_DIR, folder)
    path = folder / "ganzhou-2016.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("valid_from: 2016-01-01", "valid_from: someday"),
                    encoding="utf-8")
    assert "someday" in path.read_text(encoding="utf-8")
    app = create_app(settings_for(tmp_path, await databases.url("benefits"), policies_dir=folder))
    with pytest.raises(PolicyPackError) as refused:
        async with running_app(app):
            pass
    message = str(refused.value)
    assert "ganzhou-2016.yaml" in message and "valid_from" in message and "date" in message
    assert refused.value.key == "valid_from"

    (folder / "ganzhou-2016.yaml").unlink()
    app = create_app(settings_for(tmp_path, await databases.url("benefits_orphan"), policies_dir=folder))
    with pytest.raises(PolicyPackError, match=r"nankang-2020\.yaml: key 'extends': unknown parent"):
        async with running_app(app):
            pass


# --- office lists -------------------------------------------------------------------------------

async def test_entitlement_list_by_programme_and_area_with_cursor(service):
    client = await service()
    longmu = [household(household_id=f"hh-l{i}") for i in range(3)]
    pingshi = [household(household_id=f"hh-p{i}", village=household("nankang-dibao-elderly")["village"])
               for i in range(2)]
    for snapshot in longmu + pingshi:
        await apply(client.app, household_event(snapshot, "household.created"))

    seen, cursor = [], None
    while True:
        params = {"program": "industry.machinery", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/entitlements", params=params)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [i["household_id"] for i in seen] == ["hh-l0", "hh-l1", "hh-l2", "hh-p0", "hh-p1"]
    assert all(i["program"] == "industry.machinery" and i["amount"] == "4000.00" for i in seen)

    everything = (await client.get("/v1/entitlements", params={"limit": 1000})).json()
    assert everything["next_cursor"] is None and len({i["program"] for i in everything["items"]}) > 3
    by_area = (await client.get("/v1/entitlements", params={"area": "360703102", "limit": 1000})).json()
    assert {i["household_id"] for i in by_area["items"]} == {"hh-p0", "hh-p1"}

    township = mint_token(client.settings, "benefits:read", area="360703105")
    headers = {"Authorization": f"Bearer {township}"}
    mine = (await client.get("/v1/entitlements", params={"limit": 1000}, headers=headers)).json()
    assert {i["household_id"] for i in mine["items"]} == {"hh-l0", "hh-l1", "hh-l2"}
    narrowed = (await client.get("/v1/entitlements", params={"area": "3607", "limit": 1000}, headers=headers)).json()
    assert {i["household_id"] for i in narrowed["items"]} == {"hh-l0", "hh-l1", "hh-l2"}
    other = await client.get("/v1/entitlements", params={"area": "360703102"}, headers=headers)
    assert other.status_code == 403
    bad = await client.get("/v1/entitlements", params={"cursor": "garbage!"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["query", "cursor"]


# --- a partition's batch: multi-row statements, the same result as one event at a time -----------------

def _rows(rows, drop: tuple[str, ...] = ()) -> list:
    return sorted((json.dumps({k: v for k, v in r._mapping.items() if k not in drop}, sort_keys=True, default=str)
                   for r in rows))


async def _everything(app) -> dict:
    from services.benefits.partners.tables import household_status_history, partner_sequences, person_lookup
    from services.benefits.tables import income_observations
    drop = ("id", "updated_at", "recorded_at", "processed_at", "at", "decision_event_id", "created_at")
    async with app.state.sessionmaker() as session:
        found = {t.name: _rows((await session.execute(select(t))).all(), drop)
                 for t in (household_snapshots, processed_events, entitlements, entitlement_history, assessments,
                           villages, person_lookup, household_status_history, income_observations,
                           partner_sequences)}
    found["events"] = [(e["type"], e["subject"], e["sequence"], json.dumps(e["data"], sort_keys=True))
                       for e in await decision_events(app)]
    return found


async def test_a_batch_of_registry_events_equals_applying_them_one_by_one(service, databases):
    from services.benefits.consumer import apply_registry_events
    snapshots = [{**s, "version": 1} for s in generate_households(6, seed=3)]
    for s in snapshots:
        s["status"] = "registered"
    created = [household_event(s, "household.created") for s in snapshots]
    richer = copy.deepcopy(snapshots[0])
    richer.update(version=2, income={"year": 2019, "per_capita_net": "9800.00"})
    mover = snapshots[2]["members"][-1]
    joined = copy.deepcopy(snapshots[1])  # a person moves from household 2 to household 1 ...
    joined.update(version=2, members=joined["members"] + [copy.deepcopy(mover)])
    left = copy.deepcopy(snapshots[2])  # ... and household 2 no longer lists them
    left.update(version=2, members=[m for m in left["members"] if m["id"] != mover["id"]] or left["members"][:1])
    died = copy.deepcopy(snapshots[5])
    died.update(version=2, status="exited", exit_date="2020-03-01")
    died["members"][0]["deceased"] = True
    village = {**snapshots[4]["village"], "is_deep_poverty_village": not snapshots[4]["village"]["is_deep_poverty_village"]}
    events = [*created[:4], created[1],  # a redelivery inside the batch
              household_event(richer), household_event(joined), household_event(left),
              household_event({**snapshots[3]}),  # an old version under a new event id
              Envelope(source="registry", type="village.updated", subject=f"village/{village['code']}", sequence=2,
                       data={"village": village, "version": 2}),
              *created[4:], household_event(died),
              household_event({**copy.deepcopy(richer), "version": 3, "status": "exited", "exit_date": "2020-05-01"})]
    for event in events[6:8] + events[-2:]:  # recorded before the evaluation date: they date the changes
        event.time = dt.datetime(2020, 4, 1, 3, tzinfo=dt.timezone.utc)
    one_by_one, batched = await service(), await service(await databases.url("benefits_batched"))
    async with transaction(one_by_one.app.state.sessionmaker) as session:
        expected = sum([await apply_registry_event(session, e, AS_OF) for e in events])
    async with transaction(batched.app.state.sessionmaker) as session:
        decisions = await apply_registry_events(session, events, AS_OF)
    assert decisions == expected > 20
    state = await _everything(batched.app)
    assert state == await _everything(one_by_one.app)
    assert len([e for e in state["events"] if e[0] == "entitlements.decided"]) >= 8
    assert len(state["processed_events"]) == len({e.id for e in events})
    # applied again (a redelivered batch): nothing at all changes
    async with transaction(batched.app.state.sessionmaker) as session:
        assert await apply_registry_events(session, events, AS_OF) == 0
    assert await _everything(batched.app) == state
