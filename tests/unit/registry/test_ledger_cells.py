"""Ledger cells: each way an office's spreadsheet holds an ID number, a date or a name, read or refused precisely."""
from __future__ import annotations

from datetime import datetime

import pytest

from services.registry.households.service import validated_new_household
from services.registry.imports import ledger
from services.registry.imports.cells import CellError, date_text, id_number_text
from services.registry.imports.sample import generate_ledger

NUMBER = "360782197709250012"


@pytest.mark.parametrize("cell", ["1977-09-25", "1977/9/25", "1977-9-25", "1977.9.25", "19770925", "1977年9月25日",
                                  "1977 年 9 月 25 日", datetime(1977, 9, 25), 28393, 28393.0, "28393", 19770925])
def test_dates_in_every_office_spelling(cell):
    assert date_text("birth_date", cell) == "1977-09-25"


@pytest.mark.parametrize("cell,zh,en", [
    ("1977/13/25", "不存在", "not a calendar date"),
    ("sometime in 1977", "无法识别的日期", "not a date"),
    ("9/25/1977", "无法识别的日期", "write it as 1977-09-25"),
])
def test_bad_dates_say_why_in_both_languages(cell, zh, en):
    with pytest.raises(CellError) as caught:
        date_text("birth_date", cell)
    assert zh in str(caught.value) and en in str(caught.value) and " / " in str(caught.value)


@pytest.mark.parametrize("cell", [3.60782197709250e17, 360782197709250000.0, "3.60782E+17", "3.6078219770925E17",
                                  "360782197709250012.0", 36078219770925])
def test_a_number_formatted_id_column_is_named_as_the_cause(cell):
    with pytest.raises(CellError) as caught:
        id_number_text("id_number", cell)
    message = str(caught.value)
    assert "formatted as a number in Excel" in message and "文本" in message and "数字格式" in message
    assert "mistyped" not in message


def test_an_exact_18_digit_integer_cell_is_accepted_and_text_is_cleaned():
    assert id_number_text("id_number", 360782197709250012) == NUMBER
    assert id_number_text("id_number", " 36078219770925001x ") == "36078219770925001X"


def parse(rows, header=None):
    return ledger.parse_ledger(header or ledger.HEADER, rows, validated_new_household, admin=True)


def one_household(**overrides):
    header, rows = generate_ledger(1, seed=5)
    col = {title: i for i, title in enumerate(header)}
    row = list(rows[0])
    for title, value in overrides.items():
        row[col[title]] = value
    return [row]


def test_typed_xlsx_cells_become_the_snapshot():
    rows = one_household(身份证号=360782197709250012, 户主身份证号=360782197709250012, 出生日期=28393,
                         性别="", 人均纯收入=5057.0, 识别年度=2014.0)
    result = parse(rows)
    assert result.all_errors() == []
    snapshot = result.valid[0].snapshot
    head = snapshot["members"][0]
    assert (head["id_number"], head["birth_date"], head["sex"]) == (NUMBER, "1977-09-25", "M")
    assert snapshot["income"]["per_capita_net"] == "5057.00" and snapshot["identified_year"] == 2014


def test_a_float_id_is_reported_at_its_row_and_column_as_number_formatting():
    result = parse(one_household(身份证号=3.6078219770925e17, 户主身份证号=NUMBER))
    errors = result.all_errors()
    assert (errors[0]["row"], errors[0]["column"]) == (2, "身份证号")
    assert "formatted as a number" in errors[0]["message"] and result.valid == []


def test_slash_birth_dates_are_accepted_and_checked_against_the_id():
    header, rows = generate_ledger(1, seed=5)
    col = {title: i for i, title in enumerate(header)}
    born = rows[0][col["出生日期"]]
    year, month, day = (int(part) for part in born.split("-"))
    rows[0][col["出生日期"]] = f"{year}/{month}/{day}"
    assert parse(rows).all_errors() == []
    rows[0][col["出生日期"]] = f"{year - 1}/{month}/{day}"
    [error] = parse(rows).all_errors()
    assert error["column"] == "身份证号" and "与身份证号" in error["message"] and "does not match" in error["message"]


def test_an_empty_name_is_refused():
    result = parse(one_household(姓名=""))
    [error] = result.all_errors()
    assert (error["row"], error["column"]) == (2, "姓名")
    assert error["message"] == "姓名不能为空 / 姓名 (name) is required" and result.valid == []


def test_check_digit_and_length_messages_stay_precise_and_bilingual():
    header, rows = generate_ledger(1, seed=5)
    col = {title: i for i, title in enumerate(header)}
    number = rows[0][col["身份证号"]]
    rows[0][col["身份证号"]] = number[:-1] + ("0" if number[-1] != "0" else "1")
    errors = parse(rows).all_errors()
    assert any(e["column"] == "身份证号" and "校验位" in e["message"] and "mistyped" in e["message"] for e in errors)
    rows[0][col["身份证号"]] = number[:-1]
    errors = parse(rows).all_errors()
    assert any("应为 18 位，实为 17 位" in e["message"] for e in errors)
