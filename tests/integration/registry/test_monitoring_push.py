"""A department's push of leads (部门筛查预警): CSV/XLSX with the offices' Chinese headers or JSON, all or
nothing with a report, a dry run, and the same file again recording nothing new."""
from __future__ import annotations

import io

from openpyxl import Workbook
from sqlalchemy import func, select

from services.registry.tables import monitoring_leads, outbox
from tests.integration.registry.test_monitoring_procedures import new_household, office  # noqa: F401 - fixture


async def counts(app) -> tuple[int, int]:
    async with app.state.sessionmaker() as session:
        return (await session.scalar(select(func.count()).select_from(monitoring_leads)),
                await session.scalar(select(func.count()).select_from(outbox)))


def csv_upload(text: str) -> dict:
    return {"file": ("预警名单.csv", text.encode("utf-8-sig"), "text/csv")}


async def test_csv_push_all_or_nothing_with_report_then_written_once(office):
    household = await new_household(office, status="exited", exit_date="2019-12-01")
    hid = household["id"]
    head = next(m for m in household["members"] if m["relation"] == "head")
    async with office.app.state.sessionmaker() as session:
        from services.registry.tables import person_index
        number = await session.scalar(select(person_index.c.id_number).where(person_index.c.person_id == head["id"]))
    header = "序号,户主姓名,公民身份号码,户编号,风险类型,发现渠道,上报日期（年月日）,上报部门,备注\n"
    good = f"1,{head['name']},{number},,因病、刚性支出,部门筛查预警,2021/3/5,区医保局,住院自付较高\n"
    by_id = f"2,,,{hid},意外事故,,2021年3月6日,区应急管理局,\n"
    bad = "3,,,hh-nope,因懒,部门,2021-13-01,区民政局,\n"
    before = await counts(office.app)
    refused = await office.post("/v1/monitoring/leads:import", files=csv_upload(header + good + by_id + bad))
    assert refused.status_code == 422, refused.text
    report = refused.json()["report"]
    assert report["rows"] == 3 and report["created"] == 0 and report["leads"] == []
    problems = {(e["row"], e["column"]) for e in report["errors"]}
    assert {(4, "风险类型"), (4, "上报日期")} <= problems
    assert all(" / " in e["message"] for e in report["errors"])
    assert await counts(office.app) == before

    dry = await office.post("/v1/monitoring/leads:import", files=csv_upload(header + good + by_id),
                            data={"dry_run": "true"})
    assert dry.status_code == 200, dry.text
    assert dry.json()["created"] == 1 and dry.json()["merged"] == 1 and dry.json()["dry_run"] is True
    assert await counts(office.app) == before

    written = await office.post("/v1/monitoring/leads:import", files=csv_upload(header + good + by_id))
    assert written.status_code == 201, written.text
    body = written.json()
    assert (body["rows"], body["created"], body["merged"], body["errors"]) == (2, 1, 1, [])
    leads = (await office.get("/v1/monitoring/leads", params={"household_id": hid})).json()["items"]
    leads.sort(key=lambda lead: lead["status"] != "open")  # one push: the same recorded_at
    assert [(lead["status"], lead["risk_causes"], lead["channel"]) for lead in leads] == [
        ("open", ["illness", "rigid_expense"], "department"), ("merged", ["accident"], "department")]
    assert leads[1]["merged_into"] == leads[0]["id"]
    assert leads[0]["notes"] == "[区医保局] 住院自付较高" and leads[0]["reported_at"].startswith("2021-03-04T16:00")
    again = await office.post("/v1/monitoring/leads:import", files=csv_upload(header + good + by_id))
    assert again.status_code == 201 and again.json()["replayed"] == 2 and again.json()["created"] == 0
    assert (await counts(office.app))[0] == before[0] + 2


async def test_xlsx_and_json_pushes(office):
    hid = (await new_household(office))["id"]
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["南康区医保局2021年3月预警名单"])
    sheet.append(["*户编号", "风险类型", "上报日期（yyyy-mm-dd）"])
    sheet.append([hid, "因病", "2021-03-05"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    xlsx = await office.post("/v1/monitoring/leads:import", files={"file": ("名单.xlsx", buffer.getvalue(),
                                                                             "application/octet-stream")})
    assert xlsx.status_code == 201, xlsx.text
    assert xlsx.json()["created"] == 1 and xlsx.json()["leads"][0]["row"] == 3
    pushed = await office.post("/v1/monitoring/leads:import", json={"leads": [
        {"household_id": hid, "risk_causes": ["income_drop"], "reported_at": "2021-03-07", "department": "人社局"}]})
    assert pushed.status_code == 201 and pushed.json()["merged"] == 1
    wrong = await office.post("/v1/monitoring/leads:import", json={"leads": [{"household": hid}]})
    assert wrong.status_code == 422
    assert {e["column"] for e in wrong.json()["report"]["errors"]} >= {"household", "风险类型"}
    reader = office.as_("reader", "registry:read")
    assert (await office.post("/v1/monitoring/leads:import", json={"leads": []}, headers=reader)).status_code == 403


async def test_an_office_xlsx_with_excel_dates_bracketed_notes_and_everyday_channel_words(office):
    """What an office's own sheet looks like: a title row, 序号, the date as an Excel date cell, 备注（说明） with
    full-width brackets and the channel in everyday words (部门筛查, 入户排查) rather than the official terms."""
    import datetime as dt
    from tests.helpers import household_body
    first = (await new_household(office))["id"]
    elderly = await office.post("/v1/households", json=household_body("nankang-dibao-elderly"), headers=office.admin)
    second = elderly.json()["id"]
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["南康区医疗保障局 防返贫监测预警名单（2021年3月）"])
    sheet.append(["序号", "户编号", "风险类型", "发现渠道", "上报日期", "备注（说明）"])
    sheet.append([1, first, "因病", "部门筛查", dt.datetime(2021, 3, 5), "住院自付 23,000 元"])
    sheet.append([2, second, "因灾", "入户排查", dt.datetime(2021, 3, 6), ""])
    buffer = io.BytesIO()
    workbook.save(buffer)
    pushed = await office.post("/v1/monitoring/leads:import", files={"file": ("名单.xlsx", buffer.getvalue(),
                                                                              "application/octet-stream")})
    assert pushed.status_code == 201, pushed.text
    report = pushed.json()
    assert report["created"] == 2 and report["errors"] == []
    leads = {item["household_id"]: item for item in (await office.get("/v1/monitoring/leads")).json()["items"]}
    assert leads[first]["channel"] == "department" and leads[second]["channel"] == "cadre_visit"
    china = dt.timezone(dt.timedelta(hours=8))  # an Excel date cell is a day in China
    assert dt.datetime.fromisoformat(leads[first]["reported_at"]).astimezone(china).date() == dt.date(2021, 3, 5)
    assert leads[first]["notes"].endswith("住院自付 23,000 元")
