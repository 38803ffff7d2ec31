"""services.registry.dci.queries: the three query types compiled and matched against household snapshots,
sort and pagination validation, and the limits of a query."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.registry.dci.queries import (MAX_CONDITIONS, MAX_DEPTH, AllOf, Condition, QueryError, matches,
                                           parse_criteria, parse_pagination, parse_sort)
from shared.idcard import make_id_number

AS_OF = date(2020, 6, 30)
HEAD = make_id_number("360782", date(1985, 3, 12), 2)  # 欧阳娜娜
SPOUSE = make_id_number("360782", date(1958, 11, 5), 1)  # 李四, 61 on AS_OF
FULL_WIDTH = HEAD.translate(str.maketrans("0123456789", "０１２３４５６７８９"))


def household(**overrides) -> dict:
    snapshot = {
        "id": "hh-demo-0042", "version": 3, "region_code": "360703",
        "village": {"code": "360703105201", "name": "新村村", "township_code": "360703105", "township_name": "隆木乡"},
        "status": "registered", "identified_year": 2014, "exit_date": None, "categories": ["dibao"],
        "dibao_class": "B", "poverty_causes": ["illness"], "income": {"year": 2019, "per_capita_net": "4000.10"},
        "members": [
            {"id": "p1", "name": "欧阳娜娜", "id_number": HEAD, "sex": "F", "birth_date": "1985-03-12",
             "relation": "head", "labour_capacity": "full", "health": "healthy"},
            {"id": "p2", "name": "李四", "id_number": SPOUSE, "sex": "M", "birth_date": "1958-11-05",
             "relation": "spouse", "labour_capacity": "weak", "health": "disabled",
             "disability": {"grade": 2, "kind": "physical"}},
            {"id": "p3", "name": "欧阳小明", "id_number": None, "sex": "M", "birth_date": "1930-01-01",
             "relation": "parent", "deceased": True, "date_of_death": "2019-05-01"},
        ],
    }
    snapshot.update(overrides)
    return snapshot


def nosql(query: dict, collection: str = "HouseHold") -> dict:
    return {"type": "ns:org:QueryType:NoSql", "value": {"expression": {"collection": collection, "query": query}}}


def expression(query: dict, snapshot: dict | None = None, **kw):
    return matches(parse_criteria("expression", nosql(query), **kw), snapshot or household(), as_of=AS_OF)


def refused(query_type: str, query, **kw) -> QueryError:
    with pytest.raises(QueryError) as caught:
        parse_criteria(query_type, query, **kw)
    error = caught.value
    assert error.message_en and error.message_zh and str(error) == error.message_en
    return error


# ------------------------------------------------------------------------------------------ idtype-value

@pytest.mark.parametrize("kind", ["NID", "nid", "UIN", "id_number", "ID-NUMBER", "resident_id", "CN_RESIDENT_ID",
                                  "IdCard", "身份证", "身份证号", "身份证号码", "居民身份证号码", "ns:org:IdType:NID"])
def test_idtype_id_number_aliases(kind):
    criteria = parse_criteria("idtype-value", {"type": kind, "value": HEAD})
    assert criteria.root == Condition("id_number", "eq", HEAD)
    assert matches(criteria, household(), as_of=AS_OF) is True


@pytest.mark.parametrize("value", [FULL_WIDTH, f" {HEAD[:6]} {HEAD[6:14]} {HEAD[14:]} ", HEAD[:6] + "\u3000" + HEAD[6:],
                                   int(HEAD)])
def test_idtype_id_numbers_are_normalised(value):
    assert parse_criteria("idtype-value", {"type": "身份证号码", "value": value}).root.value == HEAD


def test_lower_case_x_is_the_check_character_x():
    number = next(n for n in (make_id_number("110105", date(1949, 12, 31), s) for s in range(1, 40)) if n.endswith("X"))
    assert parse_criteria("idtype-value", {"type": "NID", "value": number.lower()}).root.value == number


def test_a_bad_id_number_is_refused_without_echoing_it():
    wrong = HEAD[:-1] + ("0" if HEAD[-1] != "0" else "1")
    error = refused("idtype-value", {"type": "NID", "value": wrong})
    assert error.reason_code == "rjct.search_criteria.invalid"
    assert "check digit" in error.message_en and "校验位" in error.message_zh
    assert wrong not in error.message_en + error.message_zh and wrong[6:14] not in error.message_en
    assert "18" in refused("idtype-value", {"type": "NID", "value": HEAD[:17]}).message_en
    refused("idtype-value", {"type": "NID", "value": ["a list"]})


def test_idtype_household_and_person_ids():
    for kind in ("HOUSEHOLD_ID", "hhid", "household_identifier", "户编号", "户码"):
        assert matches(parse_criteria("idtype-value", {"type": kind, "value": "hh-demo-0042"}), household(),
                       as_of=AS_OF) is True
    assert matches(parse_criteria("idtype-value", {"type": "HHID", "value": "hh-demo-0043"}), household(),
                   as_of=AS_OF) is False
    criteria = parse_criteria("idtype-value", {"type": "MEMBER_ID", "value": "p2"}, entity="Member")
    assert [m["id"] for m in matches(criteria, household(), as_of=AS_OF)] == ["p2"]
    by_person = parse_criteria("idtype-value", {"type": "PERSON_ID", "value": "p2"})
    assert by_person.root == Condition("person_id", "eq", "p2")


def test_unknown_id_type_lists_the_accepted_ones():
    error = refused("idtype-value", {"type": "MOBILE", "value": "13800000000"})
    assert "NID" in error.accepted and "身份证号码" in error.accepted and "户编号" in error.accepted
    assert "NID" in error.message_en and "身份证号码" in error.message_zh
    refused("idtype-value", {"type": "NID"})  # no value
    refused("idtype-value", {"type": "NID", "value": HEAD, "extra": 1})


def test_deceased_members_are_not_found_by_their_number_or_id():
    # p3 has no number; a deceased member with a number is not a living person either
    snapshot = household()
    snapshot["members"][1]["deceased"] = True
    assert matches(parse_criteria("idtype-value", {"type": "NID", "value": SPOUSE}), snapshot, as_of=AS_OF) is False
    assert matches(parse_criteria("idtype-value", {"type": "PERSON_ID", "value": "p3"}), snapshot, as_of=AS_OF) is False


# ------------------------------------------------------------------------------------------ expression

def test_expression_household_attributes():
    assert expression({"$and": [{"village_code": {"$eq": "360703105201"}}, {"category": "dibao"}]}) is True
    assert expression({"$and": [{"village_code": "360703105201"}, {"category": "marginal"}]}) is False
    assert expression({"status": {"$in": ["registered", "monitored"]}, "dibao_class": "b"}) is True
    assert expression({"status": {"$nin": ["registered", "monitored"]}}) is False
    assert expression({"category": {"$nin": ["marginal", "relocated"]}}) is True
    assert expression({"poverty_cause": {"$ne": "illness"}}) is False
    assert expression({"household_size": 2}) is True  # living members: the deceased parent does not count
    assert expression({"household_size": {"$gte": 2, "$lt": 3}}) is True
    assert expression({"identified_year": {"$lte": 2013}}) is False
    assert expression({"area_code": "360703105"}) is True and expression({"area_code": "360703102"}) is False
    assert expression({"area_code": {"$in": ["360702", "3607031"]}}) is True
    assert expression({"region_code": {"$prefix": "3607"}, "township_code": 360703105}) is True
    assert expression({"$or": [{"status": "exited"}, {"$not": {"category": "marginal"}}]}) is True
    assert expression({"$not": {"household_identifier": "hh-demo-0042"}}) is False
    assert expression({"household_size": {"$not": {"$gt": 5}}}) is True


def test_the_spec_example_names_mean_what_they_mean_here():
    assert expression({"$and": [{"location": {"$eq": "360703"}}, {"household_size": {"$lt": 5}}]}) is True
    error = refused("expression", nosql({"$and": [{"poverty_score": {"$lt": 5}}]}))
    assert "poverty_score" in error.message_en and "household_size" in error.accepted


def test_missing_values_match_only_null_and_not_equal():
    assert expression({"exit_date": None}) is True
    assert expression({"exit_date": {"$lt": "2030-01-01"}}) is False
    assert expression({"exit_date": {"$ne": None}}) is False
    exited = household(status="exited", exit_date="2019-12-20")
    assert expression({"exit_date": {"$gte": "2019-12-20", "$lt": "2020-01-01"}}, exited) is True
    assert expression({"income_per_capita": {"$lt": 10000}}, household(income=None)) is False
    assert expression({"income_per_capita": {"$ne": 4000}}, household(income=None)) is True


def test_money_compares_as_decimal():
    for value in ("4000.1", "4000.10", 4000.1, 4000.10):
        assert expression({"income_per_capita": {"$eq": value}}) is True
        assert expression({"income_per_capita": {"$lt": value}}) is False
    assert expression({"income_per_capita": {"$gt": "4000.09", "$lte": 4000.1}}) is True
    assert expression({"income_per_capita": {"$in": [3000, "4000.1"]}}) is True
    condition = parse_criteria("expression", nosql({"income_per_capita": {"$lt": 0.1}})).root
    assert condition.value == Decimal("0.1") and isinstance(condition.value, Decimal)  # never a binary float
    snapshot = household(income={"year": 2019, "per_capita_net": "0.30"})
    assert expression({"income_per_capita": {"$eq": 0.3}}, snapshot) is True  # 0.1 + 0.2 problems stay away
    for bad in (True, "NaN", "Infinity", "四千", [1], {"a": 1}):
        assert refused("expression", nosql({"income_per_capita": {"$lt": bad}})).reason_code == \
            "rjct.search_criteria.invalid"


def test_person_attributes_are_about_one_member():
    assert expression({"$and": [{"sex": "female"}, {"age": {"$gte": 60}}]}) is False  # no woman of 60+
    assert expression({"$and": [{"sex": "M"}, {"age": {"$gte": 60}}]}) is True  # 李四, 61
    assert expression({"$and": [{"sex": "男"}, {"is_disabled": True}, {"relationship_head": "spouse"}]}) is True
    assert expression({"relation": "户主", "name": "欧阳娜娜"}) is True
    assert expression({"name": {"$prefix": "欧阳"}, "birth_year": 1985}) is True
    assert expression({"YOB": {"$lt": 1950}}) is False  # the 1930 parent is dead: only the living count
    assert expression({"household.status": "registered", "member.labour_capacity": "weak"}) is True
    assert expression({"health": "disabled", "is_disabled": "1"}) is True


def test_member_entity_returns_the_matching_living_members():
    members = expression({"age": {"$gte": 18}}, entity="Member")
    assert [m["id"] for m in members] == ["p1", "p2"]
    assert [m["id"] for m in expression({"category": "dibao"}, entity="Member")] == ["p1", "p2"]
    assert expression({"category": "marginal"}, entity="Member") == []
    assert [m["id"] for m in expression({"deceased": True}, entity="Member")] == ["p3"]  # naming it looks at the dead
    assert expression({"deceased": {"$ne": True}, "age": {"$gte": 60}}, entity="Family") is True
    assert expression({"deceased": True}) is True


def test_expression_shape_errors():
    assert refused("expression", nosql({"$regex": "x"})).accepted == ("$and", "$or", "$not")
    assert "$gte" in refused("expression", nosql({"age": {"$regex": "x"}})).accepted
    refused("expression", nosql({"status": ["registered"]}))  # a list needs $in
    refused("expression", nosql({}))
    refused("expression", nosql({"$and": []}))
    refused("expression", nosql({"status": "registered"}, collection="Villages"))
    refused("expression", {"type": "ns:org:QueryType:Sql", "value": {"expression": {"query": {"status": "x"}}}})
    refused("expression", {"type": "ns:org:QueryType:NoSql", "value": "status = registered"})
    refused("expression", nosql({"status": "gone"}))
    refused("expression", nosql({"sex": "X"}))
    error = refused("expression", nosql({"sex": {"$lt": "M"}}))
    assert error.accepted == ("eq", "ne", "in", "nin") and "sex" in error.message_zh
    refused("expression", nosql({"id_number": {"$in": [HEAD]}}))  # equality only
    refused("expression", nosql({"status": None}))  # status is never missing
    # a name the caller sent is repeated unless it holds a number (an ID number in the wrong place)
    assert "'poverty_line'" in refused("expression", nosql({"poverty_line": 1})).message_en
    for name in (HEAD, FULL_WIDTH, "x" * 65):
        error = refused("expression", nosql({name: 1}))
        assert name not in error.message_en + error.message_zh and "this attribute" in error.message_en
    for collection in ("Household", "HouseHold", "Family", "Person", "Member", "household"):
        parse_criteria("expression", nosql({"status": "registered"}, collection))


def test_wrong_value_types():
    cases = [("household_size", "3"), ("household_size", 2.5), ("household_size", True), ("identified_year", "2014"),
             ("exit_date", "2019-13-01"), ("exit_date", "20191201"), ("exit_date", 20191201), ("is_disabled", "yes"),
             ("village_code", "新村"), ("village_code", "36070310520112345"), ("name", ""), ("status", 1),
             ("age", None), ("category", None)]
    for attribute, value in cases:
        error = refused("expression", nosql({attribute: {"$eq": value}}))
        assert attribute in error.message_en and attribute in error.message_zh, (attribute, value)
    assert expression({"household_size": 2.0}) is True  # a whole float is the integer


def test_birth_dates_cannot_be_queried():
    for name in ("birth_date", "DOB", "date_of_birth", "member.birth_date"):
        error = refused("expression", nosql({name: "1985-03-12"}))
        assert "birth_year" in error.message_en and "出生日期" in error.message_zh


def test_other_reason_code_for_subscription_filters():
    assert refused("expression", nosql({"nope": 1}), invalid_code="rjct.filter.invalid").reason_code == \
        "rjct.filter.invalid"
    assert refused("sql", "select 1").accepted == ("idtype-value", "expression", "predicate")
    assert refused("expression", nosql({"status": "registered"}), entity="Village").reason_code == \
        "rjct.search_criteria.invalid"


# ------------------------------------------------------------------------------------------ predicate

def item(attribute, op, value, condition=None, second=None, seq=None) -> dict:
    out = {"expression1": {"attribute_name": attribute, "operator": op, "attribute_value": value}}
    if condition:
        out["condition"] = condition
    if second:
        out["expression2"] = {"attribute_name": second[0], "operator": second[1], "attribute_value": second[2]}
    if seq is not None:
        out["seq_num"] = seq
    return out


def predicate(items: list, snapshot: dict | None = None, **kw):
    return matches(parse_criteria("predicate", items, **kw), snapshot or household(), as_of=AS_OF)


def test_predicate_conditions():
    assert predicate([item("status", "eq", "registered", "and", ("household_size", "ge", 2))]) is True
    assert predicate([item("status", "eq", "exited", "or", ("household_size", "ge", 2))]) is True
    assert predicate([item("status", "eq", "exited", "or", ("household_size", "gt", 2))]) is False
    # not: expression1 AND NOT expression2
    assert predicate([item("status", "eq", "registered", "not", ("category", "eq", "dibao"))]) is False
    assert predicate([item("status", "eq", "registered", "not", ("category", "eq", "marginal"))]) is True
    assert predicate([item("status", "in", ["exited", "registered"])]) is True
    assert predicate([item("income_per_capita", "le", "4000.1"), item("identified_year", "lt", 2015)]) is True
    # items are ANDed whatever their order
    assert predicate([item("status", "eq", "registered", seq=2), item("identified_year", "gt", 2015, seq=1)]) is False
    assert predicate([item("YOB", "lt", 1960, "and", ("sex", "eq", "male"))], entity="Member")[0]["id"] == "p2"
    adults = predicate([item("age", "ge", 18, "not", ("relationship_head", "eq", "self"))], entity="Member")
    assert [m["id"] for m in adults] == ["p2"]


def test_predicate_order_follows_seq_num():
    criteria = parse_criteria("predicate", [item("status", "eq", "registered", seq=2.5),
                                            item("household_size", "ge", 1), item("identified_year", "gt", 2000, seq=0)])
    assert isinstance(criteria.root, AllOf)
    assert [c.attribute for c in criteria.root.items] == ["identified_year", "household_size", "status"]


def test_predicate_errors():
    refused("predicate", [])
    refused("predicate", {"expression1": {}})
    refused("predicate", [item("status", "ne", "registered")])  # not a predicate operator
    refused("predicate", [item("status", "eq", "registered", "xor", ("status", "eq", "exited"))])
    refused("predicate", [item("status", "eq", "registered", "and")])  # a condition without expression2
    refused("predicate", [item("status", "eq", "registered", seq="1")])
    refused("predicate", [item("status", "eq", "registered", seq=True)])
    refused("predicate", [item("status", "in", "registered")])  # in takes a list
    refused("predicate", [{"expression1": {"attribute_name": "status", "operator": "eq"}}])
    refused("predicate", [{**item("status", "eq", "registered"), "expresion2": {}}])  # a typo is not ignored
    assert "ge" in refused("predicate", [item("status", "like", "x")]).accepted
    # expression2 without a condition is ANDed
    assert predicate([{**item("status", "eq", "registered"),
                       "expression2": {"attribute_name": "household_size", "operator": "eq", "attribute_value": 9}}]) \
        is False


# ------------------------------------------------------------------------------------------ limits

def test_query_size_and_depth_limits():
    many = [{"household_size": {"$ne": n}} for n in range(MAX_CONDITIONS)]
    parse_criteria("expression", nosql({"$and": many}))
    error = refused("expression", nosql({"$and": many + [{"status": "registered"}]}))
    assert str(MAX_CONDITIONS) in error.message_en
    refused("predicate", [item("household_size", "ge", n, "and", ("status", "eq", "registered")) for n in range(26)])

    def nested(depth: int) -> dict:
        node: dict = {"status": "registered"}
        for _ in range(depth):
            node = {"$not": node}
        return node
    parse_criteria("expression", nosql(nested(MAX_DEPTH - 1)))
    assert str(MAX_DEPTH) in refused("expression", nosql(nested(MAX_DEPTH))).message_en
    refused("expression", nosql({"person_id": {"$in": [f"p{n}" for n in range(101)]}}))
    refused("expression", nosql({"name": "欧" * 201}))


# ------------------------------------------------------------------------------------------ sort, pages

def test_parse_sort():
    assert parse_sort(None, "Household") == []
    assert parse_sort([{"attribute_name": "income_per_capita", "sort_order": "desc"},
                       {"attribute_name": "household_id"}], "Household") == [
        ("income_per_capita", True), ("household_identifier", False)]
    assert parse_sort([{"attribute_name": "YOB", "sort_order": "ASC"}], "Member") == [("birth_year", False)]
    for sort, entity in [([{"attribute_name": "age"}], "Household"),  # person attributes sort members only
                         ([{"attribute_name": "category"}], "Household"),
                         ([{"attribute_name": "id_number"}], "Member"),
                         ([{"attribute_name": "nope"}], "Household"),
                         ([{"attribute_name": "status", "sort_order": "up"}], "Household"),
                         ([{"sort_order": "asc"}], "Household"), ({"attribute_name": "status"}, "Household"),
                         ([{"attribute_name": "status"}] * 6, "Household")]:
        with pytest.raises(QueryError) as caught:
            parse_sort(sort, entity)
        assert caught.value.reason_code == "rjct.sort.invalid" and caught.value.message_zh


def test_parse_pagination():
    assert parse_pagination({"page_size": 10}, max_page_size=100) == (10, 1)
    assert parse_pagination({"page_size": 10.0, "page_number": 3.0}, max_page_size=100) == (10, 3)
    assert parse_pagination({"page_size": 100, "page_number": 2}, max_page_size=100) == (100, 2)
    assert parse_pagination(None, max_page_size=100) == (100, 1)
    for pagination in ({"page_size": 10.5}, {"page_size": "10"}, {"page_size": True}, {"page_size": 0},
                       {"page_size": 101}, {"page_size": -1}, {"page_size": 10, "page_number": 0},
                       {"page_size": 10, "page_number": "2"}, {"page_size": 10, "page_number": False},
                       {"page_size": 10, "page_number": 1.5}, {"page_number": 1}, [10], {"page_size": None}):
        with pytest.raises(QueryError) as caught:
            parse_pagination(pagination, max_page_size=100)
        assert caught.value.reason_code == "rjct.pagination.invalid" and caught.value.message_zh


# ------------------------------------------------------------------------------------------ properties

STATUSES = ["candidate", "registered", "exited", "monitored", "returned", "removed"]
members = st.lists(st.fixed_dictionaries({
    "sex": st.sampled_from(["M", "F"]),
    "birth_date": st.dates(date(1930, 1, 1), date(2020, 6, 1)).map(date.isoformat),
    "relation": st.sampled_from(["head", "spouse", "child", "parent", "other"]),
    "health": st.sampled_from(["healthy", "chronic", "disabled"]),
    "deceased": st.booleans(),
}), max_size=5).map(lambda ms: [{**m, "id": f"p{i}"} for i, m in enumerate(ms)])
snapshots = st.builds(
    lambda status, categories, income, year, ms: household(status=status, categories=categories, members=ms,
                                                           identified_year=year,
                                                           income=None if income is None else
                                                           {"year": 2019, "per_capita_net": f"{income:.2f}"}),
    st.sampled_from(STATUSES), st.lists(st.sampled_from(["dibao", "marginal", "relocated"]), unique=True),
    st.none() | st.decimals(0, 9000, places=2), st.none() | st.integers(2013, 2020), members)
household_conditions = st.one_of(
    st.builds(lambda op, n: {"household_size": {op: n}}, st.sampled_from(["$eq", "$ne", "$lt", "$lte", "$gt", "$gte"]),
              st.integers(0, 6)),
    st.builds(lambda op, v: {"income_per_capita": {op: v}}, st.sampled_from(["$lt", "$gte", "$ne"]),
              st.integers(0, 9000) | st.decimals(0, 9000, places=2).map(str)),
    st.builds(lambda op, v: {"status": {op: v}}, st.sampled_from(["$in", "$nin"]),
              st.lists(st.sampled_from(STATUSES), min_size=1, max_size=3)),
    st.builds(lambda v: {"category": v}, st.sampled_from(["dibao", "marginal", "relocated"])),
    st.builds(lambda op, v: {"identified_year": {op: v}}, st.sampled_from(["$lt", "$gte", "$eq"]),
              st.none() | st.integers(2012, 2021)).filter(lambda c: "$eq" in c["identified_year"]
                                                          or c["identified_year"][next(iter(c["identified_year"]))]
                                                          is not None),
)
PERSON_ATTRIBUTES = {"sex", "age", "relationship_head", "is_disabled"}
person_conditions = st.one_of(
    st.builds(lambda v: {"sex": v}, st.sampled_from(["M", "F", "男", "female"])),
    st.builds(lambda op, n: {"age": {op: n}}, st.sampled_from(["$lt", "$gte"]), st.integers(0, 95)),
    st.builds(lambda v: {"relationship_head": {"$in": v}}, st.lists(st.sampled_from(["self", "spouse", "child"]),
                                                                    min_size=1)),
    st.builds(lambda v: {"is_disabled": v}, st.booleans()),
)


@settings(max_examples=200, deadline=None)
@given(snapshots, household_conditions, household_conditions)
def test_and_or_not_of_household_conditions(snapshot, a, b):
    both, either = expression({"$and": [a, b]}, snapshot), expression({"$or": [a, b]}, snapshot)
    assert both == (expression(a, snapshot) and expression(b, snapshot))
    assert either == (expression(a, snapshot) or expression(b, snapshot))
    assert expression({"$not": a}, snapshot) == (not expression(a, snapshot))
    if not set(a) & set(b):
        assert expression({**a, **b}, snapshot) == both  # two fields of one object are ANDed


@settings(max_examples=200, deadline=None)
@given(snapshots, household_conditions | person_conditions, household_conditions | person_conditions)
def test_members_of_an_and_are_the_members_of_both(snapshot, a, b):
    def ids(query):
        return [m["id"] for m in expression(query, snapshot, entity="Member")]
    assert ids({"$and": [a, b]}) == [m for m in ids(a) if m in ids(b)]
    assert ids({"$or": [a, b]}) == [m for m in ids({"household_size": {"$gte": 0}}) if m in ids(a) or m in ids(b)]
    if set(a) & PERSON_ATTRIBUTES or set(b) & PERSON_ATTRIBUTES:  # a household matches when one of its members does
        assert expression({"$and": [a, b]}, snapshot) == bool(ids({"$and": [a, b]}))


@settings(max_examples=100, deadline=None)
@given(st.dates(date(1950, 1, 1), date(2020, 1, 1)), st.integers(0, 998))
def test_any_valid_number_finds_its_holder(born, seq):
    number = make_id_number("360782", born, seq)
    snapshot = household(members=[{"id": "p1", "id_number": number, "sex": "M" if seq % 2 else "F",
                                   "birth_date": born.isoformat(), "relation": "head"}])
    full_width = number.translate(str.maketrans("0123456789X", "０１２３４５６７８９Ｘ"))
    assert matches(parse_criteria("idtype-value", {"type": "NID", "value": full_width}), snapshot, as_of=AS_OF)
    other = make_id_number("360782", born + timedelta(days=1), seq)
    assert not matches(parse_criteria("idtype-value", {"type": "NID", "value": other}), snapshot, as_of=AS_OF)
