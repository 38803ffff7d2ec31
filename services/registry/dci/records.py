"""Households and persons as DCI Social Registry records (docs/dci-records-and-queries.md). Pure: no I/O.

* ``household_record`` – the spec's Household record (``reg_records`` of a search response);
* ``person_record``    – the spec's Person record (``response_entity: Member``).

``clear=True`` (an administrator's view) carries clear ID numbers and exact birth dates. ``clear=False``
carries the masked number (first 6, last 4) and the birth *year* only: the mask hides exactly the eight
birth-date digits, so no object of a masked record, nested ones included, holds a birth date or an age
(docs/security.md, tests/integration/test_no_rebuild.py).

Choices, in one place:

* dates are ISO 8601 (``YYYY-MM-DD``; ``last_update`` a timestamp), money a decimal string (``"2800.00"``);
* ``is_disabled`` is ``"1"`` / ``"0"`` as in the spec's example; a member is disabled when a disability is
  recorded or their health is ``disabled``;
* ``death_date`` is present exactly for deceased members (``""`` when the date is not recorded);
* a Chinese name is split into surname and given name (compound surnames 欧阳, 司马, … kept whole), and
  the name as written stays in ``name.full_name``;
* the household's version travels as the top-level extension ``"jz:version"`` (the ``jz`` prefix is in the
  record's ``@context``);
* ``registration_date`` is the day the household entered this registry (its row's ``created_at``, China
  time) when the caller passes it, else ``""``; the year of identification (识别年份) is the additional
  attribute ``identified_year``;
* facts of this registry that the spec has no field for are ``additional_attributes``
  (``[{"attribute_name", "attribute_value"}]``), named like the query attributes that filter on them.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.clock import CHINA
from shared.events import as_aware
from shared.idcard import mask_id_number
from shared.money import format_yuan
from shared.personal_data import birth_year

#: The ``jz:`` prefix of this registry's extensions to the spec's records.
JZ_NAMESPACE = "https://jingzhun.dev/dci/v1#"

#: The ``@context`` of a Household record: the spec's, plus the ``jz`` prefix.
HOUSEHOLD_CONTEXT: dict[str, str] = {
    "@vocab": "https://schema.spdci.org/extensions/social/v1",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "schema": "http://schema.org/",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "jz": JZ_NAMESPACE,
}
#: The ``@context`` of a Person record: the social registry's vocabulary too (the spec's search response
#: names social/v1/Person.jsonld for persons).
PERSON_CONTEXT: dict[str, str] = dict(HOUSEHOLD_CONTEXT)

#: The identifier type of a resident identity card number (居民身份证号码) in records.
NID = "NID"

#: Two-character surnames (复姓) that a name split keeps whole.
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文",
                     "司徒", "夏侯", "轩辕", "令狐", "端木", "南宫", "西门", "独孤", "呼延")
#: Separators of minority names transliterated into Chinese (阿依古丽·买买提): such names are not split.
_NAME_DOTS = ("·", "•", "‧", "・", ".")

#: registry ``relation`` → DCI ``relationship_head``.
RELATIONSHIP_HEAD = {"head": "self", "spouse": "spouse", "child": "child", "parent": "parent", "other": "other"}
#: registry ``sex`` → DCI sex code.
SEX = {"M": "male", "F": "female"}


def split_chinese_name(full_name: str | None) -> tuple[str, str]:
    """(surname, given name) of a Chinese name: the first character is the surname, or the first two for a
    compound surname (欧阳娜娜 → 欧阳, 娜娜). A name with a middle dot (a minority name) has no surname to
    split off: ("", the whole name)."""
    name = (full_name or "").strip()
    if not name:
        return "", ""
    if any(dot in name for dot in _NAME_DOTS):
        return "", name
    if len(name) > 2 and name[:2] in COMPOUND_SURNAMES:
        return name[:2], name[2:]
    return name[:1], name[1:]


def is_disabled(member: dict) -> bool:
    """A recorded disability (残疾等级) or health ``disabled``: the records' ``is_disabled`` and the
    query attribute of the same name."""
    return bool(member.get("disability")) or member.get("health") == "disabled"


def _iso_day(value: Any) -> str:
    """A snapshot date (``"1978-03-15"``) or a row's timestamp (its day in China) as ``YYYY-MM-DD``."""
    if isinstance(value, datetime):
        return as_aware(value).astimezone(CHINA).date().isoformat()
    return str(value)[:10] if value else ""


def _attribute(name: str, value: Any) -> dict:
    return {"attribute_name": name, "attribute_value": value}


def _attributes(pairs: list[tuple[str, Any]]) -> list[dict]:
    """The additional attributes whose value is known (``None`` leaves the attribute out)."""
    return [_attribute(name, value) for name, value in pairs if value is not None]


def _name(full_name: str | None, given_key: str) -> dict:
    surname, given = split_chinese_name(full_name)
    return {"surname": surname, given_key: given, "second_name": "", "full_name": (full_name or "").strip()}


def _identity(member: dict, clear: bool) -> str:
    number = member.get("id_number") or ""
    return number if clear else mask_id_number(number)


