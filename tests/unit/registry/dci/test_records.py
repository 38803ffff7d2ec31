"""services.registry.dci.records: a registry household as the DCI Household record and its members as Person
records; a masked record (clear=False) never carries a clear number, a birth date nor an age."""
from __future__ import annotations

import json
import re
from datetime import date, datetime, timezone

from services.registry.dci.records import HOUSEHOLD_CONTEXT, household_record, person_record, split_chinese_name
from shared.idcard import make_id_number, mask_id_number

HEAD = make_id_number("360782", date(1985, 3, 12), 2)  # 欧阳娜娜, F
SPOUSE = make_id_number("360782", date(1983, 11, 5), 1)  # 李四, M
CHILD = make_id_number("360782", date(2009, 9, 1), 3)  # 李小明, M
MOTHER = make_id_number("360782", date(1952, 1, 30), 4)  # 王秀英, F, died 2020-02-14
BIRTH_DATES = ("1985-03-12", "1983-11-05", "2009-09-01", "1952-01-30")
CLEAR_NUMBER = re.compile(r"(?<!\d)\d{17}[\dX](?!\d)")


def household() -> dict:
    return {
        "id": "hh-demo-0042", "version": 7, "region_code": "360703",
        "village": {"code": "360703105201", "name": "新村村", "township_code": "360703105", "township_name": "隆木乡"},
        "status": "registered", "identified_year": 2014, "exit_date": None, "categories": ["dibao", "marginal"],
        "dibao_class": "B", "poverty_causes": ["illness", "lack_of_capital"],
        "income": {"year": 2019, "per_capita_net": "4000.10"},
        "members": [
            {"id": "p-head", "name": "欧阳娜娜", "id_number": HEAD, "sex": "F", "birth_date": "1985-03-12",
             "relation": "head", "labour_capacity": "full", "health": "healthy",
             "employment": {"place": "local", "monthly_wage": "2100.00", "public_post": {"monthly_pay": "800.00"}}},
            {"id": "p-spouse", "name": "李四", "id_number": SPOUSE, "sex": "M", "birth_date": "1983-11-05",
             "relation": "spouse", "labour_capacity": "weak", "health": "disabled",
             "disability": {"grade": 2, "kind": "physical"}},
            {"id": "p-child", "name": "李小明", "id_number": CHILD, "sex": "M", "birth_date": "2009-09-01",
             "relation": "child", "student": {"stage": "junior", "boarding": True}},
            {"id": "p-mother", "name": "王秀英", "id_number": MOTHER, "sex": "F", "birth_date": "1952-01-30",
             "relation": "parent", "deceased": True, "date_of_death": "2020-02-14"},
        ],
    }


