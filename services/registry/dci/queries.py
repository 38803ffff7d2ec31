"""The DCI search query types over the registry (docs/dci-records-and-queries.md).

``parse_criteria`` validates a ``search_criteria.query`` of any of the three types (``idtype-value``,
``expression``, ``predicate``) and compiles it to a small immutable tree (``Criteria``); ``matches`` tells
whether a household snapshot matches it (pure: subscription filters use it too); ``search`` runs it over
the households the caller may see and answers one page of DCI records with the total count.

Semantics, in one place:

* every attribute is known in every query type; its name says whether it is a household or a person
  attribute (the two sets do not overlap; ``household.`` / ``member.`` / ``person.`` prefixes are accepted);
* a query that names a person attribute is about one member: a household matches when one of its living
  members satisfies the whole query (the same member for every condition), and ``response_entity: Member``
  answers each living member that does. A query that names ``deceased`` looks at every member, the dead
  included;
* a missing value (no exit date, no income) satisfies only ``$ne`` / ``$nin`` and ``$eq: null``;
* predicate items are ANDed, whatever their ``seq_num``; ``not`` is ``expression1 AND NOT expression2``;
* ``birth_date`` is not queryable: a query by exact birth date next to a masked number would give the
  number back (docs/security.md). ``birth_year`` and ``age`` are.
"""
from __future__ import annotations

import math
import operator
import re
import typing
import unicodedata
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any, AsyncIterator, Callable, Union

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.dci.records import household_record, household_size, is_disabled, person_record
from services.registry.households.service import area_code_of
from services.registry.imports.cells import _ID_REASON_ZH
from services.registry.tables import households, person_index
from shared.auth import Principal
from shared.events import as_aware
from shared.idcard import InvalidIdNumber, validate_id_number
from shared.money import to_decimal
from shared.personal_data import age_on, birth_year
from shared.snapshot import Category, DibaoClass, Health, HouseholdStatus, LabourCapacity, PovertyCause

SEARCH_CRITERIA_INVALID = "rjct.search_criteria.invalid"
SORT_INVALID = "rjct.sort.invalid"
PAGINATION_INVALID = "rjct.pagination.invalid"
TOO_MANY_RECORDS = "rjct.search.too_many_records_found"

MAX_CONDITIONS = 50  # conditions in one query
MAX_DEPTH = 8  # nesting of $and / $or / $not (a predicate is 3 deep)
MAX_LIST_VALUES = 100  # values of one $in / $nin
MAX_TEXT = 200  # characters of one string value
MAX_SORT_KEYS = 5
INT32_MAX = 2**31 - 1  # the spec's page_size / page_number are int32
SCAN_ROWS = 500  # households read per round of a scan

QUERY_TYPES = ("idtype-value", "expression", "predicate")
ENTITIES = {"household": "Household", "family": "Household", "member": "Member"}


class QueryError(Exception):
    """A query, sort or pagination the registry refuses: the spec's reason code and a message in English
    and Chinese (``accepted``: the values that would have been accepted, when there is such a list)."""

    def __init__(self, reason_code: str, message_en: str, message_zh: str, *, accepted: tuple[str, ...] = ()) -> None:
        super().__init__(message_en)
        self.reason_code, self.message_en, self.message_zh = reason_code, message_en, message_zh
        self.accepted = tuple(accepted)


# ---------------------------------------------------------------------------------------------- the tree

@dataclass(frozen=True)
class Condition:
    attribute: str  # canonical name (ATTRIBUTES)
    op: str  # eq ne lt le gt ge in nin prefix
    value: Any  # normalised; a frozenset for in / nin


@dataclass(frozen=True)
class AllOf:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple["Node", ...]


@dataclass(frozen=True)
class Not:
    item: "Node"


Node = Union[Condition, AllOf, AnyOf, Not]


@dataclass(frozen=True)
class Criteria:
    root: Node
    query_type: str
    entity: str  # "Household" (Household, Family) or "Member"
    attributes: frozenset[str]  # every attribute the query names

    @property
    def person_level(self) -> bool:
        """The query names a person attribute: it is answered member by member."""
        return any(ATTRIBUTES[name].scope == "person" for name in self.attributes)

    @property
    def all_members(self) -> bool:
        """The query names ``deceased``: the dead are candidates too."""
        return "deceased" in self.attributes


# ---------------------------------------------------------------------------------------------- attributes

ORDERED = ("eq", "ne", "lt", "le", "gt", "ge", "in", "nin")
EQUALITY = ("eq", "ne", "in", "nin")


@dataclass(frozen=True)
class Attribute:
    name: str
    scope: str  # household | person
    kind: str  # text code area enum set int date decimal bool id_number
    ops: tuple[str, ...]
    read: Callable[[dict, dict | None, date], Any]
    choices: dict[str, str] | None = None  # casefolded word → value, for enum and set
    nullable: bool = False  # may be compared with null ($eq / $ne)
    sortable: bool = True


def _choices(literal: Any) -> dict[str, str]:
    return {value.casefold(): value for value in typing.get_args(literal)}


