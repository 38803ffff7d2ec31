"""Household members: add, change, mark deceased, move between households.

Each is a new household version through ``save_new_version`` (strict validation, ID-number
checks, the one-household-per-living-person index, the outbox event). A move changes two
households and publishes one ``person.moved`` per household, each with that household's snapshot.
"""
from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.common import VALIDATION, invalid, problem_from_validation
from services.registry.households.merge_patch import apply_merge_patch
from services.registry.households.service import check_area, check_if_match, load_household, save_new_version
from shared.auth import Principal
from shared.problems import Problem
from shared.snapshot import Person, strict_variant

StrictPerson = strict_variant(Person)
EVENT_PERSON_MOVED = "person.moved"


def _member_index(snapshot: dict, person_id: str) -> int:
    for index, member in enumerate(snapshot["members"]):
        if member["id"] == person_id:
            return index
    raise Problem(404, "Member not found", f"Household {snapshot['id']} has no member {person_id}.")


def _validated_person(body: Any, loc: tuple = ("body",)) -> dict:
    if not isinstance(body, dict):
        raise invalid(list(loc), "a person must be a JSON object")
    if body.get("id"):
        raise invalid([*loc, "id"], "member ids are assigned by the registry")
    try:
        return StrictPerson.model_validate(body).model_dump(mode="json", exclude_unset=True)
    except ValidationError as exc:
        raise problem_from_validation(exc, "Invalid member", prefix=loc) from exc


async def add_member(session: AsyncSession, household_id: str, body: Any, if_match: str | None,
                     principal: Principal) -> dict:
    person = _validated_person(body)
    before = await load_household(session, household_id, principal, for_update=True)
    check_if_match(if_match, before["version"])
    after = {**before, "members": [*before["members"], person]}
    return await save_new_version(session, before, after, event_type="household.updated", actor=principal.subject,
                                  note="member added")


async def change_member(session: AsyncSession, household_id: str, person_id: str, patch: Any,
                        if_match: str | None, principal: Principal) -> dict:
    if not isinstance(patch, dict):
        raise invalid(["body"], "a JSON merge patch must be an object")
    if "id" in patch:
        raise invalid(["body", "id"], "member ids are assigned by the registry")
    before = await load_household(session, household_id, principal, for_update=True)
    check_if_match(if_match, before["version"])
    index = _member_index(before, person_id)
    members = list(before["members"])
    changed = apply_merge_patch(members[index], patch)
    try:
        StrictPerson.model_validate({k: v for k, v in changed.items() if k != "id"})
    except ValidationError as exc:
        raise problem_from_validation(exc, "Invalid member") from exc
    members[index] = changed
    return await save_new_version(session, before, {**before, "members": members}, event_type="household.updated",
                                  actor=principal.subject, note=f"member {person_id} changed")


async def mark_deceased(session: AsyncSession, household_id: str, person_id: str, date_of_death: date | None,
                        note: str | None, if_match: str | None, principal: Principal) -> dict:
    before = await load_household(session, household_id, principal, for_update=True)
    check_if_match(if_match, before["version"])
    index = _member_index(before, person_id)
    if before["members"][index].get("deceased"):
        raise Problem(409, "Already recorded as deceased", f"Member {person_id} is already recorded as deceased.",
                      type_="https://jingzhun.dev/problems/conflict")
    members = list(before["members"])
    members[index] = {**members[index], "deceased": True,
                      "date_of_death": date_of_death.isoformat() if date_of_death else None}
    text = f"member {person_id} deceased" + (f" on {date_of_death.isoformat()}" if date_of_death else "")
    return await save_new_version(session, before, {**before, "members": members}, event_type="household.updated",
                                  actor=principal.subject, note=f"{text}: {note}" if note else text)


async def move_member(session: AsyncSession, household_id: str, person_id: str, to_household_id: str,
                      relation: str | None, reason: str | None, if_match: str | None,
                      principal: Principal) -> tuple[dict, dict]:
    if to_household_id == household_id:
        raise invalid(["body", "to_household_id"], "the person is already in this household")
    # lock both rows in id order so two opposite moves cannot deadlock
    locked = {}
    for hid in sorted((household_id, to_household_id)):
        locked[hid] = await load_household(session, hid, principal, for_update=True)
    source, target = locked[household_id], locked[to_household_id]
    check_if_match(if_match, source["version"])
    index = _member_index(source, person_id)
    person = dict(source["members"][index])
    if person.get("deceased"):
        raise Problem(409, "Deceased member cannot move", f"Member {person_id} is recorded as deceased.",
                      type_="https://jingzhun.dev/problems/conflict")
    if relation is not None:
        person["relation"] = relation
    # 低保 cover is granted to a household (its cover), so the person does not bring it into the
    # new one: there it is "not stated" until that household's cover says otherwise. 特困 is the
    # person's own and moves with them (docs/registry.md, person-level categories).
    left_cover = person.get("dibao_covered") is True
    person["dibao_covered"] = None
    check_area(principal, target)
    moved = {"person_id": person_id, "from_household_id": household_id, "to_household_id": to_household_id,
             "reason": reason}
    note = (f"member {person_id} moved {household_id} → {to_household_id}" + (f": {reason}" if reason else "")
            + ("; 低保 cover stays with the old household" if left_cover else ""))
    source_after = await save_new_version(
        session, source, {**source, "members": [m for m in source["members"] if m["id"] != person_id]},
        event_type=EVENT_PERSON_MOVED, actor=principal.subject, note=note, extra={"move": moved})
    if any(m["id"] == person_id for m in target["members"]):
        raise Problem(409, "Member id clash", f"Household {to_household_id} already has a member {person_id}.",
                      type_=VALIDATION)
    target_after = await save_new_version(
        session, target, {**target, "members": [*target["members"], person]},
        event_type=EVENT_PERSON_MOVED, actor=principal.subject, note=note, extra={"move": moved})
    return source_after, target_after
