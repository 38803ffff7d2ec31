"""Policy coverage after 2020 and the explicit evaluation date, over HTTP on SQLite and PostgreSQL.

Every local pack ends in 2020, so a Nankang household evaluated on a later date gets only the
national pack: the answer, the stored entitlements, the decision events and `/readyz` say so.
"""
from __future__ import annotations

import copy
import datetime as dt
import json

import pytest
from sqlalchemy import select

from services.audit.app import create_app as create_audit
from services.benefits.app import create_app as create_benefits
from services.benefits.consumer import apply_registry_event
from services.benefits.readiness import CoverageWarnings
from services.benefits.tables import outbox
from shared.auth import mint_token
from shared.config import AuditSettings, BenefitsSettings
from shared.db import transaction
from shared.events import Envelope
from tests.helpers import example, running_app

DEMO_DAY = dt.date(2020, 6, 30)
LATER = dt.date(2026, 12, 3)
LAPSED = {"pack": "nankang-2020", "valid_from": "2020-01-01", "valid_to": "2020-12-31"}
WARNING = "Region 360703 is evaluated national_only on 2026-12-03: pack nankang-2020 lapsed on 2020-12-31"


@pytest.fixture(autouse=True)
def broker_up(monkeypatch):
    """`/readyz` asks the broker; these tests are about what it adds when the broker is up."""
    async def reachable(_bootstrap: str) -> bool:
        return True
    monkeypatch.setattr("shared.app.broker_reachable", reachable)


@pytest.fixture
async def benefits(databases, tmp_path):
    async def start(evaluation_date: dt.date):
        settings = BenefitsSettings(var_dir=tmp_path, database_url=await databases.url("benefits"),
                                    kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False,
                                    evaluation_date=evaluation_date)
        app = create_benefits(settings)
        return app, running_app(app, mint_token(settings, "benefits:read benefits:evaluate admin"))
    return start


def farmer(**changes) -> dict:
    household = copy.deepcopy(example("nankang-farmer")["household"])
    household.update(changes)
    return household


async def store(app, household: dict, on: dt.date) -> None:
    envelope = Envelope(source="registry", type="household.created", subject=f"household/{household['id']}",
                        sequence=household["version"], data={"household": household}, actor="cadre-7")
    async with transaction(app.state.sessionmaker) as session:
        await apply_registry_event(session, envelope, on)


async def decision_events(app) -> list[dict]:
    async with app.state.sessionmaker() as session:
        payloads = (await session.execute(select(outbox.c.payload).order_by(outbox.c.id))).scalars().all()
    return [json.loads(p) for p in payloads]


async def test_evaluate_says_local_then_national_only_and_the_drop_is_visible(benefits):
    app, context = await benefits(DEMO_DAY)
    async with context as client:
        demo = (await client.post("/v1/evaluate", json={"household": farmer(), "as_of": "2020-06-30"})).json()
        later = (await client.post("/v1/evaluate", json={"household": farmer(), "as_of": "2026-12-03"})).json()
        beijing = farmer(region_code="110101", village=None)
        national = await client.post("/v1/evaluate", json={"household": beijing, "as_of": "2020-06-30"})
    assert demo["as_of"] == "2020-06-30"
    assert {k: demo["policy"][k] for k in ("pack", "as_of", "coverage", "lapsed")} == \
        {"pack": "nankang-2020", "as_of": "2020-06-30", "coverage": "local", "lapsed": None}
    assert later["as_of"] == "2026-12-03"
    assert {k: later["policy"][k] for k in ("pack", "coverage", "lapsed")} == \
        {"pack": "cn-national", "coverage": "national_only", "lapsed": LAPSED}
    assert (len(demo["entitlements"]), len(later["entitlements"])) == (15, 4)
    assert national.status_code == 200, national.text
    assert (national.json()["policy"]["coverage"], national.json()["policy"]["lapsed"]) == ("national_only", None)


async def test_stored_entitlements_events_and_readyz_after_the_local_packs_lapsed(benefits):
    app, context = await benefits(LATER)
    async with context as client:
        await store(app, farmer(), LATER)
        stored = (await client.get(f"/v1/households/{farmer()['id']}/entitlements")).json()
        ready = await client.get("/readyz")
    assert (stored["policy"]["pack"], stored["policy"]["coverage"], stored["policy"]["lapsed"]) == \
        ("cn-national", "national_only", LAPSED)
    assert len(stored["entitlements"]) == 4
    [decided] = [e for e in await decision_events(app) if e["type"] == "entitlements.decided"]
    granted = [i for i in decided["data"]["entitlements"] if i["change"] == "granted"]
    assert sorted(i["program"] for i in granted) == sorted(e["program"] for e in stored["entitlements"])
    policy = decided["data"]["policy"]
    assert (policy["coverage"], policy["lapsed"]["pack"], policy["as_of"]) == ("national_only", "nankang-2020", "2026-12-03")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "ok" and len(body["warnings"]) == 1 and WARNING in body["warnings"][0]
    assert body["evaluation_date"]["date"] == "2026-12-03" and body["evaluation_date"]["configured"] is True
    assert body["evaluation_date"]["setting"] == "JZ_BENEFITS_EVALUATION_DATE"