def objects(value):
    """Every JSON object in a value, nested ones included."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from objects(item)


def scalars(value):
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from scalars(item)
    else:
        yield value


def persons(record: dict) -> list[dict]:
    return [record["household_head_info"]["person"]] + [
        m["household_member"]["demographic_info"]["person"] for m in record["member_list"]]


def test_household_record_maps_the_registry_household():
    created = datetime(2020, 3, 1, 17, 30, tzinfo=timezone.utc)  # 2020-03-02 01:30 in China
    record = household_record(household(), clear=False, created_at=created,
                              updated_at=datetime(2020, 6, 1, 8, 0))  # naive: UTC, as SQLite gives it
    assert record["@context"] == HOUSEHOLD_CONTEXT and record["@context"]["@vocab"] == \
        "https://schema.spdci.org/extensions/social/v1"
    assert (record["@id"], record["@type"]) == ("Household", "Household")
    assert record["household_identifier"] == "hh-demo-0042"
    assert record["jz:version"] == 7
    assert record["household_size"] == 3  # living members: the deceased mother is listed, not counted
    assert record["address"] == {"geo_location": "", "region_code": "360703", "village_code": "360703105201",
                                 "village_name": "新村村", "township_code": "360703105", "township_name": "隆木乡"}
    assert record["registration_date"] == "2020-03-02" and record["last_update"] == "2020-06-01T08:00:00+00:00"

    head = record["household_head_info"]["person"]
    assert head["name"] == {"surname": "欧阳", "first_name": "娜娜", "second_name": "", "full_name": "欧阳娜娜"}
    assert (head["identifier_type"], head["identifier_value"], head["sex"]) == ("NID", mask_id_number(HEAD), "female")

    members = {m["household_member"]["member_identifier"]: m["household_member"] for m in record["member_list"]}
    assert list(members) == ["p-head", "p-spouse", "p-child", "p-mother"]
    assert {k: m["relationship_head"] for k, m in members.items()} == {
        "p-head": "self", "p-spouse": "spouse", "p-child": "child", "p-mother": "parent"}
    spouse = members["p-spouse"]
    assert spouse["demographic_info"]["person"]["name"]["surname"] == "李"
    assert spouse["demographic_info"]["person"]["name"]["first_name"] == "四"
    assert (spouse["is_disabled"], spouse["disability_info"]) == ("1", "physical, grade 2")
    assert {"attribute_name": "labour_capacity", "attribute_value": "weak"} in spouse["additional_attributes"]
    assert members["p-head"]["is_disabled"] == "0" and "disability_info" not in members["p-head"]
    assert (members["p-head"]["employment_status"], members["p-head"]["occupation"]) == ("employed",
                                                                                         "public_welfare_post")
    assert members["p-child"]["education_level"] == "junior" and "employment_status" not in members["p-child"]
    mother = members["p-mother"]["demographic_info"]["person"]
    assert mother["death_date"] == "2020-02-14"
    assert all("death_date" not in members[k]["demographic_info"]["person"] for k in ("p-head", "p-spouse"))

    extra = {a["attribute_name"]: a["attribute_value"] for a in record["additional_attributes"]}
    assert extra == {"status": "registered", "categories": ["dibao", "marginal"], "identified_year": 2014,
                     "dibao_class": "B", "poverty_causes": ["illness", "lack_of_capital"],
                     "income_per_capita": "4000.10", "income_year": 2019, "village_name": "新村村"}
    assert "exit_date" not in extra  # not exited: no value, no attribute


def test_money_is_a_decimal_string_never_a_float():
    snapshot = household()
    snapshot["income"]["per_capita_net"] = 4000.1  # a float that reached a snapshot is still written exactly
    record = household_record(snapshot, clear=True)
    assert {"attribute_name": "income_per_capita", "attribute_value": "4000.10"} in record["additional_attributes"]
    assert not any(isinstance(value, float) for value in scalars(record))


def test_a_masked_record_cannot_give_a_number_back():
    for record in (household_record(household(), clear=False),
                   *(person_record(m, household(), clear=False) for m in household()["members"])):
        text = json.dumps(record, ensure_ascii=False)
        assert not CLEAR_NUMBER.search(text)
        assert not any(day in text or day.replace("-", "") in text for day in BIRTH_DATES)
        assert all("birth_date" not in obj and "age" not in obj for obj in objects(record))
    record = household_record(household(), clear=False)
    assert [p["birth_year"] for p in persons(record)] == [1985, 1985, 1983, 2009, 1952]
    assert [p["identifier_value"] for p in persons(record)][1:] == [mask_id_number(n) for n in
                                                                    (HEAD, SPOUSE, CHILD, MOTHER)]


def test_a_clear_record_carries_numbers_and_birth_dates():
    record = household_record(household(), clear=True)
    assert [(p["identifier_value"], p["birth_date"]) for p in persons(record)][1:] == list(
        zip((HEAD, SPOUSE, CHILD, MOTHER), BIRTH_DATES))
    assert all("birth_year" not in p for p in persons(record))


def test_person_record():
    snapshot = household()
    masked = person_record(snapshot["members"][0], snapshot, clear=False)
    assert (masked["@id"], masked["@type"]) == ("Person", "Person")
    assert masked["identifier"] == {"@type": "Identifier", "identifier_type": "NID",
                                    "identifier_value": mask_id_number(HEAD)}
    assert masked["name"] == {"@type": "Name", "surname": "欧阳", "given_name": "娜娜", "second_name": "",
                              "full_name": "欧阳娜娜", "prefix": "", "suffix": ""}
    assert (masked["sex"], masked["birth_year"], masked["member_identifier"]) == ("female", 1985, "p-head")
    assert (masked["household_identifier"], masked["household_status"], masked["sub_region_code"],
            masked["relationship_head"]) == ("hh-demo-0042", "registered", "360703105201", "self")
    assert "death_date" not in masked and "birth_date" not in masked

    clear = person_record(snapshot["members"][3], snapshot, clear=True)
    assert clear["identifier"]["identifier_value"] == MOTHER
    assert (clear["birth_date"], clear["death_date"], clear["sex"]) == ("1952-01-30", "2020-02-14", "female")
    assert clear["relationship_head"] == "parent"


def test_records_do_not_share_the_context_constant():
    record = household_record(household(), clear=False)
    record["@context"]["@vocab"] = "changed"
    assert HOUSEHOLD_CONTEXT["@vocab"] == "https://schema.spdci.org/extensions/social/v1"


def test_chinese_name_split():
    assert split_chinese_name("欧阳娜娜") == ("欧阳", "娜娜")
    assert split_chinese_name("司马光") == ("司马", "光")
    assert split_chinese_name("李四") == ("李", "四")
    assert split_chinese_name(" 钟大山 ") == ("钟", "大山")
    assert split_chinese_name("阿依古丽·买买提") == ("", "阿依古丽·买买提")  # a minority name is not split
    assert split_chinese_name("") == ("", "") and split_chinese_name(None) == ("", "")
