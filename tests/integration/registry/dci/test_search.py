"""services.registry.dci.queries.search over the demo district (200 households of five Nankang villages), on
SQLite and PostgreSQL: the three query types, Member records, totals and pages, sort, area scoping.
Every expected answer is worked out here from the stored snapshots with plain Python, not with ``matches``."""
from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from jingzhun_cli.demo import load_demo_district
from services.registry.dci.queries import QueryError, parse_criteria, parse_pagination, parse_sort, search
from services.registry.tables import households
from shared.auth import Principal
from shared.personal_data import age_on

AS_OF = date(2020, 6, 30)
ADMIN = Principal(subject="admin-1", scopes=frozenset({"admin"}))
COUNTY = Principal(subject="office-nankang", scopes=frozenset({"registry:read"}), area="360703")  # 南康区
SHILI = Principal(subject="office-shili", scopes=frozenset({"registry:read"}), area="360703102")  # 示例镇
ZHANGGONG = Principal(subject="office-zhanggong", scopes=frozenset({"registry:read"}), area="360702")  # 章贡区
HEAD_0001 = "360782194806120013"  # 黄老根, head of hh-demo-0001 (新村村)
XINCUN = "360703105201"  # 新村村, 隆木乡
CLEAR_NUMBER = re.compile(r"(?<!\d)\d{17}[\dX](?!\d)")


@pytest.fixture
async def demo(registry):
    await load_demo_district(registry.app.state.sessionmaker, registry.settings)
    async with registry.app.state.sessionmaker() as session:
        registry.snapshots = {row.id: row.snapshot for row in
                              (await session.execute(select(households.c.id, households.c.snapshot))).all()}
    return registry


async def run(demo, principal, query_type, query, *, entity="Household", sort=None, pagination=None,
              clear=False, max_matches=100_000):
    criteria = parse_criteria(query_type, query, entity=entity)
    page_size, page_number = parse_pagination(pagination, max_page_size=1000)
    async with demo.app.state.sessionmaker() as session:
        return await search(session, principal, criteria, entity=entity, sort=parse_sort(sort, entity),
                            page_size=page_size, page_number=page_number, as_of=AS_OF, clear=clear,
                            max_matches=max_matches)


def nosql(query: dict, collection: str = "HouseHold") -> dict:
    return {"type": "ns:org:QueryType:NoSql", "value": {"expression": {"collection": collection, "query": query}}}


def living(snapshot: dict) -> list[dict]:
    return [m for m in snapshot["members"] if not m.get("deceased")]


async def test_identifier_queries_find_one_household_through_the_index(demo):
    by_number = await run(demo, COUNTY, "idtype-value", {"type": "身份证号码", "value": HEAD_0001})
    assert by_number.total_count == 1
    record = by_number.records[0]
    assert record["household_identifier"] == "hh-demo-0001" and record["@type"] == "Household"
    head = record["household_head_info"]["person"]
    assert head["identifier_value"] == "360782********0013" and head["name"]["full_name"] == "黄老根"
    assert head["birth_year"] == 1948 and "birth_date" not in head
    text = json.dumps(by_number.records, ensure_ascii=False)
    assert not CLEAR_NUMBER.search(text) and "birth_date" not in text
    assert record["registration_date"] and record["last_update"]  # the row's times

    # an admin's clear view; full-width digits and the lower-case alias are the same number
    clear = await run(demo, ADMIN, "idtype-value", {"type": "nid", "value": "３６０７８２１９４８０６１２００１３"},
                      clear=True)
    person = clear.records[0]["household_head_info"]["person"]
    assert person["identifier_value"] == HEAD_0001 and person["birth_date"] == "1948-06-12"

    by_household = await run(demo, COUNTY, "idtype-value", {"type": "户编号", "value": "hh-demo-0002"})
    assert [r["household_identifier"] for r in by_household.records] == ["hh-demo-0002"]
    member_id = demo.snapshots["hh-demo-0002"]["members"][1]["id"]
    by_person = await run(demo, COUNTY, "idtype-value", {"type": "MEMBER_ID", "value": member_id}, entity="Member")
    assert by_person.total_count == 1 and by_person.records[0]["member_identifier"] == member_id

    # the deceased head of hh-demo-0193 left the person index: the number finds nobody ...
    dead = next(m for m in demo.snapshots["hh-demo-0193"]["members"] if m.get("deceased"))
    assert (await run(demo, ADMIN, "idtype-value", {"type": "NID", "value": dead["id_number"]})).total_count == 0
    # ... but a query that names `deceased` looks at the dead too
    found = await run(demo, ADMIN, "expression", nosql({"deceased": True}, "Member"), entity="Member")
    assert [(r["household_identifier"], r["death_date"]) for r in found.records] == [("hh-demo-0193", "2020-02-14")]


