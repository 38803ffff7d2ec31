"""Spreadsheet cells written by every export, CSV or XLSX, so that no cell is ever run as a formula.

* CSV (OWASP "CSV Injection"): a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
  return is prefixed with a single quote, which Excel, LibreOffice and Google Sheets show as text and do
  not evaluate. A plain number (``-12.50``) is left alone: it cannot be a formula, and ledgers carry
  negative amounts. `unneutralised` undoes the prefix for importers, so an export re-imports unchanged.
* XLSX: every text cell is written with the string type, never as a formula (openpyxl would otherwise
  store any text beginning with ``=`` as a formula); control characters XLSX cannot hold are dropped.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def neutralised(text: str) -> str:
    """`text` as a CSV cell that no spreadsheet evaluates."""
    if text.startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.match(text):
        return "'" + text
    return text


def unneutralised(text: str) -> str:
    """The text an export neutralised with `neutralised` (for importers reading our own exports back)."""
    if text.startswith("'") and text[1:].startswith(FORMULA_TRIGGERS) and not _PLAIN_NUMBER.match(text[1:]):
        return text[1:]
    return text


def csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return neutralised(value)
    return value


def csv_row(values: Iterable[Any]) -> list:
    return [csv_cell(value) for value in values]


def xlsx_cell(value: Any, sheet: Any = None) -> Any:
    """A cell value for ``sheet.append``; with a write-only `sheet`, text that openpyxl would take for a
    formula becomes a cell typed as a string."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value)
        if sheet is not None and value.startswith("="):
            from openpyxl.cell import WriteOnlyCell
            cell = WriteOnlyCell(sheet, value)
            cell.data_type = "s"
            return cell
    return value


def xlsx_row(values: Iterable[Any], sheet: Any = None) -> list:
    return [xlsx_cell(value, sheet) for value in values]


def append_xlsx_row(sheet: Any, values: Iterable[Any]) -> None:
    """Append a row to a write-only or an ordinary worksheet with every text cell typed as a string."""
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet
    if not isinstance(sheet, WriteOnlyWorksheet):
        sheet.append(xlsx_row(values))
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str) and cell.data_type == "f":
                cell.data_type = "s"
        return
    sheet.append(xlsx_row(values, sheet))
