"""The truthful dashboard (issue 12, item 5): each complaint of the issue, asserted on bodies and exports."""
from __future__ import annotations

import csv
import io
from decimal import Decimal

import httpx
from openpyxl import load_workbook

from services.audit.app import create_app
from services.audit.ledger.service import create_checkpoint, latest_meaningful_checkpoint
from shared.auth import mint_token
from shared.clock import today_in_china
from shared.config import AuditSettings
from shared.db import transaction
from tests.helpers import running_app
from tests.integration.audit.support import (entitlement_event, feed, person, registry_event, snapshot,
                                             village_event)

VILLAGE_A, VILLAGE_B, VILLAGE_C = "360703105201", "360703106202", "360703107203"


def section(html: str, name: str) -> str:
    return html.split(f'<section id="{name}">', 1)[1].split("</section>", 1)[0]


def rows_of(response: httpx.Response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


async def populate(app) -> None:
    """Village A (population 40; 2 poor, 2 exited), B (no population imported; 3 poor), C (120 people, none poor).
    hh-1 in A holds a monthly 低保, a one-off housing grant and a 50,000 credit line; hh-4 in B a yearly
    boarding grant and a credit line."""
    await feed(app, village_event({"code": VILLAGE_A, "name": "新村村", "township_code": "360703105",
                                   "township_name": "隆木乡", "is_poor_village": True, "population": 40}, 1))
    await feed(app, village_event({"code": VILLAGE_C, "name": "赤土村", "township_code": "360703107",
                                   "township_name": "赤土乡", "is_poor_village": False, "population": 120}, 1))
    households = [("hh-1", "A", "registered", None, 2), ("hh-2", "A", "exited", "2018-05-01", 1),
                  ("hh-3", "A", "exited", "2017-03-01", 1), ("hh-4", "B", "registered", None, 3)]
    for n, (hid, village, status, exit_date, size) in enumerate(households, start=1):
        members = [person(f"{hid}-{k}", 10 * n + k, relation="head" if k == 0 else "child") for k in range(size)]
        snap = snapshot(hid, village=village, status=status, exit_date=exit_date, members=members, seq=n)
        step = {"action": "approve_exit", "override": hid == "hh-3", "reason": "test"} if exit_date else None
        await feed(app, registry_event("household.status_changed" if exit_date else "household.registered", snap,
                                       step=step))
    await feed(app, entitlement_event("hh-1", "safety_net.dibao", "granted", amount="470.00", unit="month"),
               entitlement_event("hh-1", "housing.renovation", "granted", amount="20000.00", unit="once"),
               entitlement_event("hh-1", "credit.microloan", "granted", amount="50000.00", unit="term"),
               entitlement_event("hh-4", "education.boarding", "granted", amount="1500.00", unit="year"),
               entitlement_event("hh-4", "credit.microloan", "granted", amount="50000.00", unit="term"),
               partition=1)


async def test_targets_only_at_their_own_level(audit):
    await populate(audit.app)
    city = (await audit.get("/dashboard", params={"as_of": "2020-06-30"})).text
    block = city.split('id="progress-ganzhou-2016"', 1)[1].split("</table>", 1)[0]
    assert "目标区划 <!-- region --> 3607 · 实绩区划 3607" in block and "无目标" not in block
    assert "<td>2018</td><td class=\"num\">202400</td><td class=\"num\">1</td>" in block  # hh-2: 1 person exited in 2018
    assert "0.00%" in block

    county = (await audit.get("/dashboard", params={"as_of": "2020-06-30", "area": "360703"})).text
    progress = section(county, "progress")
    assert "无目标 / no target" in progress and "实绩区划 360703" in progress
    assert "%" not in progress.split("<table>", 1)[1]  # no percentage of the city's target
    exported = rows_of(await audit.get("/dashboard/export/progress.csv", params={"area": "360703",
                                                                                 "as_of": "2020-06-30"}))
    assert exported[0][:5] == ["政策包 (policy pack)", "目标区划 (target region)", "实绩区划 (actuals area)",
                               "年度 (year)", "目标人数 (target people)"]
    y2018 = next(r for r in exported if r[0] == "ganzhou-2016" and r[3] == "2018")
    assert y2018[4] == "" and y2018[5] == "1" and y2018[7] == "无目标 / no target"


async def test_programme_names_and_money_apart_by_unit(audit):
    await populate(audit.app)
    html = (await audit.get("/dashboard", params={"as_of": "2020-06-30"})).text
    benefits = section(html, "entitlements")
    for unit, name, total in (("once", "农村危旧房改造补助", "20,000.00 元"), ("month", "最低生活保障（低保）", "470.00 元/月"),
                              ("year", "义务教育寄宿生生活补助", "1,500.00 元/年")):
        card = benefits.split(f'id="benefits-{unit}"', 1)[1].split("</table>", 1)[0]
        assert name in card and f"合计 {total}" in card, unit
    assert "扶贫小额信贷" not in benefits and "50,000" not in benefits  # credit lines are not benefits
    assert "71,970" not in html and "121,970" not in html  # nothing added across units
    credit = section(html, "credit")
    assert "扶贫小额信贷" in credit and "credit.microloan" in credit and "100,000.00 元" in credit
    assert '<div class="kpi">2</div>' in credit

    rows = rows_of(await audit.get("/dashboard/export/benefits.csv", params={"as_of": "2020-06-30"}))
    assert rows[0] == ["计量单位 (unit)", "项目 (programme)", "项目代码 (programme code)", "待遇数 (entitlements)",
                       "户数 (households)", "金额（元） (amount (yuan))"]
    assert sorted(r[1:] for r in rows[1:]) == sorted([
        ["农村危旧房改造补助", "housing.renovation", "1", "1", "20000.00"],
        ["最低生活保障（低保）", "safety_net.dibao", "1", "1", "470.00"],
        ["义务教育寄宿生生活补助", "education.boarding", "1", "1", "1500.00"]])
    assert {r[0] for r in rows[1:]} == {"一次性 (one-off)", "每月 (per month)", "每年 (per year)"}
    credit_rows = rows_of(await audit.get("/dashboard/export/credit.csv"))
    assert credit_rows[1:] == [[VILLAGE_A, "新村村", "1", "50000.00", "50000.00"],
                               [VILLAGE_B, "坪市村", "1", "50000.00", "50000.00"]]
    # the programme filter narrows the tables to one programme
    only = rows_of(await audit.get("/dashboard/export/benefits.csv", params={"program": "safety_net.dibao"}))
    assert [r[2] for r in only[1:]] == ["safety_net.dibao"]


async def test_village_population_incidence_and_no_poor_people(audit):
    await populate(audit.app)

    def fake_benefits(request: httpx.Request) -> httpx.Response:
        failing = {"assessments": [{"kind": "village_exit", "result": False, "unmet": ["incidence"],
                                    "explanation": [{"condition": "贫困发生率低于3%", "value": None, "passed": False}]}],
                   "not_assessed": []}
        return httpx.Response(200, json={"items": [
            {"village_code": VILLAGE_A, "village": {"name": "新村村"}, "policy": {"pack": "nankang-2020"}, **failing},
            {"village_code": VILLAGE_C, "village": {"name": "赤土村"}, "policy": {"pack": "nankang-2020"}, **failing}],
            "next_cursor": None})

    audit.app.state.audit.benefits_transport = httpx.MockTransport(fake_benefits)
    html = (await audit.get("/dashboard", params={"as_of": "2020-06-30"})).text
    table = section(html, "incidence")
    row_a = table.split(f'title="{VILLAGE_A}"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num">40</td><td class="num">2</td>' in row_a and "5.00%" in row_a  # 2 poor / 40
    row_b = table.split(f'title="{VILLAGE_B}"', 1)[1].split("</tr>", 1)[0]
    assert "未导入" in row_b and "人口未导入 / population not imported" in row_b
    row_c = table.split(f'title="{VILLAGE_C}"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="num">120</td><td class="num">0</td>' in row_c and "0.00%" in row_c
    assert "无贫困人口 / no poor people" in row_c
    exits = section(html, "village-exit")
    assert "达标 (met) 0 · 未达标 (not met) 1 · 不适用 (not applicable) 1" in exits
    row_exit_c = exits.split(f'title="{VILLAGE_C}"', 1)[1].split("</tr>", 1)[0]
    assert "无贫困人口 (not applicable)" in row_exit_c and "未达标" not in row_exit_c

    rows = rows_of(await audit.get("/dashboard/export/villages.csv"))
    by_code = {r[0]: r for r in rows[1:]}
    assert by_code[VILLAGE_A][4:10] == ["40", "2", "1", "4", "5.00%", "不低于 3% / 3% or more"]
    assert by_code[VILLAGE_B][4] == "" and by_code[VILLAGE_B][8] == "—"
    assert by_code[VILLAGE_C][4:6] == ["120", "0"] and by_code[VILLAGE_C][9] == "无贫困人口 / no poor people"


async def test_dates_side_by_side(audit):
    html = (await audit.get("/dashboard", params={"as_of": "2020-06-30"})).text
    today = today_in_china().isoformat()
    dates = html.split('id="page-dates"', 1)[1].split("</span>\n", 1)[0]
    assert f'截至 <b id="page-date"' in dates and f">{today}</b>" in dates
    assert "评估日期" in dates and ">2020-06-30</span>" in dates
    assert f"judged under the rules of 2020-06-30" in html


async def test_drill_down_village_household_anomaly(audit):
    await populate(audit.app)
    village = await audit.get(f"/dashboard/villages/{VILLAGE_A}", params={"as_of": "2020-06-30"})
    assert village.status_code == 200
    households = section(village.text, "households")
    for hid in ("hh-1", "hh-2", "hh-3"):
        assert f'href="/dashboard/households/{hid}?as_of=2020-06-30"' in households
    assert "hh-4" not in households
    assert '<div class="kpi" id="village-population">40</div>' in village.text
    assert '<div class="kpi" id="village-incidence">5.00%</div>' in village.text
    # masked ID numbers only (first 6, last 4), never the clear number
    from shared.idcard import make_id_number
    from datetime import date
    clear = make_id_number("360782", date(1970, 1, 1), 10)
    assert clear not in village.text and f"{clear[:6]}********{clear[-4:]}" in households
    exited = await audit.get(f"/dashboard/villages/{VILLAGE_A}", params={"status": "exited"})
    listed = section(exited.text, "households")
    assert "hh-2" in listed and "hh-3" in listed and "hh-1" not in listed

    household = await audit.get("/dashboard/households/hh-1")
    assert household.status_code == 200
    page = household.text
    assert 'href="http://127.0.0.1:8001/v1/households/hh-1/file"' in page  # the registry's case file
    entitlements = section(page, "entitlements")
    assert "扶贫小额信贷" in entitlements and "50,000.00" in entitlements and "授信额度 (credit line)" in entitlements
    assert "最低生活保障（低保）" in entitlements and "每月 (per month)" in entitlements
    decisions = section(page, "decisions")
    assert "household.registered" in decisions and "最低生活保障（低保）（safety_net.dibao）授予 (granted) — → 470.00 month" \
        in decisions and "完好 (intact)" in decisions

    anomalies = await audit.get("/dashboard/anomalies", params={"rule": "exit_overridden", "as_of": "2020-06-30"})
    listed = section(anomalies.text, "anomalies")
    assert 'href="/dashboard/households/hh-3?as_of=2020-06-30&amp;rule=exit_overridden"' in listed
    assert "未达标强制退出" in listed and "长期未入户走访" not in listed
    overridden = await audit.get("/dashboard/households/hh-3", params={"as_of": "2020-06-30"})
    assert "未达标强制退出" in section(overridden.text, "anomalies")
    rows = rows_of(await audit.get("/dashboard/export/anomalies.csv", params={"rule": "exit_overridden",
                                                                              "as_of": "2020-06-30"}))
    assert [r[1] for r in rows[1:]] == ["exit_overridden"] and rows[1][3] == "hh-3"


async def test_area_scoping_and_bad_filters(audit):
    await populate(audit.app)
    township_b = audit.token_for("audit:read", area="360703106")
    assert (await audit.get(f"/dashboard/villages/{VILLAGE_B}", headers=township_b)).status_code == 200
    for path in (f"/dashboard/villages/{VILLAGE_A}", "/dashboard/households/hh-1", "/dashboard/villages/999",
                 "/dashboard/households/nobody"):
        answer = await audit.get(path, headers=township_b)
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("application/problem+json"), path
    out = await audit.get("/dashboard/export/decisions.csv", params={"household": "hh-1"}, headers=township_b)
    assert out.status_code == 404
    scoped = rows_of(await audit.get("/dashboard/export/households.csv", headers=township_b))
    assert [r[0] for r in scoped[1:]] == ["hh-4"]
    for params in ({"status": "rich"}, {"program": "made.up"}, {"rule": "nope"}, {"village": "abc"}):
        bad = await audit.get("/dashboard", params=params)
        assert bad.status_code == 422 and bad.json()["errors"][0]["loc"][1] == next(iter(params)), params
    assert (await audit.get("/dashboard/export/secrets.csv")).status_code == 404
    missing = await audit.get("/dashboard/export/decisions.csv")
    assert missing.status_code == 422 and missing.json()["errors"][0]["loc"] == ["query", "household"]
    # a token that is not a JWT is refused before it could reach a cookie (a cookie carries latin-1 only:
    # the fuzzer's "?token=Ţ" was a 500)
    for garbage in ("Ţ", "a.b", "x" * 20000, "a.b.c;evil=1"):
        refused = await audit.get("/dashboard", params={"token": garbage})
        assert refused.status_code == 401 and refused.json()["detail"] == "The token is malformed.", garbage
        assert "set-cookie" not in refused.headers


async def test_exports_csv_and_xlsx_neutralise_formulas(audit):
    await populate(audit.app)
    await feed(audit.app, village_event({"code": "360703108204", "name": "=HYPERLINK(\"http://x\",\"a\")",
                                         "township_code": "360703108", "township_name": "+乡", "population": 9}, 1))
    rows = rows_of(await audit.get("/dashboard/export/villages.csv"))
    evil = next(r for r in rows if r[0] == "360703108204")
    assert evil[1] == "'=HYPERLINK(\"http://x\",\"a\")" and evil[2] == "'+乡"
    for table, params in (("villages", {}), ("benefits", {}), ("credit", {}), ("progress", {}), ("anomalies", {}),
                          ("households", {"program": "credit.microloan"}), ("entitlements", {"household": "hh-1"}),
                          ("decisions", {"household": "hh-1"})):
        answer = await audit.get(f"/dashboard/export/{table}.xlsx", params=params)
        assert answer.status_code == 200, (table, answer.text)
        assert "attachment" in answer.headers["content-disposition"]
        sheet = load_workbook(io.BytesIO(answer.content)).worksheets[0]
        values = [[c.value for c in row] for row in sheet.iter_rows()]
        assert all("(" in h for h in values[0]), table  # Chinese header (English)
        assert len(values) > 1, table
        if table == "villages":
            cell = next(row for row in sheet.iter_rows() if row[0].value == "360703108204")[1]
            assert cell.data_type == "s" and cell.value.startswith("=HYPERLINK")
        if table == "households":
            assert sorted(r[0] for r in values[1:]) == ["hh-1", "hh-4"]
        if table == "entitlements":
            amounts = {r[1]: r[3] for r in values[1:]}
            # numbers, exact: the cell holds the Decimal's digits, not a float's approximation
            assert Decimal(str(amounts["safety_net.dibao"])) == Decimal("470.00")
            assert Decimal(str(amounts["credit.microloan"])) == Decimal("50000.00")


async def test_latest_meaningful_checkpoint(audit):
    async with transaction(audit.app.state.sessionmaker) as session:
        await create_checkpoint(session, "sha256")  # as the old start-up did: before any event
    await populate(audit.app)
    html = (await audit.get("/dashboard")).text
    card = html.split('id="checkpoint"', 1)[1].split("</div>\n</div>", 1)[0]
    assert "仅有空台账检查点" in card and "<code>" not in card
    async with transaction(audit.app.state.sessionmaker) as session:
        written = await create_checkpoint(session, "sha256", trigger="shutdown")
    html = (await audit.get("/dashboard")).text
    card = html.split('id="checkpoint"', 1)[1].split("</div>\n</div>", 1)[0]
    records = written["data"]["records"]
    assert records > 0 and f"<code>{written['data']['merkle_root'][:16]}…</code>" in card
    assert "停止时 (at shutdown)" in card and f"覆盖 {records} 条记录" in card
    async with audit.app.state.sessionmaker() as session:
        found = await latest_meaningful_checkpoint(session, page=1)
    assert found["checkpoint"]["id"] == written["id"] and found["skipped_empty"] == 0


async def test_checkpoints_at_startup_and_shutdown(databases, tmp_path):
    from services.audit.consumer import checkpoint_if_due
    url = await databases.url("audit")
    settings = AuditSettings(var_dir=tmp_path, database_url=url, kafka_bootstrap="127.0.0.1:1", log_json=False,
                             run_consumer=False)

    async def checkpoints(app) -> list[dict]:
        async with running_app(app, mint_token(settings, "audit:read")) as client:
            return (await client.get("/v1/audit/checkpoints")).json()["items"]

    def app_with(lifecycle: bool):
        return create_app(settings, id_hash_key="k", checkpoint_schedule=False, checkpoint_lifecycle=lifecycle)

    quiet = app_with(True)
    async with running_app(quiet):  # an empty ledger: neither start-up nor shutdown writes an all-zero checkpoint
        assert await checkpoint_if_due(quiet.state.sessionmaker, settings, 86400) is None  # nor the daily one
    assert await checkpoints(app_with(False)) == []

    writer = app_with(False)
    async with running_app(writer):
        await populate(writer)
    lifecycle = app_with(True)
    async with running_app(lifecycle):
        pass  # start-up: events arrived since the last checkpoint; shutdown: nothing new since start-up
    found = await checkpoints(app_with(False))
    assert [c["data"]["trigger"] for c in found] == ["startup"] and found[0]["data"]["records"] == 11

    lifecycle = app_with(True)
    async with running_app(lifecycle):  # start-up: unchanged, skipped; an event arrives; shutdown takes it
        await feed(lifecycle, entitlement_event("hh-2", "safety_net.dibao", "granted", amount="300.00", unit="month"),
                   partition=1)
    found = await checkpoints(app_with(False))
    assert [c["data"]["trigger"] for c in found] == ["startup", "shutdown"] and found[1]["data"]["records"] == 12
    async with running_app(app_with(False), mint_token(settings, "audit:read")) as client:
        verified = (await client.get("/v1/audit/verify")).json()
    assert verified["ok"] and verified["checkpoints_checked"] == 2
