"""GET /v1/villages/{code}/assessments and /v1/villages/assessments on SQLite and PostgreSQL: villages whose
households make them pass and fail, from a village.updated event and stored household snapshots."""
from __future__ import annotations

import base64
import datetime as dt
import json

import httpx
import pytest
from sqlalchemy import insert

from services.audit.app import create_app as create_audit_app
from services.benefits.app import create_app
from services.benefits.consumer import apply_registry_event
from services.benefits.tables import household_snapshots
from shared.auth import mint_token
from shared.config import AuditSettings, BenefitsSettings
from shared.db import transaction
from shared.events import Envelope, utcnow
from tests.helpers import running_app

AS_OF = dt.date(2018, 6, 30)
PASSING, FAILING, SHAOGUAN, NANKANG = "450702100201", "450702100202", "440203100201", "360703105201"
HAVES = ("featured_industry", "housing_security", "basic_medical", "compulsory_education", "road_access",
         "drinking_water", "electricity", "public_services", "television", "collective_income", "good_committees")


def village(code: str, name: str, population: int | None, **indicators) -> dict:
    return {"code": code, "name": name, "township_code": code[:9], "township_name": "镇", "is_poor_village": True,
            "is_deep_poverty_village": False, "exit_year": None, "collective_income": None, "population": population,
            "indicators": {**{have: True for have in HAVES}, **indicators}}


def snapshot(hid: str, code: str, status: str, members: int, *, deceased: int = 0, income: tuple | None = None,
             exit_date: str | None = None) -> dict:
    people = [{"id": f"{hid}-{i}", "name": "某", "deceased": i < deceased} for i in range(members + deceased)]
    return {"id": hid, "version": 1, "region_code": code[:6], "village": {"code": code}, "status": status,
            "exit_date": exit_date, "categories": [], "members": people,
            "income": {"year": income[0], "per_capita_net": income[1]} if income else None}


async def populate(app) -> None:
    events = [village(PASSING, "达标村", 100), village(FAILING, "未达标村", 100, good_committees=None),
              village(SHAOGUAN, "韶关村", None, collective_income=False)]
    async with transaction(app.state.sessionmaker) as session:
        for record in events:
            await apply_registry_event(session, Envelope(source="registry", type="village.updated",
                                                         subject=f"village/{record['code']}", sequence=1,
                                                         data={"village": record, "version": 1}), AS_OF)
        rows = [
            # passing: 2 poor (one deceased member not counted) of 100 = 2%; exited and exited-later households
            snapshot("q-1", PASSING, "registered", 2, deceased=1), snapshot("q-2", PASSING, "exited", 5,
                                                                            exit_date="2017-11-01"),
            snapshot("q-3", PASSING, "candidate", 4), snapshot("q-4", PASSING, "removed", 9),
            # failing: 2 + 1 poor (the exited household left after the evaluation date) of 100 = 3%, not below
            snapshot("f-1", FAILING, "registered", 2), snapshot("f-2", FAILING, "exited", 1, exit_date="2019-03-01"),
            # Shaoguan: (2 x 9,900 + 3 x 9,760) / 5 = 9,816 < 9,820 for 2018; a 2016 income is older, not used
            snapshot("s-1", SHAOGUAN, "exited", 2, income=(2018, "9900.00"), exit_date="2018-01-05"),
            snapshot("s-2", SHAOGUAN, "registered", 3, income=(2018, "9760.00")),
            snapshot("s-3", SHAOGUAN, "registered", 1, income=(2016, "3000.00")),
            snapshot("n-1", NANKANG, "registered", 3),
        ]
        await session.execute(insert(household_snapshots), [
            {"household_id": row["id"], "version": 1, "region_code": row["region_code"],
             "village_code": row["village"]["code"], "township_code": row["village"]["code"][:9],
             "status": row["status"], "snapshot": row, "updated_at": utcnow()} for row in rows])


@pytest.fixture
async def benefits(databases, tmp_path):
    settings = BenefitsSettings(var_dir=tmp_path, database_url=await databases.url("benefits"),
                                kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False,
                                evaluation_date=AS_OF)
    app = create_app(settings)
    async with running_app(app, mint_token(settings, "benefits:read")) as client:
        await populate(app)
        client.app = app
        client.token_for = lambda scopes, **kw: {"Authorization": f"Bearer {mint_token(settings, scopes, **kw)}"}
        yield client


