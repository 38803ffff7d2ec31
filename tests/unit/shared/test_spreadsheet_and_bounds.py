"""CSV formula neutralisation (OWASP) and the input bounds every service shares."""
from __future__ import annotations

import io
from datetime import date

import pytest
from openpyxl import Workbook, load_workbook
from pydantic import BaseModel, ValidationError

from services.registry.imports.cells import plain_text
from shared.bounds import FreeText, LedgerDate, Name, PositiveMoney, Year
from shared.spreadsheet import append_xlsx_row, csv_cell, neutralised, unneutralised


@pytest.mark.parametrize("text", ["=cmd|' /C calc'!A0", '=HYPERLINK("x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx",
                                  "-", "=", "- 3"])
def test_every_formula_prefix_is_quoted_and_reads_back(text):
    cell = neutralised(text)
    assert cell == "'" + text
    assert unneutralised(cell) == text
    assert plain_text(cell) == text  # the ledger importer reads our own export back unchanged


@pytest.mark.parametrize("text", ["钟大山", "-12.50", "+86", "3000", "2020-01-01", "'quoted", "a=b"])
def test_ordinary_text_and_plain_numbers_are_left_alone(text):
    assert neutralised(text) == text
    assert unneutralised(text) == text


def test_csv_cell_keeps_non_text_and_blanks():
    assert csv_cell(None) == "" and csv_cell(3) == 3 and csv_cell("=1") == "'=1"


@pytest.mark.parametrize("write_only", [True, False])
def test_xlsx_rows_never_hold_formulas(write_only):
    workbook = Workbook(write_only=write_only)
    sheet = workbook.create_sheet("s") if write_only else workbook.active
    append_xlsx_row(sheet, ['=HYPERLINK("x")', "=1+1", "ok\x00", 5, None])
    buffer = io.BytesIO()
    workbook.save(buffer)
    row = next(load_workbook(buffer).worksheets[0].iter_rows())
    assert [(c.value, c.data_type) for c in row][:4] == [('=HYPERLINK("x")', "s"), ("=1+1", "s"), ("ok", "s"),
                                                          (5, "n")]


class _Model(BaseModel):
    year: Year | None = None
    day: LedgerDate | None = None
    name: Name | None = None
    notes: FreeText | None = None
    paid: PositiveMoney | None = None


@pytest.mark.parametrize("values", [{"year": 10 ** 20}, {"year": 1899}, {"day": date(1, 1, 1)},
                                    {"day": date(9999, 12, 31)}, {"name": "a\x00"}, {"name": "a\tb"},
                                    {"name": "a\u0085"}, {"notes": "a\x00b"}, {"notes": "a\x1b"}, {"paid": "0"},
                                    {"paid": "-30000.00"}])
def test_bounds_refuse(values):
    with pytest.raises(ValidationError):
        _Model(**values)


def test_bounds_accept_the_ordinary():
    model = _Model(year=2014, day="2020-06-30", name="钟大山", notes="第一行\n\t第二行\r\n", paid="0.01")
    assert model.year == 2014 and str(model.paid) == "0.01"
