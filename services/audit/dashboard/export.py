"""CSV and XLSX of a dashboard table: the same rows the page shows, Chinese headers (with English in
brackets), every text cell neutralised so no spreadsheet runs it as a formula (shared/spreadsheet.py)."""
from __future__ import annotations

import csv
import io
from typing import Any

from services.audit.dashboard.service import Filters, Table
from shared.spreadsheet import append_xlsx_row, csv_row

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "是" if value else "否"
    return value


def _cells(table: Table, row: dict) -> list:
    return [_cell(row.get(c.key)) for c in table.columns]


def filters_line(f: Filters) -> list[str]:
    given = {"区域 area": f.area, "评估日期 as_of": f.as_of.isoformat(), "状态 status": f.status,
             "项目 program": f.program, "村 village": f.village, "规则 rule": f.rule}
    return [f"{k}={v}" for k, v in given.items() if v]


def table_csv(table: Table) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([c.header for c in table.columns])
    for row in table.rows:
        # Decimal stays exact: csv writes str(Decimal); text is neutralised (OWASP CSV injection)
        writer.writerow(csv_row(_cells(table, row)))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")  # BOM: Excel opens UTF-8 Chinese correctly


def table_xlsx(table: Table, f: Filters) -> bytes:
    from openpyxl import Workbook
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = table.zh[:31]
    sheet.append([c.header for c in table.columns])
    for row in table.rows:
        append_xlsx_row(sheet, _cells(table, row))  # Decimal is written as an exact number
    meta = workbook.create_sheet("说明 about")
    append_xlsx_row(meta, ["表 table", f"{table.zh} ({table.en})"])
    append_xlsx_row(meta, ["筛选 filters", "; ".join(filters_line(f))])
    if table.note:
        append_xlsx_row(meta, ["说明 note", table.note])
    if table.more:
        append_xlsx_row(meta, ["不完整 partial", "仅第一页 / first page only"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


__all__ = ["XLSX_MEDIA_TYPE", "filters_line", "table_csv", "table_xlsx"]
