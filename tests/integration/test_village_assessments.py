"""GET /v1/villages/{code}/assessments and /v1/villages/assessments on SQLite and PostgreSQL: villages whose
households make them pass and fail, from a village.updated event and stored household snapshots."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert

from services.benefits.app import create_app
from services.benefits.consumer import apply_registry_event
from services.benefits.tables import household_snapshots
from shared.auth import mint_token
from shared.config import BenefitsSettings
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
        client.token_for = lambda scopes, **kw: {"Authorization": f"Bearer {mint_token(settings, scopes, **kw)}"}
        yield client


async def test_village_whose_households_make_it_pass_and_one_that_fails(benefits):
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


async def test_shaoguan_village_income_from_its_households(benefits):
    [assessment] = (await benefits.get(f"/v1/villages/{SHAOGUAN}/assessments")).json()["assessments"]
    assert assessment["standard"] == ["income_share"] and assessment["result"] is False
    assert assessment["explanation"][0]["value"] == "9816.00" and "9820" in assessment["explanation"][0]["condition"]
    assert assessment["explanation"][0]["source"] == {"seed": "002", "lines": "L37"}
    assert assessment["inputs"]["income_basis"] == "households" and assessment["inputs"]["year"] == 2018


async def test_not_assessed_when_the_pack_has_no_village_exit_standard(benefits):
    nankang = (await benefits.get(f"/v1/villages/{NANKANG}/assessments", params={"as_of": "2020-06-30"})).json()
    assert nankang["assessments"] == [] and nankang["policy"]["pack"] == "nankang-2020"
    assert "nankang-2020" in nankang["not_assessed"][0]["reason"] and "no village-exit standard" in \
        nankang["not_assessed"][0]["reason"]
    lapsed = (await benefits.get(f"/v1/villages/{PASSING}/assessments", params={"as_of": "2026-12-03"})).json()
    assert lapsed["assessments"] == [] and lapsed["policy"]["coverage"] == "national_only"
    assert "qinzhou-2016" in lapsed["not_assessed"][0]["reason"]


async def test_unknown_village_and_other_area_are_404_problems(benefits):
    for code, headers in [("450702999999", {}), (PASSING, benefits.token_for("benefits:read", area="440203"))]:
        response = await benefits.get(f"/v1/villages/{code}/assessments", headers=headers)
        assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
        assert "村不存在" in response.json()["title"] and f"village {code}" in response.json()["detail"]
    own = await benefits.get(f"/v1/villages/{PASSING}/assessments", headers=benefits.token_for("benefits:read",
                                                                                               area="450702"))
    assert own.status_code == 200
    assert (await benefits.get(f"/v1/villages/{PASSING}/assessments",
                               headers=benefits.token_for("registry:read"))).status_code == 403
    bad = await benefits.get(f"/v1/villages/{PASSING}/assessments", params={"as_of": "2018-02-30"})
    assert bad.status_code == 422


async def test_area_list_pages_and_keeps_to_the_callers_area(benefits):
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