async def check_pass_and_fail(benefits):
    passing = (await benefits.get(f"/v1/villages/{PASSING}/assessments")).json()
    assert passing["village_code"] == PASSING and passing["as_of"] == "2018-06-30"
    assert passing["policy"]["pack"] == "qinzhou-2016" and passing["policy"]["coverage"] == "local"
    assert passing["not_assessed"] == [] and passing["village"]["name"] == "达标村"
    [assessment] = passing["assessments"]
    assert assessment["kind"] == "village_exit" and assessment["result"] is True and assessment["unmet"] == []
    incidence = assessment["explanation"][0]
    assert incidence["value"] == "0.0200" and incidence["passed"] is True
    assert incidence["source"] == {"seed": "003", "lines": "L83"} == assessment["source"]
    assert len(assessment["explanation"]) == 12
    assert assessment["inputs"] | {"households": 2, "poor_population": 2, "counted_population": 7,
                                   "registered_population": 100} == assessment["inputs"]

    failing = (await benefits.get(f"/v1/villages/{FAILING}/assessments")).json()
    [assessment] = failing["assessments"]
    assert assessment["result"] is False and assessment["unmet"] == ["poverty_incidence", "good_village_committee"]
    assert assessment["explanation"][0]["value"] == "0.0300"
    assert assessment["inputs"]["poor_population"] == 3

    # A year later the household that exited in 2019 is no longer poor: 2/100 passes the incidence.
    later = (await benefits.get(f"/v1/villages/{FAILING}/assessments", params={"as_of": "2019-06-30"})).json()
    assert later["as_of"] == "2019-06-30" and later["assessments"][0]["unmet"] == ["good_village_committee"]


async def check_shaoguan_income(benefits):
    [assessment] = (await benefits.get(f"/v1/villages/{SHAOGUAN}/assessments")).json()["assessments"]
    assert assessment["standard"] == ["income_share"] and assessment["result"] is False
    assert assessment["explanation"][0]["value"] == "9816.00" and "9820" in assessment["explanation"][0]["condition"]
    assert assessment["explanation"][0]["source"] == {"seed": "002", "lines": "L37"}
    assert assessment["inputs"]["income_basis"] == "households" and assessment["inputs"]["year"] == 2018


async def check_not_assessed(benefits):
    nankang = (await benefits.get(f"/v1/villages/{NANKANG}/assessments", params={"as_of": "2020-06-30"})).json()
    assert nankang["assessments"] == [] and nankang["policy"]["pack"] == "nankang-2020"
    assert "nankang-2020" in nankang["not_assessed"][0]["reason"] and "no village-exit standard" in \
        nankang["not_assessed"][0]["reason"]
    lapsed = (await benefits.get(f"/v1/villages/{PASSING}/assessments", params={"as_of": "2026-12-03"})).json()
    assert lapsed["assessments"] == [] and lapsed["policy"]["coverage"] == "national_only"
    assert "qinzhou-2016" in lapsed["not_assessed"][0]["reason"]


async def check_404_and_scopes(benefits):
    for code, headers in [("450702999999", {}), (PASSING, benefits.token_for("benefits:read", area="440203"))]:
        response = await benefits.get(f"/v1/villages/{code}/assessments", headers=headers)
        assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == "Village not known to benefits" and f"village {code}" in response.json()["detail"]
    own = await benefits.get(f"/v1/villages/{PASSING}/assessments", headers=benefits.token_for("benefits:read",
                                                                                               area="450702"))
    assert own.status_code == 200
    assert (await benefits.get(f"/v1/villages/{PASSING}/assessments",
                               headers=benefits.token_for("registry:read"))).status_code == 403
    bad = await benefits.get(f"/v1/villages/{PASSING}/assessments", params={"as_of": "2018-02-30"})
    assert bad.status_code == 422


async def check_area_list(benefits):
    first = (await benefits.get("/v1/villages/assessments", params={"area": "4507", "limit": 1})).json()
    assert [item["village_code"] for item in first["items"]] == [PASSING] and first["next_cursor"] == PASSING
    rest = (await benefits.get("/v1/villages/assessments", params={"area": "4507", "cursor": PASSING})).json()
    assert [item["village_code"] for item in rest["items"]] == [FAILING] and rest["next_cursor"] is None
    assert rest["items"][0]["assessments"][0]["result"] is False
    everything = (await benefits.get("/v1/villages/assessments")).json()
    assert [item["village_code"] for item in everything["items"]] == sorted([PASSING, FAILING, SHAOGUAN, NANKANG])
    limited = benefits.token_for("benefits:read", area="440203")
    own = (await benefits.get("/v1/villages/assessments", headers=limited)).json()
    assert own["area"] == "440203" and [item["village_code"] for item in own["items"]] == [SHAOGUAN]
    other = await benefits.get("/v1/villages/assessments", params={"area": "4507"}, headers=limited)
    assert other.status_code == 403 and "440203" in other.json()["detail"]


async def test_village_assessments_endpoint_and_dashboard(benefits, dashboard):
    """One benefits app per backend for every check (each app start costs about a second)."""
    await check_pass_and_fail(benefits)
    await check_shaoguan_income(benefits)
    await check_not_assessed(benefits)
    await check_404_and_scopes(benefits)
    await check_area_list(benefits)
    await check_dashboard_against_the_real_benefits_app(benefits, dashboard)


# --- the audit dashboard's section --------------------------------------------------------------

