"""Ledger headers: the variants offices type, each mapped to its column (the table is in docs/registry.md)."""
from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel

from services.registry.households.service import validated_new_household
from services.registry.imports import ledger
from services.registry.imports.headers import ALIASES, normalise_header
from services.registry.imports.sample import generate_ledger
from shared.snapshot import HouseholdBody, Person

# header as typed → ledger column key (None: not a column; reported as unknown)
VARIANTS = [
    ("人均纯收入", "per_capita_net"),
    ("人均纯收入（元）", "per_capita_net"),
    ("人均纯收入(元)", "per_capita_net"),
    ("人均纯收入 【元】", "per_capita_net"),
    ("家庭年人均纯收入（元/人）", "per_capita_net"),
    ("住房安全等级（A/B/C/D）", "housing_grade"),
    ("住房安全等级[A、B、C、D]", "housing_grade"),
    ("危房等级", "housing_grade"),
    ("公民身份号码", "id_number"),
    ("身份证号码", "id_number"),
    ("证件号码", "id_number"),
    ("身份证号（18位）", "id_number"),
    ("身份证号 ", "id_number"),
    ("*姓名", "name"),
    ("姓　名", "name"),  # ideographic space
    ("成员姓名", "name"),
    ("与户主关系（必填）", "relation"),
    ("与户主的关系", "relation"),
    ("县（区）代码", "region_code"),
    ("户主公民身份号码", "head_id_number"),
    ("出生日期(yyyy-mm-dd)", "birth_date"),
    ("是否已故（是/否）", "deceased"),
    ("种植面积", "crops_mu"),
    ("种植面积（亩）", "crops_mu"),
    ("ｈｏｕｓｅｈｏｌｄ＿ｉｄ", "household_id"),  # full-width Latin
    ("月工资（元）", "employment_monthly_wage"),
    ("身份证号（户主）", None),  # a qualifier, not a unit: must not be read as the member's number
    ("关系?", None),
    ("联系电话", None),
]


@pytest.mark.parametrize("header,key", VARIANTS)
def test_header_variants_map_to_their_column(header, key):
    assert ledger.MAIN_HEADERS.key_of(header) == key


def test_no_spelling_names_two_columns_and_every_alias_belongs_to_a_column():
    keys = {c.key for c in ledger.COLUMNS + ledger.LIST_COLUMNS} | {
        c.key for _, columns in ledger.SHEETS.values() for c in columns}
    assert set(ALIASES) <= keys
    seen: dict[str, str] = {}
    for column in ledger.COLUMNS + ledger.LIST_COLUMNS:
        for spelling in (column.title, *ALIASES.get(column.key, ())):
            assert seen.setdefault(normalise_header(spelling), column.key) == column.key, spelling


def test_normalisation_folds_width_brackets_spaces_and_stars():
    assert normalise_header("＊人均 纯收入【元】") == "人均纯收入(元)"
    assert normalise_header("ＩＤ　Number") == "idnumber"


def _leaves(model: type[BaseModel], prefix: tuple = ()) -> set[tuple]:
    found = set()
    for name, info in model.model_fields.items():
        annotation = info.annotation
        nested = [a for a in (typing.get_args(annotation) or (annotation,))
                  if isinstance(a, type) and issubclass(a, BaseModel)]
        if typing.get_origin(annotation) is list:
            found.add(prefix + (name,))  # a list is one column (or sheet)
        elif nested:
            found |= _leaves(nested[0], prefix + (name,))
        else:
            found.add(prefix + (name,))
    return found


def test_every_snapshot_field_has_a_ledger_column():
    household = {c.path for c in ledger.HOUSEHOLD_COLUMNS if c.path} | {("id",)}
    person = {c.path for c in ledger.PERSON_COLUMNS if c.path}
    assert _leaves(HouseholdBody) - {("members",)} <= household
    assert _leaves(Person) <= person
    for sheet, (_, columns) in {"machinery": ledger.SHEETS["machinery"], "trainings": ledger.SHEETS["trainings"]}.items():
        model = {"machinery": "Machinery", "trainings": "Training"}[sheet]
        import shared.snapshot as snapshot_module
        assert _leaves(getattr(snapshot_module, model)) == {c.path for c in columns if c.path}


def parse(header, rows, **kw):
    return ledger.parse_ledger(header, rows, validated_new_household, admin=True, **kw)


def test_bracketed_headers_are_read_not_dropped():
    """The 17 households of the issue: income and safety grade under full-width bracketed headers."""
    header, rows = generate_ledger(12, seed=2)
    col = {title: i for i, title in enumerate(header)}
    header = list(header)
    header[col["人均纯收入"]] = "人均纯收入（元）"
    header[col["住房安全等级"]] = "住房安全等级（A/B/C/D）"
    header[col["身份证号"]] = "公民身份号码"
    for row in rows:
        row[col["人均纯收入"]], row[col["住房安全等级"]] = "5057.00", "B"
    result = parse(header, rows)
    assert result.all_errors() == [] and result.warnings == []
    assert {h.snapshot["income"]["per_capita_net"] for h in result.valid} == {"5057.00"}
    assert {h.snapshot["housing"]["safety_grade"] for h in result.valid} == {"B"}
    assert all(m["id_number"] for h in result.valid for m in h.snapshot["members"])


def test_unknown_headers_are_warnings_or_in_strict_mode_errors_before_any_row():
    header, rows = generate_ledger(6, seed=3)
    header = list(header) + ["联系电话", "人均纯收入 (估)", "序号"]
    rows = [row + ["13800000000", "1", "1"] for row in rows]
    lenient = parse(header, rows)
    assert [w["column"] for w in lenient.warnings] == ["联系电话", "人均纯收入 (估)"]
    assert "不认识的列" in lenient.warnings[0]["message"] and "unknown column" in lenient.warnings[0]["message"]
    assert "did you mean 人均纯收入" in lenient.warnings[1]["message"]
    assert lenient.all_errors() == [] and len(lenient.valid) > 0
    strict = parse(header, rows, strict=True)
    assert [e["column"] for e in strict.all_errors()] == ["人均纯收入 (估)", "联系电话"]
    assert strict.households == [] and not strict.header_ok


def test_all_missing_columns_are_one_file_level_error():
    header, rows = generate_ledger(6, seed=3)
    renamed = {"姓名": "名字", "身份证号": "号码", "与户主关系": "关系", "县区代码": "县", "户编号": "编", "户主身份证号": "户主号"}
    result = parse([renamed.get(h, h) for h in header], rows)
    [error] = result.all_errors()
    assert error["row"] == 1 and error["missing"] == ["县区代码", "姓名", "身份证号", "与户主关系", "户编号 或 户主身份证号"]
    assert "缺少必需的列" in error["message"] and "required column(s) missing" in error["message"]
    assert result.households == [] and len(result.warnings) == 6
