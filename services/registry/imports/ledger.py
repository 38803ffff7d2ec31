"""The household ledger (台账) as offices keep it: one row per person, household columns repeated.

Pure: no I/O. ``parse_ledger`` maps the usual Chinese headers to the snapshot, validates every row
and household (the same checks as ``POST /v1/households``) and reports problems as
``{row, column, message}`` with the spreadsheet's own row numbers (header = row 1).
``ledger_rows`` is the inverse, so export → import round-trips.

Rows are grouped into households by 户编号 (kept as the registry id) or, without it, by 户主身份证号.
Household columns are read from the household's first row; another row of the same household that
fills one with a different value is an error (the usual sign of two households sharing a number).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from shared.idcard import InvalidIdNumber, validate_id_number
from shared.problems import Problem

from services.registry.imports.tabular import format_bool, parse_bool

# (key, export header, other accepted headers)
COLUMNS: list[tuple[str, str, tuple[str, ...]]] = [
    ("household_id", "户编号", ("户号", "户编码", "household_id")),
    ("region_code", "县区代码", ("县(区)代码", "区划代码", "县代码", "region_code")),
    ("township_code", "乡镇代码", ("township_code",)),
    ("township_name", "乡镇", ("乡(镇)", "乡镇名称", "township_name")),
    ("village_code", "行政村代码", ("村代码", "village_code")),
    ("village_name", "行政村", ("村", "村名称", "village_name")),
    ("is_poor_village", "贫困村", ()),
    ("is_deep_poverty_village", "深度贫困村", ()),
    ("status", "贫困户状态", ("户状态", "脱贫状态", "status")),
    ("identified_year", "识别年度", ("识别年份", "identified_year")),
    ("exit_date", "脱贫日期", ("脱贫时间", "exit_date")),
    ("categories", "户类型", ("户属性", "categories")),
    ("dibao_class", "低保类别", ("dibao_class",)),
    ("poverty_causes", "致贫原因", ("主要致贫原因", "poverty_causes")),
    ("income_year", "收入年度", ("income_year",)),
    ("per_capita_net", "人均纯收入", ("家庭年人均纯收入", "人均纯收入(元)", "年人均纯收入", "per_capita_net")),
    ("g_food", "不愁吃", ()),
    ("g_clothing", "不愁穿", ()),
    ("g_compulsory_education", "义务教育保障", ()),
    ("g_basic_medical", "基本医疗保障", ()),
    ("g_housing_safety", "住房安全保障", ()),
    ("g_drinking_water", "饮水安全保障", ("饮水安全",)),
    ("housing_grade", "住房安全等级", ("危房等级",)),
    ("relocated", "易地搬迁", ("是否易地搬迁",)),
    ("moved_in", "搬迁入住", ("是否入住",)),
    ("head_name", "户主姓名", ("户主",)),
    ("head_id_number", "户主身份证号", ("户主身份证号码",)),
    ("person_id", "成员编号", ("person_id",)),
    ("name", "姓名", ("成员姓名", "name")),
    ("id_number", "身份证号", ("身份证号码", "证件号码", "id_number")),
    ("sex", "性别", ("sex",)),
    ("birth_date", "出生日期", ("birth_date",)),
    ("relation", "与户主关系", ("relation",)),
    ("labour_capacity", "劳动能力", ("劳动技能", "labour_capacity")),
    ("health", "健康状况", ("health",)),
    ("disability_grade", "残疾等级", ()),
    ("disability_kind", "残疾类别", ()),
    ("student_stage", "在校情况", ("在校生状况",)),
    ("deceased", "是否已故", ("已故",)),
]
HEADER = [title for _, title, _ in COLUMNS]
TITLE = {key: title for key, title, _ in COLUMNS}
HOUSEHOLD_KEYS = [key for key, _, _ in COLUMNS[:COLUMNS.index(next(c for c in COLUMNS if c[0] == "person_id"))]]
PERSON_KEYS = ("person_id", "name", "id_number", "relation")
GUARANTEES = {"g_food": "food", "g_clothing": "clothing", "g_compulsory_education": "compulsory_education",
              "g_basic_medical": "basic_medical", "g_housing_safety": "housing_safety",
              "g_drinking_water": "drinking_water"}

STATUS = {"候选": "candidate", "待识别": "candidate", "未脱贫": "registered", "贫困户": "registered", "在册": "registered",
          "已脱贫": "exited", "脱贫户": "exited", "监测": "monitored", "监测户": "monitored", "返贫": "returned",
          "返贫户": "returned", "剔除": "removed", "已剔除": "removed"}
CATEGORY = {"低保户": "dibao", "低保": "dibao", "分散供养特困": "tekun_dispersed", "集中供养特困": "tekun_concentrated",
            "边缘户": "marginal", "易地搬迁户": "relocated", "零就业家庭": "zero_employment"}
CAUSE = {"因病": "illness", "因残": "disability", "因学": "schooling", "因灾": "disaster", "缺土地": "lack_of_land",
         "缺水": "lack_of_water", "缺技术": "lack_of_skills", "缺劳力": "lack_of_labour", "缺资金": "lack_of_capital",
         "交通条件落后": "poor_transport", "自身发展动力不足": "low_motivation"}
RELATION = {"户主": "head", "配偶": "spouse", "妻": "spouse", "夫": "spouse", "子女": "child", "之子": "child",
            "之女": "child", "儿子": "child", "女儿": "child", "父母": "parent", "父亲": "parent", "母亲": "parent",
            "其他": "other"}
LABOUR = {"普通劳动力": "full", "技能劳动力": "skilled", "弱劳动力或半劳动力": "weak", "弱劳动力": "weak",
          "丧失劳动力": "lost", "无劳动力": "none"}
HEALTH = {"健康": "healthy", "长期慢性病": "chronic", "患有大病": "serious_illness", "大病": "serious_illness",
          "残疾": "disabled"}
DISABILITY_KIND = {"肢体": "physical", "视力": "visual", "听力": "hearing", "言语": "speech", "智力": "intellectual",
                   "精神": "mental", "多重": "multiple"}
STAGE = {"学前教育": "preschool", "小学": "primary", "初中": "junior", "高中": "senior", "中职": "vocational",
         "大专及以上": "university", "本科": "university", "研究生": "graduate"}
SEX = {"男": "M", "女": "F"}
# Export writes the first Chinese word for each code.
VOCABULARIES = {"status": STATUS, "categories": CATEGORY, "poverty_causes": CAUSE, "relation": RELATION,
                "labour_capacity": LABOUR, "health": HEALTH, "disability_kind": DISABILITY_KIND,
                "student_stage": STAGE, "sex": SEX}
REVERSE = {key: {code: word for word, code in reversed(list(vocab.items()))} for key, vocab in VOCABULARIES.items()}
SEPARATORS = re.compile(r"[、,，;；/\s]+")
HOUSEHOLD_ID = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
# Where a snapshot validation error is shown: first path element → ledger column.
FIELD_COLUMN = {"region_code": "region_code", "village": "village_code", "status": "status",
                "identified_year": "identified_year", "exit_date": "exit_date", "categories": "categories",
                "dibao_class": "dibao_class", "poverty_causes": "poverty_causes", "income": "per_capita_net",
                "guarantees": "g_food", "housing": "housing_grade", "relocation": "relocated"}
MEMBER_COLUMN = {"id": "person_id", "name": "name", "id_number": "id_number", "sex": "sex",
                 "birth_date": "birth_date", "relation": "relation", "labour_capacity": "labour_capacity",
                 "health": "health", "disability": "disability_grade", "student": "student_stage",
                 "deceased": "deceased"}


class CellError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass
class LedgerHousehold:
    key: str
    rows: list[int] = field(default_factory=list)  # spreadsheet row numbers, in file order
    cells: list[dict[str, str]] = field(default_factory=list)
    snapshot: dict | None = None
    errors: list[dict] = field(default_factory=list)
    member_rows: list[int] = field(default_factory=list)


@dataclass
class LedgerParse:
    households: list[LedgerHousehold]
    errors: list[dict]  # file-level and row-level, each {row, column, message}
    rows: int

    @property
    def valid(self) -> list[LedgerHousehold]:
        return [h for h in self.households if h.snapshot is not None and not h.errors]

    def all_errors(self) -> list[dict]:
        found = self.errors + [e for h in self.households for e in h.errors]
        return sorted(found, key=lambda e: (e["row"], e["column"]))


def column_map(header: list[str]) -> tuple[dict[str, int], list[dict]]:
    """Ledger key → column index; unknown headers are ignored (offices add their own columns)."""
    lookup = {}
    for key, title, aliases in COLUMNS:
        for name in (title, *aliases):
            lookup[name] = key
    found: dict[str, int] = {}
    errors = []
    for index, title in enumerate(header):
        key = lookup.get(title.replace(" ", ""))
        if key is None:
            continue
        if key in found:
            errors.append({"row": 1, "column": title, "message": f"column given twice ({TITLE[key]})"})
        found[key] = index
    for key in ("name", "id_number", "relation", "region_code"):
        if key not in found:
            errors.append({"row": 1, "column": TITLE[key], "message": "required column missing"})
    if "household_id" not in found and "head_id_number" not in found:
        errors.append({"row": 1, "column": TITLE["household_id"],
                       "message": "need 户编号 or 户主身份证号 to tell households apart"})
    return found, errors


def _word(key: str, text: str) -> str:
    vocab = VOCABULARIES[key]
    if text in vocab:
        return vocab[text]
    if text in vocab.values():
        return text
    raise CellError(key, f"unknown value {text!r}; expected one of {'、'.join(vocab)}")


def _words(key: str, text: str) -> list[str]:
    return [_word(key, part) for part in SEPARATORS.split(text) if part]


def _bool(key: str, text: str) -> bool | None:
    try:
        return parse_bool(text)
    except ValueError as exc:
        raise CellError(key, str(exc)) from None


def _int(key: str, text: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise CellError(key, f"expected a whole number, got {text!r}") from None


def household_body(cells: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {"region_code": cells.get("region_code", "")}
    if cells.get("village_code"):
        body["village"] = {"code": cells["village_code"], "name": cells.get("village_name", ""),
                           "township_code": cells.get("township_code", ""),
                           "township_name": cells.get("township_name", ""),
                           "is_poor_village": bool(_bool("is_poor_village", cells.get("is_poor_village", ""))),
                           "is_deep_poverty_village": bool(_bool("is_deep_poverty_village",
                                                                 cells.get("is_deep_poverty_village", "")))}
    if cells.get("status"):
        body["status"] = _word("status", cells["status"])
    if cells.get("identified_year"):
        body["identified_year"] = _int("identified_year", cells["identified_year"])
    if cells.get("exit_date"):
        body["exit_date"] = cells["exit_date"]
    body["categories"] = _words("categories", cells.get("categories", ""))
    if cells.get("dibao_class"):
        body["dibao_class"] = cells["dibao_class"].upper()
    body["poverty_causes"] = _words("poverty_causes", cells.get("poverty_causes", ""))
    if cells.get("per_capita_net"):
        body["income"] = {"year": _int("income_year", cells.get("income_year", "")),
                          "per_capita_net": cells["per_capita_net"].replace(",", "")}
    body["guarantees"] = {field_: _bool(key, cells.get(key, "")) for key, field_ in GUARANTEES.items()}
    body["housing"] = {"safety_grade": cells.get("housing_grade", "").upper() or None}
    body["relocation"] = {"relocated": bool(_bool("relocated", cells.get("relocated", ""))),
                          "moved_in": bool(_bool("moved_in", cells.get("moved_in", "")))}
    return body


def person_body(cells: dict[str, str]) -> dict[str, Any]:
    person: dict[str, Any] = {"name": cells.get("name", "")}
    if cells.get("person_id"):
        person["id"] = cells["person_id"]
    number = cells.get("id_number", "").upper()
    if number:
        person["id_number"] = number
        try:  # ledgers often leave sex and birth date to the ID number
            info = validate_id_number(number)
            person["sex"], person["birth_date"] = info.sex, info.birth_date.isoformat()
        except InvalidIdNumber as exc:
            raise CellError("id_number", exc.reason) from None
    if cells.get("sex"):
        person["sex"] = _word("sex", cells["sex"])
    if cells.get("birth_date"):
        person["birth_date"] = cells["birth_date"]
    if not cells.get("relation"):
        raise CellError("relation", "与户主关系 is required")
    person["relation"] = _word("relation", cells["relation"])
    if cells.get("labour_capacity"):
        person["labour_capacity"] = _word("labour_capacity", cells["labour_capacity"])
    if cells.get("health"):
        person["health"] = _word("health", cells["health"])
    if cells.get("disability_grade") or cells.get("disability_kind"):
        person["disability"] = {"grade": _int("disability_grade", cells.get("disability_grade", "").rstrip("级")),
                                "kind": _word("disability_kind", cells.get("disability_kind", ""))}
    if cells.get("student_stage"):
        person["student"] = {"stage": _word("student_stage", cells["student_stage"])}
    person["deceased"] = bool(_bool("deceased", cells.get("deceased", "")))
    return person


Validator = Callable[[dict, str], dict]  # (body, household id) → canonical snapshot or raise Problem


def parse_ledger(header: list[str], rows: list[list[str]], validate: Validator, *, admin: bool,
                 progress: Callable[[int], None] | None = None) -> LedgerParse:
    columns, errors = column_map(header)
    if errors:
        return LedgerParse([], errors, len(rows))
    groups: dict[str, LedgerHousehold] = {}
    for offset, row in enumerate(rows):
        line = offset + 2
        cells = {key: row[index].strip() for key, index in columns.items()}
        key = cells.get("household_id") or cells.get("head_id_number", "").upper()
        if not key:
            errors.append({"row": line, "column": TITLE["household_id"],
                           "message": "row names no household (户编号 or 户主身份证号)"})
            continue
        group = groups.setdefault(key, LedgerHousehold(key))
        group.rows.append(line)
        group.cells.append(cells)
        if progress and line % 1000 == 0:
            progress(1000)
    living: dict[str, tuple[int, str]] = {}  # id number → (row, household key): one household per living person
    for group in groups.values():
        _parse_household(group, validate, admin)
        for line, cells in zip(group.rows, group.cells):
            number = cells.get("id_number", "").upper()
            if number and not _bool_or_false(cells.get("deceased", "")):
                if number in living and living[number][1] != group.key:
                    group.errors.append({"row": line, "column": TITLE["id_number"],
                                         "message": f"same person as row {living[number][0]} "
                                                    f"(household {living[number][1]})"})
                living.setdefault(number, (line, group.key))
    if progress:
        progress(len(rows) % 1000)
    return LedgerParse(list(groups.values()), errors, len(rows))


def _bool_or_false(text: str) -> bool:
    try:
        return bool(parse_bool(text))
    except ValueError:
        return False


def _parse_household(group: LedgerHousehold, validate: Validator, admin: bool) -> None:
    first_row, first = group.rows[0], group.cells[0]
    for line, cells in zip(group.rows[1:], group.cells[1:]):
        for key in HOUSEHOLD_KEYS:
            if key != "household_id" and cells.get(key) and first.get(key) and cells[key] != first[key]:
                group.errors.append({"row": line, "column": TITLE[key],
                                     "message": f"differs from the household's row {first_row} ({first[key]!r})"})
    if first.get("household_id") and not HOUSEHOLD_ID.match(first["household_id"]):
        group.errors.append({"row": first_row, "column": TITLE["household_id"],
                             "message": "户编号 may hold letters, digits, '.', '_' and '-' (≤ 40)"})
    try:
        body = household_body(first)
    except CellError as exc:
        group.errors.append({"row": first_row, "column": TITLE[exc.key], "message": str(exc)})
        body = None
    members, member_rows, failed = [], [], False
    for line, cells in zip(group.rows, group.cells):
        if not any(cells.get(k) for k in PERSON_KEYS):
            continue  # a household-only row (a household without members)
        try:
            members.append(person_body(cells))
            member_rows.append(line)
        except CellError as exc:
            failed = True
            group.errors.append({"row": line, "column": TITLE[exc.key], "message": str(exc)})
    group.member_rows = member_rows
    heads = [line for line, m in zip(member_rows, members) if m.get("relation") == "head"]
    if members and not failed:
        if len(heads) != 1:
            group.errors.append({"row": first_row, "column": TITLE["relation"],
                                 "message": f"a household has exactly one 户主, found {len(heads)}"})
        else:
            head = group.cells[group.rows.index(heads[0])]
            for key, head_key in (("head_name", "name"), ("head_id_number", "id_number")):
                given = {c.get(key, "").upper() for c in group.cells if c.get(key)}
                if given and given != {head.get(head_key, "").upper()}:
                    group.errors.append({"row": heads[0], "column": TITLE[key],
                                         "message": f"{TITLE[key]} does not match the 户主 row"})
    if body is None or failed:
        return  # validating further would only repeat these errors
    if body.get("status", "candidate") != "candidate" and not admin:
        group.errors.append({"row": first_row, "column": TITLE["status"],
                             "message": "only an admin may import households in a status other than 候选"})
        return
    body["members"] = members
    household_id = first.get("household_id") or None
    try:
        group.snapshot = validate(body, household_id)
    except Problem as problem:
        for error in problem.extra.get("errors", []):
            group.errors.append(_locate(error, group))


def _locate(error: dict, group: LedgerHousehold) -> dict:
    loc = [part for part in error.get("loc", []) if part != "body"]
    row, key = group.rows[0], "region_code"
    if loc and loc[0] == "members" and len(loc) > 1 and isinstance(loc[1], int) and loc[1] < len(group.member_rows):
        row = group.member_rows[loc[1]]
        key = MEMBER_COLUMN.get(loc[2] if len(loc) > 2 else "", "name")
    elif loc:
        key = FIELD_COLUMN.get(str(loc[0]), "region_code")
    return {"row": row, "column": TITLE[key], "message": error.get("msg", "invalid")}


# ---------------------------------------------------------------- export

def _out(key: str, code: str | None) -> str:
    return REVERSE[key].get(code, code) if code else ""


def ledger_rows(snapshot: dict, *, mask: Callable[[str], str] | None = None) -> Iterable[list[Any]]:
    """The ledger rows of one household (one per member; a household without members gets one row)."""
    village = snapshot.get("village") or {}
    income = snapshot.get("income") or {}
    guarantees = snapshot.get("guarantees") or {}
    members = snapshot.get("members") or []
    head = next((m for m in members if m.get("relation") == "head"), None)
    show = mask or (lambda number: number)
    household = {
        "household_id": snapshot["id"], "region_code": snapshot.get("region_code"),
        "township_code": village.get("township_code"), "township_name": village.get("township_name"),
        "village_code": village.get("code"), "village_name": village.get("name"),
        "is_poor_village": format_bool(village.get("is_poor_village")) if village else "",
        "is_deep_poverty_village": format_bool(village.get("is_deep_poverty_village")) if village else "",
        "status": _out("status", snapshot.get("status")), "identified_year": snapshot.get("identified_year"),
        "exit_date": snapshot.get("exit_date"),
        "categories": "、".join(_out("categories", c) for c in snapshot.get("categories") or []),
        "dibao_class": snapshot.get("dibao_class"),
        "poverty_causes": "、".join(_out("poverty_causes", c) for c in snapshot.get("poverty_causes") or []),
        "income_year": income.get("year"), "per_capita_net": income.get("per_capita_net"),
        **{key: format_bool(guarantees.get(field_)) for key, field_ in GUARANTEES.items()},
        "housing_grade": (snapshot.get("housing") or {}).get("safety_grade"),
        "relocated": format_bool((snapshot.get("relocation") or {}).get("relocated")),
        "moved_in": format_bool((snapshot.get("relocation") or {}).get("moved_in")),
        "head_name": head and head.get("name"),
        "head_id_number": head and head.get("id_number") and show(head["id_number"]),
    }
    for member in members or [None]:
        cells = dict(household)
        if member is not None:
            disability = member.get("disability") or {}
            cells.update({
                "person_id": member.get("id"), "name": member.get("name"),
                "id_number": member.get("id_number") and show(member["id_number"]),
                "sex": _out("sex", member.get("sex")), "birth_date": member.get("birth_date"),
                "relation": _out("relation", member.get("relation")),
                "labour_capacity": _out("labour_capacity", member.get("labour_capacity")),
                "health": _out("health", member.get("health")), "disability_grade": disability.get("grade"),
                "disability_kind": _out("disability_kind", disability.get("kind")),
                "student_stage": _out("student_stage", (member.get("student") or {}).get("stage")),
                "deceased": "是" if member.get("deceased") else "否"})
        yield [cells.get(key) for key, _, _ in COLUMNS]


def parse_date(text: str) -> date:
    return date.fromisoformat(text)
