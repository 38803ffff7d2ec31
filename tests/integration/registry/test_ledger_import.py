"""Ledger (台账) import and export through the API, on SQLite and PostgreSQL."""
from __future__ import annotations

import csv
import io

from openpyxl import load_workbook

from services.registry.imports.ledger import CSV_HEADER, HEADER
from services.registry.imports.sample import generate_ledger
from services.registry.tables import households, imports, person_index
from tests.integration.registry.conftest import count, events
from tests.upload_files import small_workbook

COL = {title: index for index, title in enumerate(HEADER)}


def to_csv(header, rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


to_xlsx = small_workbook  # one workbook builder for the upload tests (tests/upload_files.py)


async def upload(registry, data: bytes, name="ledger.csv", headers=None, **form):
    return await registry.post("/v1/imports", files={"file": (name, data, "application/octet-stream")},
                               data={k: str(v).lower() for k, v in form.items()}, headers=headers or registry.admin)


async def test_10000_row_ledger_with_bad_rows_is_reported_whole_and_written_all_or_nothing(registry):
    header, rows = generate_ledger(10_000, seed=11)
    # spreadsheet row n is rows[n - 2]
    rows[500 - 2][COL["身份证号"]] = rows[500 - 2][COL["身份证号"]][:-1] + (
        "0" if rows[500 - 2][COL["身份证号"]][-1] != "0" else "1")
    rows[2500 - 2][COL["与户主关系"]] = "邻居"
    first_of_household = next(n for n in range(7000, 7100)
                              if rows[n - 2][COL["户编号"]] != rows[n - 3][COL["户编号"]])
    rows[first_of_household - 2][COL["人均纯收入"]] = "about 3000"
    rows[9000 - 2][COL["身份证号"]] = rows[100 - 2][COL["身份证号"]]  # one person in two households
    rows[9000 - 2][COL["出生日期"]] = rows[100 - 2][COL["出生日期"]]
    rows[9000 - 2][COL["性别"]] = rows[100 - 2][COL["性别"]]
    data = to_csv(header, rows)

    refused = await upload(registry, data)
    assert refused.status_code == 422, refused.text[:500]
    assert refused.headers["content-type"] == "application/problem+json"
    report = refused.json()["report"]
    assert report["rows"] == 10_000 and report["written"] == 0
    found = {(e["row"], e["column"]) for e in report["errors"]}
    assert (500, "身份证号") in found and (2500, "与户主关系") in found
    assert (first_of_household, "人均纯收入") in found and (9000, "身份证号") in found
    assert all(e["message"] for e in report["errors"])
    assert 4 <= report["invalid_households"] <= 6  # a changed head id also breaks the 户主身份证号 check
    assert (await count(registry.app, households), await count(registry.app, person_index)) == (0, 0)
    assert await events(registry.app) == []

    dry = await upload(registry, data, skip_invalid=True, dry_run=True)
    assert dry.status_code == 200 and dry.json()["written"] == 0 and await count(registry.app, households) == 0

    partial = await upload(registry, data, skip_invalid=True)
    assert partial.status_code == 201, partial.text[:500]
    written = partial.json()["written"]
    assert written == report["valid_households"] == await count(registry.app, households)
    assert len(await events(registry.app)) == written
    assert await count(registry.app, imports) == 1
    stored = (await registry.get(f"/v1/imports/{partial.json()['import_id']}")).json()
    assert stored["written"] == written and stored["error_count"] == len(partial.json()["errors"])

    again = await upload(registry, data, skip_invalid=True)  # everything valid is already there
    assert again.json()["written"] == 0 and "already registered" in again.json()["errors"][0]["message"]


async def test_export_then_import_round_trips(registry, databases, tmp_path):
    header, rows = generate_ledger(120, seed=3, status="未脱贫")
    rows[0][COL["户类型"]] = "低保户、边缘户"
    rows[0][COL["低保类别"]] = "B"
    imported = await upload(registry, to_xlsx(header, rows), name="ledger.xlsx")
    assert imported.status_code == 201, imported.text[:800]

    exported = await registry.get("/v1/exports/households", params={"format": "csv"}, headers=registry.admin)
    assert exported.status_code == 200
    first_csv = exported.content
    xlsx = await registry.get("/v1/exports/households", params={"format": "xlsx"}, headers=registry.admin)
    sheet = load_workbook(io.BytesIO(xlsx.content), read_only=True).worksheets[0]
    assert len(list(sheet.iter_rows())) == 121

    # a second, empty registry takes the exported file and exports the very same ledger
    from services.registry.app import create_app
    from shared.auth import mint_token
    from shared.config import RegistrySettings
    from tests.helpers import running_app
    settings = RegistrySettings(var_dir=tmp_path, database_url=await databases.url("registry2"),
                                kafka_bootstrap="127.0.0.1:1", log_json=False)
    other = create_app(settings)
    async with running_app(other, mint_token(settings, "admin")) as client:
        response = await client.post("/v1/imports", files={"file": ("export.csv", first_csv, "text/csv")})
        assert response.status_code == 201, response.text[:800]
        second_csv = (await client.get("/v1/exports/households", params={"format": "csv"})).content
        some = (await client.get("/v1/households", params={"category": "marginal"})).json()["items"]
    assert second_csv == first_csv
    assert len(some) == 1 and some[0]["categories"] == ["dibao", "marginal"] and some[0]["dibao_class"] == "B"


async def test_export_masks_id_numbers_for_non_admins(registry):
    header, rows = generate_ledger(10, seed=5)
    assert (await upload(registry, to_csv(header, rows))).status_code == 201
    text = (await registry.get("/v1/exports/households")).content.decode("utf-8-sig")
    exported = list(csv.reader(io.StringIO(text)))
    # CSV carries the list data (machinery, trainings) in two extra columns after the main sheet's
    assert exported[0] == CSV_HEADER and exported[0][:len(HEADER)] == HEADER
    assert "********" in exported[1][COL["身份证号"]]


async def test_ledger_needs_its_key_columns_and_admin_for_registered_status(registry):
    header, rows = generate_ledger(20, seed=9, status="未脱贫")
    missing = await upload(registry, to_csv([h if h != "与户主关系" else "关系?" for h in header], rows))
    assert missing.status_code == 422
    # one file-level error names every missing column (issue 16), not a row problem
    assert missing.json()["report"]["errors"] == [
        {"row": 1, "column": "与户主关系", "missing": ["与户主关系"],
         "message": "缺少必需的列：与户主关系；未读取任何行 / required column(s) missing: 与户主关系; no row was read"}]
    office = registry.token_headers("registry:write")
    refused = await upload(registry, to_csv(header, rows), headers=office)
    assert refused.status_code == 422
    assert all(e["column"] == "贫困户状态" for e in refused.json()["report"]["errors"])
    assert await count(registry.app, households) == 0


async def test_a_person_already_registered_elsewhere_is_a_row_error(registry):
    header, rows = generate_ledger(30, seed=21)
    cut = next(n for n in range(10, 30) if rows[n][COL["户编号"]] != rows[n - 1][COL["户编号"]])  # whole households
    assert (await upload(registry, to_csv(header, rows[:cut]))).status_code == 201
    clash = [list(r) for r in rows[cut:]]
    target = next(i for i, r in enumerate(clash) if r[COL["与户主关系"]] == "子女")
    for key in ("身份证号", "出生日期", "性别"):
        clash[target][COL[key]] = rows[1][COL[key]]
    refused = await upload(registry, to_csv(header, clash))
    errors = refused.json()["report"]["errors"]
    assert refused.status_code == 422 and errors[0]["row"] == target + 2
    assert f"household {rows[1][COL['户编号']]}" in errors[0]["message"]
