"""The dashboard's monitoring section (issue 13): counts by category and status and by step, the loop's times,
the overdue items linked to their household page, and the CSV/XLSX exports of its three tables."""
from __future__ import annotations

import csv
import io
import re

from openpyxl import load_workbook

from tests.integration.audit.support import feed, registry_event, snapshot
from tests.integration.audit.test_monitoring_loop import seed_district

PARAMS = {"area": "360703105", "as_of": "2021-06-30"}


def rows_of(response) -> list[list[str]]:
    assert response.status_code == 200, response.text
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def section(html: str) -> str:
    return re.search(r'<section id="monitoring">(.*?)</section>', html, re.S).group(1)


async def test_the_overview_shows_the_monitoring_section(audit):
    await seed_district(audit)
    await feed(audit.app, registry_event("household.registered", snapshot("hh-f", seq=5)),
               registry_event("household.registered", snapshot("hh-c", seq=7)))
    page = await audit.get("/dashboard", params=PARAMS)
    assert page.status_code == 200
    html = section(page.text)
    assert re.search(r'id="monitoring-objects">5<', html) and re.search(r'id="monitoring-leads-open">2<', html)
    assert re.search(r'id="monitoring-leads-overdue">1<', html)
    # lead → identification: median 10, P90 20 of 3; identification → first measure: median 7, P90 10 of 2
    lead_card = re.search(r'id="monitoring-lead_to_identification".*?</div></div>', html, re.S).group(0)
    assert '<div class="kpi">10</div>' in lead_card and "P90 20 · n = 3" in lead_card
    measure_card = re.search(r'id="monitoring-identification_to_first_measure".*?</div></div>', html, re.S).group(0)
    assert '<div class="kpi">7</div>' in measure_card and "P90 10 · n = 2" in measure_card
    table = re.search(r'<table id="monitoring-categories">(.*?)</table>', html, re.S).group(1)
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", table)[1:]]
    assert rows == [["脱贫不稳定户 (unstable exited)", "0", "1", "0", "0", "0", "1"],
                    ["边缘易致贫户 (marginal, at risk)", "1", "1", "0", "0", "1", "3"],
                    ["突发严重困难户 (sudden hardship)", "0", "1", "0", "0", "0", "1"],
                    ["合计 (total)", "1", "3", "0", "0", "1", "5"]]
    steps = re.search(r'<table id="monitoring-steps">(.*?)</table>', html, re.S).group(1)
    assert "入户核实 (home_verification)</td><td class=\"num\">2<" in steps
    assert "录入系统 (data_entry)</td><td class=\"num\">3<" in steps
    overdue = re.search(r'<table id="monitoring-overdue">(.*?)</table>', html, re.S).group(1)
    assert 'href="/dashboard/households/hh-f?area=360703105&amp;as_of=2021-06-30">hh-f</a>' in overdue
    assert 'href="/dashboard/households/hh-c?area=360703105&amp;as_of=2021-06-30">hh-c</a>' in overdue
    assert "<code>ld-old</code></td><td>2021-05-16</td><td class=\"num bad\">45<" in overdue
    assert "<code>mo-c</code></td><td>2021-03-07</td><td class=\"num bad\">115<" in overdue
    # the linked household page opens
    assert (await audit.get("/dashboard/households/hh-f", params=PARAMS)).status_code == 200
    # the section on its own page, the same figures
    alone = await audit.get("/dashboard/monitoring", params=PARAMS)
    assert alone.status_code == 200 and section(alone.text) == html
    # the monitoring anomalies are in the page's anomaly list too
    assert "监测线索逾期未核实" in page.text and "监测对象未落实帮扶措施" in page.text


async def test_an_empty_area_says_so(audit):
    page = await audit.get("/dashboard", params={"as_of": "2021-06-30"})
    html = section(page.text)
    assert re.search(r'id="monitoring-objects">0<', html) and "暂无监测对象 (no monitoring objects)" in html
    assert "无逾期事项 (nothing overdue)" in html and "n = 0" in html


async def test_the_monitoring_tables_export_as_csv_and_xlsx(audit):
    await seed_district(audit)
    categories = rows_of(await audit.get("/dashboard/export/monitoring.csv", params=PARAMS))
    assert categories[0] == ["监测对象类别 (category)", "核查认定中 (identifying)", "监测帮扶中 (monitored)",
                             "风险消除程序中 (eliminating)", "已消除风险 (eliminated)", "核查排除 (dismissed)",
                             "合计 (total)"]
    assert categories[2] == ["边缘易致贫户 (marginal, at risk)", "1", "1", "0", "0", "1", "3"]
    assert categories[-1] == ["合计 (total)", "1", "3", "0", "0", "1", "5"]
    steps = rows_of(await audit.get("/dashboard/export/monitoring_steps.csv", params=PARAMS))
    assert steps[1:] == [["核查认定 (identification)", "入户核实 (home_verification)", "home_verification", "2"],
                         ["核查认定 (identification)", "录入系统 (data_entry)", "data_entry", "3"]]
    overdue = rows_of(await audit.get("/dashboard/export/monitoring_overdue.csv", params=PARAMS))
    assert [(r[1], r[3], r[4], r[5]) for r in overdue[1:]] == [("hh-f", "ld-old", "2021-05-16", "45"),
                                                              ("hh-c", "mo-c", "2021-03-07", "115")]
    answer = await audit.get("/dashboard/export/monitoring_overdue.xlsx", params=PARAMS)
    assert answer.status_code == 200
    book = load_workbook(io.BytesIO(answer.content))
    sheet = book.worksheets[0]
    assert sheet.title == "监测逾期事项" and sheet.cell(2, 2).value == "hh-f" and sheet.cell(2, 6).value == 45
    assert sheet.cell(3, 4).value == "mo-c"
    about = {r[0].value: r[1].value for r in book["说明 about"].iter_rows()}
    assert about["筛选 filters"] == "区域 area=360703105; 评估日期 as_of=2021-06-30"
    # area-scoped like every export: the other township sees only its own lead
    township = audit.token_for("audit:read", area="360703106")
    scoped = rows_of(await audit.get("/dashboard/export/monitoring_overdue.csv", params={"as_of": "2021-06-30"},
                                     headers=township))
    assert [r[3] for r in scoped[1:]] == ["ld-far"]
    outside = await audit.get("/dashboard/export/monitoring.csv", params=PARAMS, headers=township)
    assert outside.status_code == 403
