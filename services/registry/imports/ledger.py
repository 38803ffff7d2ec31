"""The household ledger (台账) as offices keep it: one row per person, household columns repeated.

Pure: no I/O. ``parse_ledger`` maps headers (``headers.py``: aliases held as data, compared after
normalisation) to ledger columns, reads each cell by its column's kind (``cells.py``), builds the
snapshot body, validates every row and household (the same checks as ``POST /v1/households``) and
reports problems as ``{row, column, message}`` with the spreadsheet's own row numbers (header = row 1;
rows of an extra sheet also carry ``sheet``). Messages are ``"中文 / English"``. ``ledger_rows`` and
the ``*_sheet_rows`` functions are the inverse, so export → import round-trips every snapshot field.

Rows are grouped into households by 户编号 (kept as the registry id) or, without it, by 户主身份证号.
Household columns are read from the household's first row; another row of the same household that
fills one with a different value is an error (the usual sign of two households sharing a number).

List-valued data: a household's machinery purchases and a person's trainings. XLSX ledgers carry
them in the extra sheets 农机购置 and 培训记录 (one row per item, tied to the household by 户编号 or
户主身份证号 and to the person by 成员编号, 身份证号 or 姓名); CSV, which has one sheet, carries them in
the columns 农机购置 and 培训记录 as a JSON array of the snapshot's objects. Both forms are read from
either file type.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from services.registry.imports import cells as cell
from services.registry.imports.cells import CellError, bilingual
from services.registry.imports.headers import ALIASES, SHEET_ALIASES, HeaderTable, is_ignored
from services.registry.imports.tabular import Sheet, format_bool, parse_bool
from shared.idcard import InvalidIdNumber, validate_id_number
from shared.problems import Problem


@dataclass(frozen=True)
class Column:
    key: str
    title: str  # the export header (units in brackets are part of it, and optional on import)
    level: str  # "household" | "person" | "item" (a row of an extra sheet)
    path: tuple[str, ...] | None = None  # where the value lives in the household / member / item
    kind: str = "text"  # text upper word words bool int grade decimal date id json
    vocab: str | None = None
    en: str = ""  # English name, for messages


def H(key, title, path, kind="text", vocab=None, en=""):  # noqa: N802 - table shorthand
    return Column(key, title, "household", path, kind, vocab, en or key)


def P(key, title, path, kind="text", vocab=None, en=""):  # noqa: N802
    return Column(key, title, "person", path, kind, vocab, en or key)


# The main sheet, in export order: the original 39 columns first (their headers and order unchanged).
COLUMNS: list[Column] = [
    H("household_id", "户编号", None, en="household number"),
    H("region_code", "县区代码", ("region_code",), en="county code"),
    H("township_code", "乡镇代码", ("village", "township_code")),
    H("township_name", "乡镇", ("village", "township_name")),
    H("village_code", "行政村代码", ("village", "code")),
    H("village_name", "行政村", ("village", "name")),
    H("is_poor_village", "贫困村", ("village", "is_poor_village"), "bool"),
    H("is_deep_poverty_village", "深度贫困村", ("village", "is_deep_poverty_village"), "bool"),
    H("status", "贫困户状态", ("status",), "word", "status"),
    H("identified_year", "识别年度", ("identified_year",), "int"),
    H("exit_date", "脱贫日期", ("exit_date",), "date"),
    H("categories", "户类型", ("categories",), "words", "categories"),
    H("dibao_class", "低保类别", ("dibao_class",), "upper"),
    H("poverty_causes", "致贫原因", ("poverty_causes",), "words", "poverty_causes"),
    H("income_year", "收入年度", ("income", "year"), "int"),
    H("per_capita_net", "人均纯收入", ("income", "per_capita_net"), "decimal", en="per-capita net income"),
    H("g_food", "不愁吃", ("guarantees", "food"), "bool"),
    H("g_clothing", "不愁穿", ("guarantees", "clothing"), "bool"),
    H("g_compulsory_education", "义务教育保障", ("guarantees", "compulsory_education"), "bool"),
    H("g_basic_medical", "基本医疗保障", ("guarantees", "basic_medical"), "bool"),
    H("g_housing_safety", "住房安全保障", ("guarantees", "housing_safety"), "bool"),
    H("g_drinking_water", "饮水安全保障", ("guarantees", "drinking_water"), "bool"),
    H("housing_grade", "住房安全等级", ("housing", "safety_grade"), "upper", en="housing safety grade"),
    H("relocated", "易地搬迁", ("relocation", "relocated"), "bool"),
    H("moved_in", "搬迁入住", ("relocation", "moved_in"), "bool"),
    H("head_name", "户主姓名", None, en="head's name"),
    H("head_id_number", "户主身份证号", None, "id", en="head's ID number"),
    P("person_id", "成员编号", ("id",), en="person id"),
    P("name", "姓名", ("name",), en="name"),
    P("id_number", "身份证号", ("id_number",), "id", en="ID number"),
    P("sex", "性别", ("sex",), "word", "sex"),
    P("birth_date", "出生日期", ("birth_date",), "date", en="birth date"),
    P("relation", "与户主关系", ("relation",), "word", "relation", en="relation to the head"),
    P("labour_capacity", "劳动能力", ("labour_capacity",), "word", "labour_capacity"),
    P("health", "健康状况", ("health",), "word", "health"),
    P("disability_grade", "残疾等级", ("disability", "grade"), "grade"),
    P("disability_kind", "残疾类别", ("disability", "kind"), "word", "disability_kind"),
    P("student_stage", "在校情况", ("student", "stage"), "word", "student_stage"),
    P("deceased", "是否已故", ("deceased",), "bool"),
    P("date_of_death", "死亡日期", ("date_of_death",), "date", en="date of death"),
    # --- household facts the entitlements and assessments read (added so nothing is lost on export)
    H("g_income_source", "有稳定收入来源", ("guarantees", "income_source"), "bool"),
    H("g_road_access", "通硬化路", ("guarantees", "road_access"), "bool"),
    H("g_electricity", "通生活用电", ("guarantees", "electricity"), "bool"),
    H("g_television", "通广播电视", ("guarantees", "television"), "bool"),
    H("housing_no_house", "无房户", ("housing", "no_house"), "bool"),
    H("housing_renovated", "危房已改造", ("housing", "renovated"), "bool"),
    H("housing_planned_work", "危房改造计划", ("housing", "planned_work"), "word", "planned_work"),
    H("water_in_tap", "自来水入户", ("water", "in_tap_coverage"), "bool"),
    H("water_planned_well", "计划打井", ("water", "planned_well"), "word", "well"),
    H("relocation_site", "安置点类型", ("relocation", "site_type"), "word", "site"),
    H("medical_out_of_pocket_ytd", "当年医疗自付(元)", ("medical_out_of_pocket_ytd",), "decimal"),
    H("disaster_this_year", "当年受灾", ("disaster_this_year",), "bool"),
    # Rigid expenses (刚性支出) that can put a household inside the monitoring range (docs/monitoring.md)
    H("rigid_year", "刚性支出年度", ("rigid_expenses", "year"), "int"),
    H("rigid_medical", "医疗刚性支出(元)", ("rigid_expenses", "medical"), "decimal"),
    H("rigid_schooling", "教育刚性支出(元)", ("rigid_expenses", "schooling"), "decimal"),
    H("rigid_disaster", "灾害损失(元)", ("rigid_expenses", "disaster"), "decimal"),
    H("rigid_accident", "意外事故支出(元)", ("rigid_expenses", "accident"), "decimal"),
    H("rigid_disability_care", "残疾照护支出(元)", ("rigid_expenses", "disability_care"), "decimal"),
    H("crops_mu", "种植面积(亩)", ("production", "crops_mu"), "decimal"),
    H("poultry", "家禽(羽)", ("production", "poultry"), "int"),
    H("rabbits", "兔(只)", ("production", "rabbits"), "int"),
    H("pigs_sheep", "猪羊(头)", ("production", "pigs_sheep"), "int"),
    H("beef_cattle", "肉牛(头)", ("production", "beef_cattle"), "int"),
    H("four_fish_mu", "四大家鱼(亩)", ("production", "four_fish_mu"), "decimal"),
    H("special_aquaculture_mu", "特种水产(亩)", ("production", "special_aquaculture_mu"), "decimal"),
    H("bee_boxes", "蜜蜂(箱)", ("production", "bee_boxes"), "int"),
    H("fruit_new_mu", "果业新种(亩)", ("production", "fruit_new_mu"), "decimal"),
    H("fruit_tending_mu", "果业抚育(亩)", ("production", "fruit_tending_mu"), "decimal"),
    H("camellia_new_mu", "油茶新种(亩)", ("production", "camellia_new_mu"), "decimal"),
    H("camellia_tending_mu", "油茶抚育(亩)", ("production", "camellia_tending_mu"), "decimal"),
    H("double_rice_mu", "双季稻(亩)", ("production", "double_rice_mu"), "decimal"),
    H("oil_crops_mu", "油料作物(亩)", ("production", "oil_crops_mu"), "decimal"),
    H("herbs_mu", "中药材(亩)", ("production", "herbs_mu"), "decimal"),
    H("special_livestock", "特种养殖(头只)", ("production", "special_livestock"), "int"),
    H("land_out_farmland_mu", "流转出耕地(亩)", ("production", "land_rented_out", "farmland_mu"), "decimal"),
    H("land_out_mountain_mu", "流转出山地(亩)", ("production", "land_rented_out", "mountain_mu"), "decimal"),
    H("covid_vegetables_mu", "疫情滞销蔬菜(亩)", ("production", "covid_unsold", "vegetables_mu"), "decimal"),
    H("covid_pomelo_kg", "疫情滞销柚子(公斤)", ("production", "covid_unsold", "pomelo_kg"), "decimal"),
    H("covid_navel_orange_kg", "疫情滞销脐橙(公斤)", ("production", "covid_unsold", "navel_orange_kg"), "decimal"),
    H("covid_poultry", "疫情滞销家禽(羽)", ("production", "covid_unsold", "poultry"), "int"),
    H("covid_fish_mu", "疫情滞销鱼(亩)", ("production", "covid_unsold", "fish_mu"), "decimal"),
    H("covid_honey_kg", "疫情滞销蜂蜜(公斤)", ("production", "covid_unsold", "honey_kg"), "decimal"),
    H("covid_rabbits", "疫情滞销兔(只)", ("production", "covid_unsold", "rabbits"), "int"),
    H("covid_bamboo_rats", "疫情滞销竹鼠(只)", ("production", "covid_unsold", "bamboo_rats"), "int"),
    H("facility_farmland_in_mu", "搬迁户流转入耕地(亩)",
      ("production", "relocated_facility", "land_rented_in_farmland_mu"), "decimal"),
    H("facility_mountain_in_mu", "搬迁户流转入山地(亩)",
      ("production", "relocated_facility", "land_rented_in_mountain_mu"), "decimal"),
    H("facility_agriculture_mu", "搬迁户设施农业(亩)",
      ("production", "relocated_facility", "facility_agriculture_mu"), "decimal"),
    H("facility_herbs_mu", "搬迁户中药材(亩)", ("production", "relocated_facility", "herbs_mu"), "decimal"),
    H("facility_reishi_large", "搬迁户灵芝大袋(袋)", ("production", "relocated_facility", "reishi_large_bags"), "int"),
    H("facility_reishi_small", "搬迁户灵芝小袋(袋)", ("production", "relocated_facility", "reishi_small_bags"), "int"),
    H("facility_equipment_price", "搬迁户加工设备(元)",
      ("production", "relocated_facility", "processing_equipment_price"), "decimal"),
    H("facility_aquaculture_m2", "搬迁户水产设施(平方米)",
      ("production", "relocated_facility", "aquaculture_facility_m2"), "decimal"),
    # --- person facts
    P("self_care", "自理能力", ("self_care",), "word", "self_care"),
    P("bedridden", "长期卧床", ("bedridden",), "bool"),
    P("rehab_condition", "康复救助类别", ("rehab_condition",), "word", "rehab"),
    P("chronic_outpatient_cost", "慢病门诊费用(元)", ("chronic_outpatient_cost",), "decimal"),
    P("dibao_covered", "个人纳入低保", ("dibao_covered",), "bool"),
    P("tekun", "特困供养", ("tekun",), "word", "tekun", en="特困 support (dispersed / concentrated)"),
    P("monitoring", "监测风险", ("monitoring",), "words", "risk", en="monitoring risks"),
    P("student_boarding", "寄宿", ("student", "boarding"), "bool"),
    P("student_special_school", "特殊教育学校", ("student", "special_school"), "bool"),
    P("student_school", "就读学校", ("student", "school")),
    P("student_major_group", "专业类别", ("student", "major_group")),
    P("student_year", "年级", ("student", "year_of_study"), "int"),
    P("student_admitted", "当年新生", ("student", "admitted_this_year"), "bool"),
    P("student_entry_year", "入学年份", ("student", "entry_year"), "int", en="school entry year"),
    P("student_out_of_province", "省外就读", ("student", "out_of_province"), "bool"),
    P("student_need_level", "困难等级", ("student", "need_level"), "int"),
    P("student_vocational_tuition", "中职学费(元)", ("student", "vocational_tuition"), "decimal"),
    P("student_loan_requested", "申请助学贷款(元)", ("student", "loan_requested"), "decimal"),
    P("employment_place", "务工地点", ("employment", "place"), "word", "work_place"),
    P("employment_monthly_wage", "月工资(元)", ("employment", "monthly_wage"), "decimal"),
    P("employment_contract_months", "合同月数", ("employment", "contract_months"), "int"),
    P("employment_months_worked", "务工月数", ("employment", "months_worked"), "int"),
    P("employment_workshop", "扶贫车间就业", ("employment", "workshop"), "bool"),
    P("public_post_monthly_pay", "公益岗位月工资(元)", ("employment", "public_post", "monthly_pay"), "decimal"),
    P("employment_key_enterprise", "重点企业新招", ("employment", "key_enterprise_new_hire"), "bool"),
    P("employment_hired_year", "招聘年度", ("employment", "hired_year"), "int"),
    P("employment_agency_referral", "中介介绍就业", ("employment", "agency_referral"), "bool"),
    P("employment_consecutive_months", "连续务工月数", ("employment", "consecutive_months"), "int"),
    P("employment_self_employed_months", "自主创业月数", ("employment", "self_employed_months"), "int"),
]
# The list columns of a one-sheet (CSV) ledger: a JSON array of the snapshot's objects.
LIST_COLUMNS: list[Column] = [
    H("machinery", "农机购置", ("production", "machinery"), "json", en="machinery purchases"),
    P("trainings", "培训记录", ("trainings",), "json", en="trainings"),
]
HEADER = [c.title for c in COLUMNS]
CSV_HEADER = HEADER + [c.title for c in LIST_COLUMNS]
BY_KEY = {c.key: c for c in COLUMNS + LIST_COLUMNS}
TITLE = {c.key: c.title for c in COLUMNS + LIST_COLUMNS}
HOUSEHOLD_KEYS = [c.key for c in COLUMNS + LIST_COLUMNS if c.level == "household"]
PERSON_COLUMNS = [c for c in COLUMNS + LIST_COLUMNS if c.level == "person"]
HOUSEHOLD_COLUMNS = [c for c in COLUMNS + LIST_COLUMNS if c.level == "household"]
PERSON_KEYS = ("person_id", "name", "id_number", "relation")
REQUIRED = ("region_code", "name", "id_number", "relation")
MAIN_HEADERS = HeaderTable({c.key: (c.title, *ALIASES.get(c.key, ())) for c in COLUMNS + LIST_COLUMNS})


def I(key, title, path, kind="text", vocab=None, en=""):  # noqa: N802
    return Column(key, title, "item", path, kind, vocab, en or key)


# The extra sheets of an XLSX ledger: sheet key → (export title, columns).
SHEETS: dict[str, tuple[str, list[Column]]] = {
    "machinery": ("农机购置", [
        I("household_id", "户编号", None), I("head_id_number", "户主身份证号", None, "id"),
        I("category", "农机类别", ("category",), en="machine category"),
        I("price", "购置价格(元)", ("price",), "decimal", en="price"),
        I("national_subsidy", "国家补贴(元)", ("national_subsidy",), "decimal", en="national subsidy")]),
    "trainings": ("培训记录", [
        I("household_id", "户编号", None), I("head_id_number", "户主身份证号", None, "id"),
        I("person_id", "成员编号", None), I("name", "姓名", None), I("id_number", "身份证号", None, "id"),
        I("training_name", "培训名称", ("name",), en="training name"),
        I("days", "培训天数", ("days",), "int"), I("certified", "取得证书", ("certified",), "bool"),
        I("year", "培训年度", ("year",), "int"), I("subsidy_paid", "已享受培训补贴", ("subsidy_paid",), "bool")]),
}
SHEET_HEADERS = {name: HeaderTable({c.key: (c.title, *ALIASES.get(c.key, ())) for c in columns})
                 for name, (_, columns) in SHEETS.items()}
SHEET_NAMES = HeaderTable(SHEET_ALIASES)

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
PLANNED_WORK = {"拆除重建": "rebuild", "重建": "rebuild", "修缮加固": "repair", "维修加固": "repair"}
WELL = {"深水井": "deep", "深井": "deep", "手压井": "hand_pump"}
SITE = {"城区园区安置": "urban_park", "城区安置": "urban_park", "集镇安置": "town", "集镇": "town",
        "农村安置": "rural", "中心村安置": "rural"}
SELF_CARE = {"能自理": "able", "完全自理": "able", "部分丧失": "partial_loss", "部分自理": "partial_loss",
             "完全丧失": "full_loss", "不能自理": "full_loss"}
WORK_PLACE = {"省外": "other_province", "省内县外": "in_province_cross_county", "区内园区": "in_district_park",
              "本地": "local", "就近": "local"}
REHAB = {"脑瘫": "cerebral_palsy", "听障": "deaf", "聋儿": "deaf", "孤独症": "autism", "智力障碍": "intellectual"}
TEKUN = {"分散供养": "dispersed", "分散": "dispersed", "集中供养": "concentrated", "集中": "concentrated"}
RISK = {**CAUSE, "意外事故": "accident", "意外": "accident", "疫情": "epidemic", "收入骤减": "income_drop",
        "刚性支出": "rigid_expense"}
# Export writes the first Chinese word for each code.
VOCABULARIES = {"status": STATUS, "categories": CATEGORY, "poverty_causes": CAUSE, "relation": RELATION,
                "labour_capacity": LABOUR, "health": HEALTH, "disability_kind": DISABILITY_KIND,
                "student_stage": STAGE, "sex": SEX, "planned_work": PLANNED_WORK, "well": WELL, "site": SITE,
                "self_care": SELF_CARE, "work_place": WORK_PLACE, "rehab": REHAB, "tekun": TEKUN,
                "risk": RISK}
REVERSE = {key: {code: word for word, code in reversed(list(vocab.items()))} for key, vocab in VOCABULARIES.items()}
SEPARATORS = re.compile(r"[、,，;；/\s]+")
HOUSEHOLD_ID = re.compile(r"^[A-Za-z0-9._-]{1,40}$")
MAIN_SHEET = ""  # errors of the main sheet carry no ``sheet``


@dataclass
class LedgerHousehold:
    key: str
    rows: list[int] = field(default_factory=list)  # spreadsheet row numbers, in file order
    cells: list[dict[str, str]] = field(default_factory=list)
    snapshot: dict | None = None
    body: dict | None = None  # what the file says, before validation (update mode merges it)
    errors: list[dict] = field(default_factory=list)
    member_rows: list[int] = field(default_factory=list)
    machinery: list[tuple[str, int, dict]] = field(default_factory=list)  # (sheet, row, item) from a sheet
    trainings: dict[int, list[tuple[str, int, dict]]] = field(default_factory=dict)  # person row → items


@dataclass
class LedgerParse:
    households: list[LedgerHousehold]
    errors: list[dict]  # file-level and row-level, each {row, column, message}
    rows: int
    warnings: list[dict] = field(default_factory=list)
    present: set[str] = field(default_factory=set)  # ledger keys the file has a column (or sheet) for
    header_ok: bool = True

    @property
    def valid(self) -> list[LedgerHousehold]:
        return [h for h in self.households if h.snapshot is not None and not h.errors]

    def all_errors(self) -> list[dict]:
        found = self.errors + [e for h in self.households for e in h.errors]
        return sorted(found, key=error_order)


def error_order(error: dict) -> tuple:
    return (bool(error.get("sheet")), error.get("sheet", ""), error["row"], error["column"])


def problem(row: int, column: str, zh: str, en: str, sheet: str = MAIN_SHEET, **extra) -> dict:
    found = {"row": row, "column": column, "message": bilingual(zh, en), **extra}
    if sheet:
        found["sheet"] = sheet
    return found


# ---------------------------------------------------------------- headers

def column_map(header: list[str], *, strict: bool = False,
               table: HeaderTable = MAIN_HEADERS, titles: dict[str, str] | None = None,
               sheet: str = MAIN_SHEET) -> tuple[dict[str, int], list[dict], list[dict]]:
    """Ledger key → column index, the header errors and the warnings (unknown headers).

    An unknown header is a warning, or with ``strict`` an error; both are listed before anything is
    read, so a renamed column is never silently dropped.
    """
    titles = titles or TITLE
    found: dict[str, int] = {}
    errors, warnings = [], []
    for index, title in enumerate(header):
        if is_ignored(title):
            continue
        key = table.key_of(title)
        if key is None:
            hint = table.suggestion(title)
            zh = f"不认识的列 {title!r}，未读取" + (f"（是否应为 {hint}？）" if hint else "")
            en = f"unknown column {title!r}, not read" + (f" (did you mean {hint}?)" if hint else "")
            (errors if strict else warnings).append(problem(1, title, zh, en, sheet))
            continue
        if key in found:
            errors.append(problem(1, title, f"与第 {found[key] + 1} 列重复（{titles[key]}）",
                                  f"column given twice ({titles[key]}, also column {found[key] + 1})", sheet))
            continue
        found[key] = index
    return found, errors, warnings


def missing_columns(found: dict[str, int]) -> dict | None:
    """One file-level error naming every required column the main sheet lacks, or None."""
    missing = [TITLE[key] for key in REQUIRED if key not in found]
    if "household_id" not in found and "head_id_number" not in found:
        missing.append(f"{TITLE['household_id']} 或 {TITLE['head_id_number']}")
    if not missing:
        return None
    names = "、".join(missing)
    return problem(1, names, f"缺少必需的列：{names}；未读取任何行",
                   f"required column(s) missing: {names}; no row was read", missing=missing)


# ---------------------------------------------------------------- cells

def _word(column: Column, text: str) -> str:
    vocab = VOCABULARIES[column.vocab]
    if text in vocab:
        return vocab[text]
    if text in vocab.values():
        return text
    choices = "、".join(vocab)
    raise CellError(column.key, f"无法识别的取值 {text!r}，应为 {choices} 之一",
                    f"unknown value {text!r}; expected one of {choices}")


def _bool(key: str, text: str) -> bool | None:
    try:
        return parse_bool(text)
    except ValueError:
        raise CellError(key, f"应为 是/否，实为 {text!r}", f"expected 是/否 (yes/no), got {text!r}") from None


def _json_list(key: str, text: str) -> list:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise CellError(key, "应为 JSON 数组，例如 [{\"category\": \"微耕机\", \"price\": \"12000.00\"}]",
                        "expected a JSON array of objects, e.g. [{\"category\": \"tiller\", \"price\": \"12000.00\"}]")
    return value


def read_value(column: Column, text: str) -> Any:
    """A non-empty cell's value as the snapshot holds it (validation of ranges is the snapshot's)."""
    kind = column.kind
    if kind in ("text", "date", "id"):
        return text
    if kind == "upper":
        return text.upper()
    if kind == "word":
        return _word(column, text)
    if kind == "words":
        return [_word(column, part) for part in SEPARATORS.split(text) if part]
    if kind == "bool":
        return _bool(column.key, text)
    if kind == "int":
        return cell.int_value(column.key, text)
    if kind == "grade":
        return cell.int_value(column.key, text.removesuffix("级"))
    if kind == "decimal":
        return cell.decimal_text(column.key, text)
    if kind == "json":
        return _json_list(column.key, text)
    raise AssertionError(kind)


def cell_text(column: Column, raw: Any) -> str:
    """A raw cell (typed from XLSX, text from CSV) as text; raises CellError with the precise cause."""
    if column.kind == "id":
        return cell.id_number_text(column.key, raw)
    if column.kind == "date":
        return cell.date_text(column.key, raw)
    return cell.plain_text(raw)


def _set(target: dict, path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def get_path(source: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(source, dict):
            return None
        source = source.get(part)
    return source


def _body_of(cells: dict[str, str], columns: list[Column], errors: list[CellError]) -> dict[str, Any]:
    """The snapshot fields a row fills; a blank cell sets nothing, so the snapshot's default applies
    and an optional object (income, student, employment, …) exists only when one of its cells is filled."""
    body: dict[str, Any] = {}
    level = columns[0].level
    for key, text in cells.items():  # only the file's columns, in its order
        column = BY_KEY[key]
        if not text or column.path is None or column.level != level:
            continue
        try:
            _set(body, column.path, read_value(column, text))
        except CellError as exc:
            errors.append(exc)
    return body


def household_body(cells: dict[str, str], errors: list[CellError] | None = None) -> dict[str, Any]:
    found: list[CellError] = [] if errors is None else errors
    body = _body_of(cells, HOUSEHOLD_COLUMNS, found)
    body.setdefault("region_code", "")
    if errors is None and found:
        raise found[0]
    return body


def person_body(cells: dict[str, str], errors: list[CellError] | None = None) -> dict[str, Any]:
    found: list[CellError] = [] if errors is None else errors
    person = _body_of(cells, PERSON_COLUMNS, found)
    if not cells.get("name"):
        found.append(CellError("name", "姓名不能为空", "姓名 (name) is required"))
    number = person.get("id_number")
    if number:
        try:  # ledgers often leave sex and birth date to the ID number
            info = validate_id_number(number)
            person.setdefault("sex", info.sex)
            person.setdefault("birth_date", info.birth_date.isoformat())
        except InvalidIdNumber as exc:
            found.append(cell.id_number_problem("id_number", exc, number))
    if not cells.get("relation"):
        found.append(CellError("relation", "与户主关系不能为空", "与户主关系 (relation to the head) is required"))
    if errors is None and found:
        raise found[0]
    return person


# ---------------------------------------------------------------- parse

Validator = Callable[[dict, str], dict]  # (body, household id) → canonical snapshot or raise Problem


def _row_cells(columns: dict[str, int], by_key: dict[str, Column], row: list[Any],
               errors: list[tuple[str, str]]) -> dict[str, str]:
    found = {}
    width = len(row)
    for key, index in columns.items():
        raw = row[index] if index < width else None
        if raw is None or raw == "":
            found[key] = ""
            continue
        column = by_key[key]
        if type(raw) is str and column.kind not in ("id", "date"):  # the common case, kept fast
            found[key] = raw.strip()
            continue
        try:
            found[key] = cell_text(by_key[key], raw)
        except CellError as exc:
            errors.append((exc.key, str(exc)))
            found[key] = ""
    return found


def parse_ledger(header: list[str], rows: list[list[Any]], validate: Validator, *, admin: bool,
                 progress: Callable[[int], None] | None = None, sheets: Iterable[Sheet] = (),
                 strict: bool = False, first_line: int = 2) -> LedgerParse:
    columns, errors, warnings = column_map(header, strict=strict)
    missing = missing_columns(columns)
    if missing:
        errors.append(missing)
    present = set(columns)
    extra = _read_sheets(list(sheets), strict, errors, warnings, present)
    if missing or any(e["row"] == 1 and "missing" not in e and not e.get("sheet") for e in errors):
        return LedgerParse([], errors, len(rows), warnings, present, header_ok=False)
    groups: dict[str, LedgerHousehold] = {}
    counted = 0
    for offset, row in enumerate(rows):
        line = offset + first_line
        if not any(v not in (None, "") for v in row):
            continue  # a blank row
        counted += 1
        bad: list[tuple[str, str]] = []
        cells = _row_cells(columns, BY_KEY, row, bad)
        key = cells.get("household_id") or cells.get("head_id_number", "")
        if not key:
            errors.append(problem(line, TITLE["household_id"], "该行未指明所属户（户编号或户主身份证号）",
                                  "row names no household (户编号 or 户主身份证号)"))
            continue
        group = groups.setdefault(key, LedgerHousehold(key))
        group.rows.append(line)
        group.cells.append(cells)
        group.errors += [{"row": line, "column": TITLE[k], "message": message} for k, message in bad]
        if progress and counted % 1000 == 0:
            progress(1000)
    _attach_items(groups, extra, errors)
    living: dict[str, tuple[int, str]] = {}  # id number → (row, household key): one household per living person
    for group in groups.values():
        _parse_household(group, validate, admin)
        for line, cells in zip(group.rows, group.cells):
            number = cells.get("id_number", "")
            if number and not _bool_or_false(cells.get("deceased", "")):
                if number in living and living[number][1] != group.key:
                    group.errors.append(problem(line, TITLE["id_number"],
                                                f"与第 {living[number][0]} 行是同一人（户 {living[number][1]}）",
                                                f"same person as row {living[number][0]} "
                                                f"(household {living[number][1]})"))
                living.setdefault(number, (line, group.key))
    if progress:
        progress(counted % 1000)
    return LedgerParse(list(groups.values()), errors, counted, warnings, present)


def _bool_or_false(text: str) -> bool:
    try:
        return bool(parse_bool(text))
    except ValueError:
        return False


def _read_sheets(sheets: list[Sheet], strict: bool, errors: list[dict], warnings: list[dict],
                 present: set[str]) -> dict[str, list[tuple[str, int, dict[str, str]]]]:
    """Rows of the extra sheets by sheet key: (sheet title, row, cells)."""
    found: dict[str, list[tuple[str, int, dict[str, str]]]] = {}
    for sheet in sheets:
        name = SHEET_NAMES.key_of(sheet.name)
        if name is None:
            if any(any(v not in (None, "") for v in row) for row in sheet.rows):
                (errors if strict else warnings).append(problem(
                    1, "", f"不认识的工作表 {sheet.name!r}，未读取（可读取：农机购置、培训记录）",
                    f"unknown sheet {sheet.name!r}, not read (read: 农机购置, 培训记录)", sheet.name))
            continue
        _, columns = SHEETS[name]
        by_key = {c.key: c for c in columns}
        titles = {c.key: c.title for c in columns}
        index, header_errors, header_warnings = column_map(sheet.header, strict=strict, table=SHEET_HEADERS[name],
                                                           titles=titles, sheet=sheet.name)
        errors += header_errors
        warnings += header_warnings
        if "household_id" not in index and "head_id_number" not in index:
            errors.append(problem(1, "户编号", "缺少列：户编号 或 户主身份证号",
                                  "required column missing: 户编号 or 户主身份证号", sheet.name))
            continue
        present.add(name)
        rows = found.setdefault(name, [])
        for offset, row in enumerate(sheet.rows):
            if not any(v not in (None, "") for v in row):
                continue
            line = offset + sheet.first_line
            bad: list[tuple[str, str]] = []
            cells = _row_cells(index, by_key, row, bad)
            for key, message in bad:
                errors.append({"row": line, "column": titles[key], "message": message, "sheet": sheet.name})
            if not bad:
                rows.append((sheet.name, line, cells))
    return found


def _attach_items(groups: dict[str, LedgerHousehold], extra: dict, errors: list[dict]) -> None:
    for key, columns in (("machinery", SHEETS["machinery"][1]), ("trainings", SHEETS["trainings"][1])):
        titles = {c.key: c.title for c in columns}
        for sheet, line, cells in extra.get(key, []):
            owner = cells.get("household_id") or cells.get("head_id_number", "")
            group = groups.get(owner)
            if group is None:
                errors.append(problem(line, titles["household_id"], f"主表中没有户 {owner!r}",
                                      f"no household {owner!r} in the main sheet", sheet))
                continue
            item: dict[str, Any] = {}
            try:
                for column in columns:
                    if column.path and cells.get(column.key):
                        _set(item, column.path, read_value(column, cells[column.key]))
            except CellError as exc:
                group.errors.append({"row": line, "column": titles[exc.key], "message": str(exc), "sheet": sheet})
                continue
            if key == "machinery":
                group.machinery.append((sheet, line, item))
                continue
            person_row = _member_row(group, cells)
            if person_row is None:
                group.errors.append(problem(line, titles["person_id"], f"户 {owner} 中找不到该成员",
                                            f"no such member in household {owner}", sheet))
                continue
            group.trainings.setdefault(person_row, []).append((sheet, line, item))


def _member_row(group: LedgerHousehold, cells: dict[str, str]) -> int | None:
    for key in ("person_id", "id_number", "name"):
        wanted = cells.get(key)
        if not wanted:
            continue
        lines = [line for line, row in zip(group.rows, group.cells) if row.get(key) == wanted]
        return lines[0] if len(lines) == 1 else None
    return None


def _parse_household(group: LedgerHousehold, validate: Validator, admin: bool) -> None:
    first_row, first = group.rows[0], group.cells[0]
    household_keys = [key for key in HOUSEHOLD_KEYS if first.get(key) and key != "household_id"]
    for line, cells in zip(group.rows[1:], group.cells[1:]):
        for key in household_keys:
            if cells.get(key) and cells[key] != first[key]:
                group.errors.append(problem(line, TITLE[key], f"与本户第 {first_row} 行（{first[key]!r}）不一致",
                                            f"differs from the household's row {first_row} ({first[key]!r})"))
    if first.get("household_id") and not HOUSEHOLD_ID.match(first["household_id"]):
        group.errors.append(problem(first_row, TITLE["household_id"],
                                    "户编号只能含字母、数字、'.'、'_'、'-'（不超过 40 个）",
                                    "户编号 may hold letters, digits, '.', '_' and '-' (≤ 40)"))
    failed = bool(group.errors)
    cell_errors: list[CellError] = []
    body = household_body(first, cell_errors)
    for exc in cell_errors:
        group.errors.append({"row": first_row, "column": TITLE[exc.key], "message": str(exc)})
    if group.machinery:
        if "machinery" in body.get("production", {}):
            sheet, line, _ = group.machinery[0]
            group.errors.append(problem(line, "", "农机购置在工作表和列中都填写了，只能填一处",
                                        "machinery given both in the sheet and in the 农机购置 column", sheet))
        body.setdefault("production", {})["machinery"] = [item for _, _, item in group.machinery]
    members, member_rows = [], []
    for line, cells in zip(group.rows, group.cells):
        if not any(cells.get(k) for k in PERSON_KEYS):
            continue  # a household-only row (a household without members)
        row_errors: list[CellError] = []
        person = person_body(cells, row_errors)
        if line in group.trainings:
            if "trainings" in person:
                sheet, item_line, _ = group.trainings[line][0]
                group.errors.append(problem(item_line, "", "培训记录在工作表和列中都填写了，只能填一处",
                                            "trainings given both in the sheet and in the 培训记录 column", sheet))
            person["trainings"] = [item for _, _, item in group.trainings[line]]
        for exc in row_errors:
            group.errors.append({"row": line, "column": TITLE[exc.key], "message": str(exc)})
        members.append(person)
        member_rows.append(line)
    group.member_rows = member_rows
    failed = failed or bool(group.errors)
    heads = [line for line, m in zip(member_rows, members) if m.get("relation") == "head"]
    if members and not failed:
        if len(heads) != 1:
            group.errors.append(problem(first_row, TITLE["relation"], f"每户须有且只有一名户主，实有 {len(heads)} 名",
                                        f"a household has exactly one 户主, found {len(heads)}"))
        else:
            head = group.cells[group.rows.index(heads[0])]
            for key, head_key in (("head_name", "name"), ("head_id_number", "id_number")):
                given = {c.get(key, "") for c in group.cells if c.get(key)}
                if given and given != {head.get(head_key, "")}:
                    group.errors.append(problem(heads[0], TITLE[key], f"{TITLE[key]}与户主行不一致",
                                                f"{TITLE[key]} does not match the 户主 row"))
    if group.errors:
        return  # validating further would only repeat these errors
    if body.get("status", "candidate") != "candidate" and not admin:
        group.errors.append(problem(first_row, TITLE["status"], "只有管理员可以导入“候选”以外状态的户",
                                    "only an admin may import households in a status other than 候选"))
        return
    body["members"] = members
    group.body = body
    household_id = first.get("household_id") or None
    try:
        group.snapshot = validate(body, household_id)
    except Problem as invalid:
        for error in invalid.extra.get("errors", []):
            group.errors.append(locate(error, group))


_PYDANTIC_ZH = {"missing": "必须填写", "literal_error": "取值不在允许范围内", "int_parsing": "应为整数",
                "int_from_float": "应为整数", "decimal_parsing": "应为数字", "greater_than_equal": "数值过小",
                "less_than_equal": "数值过大", "greater_than": "数值过小", "less_than": "数值过大",
                "string_pattern_mismatch": "格式不对", "date_from_datetime_parsing": "不是有效日期",
                "date_parsing": "不是有效日期", "date_from_datetime_inexact": "不是有效日期",
                "bool_parsing": "应为 是/否", "extra_forbidden": "不认识的字段", "string_type": "应为文本",
                "value_error": "取值无效", "list_type": "应为列表", "dict_type": "应为对象"}
_MESSAGE_ZH = [
    (re.compile(r"birth date (\S+) does not match the ID number \((\S+)\)"), "出生日期 {0} 与身份证号（{1}）不符"),
    (re.compile(r"sex (\S+) does not match the ID number \((\S+)\)"), "性别 {0} 与身份证号（{1}）不符"),
    (re.compile(r"same ID number as member (\d+)"), "与本户另一成员身份证号相同"),
    (re.compile(r"member ids must be unique"), "成员编号重复"),
    (re.compile(r"check digit does not match"), "身份证号校验位不符（GB 11643），有字符录错"),
    (re.compile(r"must be 18 characters"), "身份证号应为 18 位"),
]


def _message_zh(error: dict) -> str:
    message = error.get("msg", "invalid")
    for pattern, zh in _MESSAGE_ZH:
        if match := pattern.search(message):
            return zh.format(*match.groups())
    return _PYDANTIC_ZH.get(error.get("type", ""), "取值无效")


def _column_for(path: tuple, columns: list[Column], fallback: str) -> str:
    for test in (lambda p: p == path, lambda p: p[:len(path)] == path, lambda p: path[:len(p)] == p):
        for column in columns:
            if column.path and test(column.path):
                return column.key
    return fallback


def locate(error: dict, group: LedgerHousehold) -> dict:
    """A snapshot validation error at the sheet, row and column the value came from."""
    loc = tuple(part for part in error.get("loc", []) if part != "body")
    message = (bilingual(error["msg_zh"], error["msg_en"]) if "msg_zh" in error  # already bilingual
               else bilingual(_message_zh(error), error.get("msg", "invalid")))
    row, sheet = group.rows[0], MAIN_SHEET
    if loc[:2] == ("production", "machinery") and len(loc) > 2 and isinstance(loc[2], int) and group.machinery:
        sheet, row, _ = group.machinery[min(loc[2], len(group.machinery) - 1)]
        key = _column_for(loc[3:], SHEETS["machinery"][1], "category")
        return {"row": row, "column": {c.key: c.title for c in SHEETS["machinery"][1]}[key], "message": message,
                "sheet": sheet}
    if loc and loc[0] == "members" and len(loc) > 1 and isinstance(loc[1], int) and loc[1] < len(group.member_rows):
        row = group.member_rows[loc[1]]
        rest = loc[2:]
        items = group.trainings.get(row)
        if rest[:1] == ("trainings",) and len(rest) > 1 and isinstance(rest[1], int) and items:
            sheet, item_row, _ = items[min(rest[1], len(items) - 1)]
            key = _column_for(rest[2:], SHEETS["trainings"][1], "training_name")
            return {"row": item_row, "column": {c.key: c.title for c in SHEETS["trainings"][1]}[key],
                    "message": message, "sheet": sheet}
        key = _column_for(rest, PERSON_COLUMNS, "name") if rest else "name"
    elif loc and loc[0] == "members":
        key = "person_id"
    else:
        key = _column_for(loc, HOUSEHOLD_COLUMNS, "region_code") if loc else "region_code"
    return {"row": row, "column": TITLE[key], "message": message}


# ---------------------------------------------------------------- export

def _out(column: Column, value: Any) -> Any:
    if value is None:
        return ""
    kind = column.kind
    if kind == "word":
        return REVERSE[column.vocab].get(value, value)
    if kind == "words":
        return "、".join(REVERSE[column.vocab].get(v, v) for v in value)
    if kind == "bool":
        return format_bool(value)
    if kind == "json":
        return json.dumps(value, ensure_ascii=False) if value else ""
    return value


def ledger_rows(snapshot: dict, *, mask: Callable[[str], str] | None = None,
                lists_in_cells: bool = False) -> Iterable[list[Any]]:
    """The main-sheet rows of one household (one per member; a household without members gets one
    row), in ``HEADER`` order, or ``CSV_HEADER`` order with ``lists_in_cells``."""
    members = snapshot.get("members") or []
    head = next((m for m in members if m.get("relation") == "head"), None)
    show = mask or (lambda number: number)
    columns = COLUMNS + (LIST_COLUMNS if lists_in_cells else [])
    household = {c.key: _out(c, get_path(snapshot, c.path)) for c in columns if c.level == "household" and c.path}
    household.update({"household_id": snapshot["id"], "head_name": head and head.get("name"),
                      "head_id_number": head and head.get("id_number") and show(head["id_number"])})
    for member in members or [None]:
        cells = dict(household)
        if member is not None:
            cells.update({c.key: _out(c, get_path(member, c.path)) for c in columns if c.level == "person"})
            cells["id_number"] = member.get("id_number") and show(member["id_number"])
            cells["deceased"] = "是" if member.get("deceased") else "否"
        yield [cells.get(c.key) for c in columns]


def machinery_sheet_rows(snapshot: dict) -> Iterable[list[Any]]:
    columns = SHEETS["machinery"][1]
    for item in (snapshot.get("production") or {}).get("machinery") or []:
        cells = {"household_id": snapshot["id"], **{c.key: _out(c, get_path(item, c.path)) for c in columns if c.path}}
        yield [cells.get(c.key) for c in columns]


def training_sheet_rows(snapshot: dict, *, mask: Callable[[str], str] | None = None) -> Iterable[list[Any]]:
    columns = SHEETS["trainings"][1]
    show = mask or (lambda number: number)
    for member in snapshot.get("members") or []:
        for item in member.get("trainings") or []:
            cells = {"household_id": snapshot["id"], "person_id": member.get("id"), "name": member.get("name"),
                     "id_number": member.get("id_number") and show(member["id_number"]),
                     **{c.key: _out(c, get_path(item, c.path)) for c in columns if c.path}}
            yield [cells.get(c.key) for c in columns]


SHEET_HEADER = {name: [c.title for c in columns] for name, (_, columns) in SHEETS.items()}


def parse_date(text: str) -> date:
    return date.fromisoformat(text)