def _birth_and_death(member: dict, clear: bool) -> dict:
    """birth_date (clear only) or birth_year; death_date for the deceased."""
    out: dict[str, Any] = {}
    if clear:
        out["birth_date"] = _iso_day(member.get("birth_date"))
    else:
        out["birth_year"] = birth_year(member.get("birth_date"))
    if member.get("deceased"):
        out["death_date"] = _iso_day(member.get("date_of_death"))
    return out


def _household_person(member: dict, clear: bool) -> dict:
    """A person inside a Household record, shaped like the spec's Household example."""
    return {"identifier_type": NID, "identifier_value": _identity(member, clear),
            "name": _name(member.get("name"), "first_name"), "sex": SEX.get(member.get("sex"), ""),
            **_birth_and_death(member, clear)}


def _member_facts(member: dict) -> dict:
    """relationship_head, disability, employment and schooling of a member, and its own registry facts."""
    out: dict[str, Any] = {"relationship_head": RELATIONSHIP_HEAD.get(member.get("relation") or "other", "other"),
                           "is_disabled": "1" if is_disabled(member) else "0"}
    disability = member.get("disability")
    if disability:
        out["disability_info"] = f"{disability.get('kind')}, grade {disability.get('grade')}"
    employment = member.get("employment")
    if employment:
        out["employment_status"] = "employed"
        if employment.get("public_post"):
            out["occupation"] = "public_welfare_post"
        elif employment.get("workshop"):
            out["occupation"] = "poverty_alleviation_workshop"
    student = member.get("student")
    if student and student.get("stage"):
        out["education_level"] = student["stage"]
    out["additional_attributes"] = _attributes([("labour_capacity", member.get("labour_capacity")),
                                                ("health", member.get("health"))])
    return out


def _household_member(member: dict, clear: bool) -> dict:
    return {"household_member": {"member_identifier": member.get("id") or "",
                                 "demographic_info": {"person": _household_person(member, clear)},
                                 **_member_facts(member)}}


def household_size(snapshot: dict) -> int:
    """Living members (the deceased stay listed in ``member_list`` but do not count)."""
    return sum(not member.get("deceased") for member in snapshot.get("members") or [])


def _head(snapshot: dict) -> dict | None:
    members = snapshot.get("members") or []
    living = [m for m in members if not m.get("deceased")]
    return next((m for m in living if m.get("relation") == "head"),
                next((m for m in members if m.get("relation") == "head"), None))


def _income_attributes(snapshot: dict) -> list[tuple[str, Any]]:
    income = snapshot.get("income") or {}
    amount = income.get("per_capita_net")
    return [("income_per_capita", format_yuan(amount) if amount is not None else None),
            ("income_year", income.get("year"))]


def household_record(snapshot: dict, *, clear: bool, created_at: datetime | None = None,
                     updated_at: datetime | None = None) -> dict:
    """The DCI Household record of a registry snapshot (``created_at`` / ``updated_at``: the row's times,
    for ``registration_date`` and ``last_update``; ``""`` without them; naive ones are UTC, as SQLite
    hands them back)."""
    village = snapshot.get("village") or {}
    members = snapshot.get("members") or []
    head = _head(snapshot)
    return {
        "@context": dict(HOUSEHOLD_CONTEXT), "@id": "Household", "@type": "Household",
        "household_identifier": snapshot.get("id") or "",
        "jz:version": snapshot.get("version"),
        "address": {"geo_location": "", "region_code": snapshot.get("region_code") or "",
                    "village_code": village.get("code") or "", "village_name": village.get("name") or "",
                    "township_code": village.get("township_code") or "",
                    "township_name": village.get("township_name") or ""},
        "household_size": household_size(snapshot),
        "household_head_info": {"person": _household_person(head, clear)} if head else {},
        "member_list": [_household_member(member, clear) for member in members],
        "additional_attributes": _attributes([
            ("status", snapshot.get("status")), ("categories", list(snapshot.get("categories") or [])),
            ("identified_year", snapshot.get("identified_year")), ("exit_date", snapshot.get("exit_date")),
            ("dibao_class", snapshot.get("dibao_class")),
            ("poverty_causes", list(snapshot.get("poverty_causes") or [])),
            *_income_attributes(snapshot), ("village_name", village.get("name") or None)]),
        "registration_date": _iso_day(created_at),
        "last_update": as_aware(updated_at).isoformat() if updated_at else "",
    }


def person_record(member: dict, snapshot: dict, *, clear: bool) -> dict:
    """The DCI Person record of one member of a household snapshot."""
    village = snapshot.get("village") or {}
    return {
        "@context": dict(PERSON_CONTEXT), "@id": "Person", "@type": "Person",
        "identifier": {"@type": "Identifier", "identifier_type": NID, "identifier_value": _identity(member, clear)},
        "member_identifier": member.get("id") or "",
        "name": {"@type": "Name", **_name(member.get("name"), "given_name"), "prefix": "", "suffix": ""},
        "sex": SEX.get(member.get("sex"), ""),
        **_birth_and_death(member, clear),
        "household_identifier": snapshot.get("id") or "",
        "household_status": snapshot.get("status") or "",
        "sub_region_code": village.get("code") or snapshot.get("region_code") or "",
        **_member_facts(member),
    }
