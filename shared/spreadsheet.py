"""Spreadsheet cells: XLSX cannot hold control characters, so they are dropped on export."""
from __future__ import annotations

from typing import Any

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE


def xlsx_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str):
        return ILLEGAL_CHARACTERS_RE.sub("", value)
    return value


def xlsx_row(values) -> list:
    return [xlsx_cell(value) for value in values]