async def test_on_the_demo_date_stored_decisions_are_local_and_readyz_has_no_warning(benefits):
    app, context = await benefits(DEMO_DAY)
    async with context as client:
        await store(app, farmer(), DEMO_DAY)
        stored = (await client.get(f"/v1/households/{farmer()['id']}/entitlements")).json()
        body = (await client.get("/readyz")).json()
    assert (stored["policy"]["pack"], stored["policy"]["coverage"], stored["policy"]["lapsed"]) == \
        ("nankang-2020", "local", None)
    assert body["warnings"] == [] and body["evaluation_date"]["date"] == "2020-06-30"
    assert {e["data"]["policy"]["coverage"] for e in await decision_events(app)} == {"local"}


async def test_readiness_regions_are_cached_for_their_ttl(benefits):
    app, context = await benefits(LATER)
    now = [0.0]
    warnings = CoverageWarnings(ttl_s=60.0, clock=lambda: now[0])
    async with context as client:
        app.state.readiness_warnings = warnings
        assert (await client.get("/readyz")).json()["warnings"] == []
        await store(app, farmer(), LATER)
        assert (await client.get("/readyz")).json()["warnings"] == []  # within the TTL: not read again
        now[0] = 61.0
        assert WARNING in (await client.get("/readyz")).json()["warnings"][0]


async def test_a_failing_warning_check_does_not_make_the_service_unready(benefits):
    app, context = await benefits(LATER)

    async def broken(_app):
        raise RuntimeError("boom")
    async with context as client:
        app.state.readiness_warnings = broken
        response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["warnings"] == ["readiness warnings unavailable: RuntimeError"]


async def test_audit_readyz_names_its_evaluation_date(databases, tmp_path):
    settings = AuditSettings(var_dir=tmp_path, database_url=await databases.url("audit"),
                             kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False,
                             evaluation_date=DEMO_DAY)
    async with running_app(create_audit(settings)) as client:
        body = (await client.get("/readyz")).json()
    assert body["warnings"] == []
    assert body["evaluation_date"] == {
        "date": "2020-06-30", "configured": True, "setting": "JZ_AUDIT_EVALUATION_DATE",
        "note": "fixed by JZ_AUDIT_EVALUATION_DATE (the demo profile sets 2020-06-30); real decisions still "
                "expire counted from today"}


# --- the audit dashboard ------------------------------------------------------------------

async def dashboard_page(databases, tmp_path, policy_pack: str, as_of: str | None) -> str:
    from tests.integration.audit.support import entitlement_event, feed, registry_event, snapshot
    settings = AuditSettings(var_dir=tmp_path, database_url=await databases.url("audit"),
                             kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False,
                             evaluation_date=DEMO_DAY)
    app = create_audit(settings, id_hash_key="test-key", checkpoint_schedule=False)
    async with running_app(app, mint_token(settings, "audit:read")) as client:
        events = [registry_event("household.created", snapshot("hh-1")),
                  registry_event("household.created", snapshot("hh-2", seq=2))]
        for household in ("hh-1", "hh-2"):
            decided = entitlement_event(household, "industry.crop_livestock", "granted")
            decided.data["policy"] = {"pack": policy_pack, "version": "1", "chain": [policy_pack]}
            events.append(decided)
        await feed(app, *events)
        page = await client.get("/dashboard", params={"as_of": as_of} if as_of else {})
    assert page.status_code == 200, page.text
    return page.text


async def test_dashboard_banner_for_decisions_made_under_the_national_pack(databases, tmp_path):
    html = await dashboard_page(databases, tmp_path, "cn-national", "2026-12-03")
    assert 'id="coverage-banner"' in html and "仅按国家政策包评估 · Evaluated national_only" in html
    assert WARNING in html and "已于 2020-12-31 失效" in html and "— 2 户 (households)" in html
    assert '<span id="evaluation-date"' in html and ">2026-12-03</span>" in html
    assert "fixed by JZ_AUDIT_EVALUATION_DATE" not in html  # the page was asked for that date


async def test_dashboard_on_its_configured_date_says_recompute_when_a_local_pack_is_valid(databases, tmp_path):
    html = await dashboard_page(databases, tmp_path, "cn-national", None)
    assert ("Decisions in region 360703 were evaluated national_only (cn-national), but on 2020-06-30 local "
            "pack nankang-2020 is valid: recompute.") in html
    assert ">2020-06-30</span> (固定日期 fixed by JZ_AUDIT_EVALUATION_DATE)" in html


async def test_dashboard_has_no_banner_for_local_decisions(databases, tmp_path):
    html = await dashboard_page(databases, tmp_path, "nankang-2020", "2026-12-03")
    assert 'id="coverage-banner"' not in html and "Evaluated national_only" not in html
