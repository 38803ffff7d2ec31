"""Reading and writing the spreadsheets offices exchange: CSV (UTF-8 or GB18030) and XLSX."""
from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from datetime import date, datetime
from pathlib import Path

from shared.problems import Problem


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK unless told otherwise
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise Problem(422, "Unreadable file", "The CSV is neither UTF-8 nor GB18030 text.")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


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
        rows = ([c.strip() for c in row] for row in csv.reader(io.StringIO(_decode(data))))
    table = [row for row in rows if any(row)]
    if not table:
        raise Problem(422, "Empty file", "The file has no header row.")
    header, body = table[0], table[1:]
    width = len(header)
    return header, [row[:width] + [""] * (width - len(row)) for row in body]


def write_table(path_or_buffer, header: list[str], rows: Iterable[list], fmt: str) -> None:
    """Stream rows to CSV (UTF-8 with BOM, so Excel opens it) or XLSX (write-only mode)."""
    if fmt == "xlsx":
        from openpyxl import Workbook

        from shared.spreadsheet import xlsx_row
        workbook = Workbook(write_only=True)
        sheet = workbook.create_sheet("台账")
        sheet.append(xlsx_row(header))
        for row in rows:
            sheet.append(xlsx_row(row))
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
        writer.writerow(["" if v is None else v for v in row])


async def aiter_csv_text(header: list[str], rows: AsyncIterable[list]) -> AsyncIterator[str]:
    """CSV text chunks (UTF-8 BOM first) for a streaming response."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(header)
    async for row in rows:
        writer.writerow(["" if v is None else v for v in row])
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
