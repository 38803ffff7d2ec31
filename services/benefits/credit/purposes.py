"""Microcredit loan purposes (贷款用途): a closed vocabulary, held as data.

Banks write purposes in their own words (``婚嫁``, ``盖房``, ``Wedding``, ``house building``).
Every accepted word is listed here against one canonical code; anything else is refused
(422) rather than waved through as an unknown, harmless-looking purpose. Whether a code
is *refused* for a borrower is not decided here but by the borrower's policy pack
(``credit.excluded_purposes``); ``productive`` only documents the seed's split.

Sources: loans serve "developing agricultural industry" (发展农业产业, 001 L727-L733) and
must be "used precisely for developing production, not for weddings, house building,
wealth management, household goods or other non-productive spending" (001 L747);
households with labour but without development conditions may put the loan into a
business entity's cooperative or entrusted operation (003 L367); special-crop, e-commerce
and rural-tourism loans are named in 004 L140; large farm machinery in 003 L148.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Purpose:
    code: str
    label_zh: str
    label_en: str
    productive: bool
    source: str
    synonyms: tuple[str, ...] = ()


PURPOSES: tuple[Purpose, ...] = (
    Purpose("crops", "种植业", "Crop farming", True, "001 L727-L733",
            ("种植", "种田", "种地", "种菜", "蔬菜种植", "粮食种植", "中药材", "种植中药材", "crop", "crop growing",
             "planting")),
    Purpose("livestock", "畜禽养殖", "Livestock and poultry", True, "001 L727-L733",
            ("养殖", "养殖业", "畜牧", "畜牧业", "畜禽", "养猪", "生猪养殖", "养牛", "养羊", "养鸡", "养鸭", "养鹅",
             "养兔", "养蜂", "家禽养殖", "livestock farming", "poultry", "animal husbandry", "pig farming",
             "cattle farming", "beekeeping")),
    Purpose("aquaculture", "水产养殖", "Aquaculture", True, "001 L727-L733",
            ("养鱼", "水产", "渔业", "fish farming", "fishery", "fisheries")),
    Purpose("fruit_and_forestry", "林果种植", "Orchards, camellia and forestry", True, "004 L140",
            ("林果", "果园", "果树", "种果树", "脐橙", "蜜桔", "油茶", "茶叶", "林业", "orchard", "fruit growing",
             "forestry", "camellia", "navel orange")),
    Purpose("farm_machinery", "农机具购置", "Farm machinery", True, "003 L148",
            ("农机", "农机具", "农业机械", "购买农机", "买农机", "machinery", "agricultural machinery", "tractor")),
    Purpose("processing_and_sales", "农产品加工销售", "Processing and selling farm produce", True, "004 L140",
            ("农产品加工", "农产品销售", "加工", "电商", "电子商务", "网店", "processing", "e-commerce", "ecommerce",
             "online shop")),
    Purpose("rural_tourism", "乡村旅游", "Rural tourism", True, "004 L140",
            ("农家乐", "民宿", "旅游", "tourism", "homestay", "agritourism")),
    Purpose("cooperative_operation", "合作或委托经营", "Cooperative or entrusted operation", True, "003 L367",
            ("合作经营", "委托经营", "入股经营", "入股分红", "entrusted operation", "cooperative")),
    Purpose("other_production", "其他生产经营", "Other productive use", True, "001 L747",
            ("生产经营", "发展生产", "个体经营", "小本经营", "other production", "small business",
             "self employment")),
    Purpose("wedding", "结婚", "Wedding", False, "001 L747",
            ("婚嫁", "婚礼", "办婚事", "嫁娶", "娶亲", "marriage")),
    Purpose("house_building", "建房", "House building", False, "001 L747",
            ("盖房", "盖房子", "建房子", "起房", "建新房", "自建房", "房屋建设", "home building", "building a house",
             "housing construction")),
    Purpose("investment_products", "理财", "Investment products", False, "001 L747",
            ("理财产品", "投资理财", "买理财", "炒股", "股票", "基金", "wealth management", "stocks", "shares")),
    Purpose("household_goods", "购置家庭用品", "Household goods", False, "001 L747",
            ("家庭用品", "家用电器", "家电", "买家电", "生活用品", "household appliances", "consumer goods")),
    Purpose("other_non_productive", "其他非生产性支出", "Other non-productive spending", False, "001 L747",
            ("非生产性支出", "生活消费", "消费", "还债", "偿还债务", "consumption", "debt repayment",
             "personal consumption")),
)

CODES: tuple[str, ...] = tuple(p.code for p in PURPOSES)
BY_CODE: dict[str, Purpose] = {p.code: p for p in PURPOSES}

# Spaces, hyphens, underscores and the dots and commas people type between words do not count.
_SEPARATORS = re.compile(r"[\s_\-‐-―·・.,，、/]+")


def purpose_key(text: str) -> str:
    """Comparable form: NFKC (full-width to half-width), case-folded, without separators."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text).casefold())


@lru_cache(maxsize=1)
def _index() -> dict[str, str]:
    index: dict[str, str] = {}
    for purpose in PURPOSES:
        for word in (purpose.code, purpose.label_zh, purpose.label_en, *purpose.synonyms):
            key = purpose_key(word)
            if index.setdefault(key, purpose.code) != purpose.code:
                raise ValueError(f"purpose word {word!r} names two codes")
    return index


def canonical_purpose(text: str | None) -> str | None:
    """The code a bank's wording names, or None when it names none."""
    if not text:
        return None
    return _index().get(purpose_key(text))


def accepted_purposes() -> list[dict]:
    return [{"code": p.code, "label_zh": p.label_zh, "label_en": p.label_en, "productive": p.productive}
            for p in PURPOSES]


def purposes_table_markdown() -> str:
    """The vocabulary as a Markdown table (OpenAPI descriptions, docs)."""
    rows = ["| code | 中文 | English | productive |", "|---|---|---|---|"]
    rows += [f"| `{p.code}` | {p.label_zh} | {p.label_en} | {'yes' if p.productive else 'no (refused)'} |"
             for p in PURPOSES]
    return "\n".join(rows)
