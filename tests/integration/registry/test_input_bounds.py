"""Bad input is refused at the registry's door (422 problem+json, nothing stored), and exports cannot run
formulas in a spreadsheet (issue 9 item 6)."""
from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import timedelta

import pytest
from openpyxl import load_workbook

from services.registry.tables import areas, visits
from tests.helpers import household_body
from tests.integration.registry.conftest import count, state_counts

FORMULA_NAMES = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://x.example/","点我")', "+1+1", "-2+3", "@SUM(A1)"]


def _assert_problem(response, status: int = 422) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    return response.json()


def _with_member(field: str, value) -> dict:
    body = household_body()
    body["members"][0][field] = value
    return body


@pytest.mark.parametrize("body", [
    household_body(identified_year=100000000000000000000),  # dead-lettered in benefits and audit before
    household_body(identified_year=1899),
    household_body(identified_year=2101),
    household_body(exit_date="0001-01-01"),
    household_body(income={"year": 99999, "per_capita_net": "2800.00"}),
    _with_member("name", "钟大\x00山"),
    _with_member("name", "钟大山\n"),
    _with_member("name", "钟\x1b[31m大山"),
    _with_member("birth_date", "0001-01-01"),
    _with_member("employment", {"place": "local", "monthly_wage": "-3000.00"}),
    _with_member("trainings", [{"name": "育苗", "days": 10 ** 20}]),
    household_body(village={"code": "360703105201\x00", "name": "新村村"}),
], ids=["year-1e20", "year-1899", "year-2101", "exit-0001", "income-year-99999", "name-NUL", "name-newline",
        "name-escape", "birth-0001", "negative-wage", "huge-count", "village-code-NUL"])
async def test_a_household_outside_the_value_ranges_is_422_and_nothing_is_stored(registry, body):
    before = await state_counts(registry.app)
    problem = _assert_problem(await registry.post("/v1/households", json=body))
    assert problem["status"] == 422
    assert await state_counts(registry.app) == before  # no household, no outbox event for consumers


async def test_the_bounds_still_accept_an_ordinary_household(registry):
    body = household_body(identified_year=2014, exit_date=None)
    body["members"][0]["trainings"] = [{"name": "电工初级", "days": 5, "year": 2019}]
    created = await registry.post("/v1/households", json=body)
    assert created.status_code == 201, created.text


def _visit(hid: str, when: str, **fields) -> dict:
    return {"client_visit_id": str(uuid.uuid4()), "household_id": hid, "visited_at": when, **fields}


@pytest.mark.parametrize("visited_at", ["0001-01-01T00:00:00", "0001-01-01T00:00:00+14:00",
                                        "9999-12-31T23:59:59", "9999-12-31T23:59:59-12:00", "1989-12-31T23:00:00"])
async def test_a_visit_in_year_1_or_9999_is_422_not_500(registry, visited_at):
    hid = (await registry.post("/v1/households", json=household_body(), headers=registry.admin)).json()["id"]
    visitor = registry.admin  # admin may record a visit to any household
    before = await state_counts(registry.app, visits)
    _assert_problem(await registry.post("/v1/visits", json=_visit(hid, visited_at), headers=visitor))
    assert await state_counts(registry.app, visits) == before


async def test_visit_notes_refuse_control_characters_but_keep_tabs_and_newlines(registry):
    hid = (await registry.post("/v1/households", json=household_body(), headers=registry.admin)).json()["id"]
    when = (registry.clock.now - timedelta(hours=1)).isoformat()
    before = await state_counts(registry.app, visits)
    _assert_problem(await registry.post("/v1/visits", json=_visit(hid, when, notes="门锁\x00着"),
                                        headers=registry.admin))
    assert await state_counts(registry.app, visits) == before
    ok = await registry.post("/v1/visits", json=_visit(hid, when, notes="第一行\n第二行\t备注"), headers=registry.admin)
    assert ok.status_code == 201, ok.text


async def test_a_carriage_return_inside_an_unquoted_csv_field_is_422_for_areas_bulk(registry):
    text = "代码,名称,级别\r\n360703,南康\r区,县\r\n"
    before = await count(registry.app, areas)
    response = await registry.post("/v1/areas:bulk", files={"file": ("areas.csv", text.encode(), "text/csv")})
    problem = _assert_problem(response)
    assert "line" in problem["detail"] or "行" in problem["detail"]
    assert await count(registry.app, areas) == before


