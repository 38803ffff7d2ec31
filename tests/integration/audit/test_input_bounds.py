"""Audit's door: out-of-range query values are 422 problem+json (they were 500s), the sample export
neutralises formula-looking names, and a non-Latin-1 seed is a file name, not a 500 (issue 9 item 6)."""
from __future__ import annotations

import csv
import io
from urllib.parse import unquote

import pytest
from openpyxl import load_workbook

from tests.integration.audit.support import feed, person, registry_event, snapshot

FORMULA_NAMES = ["=cmd|' /C calc'!A0", '=HYPERLINK("http://x.example/","点我")']


def _assert_problem(response) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31", "1899-12-31"])
async def test_anomalies_as_of_in_year_1_or_9999_is_422_not_500(audit, as_of):
    _assert_problem(await audit.get("/v1/supervision/anomalies", params={"as_of": as_of}))


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31"])
async def test_dashboard_as_of_in_year_1_or_9999_is_422_not_500(audit, as_of):
    _assert_problem(await audit.get("/dashboard", params={"as_of": as_of}))


@pytest.mark.parametrize("params", [{"cursor": str(10 ** 20)}, {"cursor": "-1"}])
async def test_a_cursor_beyond_a_database_integer_is_422_not_500(audit, params):
    _assert_problem(await audit.get("/v1/audit/checkpoints", params=params))
    _assert_problem(await audit.get("/v1/audit/records", params=params))


@pytest.mark.parametrize("year", ["100000000000000000000", "0"])
async def test_sample_year_out_of_range_is_422(audit, year):
    _assert_problem(await audit.get("/v1/supervision/sample", params={"year": year}))


async def _exited_heads_named(audit, names: list[str]) -> None:
    for n, name in enumerate(names, start=1):
        hid = f"hh-formula-{n}"
        head = person(f"{hid}-1", n) | {"name": name}
        await feed(audit.app, registry_event("household.status_changed",
                                             snapshot(hid, status="exited", exit_date="2020-06-01", seq=n,
                                                      members=[head])))


@pytest.mark.parametrize("seed", ["种子", 'a"b', "x\\y"])
async def test_sample_exports_neutralise_formulas_and_take_any_seed(audit, seed):
    await _exited_heads_named(audit, FORMULA_NAMES)
    params = {"year": 2020, "n": 2, "seed": seed}
    raw = await audit.get("/v1/supervision/sample", params={**params, "format": "csv"})
    assert raw.status_code == 200, raw.text
    disposition = raw.headers["content-disposition"]
    assert disposition.isascii() and seed in unquote(disposition.split("filename*=UTF-8''")[1])
    text = raw.content.decode("utf-8-sig")
    assert "'=cmd|' /C calc'!A0" in text and "'=HYPERLINK(" in text
    cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
    assert [cell for cell in cells if cell.startswith(("=", "+", "@", "\t", "\r"))] == []

    xlsx = await audit.get("/v1/supervision/sample", params={**params, "format": "xlsx"})
    assert xlsx.status_code == 200, xlsx.text
    workbook = load_workbook(io.BytesIO(xlsx.content))
    assert [cell.coordinate for sheet in workbook.worksheets for row in sheet.iter_rows() for cell in row
            if cell.data_type == "f"] == []
    heads = {row[3] for row in workbook.worksheets[0].iter_rows(min_row=2, values_only=True)}
    assert heads == set(FORMULA_NAMES)
