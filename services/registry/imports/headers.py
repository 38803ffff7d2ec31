"""Which ledger column a header names: the accepted spellings, held as data, and how headers are compared.

Offices type headers by hand: full-width brackets (``人均纯收入（元）``), spaces, a required-field star
(``*姓名``), a unit or the allowed values in brackets (``住房安全等级（A/B/C/D）``), and the official
term where the template says another (``公民身份号码`` for 身份证号). Every header is compared after
``normalise_header`` (Unicode NFKC, which also turns full-width letters and brackets into ASCII; all
whitespace and stars removed; 【】[]〔〕 folded to ()). A header that still names nothing is tried again
without a trailing bracketed suffix, but only when that suffix is a unit, a value list or a fill-in
hint: ``身份证号(户主)`` is *not* the member's ID number, so it stays unknown and is reported.
"""
from __future__ import annotations

import difflib
import re
import unicodedata

# Ledger key → the headers accepted for it besides its export title (ledger.COLUMNS). Keep a
# spelling here rather than in code; tests/unit/registry/test_ledger_headers.py checks none is ambiguous.
ALIASES: dict[str, tuple[str, ...]] = {
    "household_id": ("户号", "户编码", "家庭编号", "户档案编号", "household_id"),
    "region_code": ("县(区)代码", "区划代码", "县代码", "县区编码", "行政区划代码", "region_code"),
    "township_code": ("乡(镇)代码", "乡镇编码", "乡镇(街道)代码", "township_code"),
    "township_name": ("乡(镇)", "乡镇名称", "乡镇(街道)", "township_name"),
    "village_code": ("村代码", "村编码", "行政村编码", "village_code"),
    "village_name": ("村", "村名称", "行政村名称", "村(社区)", "village_name"),
    "is_poor_village": ("是否贫困村",),
    "is_deep_poverty_village": ("是否深度贫困村",),
    "status": ("户状态", "脱贫状态", "贫困状态", "status"),
    "identified_year": ("识别年份", "建档立卡年度", "identified_year"),
    "exit_date": ("脱贫时间", "exit_date"),
    "categories": ("户属性", "贫困户属性", "categories"),
    "dibao_class": ("低保类型", "dibao_class"),
    "poverty_causes": ("主要致贫原因", "poverty_causes"),
    "income_year": ("收入年份", "income_year"),
    "per_capita_net": ("家庭年人均纯收入", "年人均纯收入", "家庭人均纯收入", "per_capita_net"),
    "g_drinking_water": ("饮水安全",),
    "housing_grade": ("危房等级", "房屋安全等级", "住房等级"),
    "relocated": ("是否易地搬迁", "是否易地扶贫搬迁"),
    "moved_in": ("是否入住", "是否搬迁入住"),
    "head_name": ("户主",),
    "head_id_number": ("户主身份证号码", "户主证件号码", "户主公民身份号码"),
    "person_id": ("人员编号", "person_id"),
    "name": ("成员姓名", "家庭成员姓名", "name"),
    "id_number": ("身份证号码", "证件号码", "公民身份号码", "居民身份证号码", "身份证件号码", "证件号", "身份证",
                  "id_number"),
    "sex": ("sex",),
    "birth_date": ("出生年月日", "生日", "birth_date"),
    "relation": ("与户主的关系", "relation"),
    "labour_capacity": ("劳动技能", "labour_capacity"),
    "health": ("health",),
    "disability_kind": ("残疾类型",),
    "student_stage": ("在校生状况", "在校生情况", "就学情况"),
    "deceased": ("已故", "是否死亡"),
    "self_care": ("生活自理能力",),
    "bedridden": ("是否长期卧床",),
    "employment_place": ("务工地", "就业地点"),
    "employment_monthly_wage": ("务工月收入", "月均工资"),
    "public_post_monthly_pay": ("公益性岗位月工资",),
    "dibao_covered": ("是否纳入低保", "享受低保"),
    "tekun": ("特困人员", "特困供养方式", "供养方式"),
    "monitoring": ("监测风险类型", "返贫风险"),
    "machinery": ("农机",),
    "trainings": ("培训情况",),
}

# Headers offices add for themselves that carry nothing to import: accepted without a warning.
IGNORED = ("序号", "备注", "说明")

# Extra sheets of an XLSX ledger (list-valued data) and their accepted names.
SHEET_ALIASES: dict[str, tuple[str, ...]] = {
    "machinery": ("农机购置", "农机", "农机具购置", "machinery"),
    "trainings": ("培训记录", "培训", "技能培训", "trainings"),
}

_FOLD = str.maketrans({"【": "(", "】": ")", "[": "(", "]": ")", "〔": "(", "〕": ")", "〖": "(", "〗": ")",
                       "{": "(", "}": ")"})
_STRIP = re.compile(r"[\s*※:]+")
_SUFFIX = re.compile(r"^(.+?)\(([^()]*)\)$")
# A bracketed suffix that only says what to fill in: a unit, a value list or a format hint.
UNITS = frozenset({"元", "万元", "元/人", "元/月", "元/年", "元/人/年", "亩", "公斤", "kg", "斤", "头", "只", "羽",
                   "箱", "台", "袋", "个", "天", "日", "月", "个月", "年", "岁", "%", "人", "次", "级", "m2", "㎡",
                   "平方米", "头只", "头/只"})
HINTS = frozenset({"必填", "选填", "文本", "yyyy-mm-dd", "yyyymmdd", "年月日", "18位", "是否", "代码", "编码"})
_VALUE_LIST = re.compile(r"[/、,|;]")


def normalise_header(text: str) -> str:
    """The form headers are compared in (see the module docstring)."""
    folded = unicodedata.normalize("NFKC", str(text)).translate(_FOLD)
    return _STRIP.sub("", folded).lower()


def is_fill_in_hint(suffix: str) -> bool:
    return suffix in UNITS or suffix in HINTS or bool(_VALUE_LIST.search(suffix))


class HeaderTable:
    """Normalised header → key for one set of columns (the main sheet, or one extra sheet)."""

    def __init__(self, names: dict[str, tuple[str, ...]]) -> None:
        self.lookup: dict[str, str] = {}
        self.spelling: dict[str, str] = {}  # normalised → as written here, for messages
        for key, spellings in names.items():
            for spelling in spellings:
                normal = normalise_header(spelling)
                suffixed = _SUFFIX.match(normal)
                # a title with its unit (种植面积(亩)) is also accepted without it
                bare = suffixed.group(1) if suffixed and is_fill_in_hint(suffixed.group(2)) else None
                for form in filter(None, (normal, bare)):
                    if self.lookup.get(form, key) != key:
                        raise ValueError(f"header {spelling!r} would name both {self.lookup[form]} and {key}")
                    self.lookup[form] = key
                    self.spelling.setdefault(form, spelling)

    def key_of(self, header: str) -> str | None:
        normal = normalise_header(header)
        if normal in self.lookup:
            return self.lookup[normal]
        suffixed = _SUFFIX.match(normal)
        if suffixed and is_fill_in_hint(suffixed.group(2)):
            return self.lookup.get(suffixed.group(1))
        return None

    def suggestion(self, header: str) -> str | None:
        """The closest known header, for a "did you mean" hint (None when nothing is close)."""
        close = difflib.get_close_matches(normalise_header(header), list(self.lookup), n=1, cutoff=0.6)
        return self.spelling[close[0]] if close else None


def is_ignored(header: str) -> bool:
    return normalise_header(header) in {normalise_header(h) for h in IGNORED} or not normalise_header(header)