async def test_expression_and_predicate_totals_agree_with_the_snapshots(demo):
    expected = sorted(hid for hid, s in demo.snapshots.items()
                      if s["village"]["code"] == XINCUN and "dibao" in s["categories"])
    village = await run(demo, COUNTY, "expression", nosql({"$and": [{"village_code": {"$eq": XINCUN}},
                                                                     {"category": "dibao"}]}))
    assert village.total_count == len(expected) > 0
    assert [r["household_identifier"] for r in village.records] == expected  # by household id
    # the same question where nothing can be pushed into SQL ($or at the top) gives the same answer
    unpushed = await run(demo, COUNTY, "expression", nosql({"$or": [
        {"$and": [{"village_code": XINCUN}, {"categories": {"$in": ["dibao"]}}]},
        {"household_size": {"$gt": 99}}]}))
    assert unpushed.total_count == len(expected)
    # the spec's example names: location is an area-code prefix, household_size the living members
    township = await run(demo, COUNTY, "expression", nosql({"$and": [{"location": {"$eq": "360703105"}},
                                                                      {"household_size": {"$lt": 3}}]}))
    assert township.total_count == sum(1 for s in demo.snapshots.values()
                                       if s["village"]["code"].startswith("360703105") and len(living(s)) < 3)

    predicate = [{"seq_num": 2, "expression1": {"attribute_name": "status", "operator": "eq",
                                                 "attribute_value": "registered"},
                  "condition": "not", "expression2": {"attribute_name": "category", "operator": "eq",
                                                      "attribute_value": "dibao"}},
                 {"seq_num": 1, "expression1": {"attribute_name": "income_per_capita", "operator": "le",
                                                 "attribute_value": "3218"},
                  "condition": "or", "expression2": {"attribute_name": "household_size", "operator": "ge",
                                                     "attribute_value": 5}}]
    result = await run(demo, COUNTY, "predicate", predicate)
    assert result.total_count == sum(
        1 for s in demo.snapshots.values()
        if s["status"] == "registered" and "dibao" not in s["categories"]
        and (Decimal(s["income"]["per_capita_net"]) <= Decimal("3218") or len(living(s)) >= 5)) > 0


async def test_member_entity_answers_person_records(demo):
    query = nosql({"$and": [{"sex": "女"}, {"age": {"$gte": 60}}, {"household.township_code": "360703102"}]},
                  "Person")
    result = await run(demo, SHILI, "expression", query, entity="Member", pagination={"page_size": 1000})
    expected = sorted((hid, m["id"]) for hid, s in demo.snapshots.items() for m in living(s)
                      if s["village"]["township_code"] == "360703102" and m["sex"] == "F"
                      and age_on(m["birth_date"], AS_OF) >= 60)
    assert result.total_count == len(expected) > 0
    assert [(r["household_identifier"], r["member_identifier"]) for r in result.records] == expected
    record = result.records[0]
    assert (record["@type"], record["sex"], record["identifier"]["identifier_type"]) == ("Person", "female", "NID")
    assert "*" in record["identifier"]["identifier_value"] and "birth_date" not in record and record["birth_year"]
    # a Household answer to the same query: households with such a member
    households_found = await run(demo, SHILI, "expression", query)
    assert households_found.total_count == len({hid for hid, _ in expected})


async def test_pages_and_sort(demo):
    query = nosql({"area_code": "360703"})
    everything = await run(demo, COUNTY, "expression", query, sort=[{"attribute_name": "income_per_capita",
                                                                      "sort_order": "desc"}],
                           pagination={"page_size": 1000})
    assert everything.total_count == len(demo.snapshots) == 200
    ids = [r["household_identifier"] for r in everything.records]
    incomes = [Decimal(demo.snapshots[hid]["income"]["per_capita_net"]) for hid in ids]
    assert incomes == sorted(incomes, reverse=True)
    for richer, poorer in zip(ids, ids[1:]):  # equal incomes by household id
        if demo.snapshots[richer]["income"]["per_capita_net"] == demo.snapshots[poorer]["income"]["per_capita_net"]:
            assert richer < poorer

    pages = []
    for number in range(1, 10):
        page = await run(demo, COUNTY, "expression", query, pagination={"page_size": 23, "page_number": number},
                         sort=[{"attribute_name": "income_per_capita", "sort_order": "desc"}])
        assert page.total_count == 200
        pages.append([r["household_identifier"] for r in page.records])
    assert [len(p) for p in pages] == [23] * 8 + [16]
    assert sum(pages, []) == ids
    beyond = await run(demo, COUNTY, "expression", query, pagination={"page_size": 23, "page_number": 10})
    assert (beyond.records, beyond.total_count) == ([], 200)

    # members by village (asc) then age (desc): the oldest first within each village
    members = await run(demo, COUNTY, "expression", nosql({"relationship_head": "self"}, "Member"), entity="Member",
                        sort=[{"attribute_name": "village_code", "sort_order": "asc"},
                              {"attribute_name": "age", "sort_order": "desc"}], pagination={"page_size": 1000})
    keys = [(r["sub_region_code"], r["birth_year"]) for r in members.records]
    assert members.total_count == 200 - 1 and keys == sorted(keys)  # hh-demo-0193's head died

    with pytest.raises(QueryError) as too_many:
        await run(demo, COUNTY, "expression", query, max_matches=150)
    assert too_many.value.reason_code == "rjct.search.too_many_records_found"


async def test_another_area_never_sees_nor_counts_a_household(demo):
    for principal in (ZHANGGONG, SHILI):  # another county; another township of the same county
        assert (await run(demo, principal, "idtype-value", {"type": "NID", "value": HEAD_0001})).total_count == 0
        assert (await run(demo, principal, "idtype-value", {"type": "HHID", "value": "hh-demo-0001"})).total_count == 0
    everything = nosql({"household_size": {"$gte": 0}})
    assert (await run(demo, ZHANGGONG, "expression", everything)).total_count == 0
    own = await run(demo, SHILI, "expression", everything, pagination={"page_size": 1000})
    assert own.total_count == sum(1 for s in demo.snapshots.values() if s["village"]["township_code"] == "360703102")
    assert {r["address"]["township_code"] for r in own.records} == {"360703102"}
    # asking for another area explicitly does not widen the caller's own
    assert (await run(demo, SHILI, "expression", nosql({"village_code": XINCUN}))).total_count == 0