def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture
async def dashboard(tmp_path):
    """Render /dashboard of one audit app (SQLite) with benefits behind a transport given per call:
    ``await dashboard(transport, scopes, **claims)`` -> (page, the caller's token)."""
    settings = AuditSettings(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}",
                             kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False,
                             evaluation_date=AS_OF)
    app = create_audit_app(settings, id_hash_key="k", checkpoint_schedule=False)
    async with running_app(app) as client:
        async def render(transport, scopes: str = "audit:read", **claims) -> tuple[str, str]:
            app.state.audit.benefits_transport = transport
            token = mint_token(settings, scopes, **claims)
            page = await client.get("/dashboard", headers={"Authorization": f"Bearer {token}"})
            assert page.status_code == 200, page.text
            return page.text, token
        yield render


FAKE_ITEMS = [
    {"village_code": PASSING, "village": {"name": "达标村"}, "policy": {"pack": "qinzhou-2016"}, "not_assessed": [],
     "assessments": [{"kind": "village_exit", "result": True, "unmet": [], "explanation": [
         {"condition": "贫困发生率低于3%", "value": "0.0200", "passed": True}]}]},
    {"village_code": FAILING, "village": {"name": "未达标村"}, "policy": {"pack": "qinzhou-2016"}, "not_assessed": [],
     "assessments": [{"kind": "village_exit", "result": False, "unmet": ["good_village_committee"], "explanation": [
         {"condition": "有好的“两委”班子 / village has good village committee", "value": None, "passed": False}]}]},
    {"village_code": NANKANG, "village": {"name": "新村村"}, "policy": {"pack": "nankang-2020"}, "assessments": [],
     "not_assessed": [{"kind": "village_exit", "reason": "政策包 nankang-2020 没有贫困村退出标准 / no standard"}]},
]


async def test_dashboard_section_from_a_fake_benefits(dashboard):
    """One request per render; the caller's token when it has benefits:read, else an area-limited service token."""
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={"as_of": "2018-06-30", "area": "4507", "items": FAKE_ITEMS,
                                         "next_cursor": "x"})

    page, token = await dashboard(httpx.MockTransport(answer), "audit:read benefits:read", area="4507")
    assert len(requests) == 1
    request = requests[0]
    assert request.url.path == "/v1/villages/assessments"
    assert dict(request.url.params) == {"as_of": "2018-06-30", "area": "4507", "limit": "200"}
    assert request.headers["authorization"] == f"Bearer {token}"
    section = page.split('<section id="village-exit">', 1)[1].split("</section>", 1)[0]
    assert "贫困村退出评估" in section and "达标村" in section and "未达标村" in section
    assert "达标 (met) 1 · 未达标 (not met) 1" in section and "first 3 villages only" in section
    assert "有好的“两委”班子 / village has good village committee" in section
    assert "未评估 (not assessed)" in section and "nankang-2020 没有贫困村退出标准" in section
    assert "暂不可用" not in page

    seen: list[str] = []

    def empty(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"].removeprefix("Bearer "))
        return httpx.Response(200, json={"items": [], "next_cursor": None})

    page, token = await dashboard(httpx.MockTransport(empty), "audit:read", area="450702")
    assert len(seen) == 1 and seen[0] != token
    claims = claims_of(seen[0])
    assert claims["scope"] == "benefits:read" and claims["area"] == "450702" and claims["sub"] == "service:audit"
    assert "暂无村数据 (no villages)" in page


FAILURES = [
    (httpx.ConnectError("refused"), "could not reach benefits at 127.0.0.1:8002 (ConnectError)"),
    (httpx.ReadTimeout("slow"), "(ReadTimeout)"),
    (httpx.Response(503, json={"title": "Service unavailable"}, headers={"content-type": "application/problem+json"}),
     "benefits answered 503: Service unavailable"),
    (httpx.Response(200, text="<html>not json"), "unreadable answer from benefits"),
]


async def test_dashboard_with_benefits_down_says_so_and_still_renders(dashboard):
    for failure, reason in FAILURES:
        def answer(request: httpx.Request, failure=failure) -> httpx.Response:
            if isinstance(failure, Exception):
                raise failure
            return failure

        page, _ = await dashboard(httpx.MockTransport(answer))
        assert "村退出评估暂不可用 / village exit assessments unavailable" in page and reason in page, reason
        assert "精准扶贫督查看板" in page and "各项目待遇" in page  # the rest of the page is there
        assert "http://" not in page.split("<body", 1)[1].replace("http://www.w3.org/2000/svg", "")


async def check_dashboard_against_the_real_benefits_app(benefits, dashboard):
    """Audit and benefits share the test's development issuer (same var_dir), as in the embedded profile."""
    page, _ = await dashboard(httpx.ASGITransport(app=benefits.app), area="4507")
    section = page.split('<section id="village-exit">', 1)[1].split("</section>", 1)[0]
    assert "达标村" in section and "未达标村" in section and "韶关村" not in section
    assert "达标 (met) 1 · 未达标 (not met) 1" in section
    assert "village has good village committee" in section and "poverty incidence below 3%" in section