async def test_a_carriage_return_inside_an_unquoted_csv_field_is_4xx_for_imports(registry):
    exported = await registry.get("/v1/exports/households", params={"format": "csv"}, headers=registry.admin)
    header = exported.text.lstrip("\ufeff").splitlines()[0]
    data = (header + "\r\n" + "hh-x,钟\r大山" + "," * (header.count(","))).encode()
    before = await state_counts(registry.app)
    response = await registry.post("/v1/imports", files={"file": ("ledger.csv", data, "text/csv")})
    if response.status_code == 202:  # a large ledger is a job: then the refusal is the job's outcome
        for _ in range(100):
            job = (await registry.get(response.headers["location"])).json()
            if job["state"] not in ("queued", "running"):
                break
            await asyncio.sleep(0.1)
        assert job["state"] == "refused", job
    else:  # a small one is read at once: 422 naming the line
        problem = _assert_problem(response)
        assert "line 2" in problem["detail"], problem
    assert await state_counts(registry.app) == before


async def _household_named(registry, names: list[str]) -> str:
    body = household_body()
    for member, name in zip(body["members"], names):
        member["name"] = name
    created = await registry.post("/v1/households", json=body, headers=registry.admin)
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def test_csv_export_neutralises_formula_prefixes_as_owasp_describes(registry):
    await _household_named(registry, FORMULA_NAMES[:4])
    exported = await registry.get("/v1/exports/households", params={"format": "csv"}, headers=registry.admin)
    assert exported.status_code == 200
    raw = exported.content.decode("utf-8-sig")
    assert "'=cmd|' /C calc'!A0" in raw and "'=HYPERLINK(" in raw
    cells = [cell for row in csv.reader(io.StringIO(raw)) for cell in row]
    dangerous = [cell for cell in cells if cell[:1] in ("=", "+", "@", "\t", "\r")
                 or (cell.startswith("-") and not cell.lstrip("-").replace(".", "", 1).isdigit())]
    assert dangerous == [], dangerous
    assert {"'=cmd|' /C calc'!A0", "'+1+1", "'-2+3"} <= set(cells)


async def test_xlsx_export_writes_formula_looking_names_as_text_cells(registry):
    await _household_named(registry, FORMULA_NAMES[:2])
    exported = await registry.get("/v1/exports/households", params={"format": "xlsx"}, headers=registry.admin)
    assert exported.status_code == 200
    workbook = load_workbook(io.BytesIO(exported.content))
    formulas = [(sheet.title, cell.coordinate, cell.value) for sheet in workbook.worksheets
                for row in sheet.iter_rows() for cell in row if cell.data_type == "f"]
    assert formulas == []
    texts = {cell.value for sheet in workbook.worksheets for row in sheet.iter_rows() for cell in row}
    assert FORMULA_NAMES[0] in texts and FORMULA_NAMES[1] in texts


async def test_cadre_and_area_names_refuse_control_characters_and_store_nothing(registry):
    from services.registry.tables import cadres
    before = (await count(registry.app, cadres), await count(registry.app, areas))
    _assert_problem(await registry.post("/v1/cadres", json={"id": "cadre-nul", "name": "钟\x00干部", "unit": "区财政局"},
                                        headers=registry.admin))
    _assert_problem(await registry.post("/v1/cadres", json={"id": "cadre-cr", "name": "钟干部", "unit": "区\r财政局"},
                                        headers=registry.admin))
    _assert_problem(await registry.put("/v1/areas/360703", json={"name": "南康\x00区", "level": "county"}))
    assert (await count(registry.app, cadres), await count(registry.app, areas)) == before


async def test_a_transition_reason_with_a_nul_byte_is_422(registry):
    hid = (await registry.post("/v1/households", json=household_body())).json()["id"]
    before = await state_counts(registry.app)
    response = await registry.post(f"/v1/households/{hid}/transitions",
                                   json={"action": "apply", "reason": "理由\x00"}, headers=registry.admin)
    _assert_problem(response)
    assert await state_counts(registry.app) == before
    clean = await registry.post(f"/v1/households/{hid}/transitions", json={"action": "apply", "reason": "理由"},
                                headers=registry.admin)
    assert clean.status_code == 200, clean.text  # the same step without the NUL byte is taken
