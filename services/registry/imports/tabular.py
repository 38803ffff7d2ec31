"""Reading and writing the spreadsheets offices exchange: CSV (UTF-8 or GB18030) and XLSX."""
from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.problems import Problem
from shared.spreadsheet import csv_row

from services.registry.imports.cells import plain_text as _cell


@dataclass
class Sheet:
    """One sheet as read: its header, its rows (raw cells; blank rows kept) and the line of rows[0]."""

    name: str
    header: list[str]
    rows: list[list[Any]]
    first_line: int = 2


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK unless told otherwise
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise Problem(422, "Unreadable file", "The CSV is neither UTF-8 nor GB18030 text.")


def _csv_rows(data: bytes) -> Iterable[list[str]]:
    """The CSV's rows; a malformed one (a carriage return inside an unquoted field, a NUL) is a 422
    naming the line, not an unhandled csv.Error (500)."""
    reader = csv.reader(io.StringIO(_decode(data)))
    try:
        yield from reader
    except csv.Error as exc:
        raise Problem(422, "Unreadable file",
                      f"CSV 第 {reader.line_num} 行格式错误（未加引号的字段中有换行符？）/ "
                      f"Malformed CSV at line {reader.line_num}: {exc}") from exc


def read_table(data: bytes, filename: str | None) -> tuple[list[str], list[list[str]]]:
    """Header row and data rows (cells as stripped strings); blank rows are dropped."""
    if (filename or "").lower().endswith((".xlsx", ".xlsm")) or data[:2] == b"PK":
        from openpyxl import load_workbook
        try:
            workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for a broken file
            raise Problem(422, "Unreadable file", f"Not a readable XLSX workbook ({type(exc).__name__}).") from exc
        rows = ([_cell(v) for v in row] for row in workbook.worksheets[0].iter_rows(values_only=True))
    else:
        rows = ([c.strip() for c in row] for row in _csv_rows(data))
    table = [row for row in rows if any(row)]
    if not table:
        raise Problem(422, "Empty file", "The file has no header row.")
    header, body = table[0], table[1:]
    width = len(header)
    return header, [row[:width] + [""] * (width - len(row)) for row in body]


def read_sheets(data: bytes, filename: str | None, *, header_hint=None, limits=None) -> list:
    """Every sheet of the file, cells as the file holds them (XLSX typed, CSV text), blank rows kept so
    row numbers stay the spreadsheet's. The header is the first non-blank row, or with ``header_hint``
    (a function counting the known headers in a row) the first of the leading rows it recognises, so a
    title row above the header (``南康区2019年建档立卡台账``) is skipped. With ``limits``
    (``limits.UploadLimits``) a sheet past the row limit is refused (413) while it is read."""
    from services.registry.imports.limits import limited_rows
    if (filename or "").lower().endswith((".xlsx", ".xlsm")) or data[:2] == b"PK":
        from openpyxl import load_workbook
        try:
            workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for a broken file
            raise Problem(422, "Unreadable file", f"Not a readable XLSX workbook ({type(exc).__name__}).") from exc
        tables = [(sheet.title, [[v.strip() if isinstance(v, str) else v for v in row]
                                 for row in limited_rows(sheet.iter_rows(values_only=True), limits, sheet.title)])
                  for sheet in workbook.worksheets]
    else:
        tables = [("", [[c.strip() for c in row]
                        for row in limited_rows(_csv_rows(data), limits)])]
    sheets = []
    for name, rows in tables:
        filled = [index for index, row in enumerate(rows[:20]) if any(v not in (None, "") for v in row)]
        if not filled:
            if not sheets:
                raise Problem(422, "Empty file", "The file has no header row. / 文件没有表头行。")
            continue
        start = filled[0]
        if header_hint is not None:
            start = next((i for i in filled[:10] if header_hint([_cell(v) for v in rows[i]]) >= 3), start)
        header = [_cell(v) for v in rows[start]]
        while header and not header[-1]:
            header.pop()
        width = len(header)
        body = [list(row[:width]) + [None] * (width - len(row)) for row in rows[start + 1:]]
        sheets.append(Sheet(name, header, body, first_line=start + 2))
    return sheets


class WorkbookWriter:
    """An XLSX of several sheets written in one pass (write-only mode: rows stream to each sheet in any
    order, so a household's main rows, machinery and trainings are appended as it is read)."""

    def __init__(self, sheets: list[tuple[str, list[str]]]) -> None:
        from openpyxl import Workbook
        self.workbook = Workbook(write_only=True)
        self.sheets = {}
        for title, header in sheets:
            self.sheets[title] = self.workbook.create_sheet(title)
            self.append(title, header)

    def append(self, title: str, row: list) -> None:
        from shared.spreadsheet import append_xlsx_row
        append_xlsx_row(self.sheets[title], row)

    def save(self, path_or_buffer) -> None:
        self.workbook.save(path_or_buffer)


def write_table(path_or_buffer, header: list[str], rows: Iterable[list], fmt: str) -> None:
    """Stream rows to CSV (UTF-8 with BOM, so Excel opens it) or XLSX (write-only mode)."""
    if fmt == "xlsx":
        from openpyxl import Workbook

        from shared.spreadsheet import append_xlsx_row
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("台账")
        append_xlsx_row(sheet, header)
        for row in rows:
            append_xlsx_row(sheet, row)
        workbook.save(path_or_buffer)
        return
    if isinstance(path_or_buffer, (str, Path)):
        with open(path_or_buffer, "w", encoding="utf-8-sig", newline="") as handle:
            _write_csv(handle, header, rows)
    else:
        _write_csv(path_or_buffer, header, rows)


def _write_csv(handle, header: list[str], rows: Iterable[list]) -> None:
    writer = csv.writer(handle)
    writer.writerow(header)
    for row in rows:
        writer.writerow(csv_row(row))  # formula prefixes neutralised (OWASP CSV injection)


async def aiter_csv_text(header: list[str], rows: AsyncIterable[list]) -> AsyncIterator[str]:
    """CSV text chunks (UTF-8 BOM first) for a streaming response."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(header)
    async for row in rows:
        writer.writerow(csv_row(row))  # formula prefixes neutralised (OWASP CSV injection)
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


TRUE_WORDS = {"是", "有", "true", "yes", "y", "1", "√", "✓"}
FALSE_WORDS = {"否", "无", "false", "no", "n", "0", "×", "✗"}


def parse_bool(text: str) -> bool | None:
    """'' → None (not verified); 是/否, true/false, 1/0."""
    value = text.strip().lower()
    if not value:
        return None
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise ValueError(f"expected 是/否 (yes/no), got {text!r}")


def format_bool(value: bool | None) -> str:
    return "" if value is None else ("是" if value else "否")