def _as_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _income(snapshot: dict) -> Decimal | None:
    amount = (snapshot.get("income") or {}).get("per_capita_net")
    return None if amount is None else to_decimal(amount)


def _village(snapshot: dict) -> dict:
    return snapshot.get("village") or {}


def _household(name: str, kind: str, ops: tuple[str, ...], read: Callable[[dict], Any], **kw) -> Attribute:
    return Attribute(name, "household", kind, ops, lambda snapshot, member, as_of: read(snapshot), **kw)


def _person(name: str, kind: str, ops: tuple[str, ...], read: Callable[[dict, date], Any], **kw) -> Attribute:
    return Attribute(name, "person", kind, ops, lambda snapshot, member, as_of: read(member, as_of), **kw)


_SEX = {"m": "M", "male": "M", "男": "M", "f": "F", "female": "F", "女": "F"}
_RELATION = {"head": "head", "self": "head", "户主": "head", "本人": "head", "spouse": "spouse", "配偶": "spouse",
             "child": "child", "子女": "child", "parent": "parent", "父母": "parent", "other": "other",
             "其他": "other"}

ATTRIBUTES: dict[str, Attribute] = {a.name: a for a in (
    _household("household_identifier", "text", EQUALITY, lambda s: s.get("id")),
    _household("region_code", "code", (*EQUALITY, "prefix"), lambda s: s.get("region_code")),
    _household("village_code", "code", (*EQUALITY, "prefix"), lambda s: _village(s).get("code")),
    _household("township_code", "code", (*EQUALITY, "prefix"), lambda s: _village(s).get("township_code")),
    _household("area_code", "area", (*EQUALITY, "prefix"), area_code_of),
    _household("status", "enum", EQUALITY, lambda s: s.get("status"), choices=_choices(HouseholdStatus)),
    _household("category", "set", EQUALITY, lambda s: frozenset(s.get("categories") or ()),
               choices=_choices(Category), sortable=False),
    _household("household_size", "int", ORDERED, household_size),
    _household("identified_year", "int", ORDERED, lambda s: s.get("identified_year"), nullable=True),
    _household("exit_date", "date", ORDERED, lambda s: _as_date(s.get("exit_date")), nullable=True),
    _household("income_per_capita", "decimal", ORDERED, _income, nullable=True),
    _household("income_year", "int", ORDERED, lambda s: (s.get("income") or {}).get("year"), nullable=True),
    _household("poverty_cause", "set", EQUALITY, lambda s: frozenset(s.get("poverty_causes") or ()),
               choices=_choices(PovertyCause), sortable=False),
    _household("dibao_class", "enum", EQUALITY, lambda s: s.get("dibao_class"), choices=_choices(DibaoClass),
               nullable=True),
    _person("person_id", "text", EQUALITY, lambda m, as_of: m.get("id")),
    _person("id_number", "id_number", ("eq",), lambda m, as_of: (m.get("id_number") or "").upper() or None,
            sortable=False),
    _person("sex", "enum", EQUALITY, lambda m, as_of: m.get("sex"), choices=_SEX),
    _person("birth_year", "int", ORDERED, lambda m, as_of: birth_year(m.get("birth_date"))),
    _person("age", "int", ORDERED, lambda m, as_of: age_on(m.get("birth_date"), as_of)),
    _person("relationship_head", "enum", EQUALITY, lambda m, as_of: m.get("relation") or "other",
            choices=_RELATION),
    _person("is_disabled", "bool", ("eq", "ne"), lambda m, as_of: is_disabled(m)),
    _person("deceased", "bool", ("eq", "ne"), lambda m, as_of: bool(m.get("deceased"))),
    _person("labour_capacity", "enum", EQUALITY, lambda m, as_of: m.get("labour_capacity"),
            choices=_choices(LabourCapacity)),
    _person("health", "enum", EQUALITY, lambda m, as_of: m.get("health"), choices=_choices(Health)),
    _person("name", "text", ("eq", "prefix"), lambda m, as_of: (m.get("name") or "").strip()),
)}

#: Other words partners use for the attributes (compared casefolded, ``-`` and spaces read as ``_``).
ATTRIBUTE_ALIASES = {
    "household_id": "household_identifier", "hhid": "household_identifier", "household": "household_identifier",
    "location": "area_code", "area": "area_code", "categories": "category", "household_status": "status",
    "poverty_causes": "poverty_cause", "income": "income_per_capita", "per_capita_net": "income_per_capita",
    "income_per_capita_net": "income_per_capita", "member_identifier": "person_id", "member_id": "person_id",
    "uin": "id_number", "nid": "id_number", "yob": "birth_year", "relation": "relationship_head",
    "gender": "sex", "disabled": "is_disabled", "is_deceased": "deceased",
}
_SCOPE_PREFIXES = {"household.": "household", "member.": "person", "person.": "person"}
_UNQUERYABLE = ("birth_date", "dob", "date_of_birth")

#: idtype-value types (casefolded; the part after the last ``:`` of a namespaced type) → attribute.
ID_TYPES: dict[str, tuple[str, ...]] = {
    "id_number": ("NID", "UIN", "ID_NUMBER", "RESIDENT_ID", "CN_RESIDENT_ID", "IDCARD", "身份证", "身份证号",
                  "身份证号码", "居民身份证号码"),
    "household_identifier": ("HOUSEHOLD_ID", "HHID", "HOUSEHOLD_IDENTIFIER", "户编号", "户码"),
    "person_id": ("PERSON_ID", "MEMBER_ID"),
}
_ID_TYPE_OF = {alias.casefold(): attribute for attribute, aliases in ID_TYPES.items() for alias in aliases}

EXPRESSION_COLLECTIONS = ("Household", "HouseHold", "Family", "Person", "Member")
EXPRESSION_OPERATORS = {"$eq": "eq", "$ne": "ne", "$lt": "lt", "$lte": "le", "$gt": "gt", "$gte": "ge",
                        "$in": "in", "$nin": "nin", "$prefix": "prefix"}
PREDICATE_OPERATORS = ("eq", "gt", "lt", "ge", "le", "in", "prefix")
PREDICATE_CONDITIONS = ("and", "or", "not")


def _word(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().casefold().replace("-", "_").replace(" ", "_")


# ---------------------------------------------------------------------------------------------- parsing

def _list(values) -> str:
    return ", ".join(values)


def _shown(raw: Any) -> str:
    """A name the caller sent, as an error message repeats it: short strings without a run of digits (an ID
    number sent in the wrong place is not written back)."""
    shown = isinstance(raw, str) and len(raw) <= 64 and not re.search(r"\d{6}", unicodedata.normalize("NFKC", raw))
    return repr(raw) if shown else "this attribute"


class _Parser:
    """One query's compilation: its error code and the conditions counted so far."""

    def __init__(self, invalid_code: str) -> None:
        self.code, self.conditions = invalid_code, 0
        self.attributes: set[str] = set()

    def fail(self, en: str, zh: str, accepted: tuple[str, ...] = ()) -> QueryError:
        return QueryError(self.code, en, zh, accepted=accepted)

    # -- attributes and values

    def attribute(self, raw: Any) -> Attribute:
        if not isinstance(raw, str) or not raw.strip() or len(raw) > MAX_TEXT:
            raise self.fail("an attribute name must be a non-empty string", "属性名必须是非空字符串")
        word, scope = _word(raw), None
        for prefix, prefix_scope in _SCOPE_PREFIXES.items():
            if word.startswith(prefix):
                word, scope = word[len(prefix):], prefix_scope
        name = ATTRIBUTE_ALIASES.get(word, word)
        attribute = ATTRIBUTES.get(name)
        if word in _UNQUERYABLE:
            raise self.fail(f"{_shown(raw)} cannot be queried (an exact birth date would reveal masked ID numbers); "
                            "use birth_year or age", f"不能按出生日期查询 {_shown(raw)}（会暴露脱敏的身份证号），"
                            "请使用 birth_year 或 age", tuple(ATTRIBUTES))
        if attribute is None or (scope is not None and attribute.scope != scope):
            raise self.fail(f"unknown attribute {_shown(raw)}; accepted: {_list(ATTRIBUTES)}",
                            f"未知属性 {_shown(raw)}；可用属性：{_list(ATTRIBUTES)}", tuple(ATTRIBUTES))
        return attribute

    def condition(self, attribute: Attribute, op: str, value: Any) -> Condition:
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise self.fail(f"a query has at most {MAX_CONDITIONS} conditions",
                            f"一个查询最多 {MAX_CONDITIONS} 个条件")
        if op not in attribute.ops:
            raise self.fail(f"operator {op} does not apply to {attribute.name}; accepted: {_list(attribute.ops)}",
                            f"属性 {attribute.name} 不支持运算符 {op}；可用：{_list(attribute.ops)}", attribute.ops)
        self.attributes.add(attribute.name)
        if op in ("in", "nin"):
            if not isinstance(value, list) or not 1 <= len(value) <= MAX_LIST_VALUES:
                raise self.fail(f"{op} on {attribute.name} takes a list of 1 to {MAX_LIST_VALUES} values",
                                f"{attribute.name} 的 {op} 需要 1 到 {MAX_LIST_VALUES} 个值的列表")
            return Condition(attribute.name, op, frozenset(self.value(attribute, item) for item in value))
        if value is None:
            if attribute.nullable and op in ("eq", "ne"):
                return Condition(attribute.name, op, None)
            raise self.fail(f"{attribute.name} cannot be compared with null",
                            f"属性 {attribute.name} 不能与 null 比较")
        return Condition(attribute.name, op, self.value(attribute, value))

    def value(self, attribute: Attribute, value: Any) -> Any:
        kind, name = attribute.kind, attribute.name
        if kind == "id_number":
            return self.id_number(value)
        if kind in ("int", "decimal", "date", "bool"):
            return getattr(self, f"{kind}_value")(name, value)
        if isinstance(value, int) and not isinstance(value, bool) and kind in ("code", "area", "text"):
            value = str(value)  # codes and ids sent as JSON numbers
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
            raise self.fail(f"{name} takes a non-empty string of at most {MAX_TEXT} characters",
                            f"属性 {name} 的值必须是不超过 {MAX_TEXT} 个字符的非空字符串")
        text = unicodedata.normalize("NFKC", value).strip()
        if kind in ("code", "area") and not (text.isascii() and text.isdigit() and len(text) <= 16):
            raise self.fail(f"{name} takes an administrative code of up to 16 digits",
                            f"属性 {name} 的值必须是不超过 16 位数字的行政区划代码")
        if attribute.choices is not None:
            if text.casefold() not in attribute.choices:
                accepted = tuple(dict.fromkeys(attribute.choices.values()))
                raise self.fail(f"{name} takes one of: {_list(accepted)}",
                                f"属性 {name} 的值必须是以下之一：{_list(accepted)}", accepted)
            return attribute.choices[text.casefold()]
        return text

    def int_value(self, name: str, value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{name} takes an integer", f"属性 {name} 的值必须是整数")
        return value

    def decimal_value(self, name: str, value: Any) -> Decimal:
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                return to_decimal(value)  # a float goes through str(): never binary floating point
            except ValueError:
                pass
        raise self.fail(f"{name} takes a decimal amount (a number or a string such as \"4000.10\")",
                        f"属性 {name} 的值必须是金额（数字或如 \"4000.10\" 的字符串）")

    def date_value(self, name: str, value: Any) -> date:
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise self.fail(f"{name} takes a date YYYY-MM-DD", f"属性 {name} 的值必须是日期 YYYY-MM-DD")

    def bool_value(self, name: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        words = {"1": True, "0": False, "true": True, "false": False}
        if isinstance(value, (str, int)) and str(value).strip().casefold() in words:
            return words[str(value).strip().casefold()]
        raise self.fail(f"{name} takes true or false (or \"1\" / \"0\")", f"属性 {name} 的值必须是 true 或 false")

    def id_number(self, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise self.fail("an ID number is a string", "身份证号码必须是字符串")
        text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", value))  # full-width digits, spaces
        try:
            return validate_id_number(text).number
        except InvalidIdNumber as exc:  # its messages never contain the number
            raise self.fail(f"the ID number is not valid: {exc.reason}",
                            f"身份证号码无效：{_ID_REASON_ZH.get(exc.code, '身份证号无效')}") from None

    # -- the three query types

    def idtype_value(self, query: Any) -> Node:
        accepted = tuple(alias for aliases in ID_TYPES.values() for alias in aliases)
        if not isinstance(query, dict) or set(query) - {"type", "value"} or "value" not in query:
            raise self.fail("an idtype-value query is {\"type\": ..., \"value\": ...}",
                            "idtype-value 查询的格式为 {\"type\": ..., \"value\": ...}")
        kind = query.get("type")
        attribute = _ID_TYPE_OF.get(_word(kind).rsplit(":", 1)[-1]) if isinstance(kind, str) else None
        if attribute is None:
            raise self.fail(f"unknown identifier type; accepted: {_list(accepted)}",
                            f"未知的标识类型；可用类型：{_list(accepted)}", accepted)
        return self.condition(ATTRIBUTES[attribute], "eq", query["value"])

    def expression(self, query: Any) -> Node:
        if not isinstance(query, dict) or set(query) - {"type", "value"}:
            raise self.fail("an expression query is {\"type\": \"ns:org:QueryType:NoSql\", \"value\": "
                            "{\"expression\": {\"collection\": ..., \"query\": {...}}}}",
                            "expression 查询的格式为 {\"type\": \"ns:org:QueryType:NoSql\", \"value\": "
                            "{\"expression\": {\"collection\": ..., \"query\": {...}}}}")
        kind = query.get("type")
        if kind is not None and (not isinstance(kind, str) or _word(kind).rsplit(":", 1)[-1] != "nosql"):
            raise self.fail("the expression's type must be ns:org:QueryType:NoSql",
                            "expression 查询的 type 必须是 ns:org:QueryType:NoSql", ("ns:org:QueryType:NoSql",))
        value = query.get("value")
        expression = value.get("expression", value) if isinstance(value, dict) else None
        if not isinstance(expression, dict) or set(expression) - {"collection", "query"} \
                or not isinstance(expression.get("query"), dict):
            raise self.fail("value.expression must be {\"collection\": ..., \"query\": {...}}",
                            "value.expression 的格式为 {\"collection\": ..., \"query\": {...}}")
        collection = expression.get("collection", "Household")
        if not isinstance(collection, str) or _word(collection) not in {_word(c) for c in EXPRESSION_COLLECTIONS}:
            raise self.fail(f"unknown collection; accepted: {_list(EXPRESSION_COLLECTIONS)}",
                            f"未知的集合；可用：{_list(EXPRESSION_COLLECTIONS)}", EXPRESSION_COLLECTIONS)
        return self.mongo(expression["query"], 1)

    def mongo(self, node: Any, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise self.fail(f"a query nests at most {MAX_DEPTH} levels", f"查询最多嵌套 {MAX_DEPTH} 层")
        if not isinstance(node, dict) or not node:
            raise self.fail("every part of an expression query is a non-empty object",
                            "expression 查询的每一部分都必须是非空对象")
        parts: list[Node] = []
        for key, value in node.items():
            if key in ("$and", "$or"):
                if not isinstance(value, list) or not value:
                    raise self.fail(f"{key} takes a non-empty list", f"{key} 需要非空列表")
                items = tuple(self.mongo(item, depth + 1) for item in value)
                parts.append(AllOf(items) if key == "$and" else AnyOf(items))
            elif key == "$not":
                parts.append(Not(self.mongo(value, depth + 1)))
            elif isinstance(key, str) and key.startswith("$"):
                accepted = ("$and", "$or", "$not")
                raise self.fail(f"unknown operator {key}; accepted here: {_list(accepted)}",
                                f"未知运算符 {key}；此处可用：{_list(accepted)}", accepted)
            else:
                parts.append(self.field(self.attribute(key), value, depth))
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def field(self, attribute: Attribute, value: Any, depth: int) -> Node:
        """``{attr: value}`` (= ``$eq``) or ``{attr: {"$op": value, ...}}`` (several operators ANDed)."""
        if not (isinstance(value, dict) and value and all(isinstance(k, str) and k.startswith("$") for k in value)):
            if isinstance(value, (list, dict)):
                raise self.fail(f"{attribute.name}: use {{\"$in\": [...]}} for a list of values, "
                                "and operators such as {\"$gte\": ...} in an object",
                                f"{attribute.name}：多个值请用 {{\"$in\": [...]}}，对象中只能是 {{\"$gte\": ...}} 等运算符")
            return self.condition(attribute, "eq", value)
        if depth > MAX_DEPTH:
            raise self.fail(f"a query nests at most {MAX_DEPTH} levels", f"查询最多嵌套 {MAX_DEPTH} 层")
        parts: list[Node] = []
        for key, operand in value.items():
            if key == "$not":
                parts.append(Not(self.field(attribute, operand, depth + 1)))
                continue
            if key not in EXPRESSION_OPERATORS:
                accepted = (*EXPRESSION_OPERATORS, "$not")
                raise self.fail(f"unknown operator {key}; accepted: {_list(accepted)}",
                                f"未知运算符 {key}；可用：{_list(accepted)}", accepted)
            parts.append(self.condition(attribute, EXPRESSION_OPERATORS[key], operand))
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def predicate(self, query: Any) -> Node:
        if not isinstance(query, list) or not query:
            raise self.fail("a predicate query is a non-empty list of {seq_num, expression1, condition, "
                            "expression2}", "predicate 查询是由 {seq_num, expression1, condition, expression2} "
                            "组成的非空列表")
        items = []
        for index, item in enumerate(query):
            if not isinstance(item, dict) or set(item) - {"seq_num", "expression1", "condition", "expression2"} \
                    or "expression1" not in item:
                raise self.fail(f"predicate item {index + 1} must be {{seq_num, expression1, condition, expression2}}",
                                f"predicate 第 {index + 1} 项的格式为 {{seq_num, expression1, condition, expression2}}")
            seq = item.get("seq_num", index)
            if isinstance(seq, bool) or not isinstance(seq, (int, float)) or not math.isfinite(seq):
                raise self.fail("seq_num must be a number", "seq_num 必须是数字")
            items.append((seq, index, self.predicate_item(item, index)))
        nodes = tuple(node for _, _, node in sorted(items, key=lambda entry: entry[:2]))
        return nodes[0] if len(nodes) == 1 else AllOf(nodes)

    def predicate_item(self, item: dict, index: int) -> Node:
        first = self.predicate_expression(item["expression1"])
        condition, second = item.get("condition"), item.get("expression2")
        if condition is None and second is None:
            return first
        if second is None:
            raise self.fail(f"predicate item {index + 1} has a condition but no expression2",
                            f"predicate 第 {index + 1} 项有 condition 但缺少 expression2")
        word = _word(condition) if isinstance(condition, str) else "and" if condition is None else None
        if word not in PREDICATE_CONDITIONS:
            raise self.fail(f"condition must be one of: {_list(PREDICATE_CONDITIONS)}",
                            f"condition 必须是以下之一：{_list(PREDICATE_CONDITIONS)}", PREDICATE_CONDITIONS)
        second_node = self.predicate_expression(second)
        if word == "or":
            return AnyOf((first, second_node))
        return AllOf((first, Not(second_node) if word == "not" else second_node))

    def predicate_expression(self, expression: Any) -> Condition:
        if not isinstance(expression, dict) or set(expression) != {"attribute_name", "operator", "attribute_value"}:
            raise self.fail("a predicate expression is {attribute_name, operator, attribute_value}",
                            "predicate 表达式的格式为 {attribute_name, operator, attribute_value}")
        attribute = self.attribute(expression["attribute_name"])
        op = expression["operator"]
        if not isinstance(op, str) or _word(op) not in PREDICATE_OPERATORS:
            raise self.fail(f"operator must be one of: {_list(PREDICATE_OPERATORS)}",
                            f"operator 必须是以下之一：{_list(PREDICATE_OPERATORS)}", PREDICATE_OPERATORS)
        return self.condition(attribute, _word(op), expression["attribute_value"])


def _entity(entity: Any, code: str) -> str:
    found = ENTITIES.get(_word(entity)) if isinstance(entity, str) else "Household" if entity is None else None
    if found is None:
        accepted = ("Household", "Family", "Member")
        raise QueryError(code, f"response_entity must be one of: {_list(accepted)}",
                         f"response_entity 必须是以下之一：{_list(accepted)}", accepted=accepted)
    return found


def parse_criteria(query_type: str, query: Any, *, entity: str = "Household",
                   invalid_code: str = SEARCH_CRITERIA_INVALID) -> Criteria:
    """Validate a ``search_criteria.query`` (or a subscription's ``filter``, with ``invalid_code``
    ``rjct.filter.invalid``) and compile it. Raises ``QueryError``."""
    parser = _Parser(invalid_code)
    kind = _word(query_type).replace("_", "-") if isinstance(query_type, str) else None
    if kind not in QUERY_TYPES:
        raise parser.fail(f"query_type must be one of: {_list(QUERY_TYPES)}",
                          f"query_type 必须是以下之一：{_list(QUERY_TYPES)}", QUERY_TYPES)
    resolved = _entity(entity, invalid_code)
    root = {"idtype-value": parser.idtype_value, "expression": parser.expression,
            "predicate": parser.predicate}[kind](query)
    return Criteria(root=root, query_type=kind, entity=resolved, attributes=frozenset(parser.attributes))


# ---------------------------------------------------------------------------------------------- matching

COMPARE = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le, "gt": operator.gt,
           "ge": operator.ge}


def _test(condition: Condition, actual: Any) -> bool:
    op, expected = condition.op, condition.value
    kind = ATTRIBUTES[condition.attribute].kind
    if kind == "set":  # membership: the household has the category / cause
        have = actual or frozenset()
        return {"eq": lambda: expected in have, "ne": lambda: expected not in have,
                "in": lambda: bool(have & expected), "nin": lambda: not (have & expected)}[op]()
    if kind == "area" or op == "prefix":  # an area code holds every code that starts with it
        def under(prefix: str) -> bool:
            return isinstance(actual, str) and actual.startswith(prefix)
        return {"eq": lambda: under(expected), "prefix": lambda: under(expected), "ne": lambda: not under(expected),
                "in": lambda: any(map(under, expected)), "nin": lambda: not any(map(under, expected))}[op]()
    if op in ("in", "nin"):
        return (actual in expected) == (op == "in")
    if op in ("eq", "ne"):
        return COMPARE[op](actual, expected)
    return actual is not None and COMPARE[op](actual, expected)  # a missing value is neither < nor >


def _holds(node: Node, snapshot: dict, member: dict | None, as_of: date) -> bool:
    if isinstance(node, Condition):
        attribute = ATTRIBUTES[node.attribute]
        if attribute.scope == "person" and member is None:
            return False
        return _test(node, attribute.read(snapshot, member, as_of))
    if isinstance(node, AllOf):
        return all(_holds(item, snapshot, member, as_of) for item in node.items)
    if isinstance(node, AnyOf):
        return any(_holds(item, snapshot, member, as_of) for item in node.items)
    return not _holds(node.item, snapshot, member, as_of)


def _candidates_of(criteria: Criteria, snapshot: dict) -> list[dict]:
    members = snapshot.get("members") or []
    return list(members) if criteria.all_members else [m for m in members if not m.get("deceased")]


def matches(criteria: Criteria, snapshot: dict, *, as_of: date) -> list[dict] | bool:
    """Entity Household: whether the household matches. Entity Member: the members that match (living
    ones; every one when the query names ``deceased``). ``as_of`` is the day ``age`` is counted on."""
    if criteria.entity == "Member":
        if not criteria.person_level:
            return _candidates_of(criteria, snapshot) if _holds(criteria.root, snapshot, None, as_of) else []
        return [m for m in _candidates_of(criteria, snapshot) if _holds(criteria.root, snapshot, m, as_of)]
    if not criteria.person_level:
        return _holds(criteria.root, snapshot, None, as_of)
    return any(_holds(criteria.root, snapshot, m, as_of) for m in _candidates_of(criteria, snapshot))


# ---------------------------------------------------------------------------------------------- sort, pages

def parse_sort(sort: Any, entity: str) -> list[tuple[str, bool]]:
    """``[{attribute_name, sort_order}]`` → ``[(attribute, descending)]``. Person attributes sort members
    (entity Member) only; ``category``, ``poverty_cause`` and ``id_number`` do not sort."""
    if sort is None:
        return []
    resolved = _entity(entity, SORT_INVALID)
    parser = _Parser(SORT_INVALID)
    sortable = tuple(name for name, a in ATTRIBUTES.items()
                     if a.sortable and (a.scope == "household" or resolved == "Member"))
    if not isinstance(sort, list) or len(sort) > MAX_SORT_KEYS:
        raise parser.fail(f"sort is a list of at most {MAX_SORT_KEYS} {{attribute_name, sort_order}}",
                          f"sort 是最多 {MAX_SORT_KEYS} 个 {{attribute_name, sort_order}} 的列表")
    keys: list[tuple[str, bool]] = []
    for item in sort:
        if not isinstance(item, dict) or set(item) - {"attribute_name", "sort_order"} or "attribute_name" not in item:
            raise parser.fail("a sort item is {attribute_name, sort_order}",
                              "sort 的每一项格式为 {attribute_name, sort_order}")
        try:
            attribute = parser.attribute(item["attribute_name"])
        except QueryError:
            attribute = None
        if attribute is None or attribute.name not in sortable:
            shown = _shown(item["attribute_name"])
            raise parser.fail(f"cannot sort by {shown}; accepted: {_list(sortable)}",
                              f"不能按 {shown} 排序；可用：{_list(sortable)}", sortable)
        order = item.get("sort_order", "asc")
        if not isinstance(order, str) or _word(order) not in ("asc", "desc"):
            raise parser.fail("sort_order must be asc or desc", "sort_order 必须是 asc 或 desc", ("asc", "desc"))
        keys.append((attribute.name, _word(order) == "desc"))
    return keys


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def parse_pagination(pagination: Any, *, max_page_size: int) -> tuple[int, int]:
    """``{page_size, page_number}`` → ``(page_size, page_number)``: page_size a whole number 1 ..
    ``max_page_size`` (required), page_number a whole number from 1 (default 1). 10.0 is 10; 10.5, "10"
    and booleans are refused. No pagination at all is one page of ``max_page_size``."""
    if pagination is None:
        return max_page_size, 1
    if not isinstance(pagination, dict) or "page_size" not in pagination:
        raise QueryError(PAGINATION_INVALID, "pagination is {page_size, page_number} and page_size is required",
                         "pagination 的格式为 {page_size, page_number}，page_size 必填")
    size = _whole_number(pagination["page_size"])
    if size is None or not 1 <= size <= max_page_size:
        raise QueryError(PAGINATION_INVALID, f"page_size must be a whole number from 1 to {max_page_size}",
                         f"page_size 必须是 1 到 {max_page_size} 的整数")
    number = _whole_number(pagination.get("page_number", 1))
    if number is None or not 1 <= number <= INT32_MAX:
        raise QueryError(PAGINATION_INVALID, "page_number must be a whole number from 1 (pages count from 1)",
                         "page_number 必须是从 1 开始的整数（页码从 1 开始）")
    return size, number


# ---------------------------------------------------------------------------------------------- search

@dataclass
class SearchPage:
    records: list[dict]
    total_count: int


@dataclass(frozen=True)
class _Hit:
    keys: tuple  # the sort attributes' values
    household_id: str
    person_id: str  # "" for a household
    index: int  # the member's position in the snapshot (-1 for a household)


def _top_level(criteria: Criteria) -> tuple[Node, ...]:
    return criteria.root.items if isinstance(criteria.root, AllOf) else (criteria.root,)


def _indexed_id_number(criteria: Criteria) -> str | None:
    """The ID number the whole query requires, if any: found through the person index (living persons)."""
    if criteria.all_members:
        return None
    return next((c.value for c in _top_level(criteria)
                 if isinstance(c, Condition) and c.attribute == "id_number" and c.op == "eq"), None)


_COLUMNS = {"household_identifier": households.c.id, "region_code": households.c.region_code,
            "village_code": households.c.village_code, "township_code": households.c.township_code,
            "status": households.c.status}


def _sql_condition(condition: Condition):
    """The SQL form of a top-level condition on a column, or None. An optimisation only: ``matches`` decides."""
    def under(prefix: str):
        return or_(households.c.village_code.startswith(prefix, autoescape=True),
                   households.c.region_code.startswith(prefix, autoescape=True))
    op, value = condition.op, condition.value
    if condition.attribute == "area_code" and op in ("eq", "prefix"):
        return under(value)
    if condition.attribute == "area_code" and op == "in":
        return or_(*(under(prefix) for prefix in sorted(value)))
    if condition.attribute == "category" and op == "eq":
        return households.c.categories.contains(f",{value},", autoescape=True)
    column = _COLUMNS.get(condition.attribute)
    if column is None or value is None:
        return None
    if op == "eq":
        return column == value
    if op == "in":
        return column.in_(sorted(value))
    if op == "prefix":
        return column.startswith(value, autoescape=True)
    return None


def _scoped(query, principal: Principal):
    if principal.area and not principal.is_admin:
        query = query.where(households.c.village_code.startswith(principal.area, autoescape=True)
                            | households.c.region_code.startswith(principal.area, autoescape=True))
    return query


async def _snapshots(session: AsyncSession, principal: Principal, criteria: Criteria) -> AsyncIterator[dict]:
    """The snapshots of the caller's area that may match, by household id."""
    query = _scoped(select(households.c.id, households.c.snapshot), principal)
    number = _indexed_id_number(criteria)
    if number is not None:
        query = query.where(households.c.id.in_(
            select(person_index.c.household_id).where(person_index.c.id_number == number).scalar_subquery()))
    for condition in _top_level(criteria):
        if isinstance(condition, Condition) and (clause := _sql_condition(condition)) is not None:
            query = query.where(clause)
    after = None
    while True:
        page = query.order_by(households.c.id).limit(SCAN_ROWS)
        if after is not None:
            page = page.where(households.c.id > after)
        rows = (await session.execute(page)).all()
        for row in rows:
            if principal.sees_area(area_code_of(row.snapshot)):
                yield row.snapshot
        if len(rows) < SCAN_ROWS:
            return
        after = rows[-1].id


def _ordered(hits: list[_Hit], sort: list[tuple[str, bool]]) -> list[_Hit]:
    """By the sort attributes (missing values last, either order), then household and person id."""
    ordered = sorted(hits, key=lambda hit: (hit.household_id, hit.person_id, hit.index))
    for position in reversed(range(len(sort))):
        descending = sort[position][1]
        known = [hit for hit in ordered if hit.keys[position] is not None]
        known.sort(key=lambda hit: hit.keys[position], reverse=descending)  # stable either way
        ordered = known + [hit for hit in ordered if hit.keys[position] is None]
    return ordered


async def _records(session: AsyncSession, principal: Principal, page: list[_Hit], *, entity: str,
                   clear: bool) -> list[dict]:
    ids = sorted({hit.household_id for hit in page})
    if not ids:
        return []
    rows = (await session.execute(select(households.c.id, households.c.snapshot, households.c.created_at,
                                         households.c.updated_at).where(households.c.id.in_(ids)))).all()
    found = {row.id: row for row in rows if principal.sees_area(area_code_of(row.snapshot))}
    records = []
    for hit in page:
        row = found.get(hit.household_id)
        if row is None:
            continue  # removed since the scan
        if entity == "Household":
            records.append(household_record(row.snapshot, clear=clear, created_at=as_aware(row.created_at),
                                            updated_at=as_aware(row.updated_at)))
            continue
        members = row.snapshot.get("members") or []
        member = members[hit.index] if hit.index < len(members) else None
        if member is not None and (member.get("id") or "") == hit.person_id:
            records.append(person_record(member, row.snapshot, clear=clear))
    return records


async def search(session: AsyncSession, principal: Principal, criteria: Criteria, *, entity: str,
                 sort: list[tuple[str, bool]], page_size: int, page_number: int, as_of: date, clear: bool,
                 max_matches: int = 100_000) -> SearchPage:
    """One page of the DCI records the query matches among the households the caller may see, and the
    total count (households for entity Household / Family, members for Member). ``sort`` comes from
    ``parse_sort``; ``clear`` decides clear ID numbers and birth dates (docs/security.md: admins only).
    More than ``max_matches`` matches is ``rjct.search.too_many_records_found``."""
    resolved, sort = _entity(entity, SEARCH_CRITERIA_INVALID), sort or []
    if resolved != criteria.entity:
        criteria = replace(criteria, entity=resolved)
    if resolved == "Household" and any(ATTRIBUTES[name].scope == "person" for name, _ in sort):
        raise QueryError(SORT_INVALID, "person attributes sort members only (response_entity Member)",
                         "人员属性只能用于成员排序（response_entity 为 Member）")
    hits: list[_Hit] = []
    async for snapshot in _snapshots(session, principal, criteria):
        found = matches(criteria, snapshot, as_of=as_of)
        if resolved == "Household":
            members: list[tuple[int, dict | None]] = [(-1, None)] if found else []
        else:
            chosen = {id(m) for m in found}
            members = [(i, m) for i, m in enumerate(snapshot.get("members") or []) if id(m) in chosen]
        for index, member in members:
            keys = tuple(ATTRIBUTES[name].read(snapshot, member, as_of) for name, _ in sort)
            hits.append(_Hit(keys, snapshot["id"], (member or {}).get("id") or "", index))
        if len(hits) > max_matches:
            raise QueryError(TOO_MANY_RECORDS, f"more than {max_matches} records match; narrow the query",
                             f"匹配记录超过 {max_matches} 条，请缩小查询范围")
    start = (page_number - 1) * page_size
    page = _ordered(hits, sort)[start:start + page_size]
    records = await _records(session, principal, page, entity=resolved, clear=clear)
    return SearchPage(records=records, total_count=len(hits))
