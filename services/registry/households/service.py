"""Household registration, reads and merge-patch updates: every change bumps the
version, keeps the old one and stages its event in the same transaction."""
from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.households.facts import facts_of, record_facts
from services.registry.households.merge_patch import apply_merge_patch, changed_paths
from services.registry.outbox import household_event_row, publish_household_event, publish_household_events_bulk
from services.registry.tables import household_versions, households, pairings, person_index
from shared.auth import Principal
from shared.db import json_dumps
from shared.events import utcnow
from shared.idcard import InvalidIdNumber, check_consistency, mask_id_number, validate_id_number
from shared.outbox import NOTIFY_CHANNEL, is_postgres
from shared.person_categories import derive_person_categories
from shared.personal_data import masked_snapshot
from shared.problems import Problem
from shared.snapshot import Household, HouseholdCreate

# Fields only procedures (transitions) may change; a patch cannot.
PROCEDURE_FIELDS = ("status", "exit_date")


def new_household_id() -> str:
    return f"hh-{uuid.uuid4().hex[:16]}"


def new_person_id() -> str:
    return f"p-{uuid.uuid4().hex[:12]}"


def area_code_of(snapshot: dict) -> str:
    village = snapshot.get("village") or {}
    return village.get("code") or snapshot.get("region_code") or ""


def check_area(principal: Principal, snapshot: dict) -> None:
    if not principal.sees_area(area_code_of(snapshot)):
        raise Problem(403, "Outside your area", f"Your token is limited to area {principal.area}.",
                      type_="https://jingzhun.dev/problems/forbidden")


def validation_problem(exc: ValidationError) -> Problem:
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return Problem(422, "Invalid household", "The household does not match the snapshot contract.",
                   type_="https://jingzhun.dev/problems/validation", errors=errors)


def _validated_snapshot(body: dict, household_id: str, version: int, before: dict | None = None) -> dict:
    """Strict validation of a written household, then its canonical snapshot form, whose person-level
    categories follow its living members (shared/person_categories.py; ``before`` = the stored version)."""
    try:
        HouseholdCreate.model_validate(body)
        household = Household.model_validate({**body, "id": household_id, "version": version})
    except ValidationError as exc:
        raise validation_problem(exc) from exc
    snapshot = household.model_dump(mode="json")
    for member in snapshot["members"]:
        member["id"] = member.get("id") or new_person_id()
    _check_members(snapshot["members"])
    errors = derive_person_categories(snapshot, before)
    if errors:
        raise Problem(422, "Invalid household",
                      "户类型与成员的低保/特困标记不一致 / The household categories do not match its members' "
                      "低保 / 特困 flags.", type_="https://jingzhun.dev/problems/validation", errors=errors)
    return snapshot


def _check_members(members: list[dict]) -> None:
    errors, seen = [], {}
    for index, member in enumerate(members):
        errors.extend(_death_problems(member, index))
        number = member.get("id_number")
        if not number:
            continue
        try:
            info = validate_id_number(number)
            member["id_number"] = info.number
            birth = member.get("birth_date")
            check_consistency(info.number, date.fromisoformat(birth) if birth else None, member.get("sex"))
        except InvalidIdNumber as exc:
            errors.append({"loc": ["body", "members", index, "id_number"], "msg": str(exc)})
            continue
        if info.number in seen:
            errors.append({"loc": ["body", "members", index, "id_number"],
                           "msg": f"same ID number as member {seen[info.number]}"})
        seen[info.number] = index
    ids = [m["id"] for m in members]
    if len(ids) != len(set(ids)):
        errors.append({"loc": ["body", "members"], "msg": "member ids must be unique"})
    if errors:
        raise Problem(422, "Invalid household", "Some members are invalid.",
                      type_="https://jingzhun.dev/problems/validation", errors=errors)


def _death_problems(member: dict, index: int) -> list[dict]:
    """A date of death belongs to a deceased member, and falls between birth and today."""
    died = member.get("date_of_death")
    if not died:
        return []
    loc = ["body", "members", index, "date_of_death"]
    if not member.get("deceased"):
        return [{"loc": loc, "msg": "date_of_death is set but the member is not deceased / 成员未标记为已故却填写了死亡日期"}]
    born = member.get("birth_date")
    if born and died < born:
        return [{"loc": loc, "msg": f"date of death {died} is before the birth date {born} / 死亡日期早于出生日期"}]
    if date.fromisoformat(died) > date.today():
        return [{"loc": loc, "msg": f"date of death {died} is in the future / 死亡日期晚于今天"}]
    return []


def _living(members: list[dict]) -> dict[str, str]:
    return {m["id_number"]: m["id"] for m in members if m.get("id_number") and not m.get("deceased")}


async def _claim_persons(session: AsyncSession, household_id: str, members: list[dict]) -> None:
    """Re-index the household's living members; a person living elsewhere is a conflict."""
    living = {m["id_number"]: m["id"] for m in members if m.get("id_number") and not m.get("deceased")}
    if living:
        rows = (await session.execute(select(person_index.c.id_number, person_index.c.household_id)
                                      .where(person_index.c.id_number.in_(list(living)),
                                             person_index.c.household_id != household_id))).all()
        if rows:
            raise Problem(409, "Person already in another household",
                          "A living person belongs to at most one household.",
                          type_="https://jingzhun.dev/problems/person-conflict",
                          conflicts=[{"id_number": mask_id_number(r.id_number), "household_id": r.household_id}
                                     for r in rows])
    await session.execute(delete(person_index).where(person_index.c.household_id == household_id))
    if living:
        await session.execute(insert(person_index), [
            {"id_number": number, "household_id": household_id, "person_id": pid} for number, pid in living.items()])


def _row_values(snapshot: dict) -> dict:
    village = snapshot.get("village") or {}
    return {"version": snapshot["version"], "region_code": snapshot["region_code"],
            "village_code": village.get("code"), "township_code": village.get("township_code"),
            "status": snapshot["status"], "categories": categories_column(snapshot.get("categories")),
            "snapshot": snapshot}


def categories_column(categories: list[str] | None) -> str | None:
    """",dibao,marginal," so that a category filter is a LIKE that works on every database."""
    return f",{','.join(categories)}," if categories else None


async def _record_version(session: AsyncSession, snapshot: dict, event_type: str, paths: list[str],
                          actor: str | None, note: str | None = None) -> None:
    await session.execute(insert(household_versions).values(
        household_id=snapshot["id"], version=snapshot["version"], event_type=event_type, changed_paths=paths,
        snapshot=snapshot, actor=actor, note=note, at=utcnow()))


async def create_household(session: AsyncSession, body: dict[str, Any], principal: Principal,
                           *, household_id: str | None = None) -> dict:
    if body.get("status", "candidate") != "candidate" and not principal.is_admin:
        raise Problem(403, "Status needs admin",
                      "Only an admin may create a household in a status other than candidate "
                      "(bringing in an existing ledger); others start as candidate and use transitions.",
                      type_="https://jingzhun.dev/problems/forbidden")
    household_id = household_id or new_household_id()
    snapshot = _validated_snapshot(body, household_id, 1)
    check_area(principal, snapshot)
    note = "created with status by admin (ledger import)" if snapshot["status"] != "candidate" else None
    if is_postgres(session):
        await _insert_new_household(session, snapshot, principal, note)
        return snapshot
    # SQLite: a no-op write first takes the database's write lock, so no other create claims a member between
    # the checks below and the inserts (two concurrent creates of one person were a 409 and a 500).
    await session.execute(update(households).where(households.c.id == household_id)
                          .values(version=households.c.version))
    if await session.scalar(select(households.c.id).where(households.c.id == household_id)):
        raise Problem(409, "Household exists", f"Household {household_id} already exists.")
    await _claim_persons(session, household_id, snapshot["members"])
    now = utcnow()
    await session.execute(insert(households).values(id=household_id, created_by=principal.subject,
                                                    created_at=now, updated_at=now, **_row_values(snapshot)))
    await _record_version(session, snapshot, "household.registered", [], principal.subject, note)
    await publish_household_event(session, "household.registered", snapshot, actor=principal.subject)
    return snapshot


#: A registration on PostgreSQL as one statement (one round trip): the same checks and rows as the SQLite path
#: above. Nothing is written when the id exists or a living member is taken (``taken``, ``existing``); a member
#: claimed by a transaction that commits while this one runs makes the person index's primary key refuse the
#: statement as a whole. The relay's wake-up is part of it (delivered at commit).
_CREATE_SQL = text("""
WITH taken AS (
    SELECT id_number, household_id FROM person_index WHERE id_number = ANY(CAST(:numbers AS VARCHAR[]))
), existing AS (
    SELECT id FROM households WHERE id = :id
), household AS (
    INSERT INTO households (id, version, region_code, village_code, township_code, status, categories, snapshot,
                            created_by, created_at, updated_at)
    SELECT CAST(:id AS VARCHAR), CAST(:version AS INTEGER), CAST(:region_code AS VARCHAR),
           CAST(:village_code AS VARCHAR), CAST(:township_code AS VARCHAR), CAST(:status AS VARCHAR),
           CAST(:categories AS VARCHAR), CAST(:snapshot AS JSON), CAST(:actor AS VARCHAR),
           CAST(:now AS TIMESTAMPTZ), CAST(:now AS TIMESTAMPTZ)
    WHERE NOT EXISTS (SELECT 1 FROM taken) AND NOT EXISTS (SELECT 1 FROM existing)
    RETURNING id
), persons AS (
    INSERT INTO person_index (id_number, household_id, person_id)
    SELECT claimed.number, household.id, claimed.person
    FROM household, unnest(CAST(:numbers AS VARCHAR[]), CAST(:person_ids AS VARCHAR[])) AS claimed(number, person)
), version AS (
    INSERT INTO household_versions (household_id, version, event_type, changed_paths, snapshot, actor, note, at)
    SELECT household.id, CAST(:version AS INTEGER), 'household.registered', CAST('[]' AS JSON),
           CAST(:snapshot AS JSON), CAST(:actor AS VARCHAR), CAST(:note AS TEXT), CAST(:now AS TIMESTAMPTZ)
    FROM household
), event AS (
    INSERT INTO outbox (event_id, topic, key, lane, payload, created_at, attempts)
    SELECT CAST(:event_id AS VARCHAR), CAST(:topic AS VARCHAR), household.id, CAST(:lane AS INTEGER),
           CAST(:payload AS TEXT), CAST(:now AS TIMESTAMPTZ), 0
    FROM household
)
SELECT (SELECT count(*) FROM household) AS created, EXISTS (SELECT 1 FROM existing) AS existed,
       (SELECT json_agg(json_build_array(id_number, household_id)) FROM taken) AS taken,
       (SELECT pg_notify(:channel, CAST(:topic AS TEXT)) FROM household) AS notified
""")


async def _insert_new_household(session: AsyncSession, snapshot: dict, principal: Principal,
                                note: str | None) -> None:
    now = utcnow()
    living = _living(snapshot["members"])
    event = household_event_row(session, "household.registered", snapshot, actor=principal.subject, now=now)
    values = _row_values(snapshot)
    params = {"id": snapshot["id"], "version": values["version"], "region_code": values["region_code"],
              "village_code": values["village_code"], "township_code": values["township_code"],
              "status": values["status"], "categories": values["categories"], "snapshot": json_dumps(snapshot),
              "actor": principal.subject, "now": now, "note": note, "numbers": list(living),
              "person_ids": list(living.values()), "event_id": event["event_id"], "topic": event["topic"],
              "lane": event["lane"], "payload": event["payload"], "channel": NOTIFY_CHANNEL}
    for attempt in (1, 2):
        try:
            row = (await session.execute(_CREATE_SQL, params)).one()
            break
        except IntegrityError:
            # A member or the id was claimed by a transaction that committed meanwhile. On its own connection
            # (AUTOCOMMIT, the API's create) nothing was written: once more, and the checks above see it.
            if attempt == 2 or not session.info.get(AUTOCOMMIT):
                raise
    if row.existed:
        raise Problem(409, "Household exists", f"Household {snapshot['id']} already exists.")
    if row.taken:
        taken = json.loads(row.taken) if isinstance(row.taken, str) else row.taken
        raise Problem(409, "Person already in another household",
                      "A living person belongs to at most one household.",
                      type_="https://jingzhun.dev/problems/person-conflict",
                      conflicts=[{"id_number": mask_id_number(number), "household_id": other}
                                 for number, other in taken])


#: ``session.info`` key: the session runs each statement as its own transaction (single_statement_session).
AUTOCOMMIT = "autocommit"


@asynccontextmanager
async def single_statement_session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for work that is one statement on PostgreSQL (``create_household``): that statement is its own
    transaction (AUTOCOMMIT), so no BEGIN and COMMIT round trips around it. Elsewhere (SQLite) ``transaction``."""
    async with sessionmaker() as session:
        if not is_postgres(session):
            async with session.begin():
                yield session
            return
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        session.info[AUTOCOMMIT] = True
        yield session
        await session.commit()


async def load_household(session: AsyncSession, household_id: str, principal: Principal,
                         *, for_update: bool = False) -> dict:
    query = select(households.c.snapshot).where(households.c.id == household_id)
    if for_update:
        query = query.with_for_update()
        if session.bind is not None and session.bind.dialect.name == "sqlite":
            # SQLite has no FOR UPDATE, and its driver begins a transaction only at the first write: a read
            # before it sees a version another writer may replace before this one commits (a visit then
            # published the older snapshot after the newer). A no-op write takes the database's write lock
            # first, so the read below is the latest and stays so until commit.
            await session.execute(update(households).where(households.c.id == household_id)
                                  .values(version=households.c.version))
    return check_loaded(await session.scalar(query), household_id, principal)


def check_loaded(snapshot: dict | None, household_id: str, principal: Principal) -> dict:
    """``load_household``'s checks on an already read snapshot: 404 if missing or outside the caller's
    area (so the ids of other areas are not confirmed; docs/security.md, object-level authorization)."""
    if snapshot is None or not principal.sees_area(area_code_of(snapshot)):
        raise Problem(404, "Household not found", f"No household {household_id}.")
    return snapshot


def check_if_match(if_match: str | None, current_version: int) -> None:
    if if_match is None:
        return
    wanted = if_match.strip().strip('"').removeprefix("W/").strip('"')
    if wanted != str(current_version):
        raise Problem(412, "Version mismatch",
                      f"If-Match {if_match} but the household is at version {current_version}; "
                      "read it again and reapply your change.",
                      type_="https://jingzhun.dev/problems/stale-version", current_version=current_version)


def prepare_new_version(before: dict, after_body: dict, *, strict: bool = True) -> tuple[dict, list[str]]:
    """The next version's canonical snapshot and the paths it changes (no I/O; raises 422 Problem)."""
    new_version = before["version"] + 1
    body = {k: v for k, v in after_body.items() if k not in ("id", "version")}
    snapshot = (_validated_snapshot(body, before["id"], new_version, before) if strict
                else Household.model_validate({**body, "id": before["id"], "version": new_version})
                .model_dump(mode="json"))
    paths = [p for p in changed_paths({k: v for k, v in before.items() if k != "version"},
                                      {k: v for k, v in snapshot.items() if k != "version"})]
    return snapshot, paths


def claims_change(before: dict, after: dict) -> bool:
    """Whether a new version changes which living persons the household holds (person index)."""
    return _living(before.get("members") or []) != _living(after["members"])


def row_values(snapshot: dict) -> dict:
    """The ``households`` columns for a snapshot."""
    return _row_values(snapshot)


async def save_new_version(session: AsyncSession, before: dict, after_body: dict, *, event_type: str,
                           actor: str | None, note: str | None = None, extra: dict | None = None,
                           strict: bool = True, observed_at=None, source: str | None = None) -> dict:
    """Validate, bump the version (optimistically locked) and stage the event.

    Observed facts the change touched (income, guarantees, housing, member health, …) are
    recorded as observed at ``observed_at`` (default now) by ``source`` (default the event
    type), so a late field visit cannot overwrite them later.
    """
    snapshot, paths = prepare_new_version(before, after_body, strict=strict)
    if _living(before.get("members") or []) != _living(snapshot["members"]):
        await _claim_persons(session, before["id"], snapshot["members"])
    result = await session.execute(update(households).where(
        households.c.id == before["id"], households.c.version == before["version"]).values(
        updated_at=utcnow(), **_row_values(snapshot)))
    if result.rowcount != 1:
        raise Problem(412, "Version mismatch", "The household changed while this request ran; retry.",
                      type_="https://jingzhun.dev/problems/stale-version")
    await _record_version(session, snapshot, event_type, paths, actor, note)
    await record_facts(session, before["id"], facts_of(paths, snapshot["members"]),
                       observed_at=observed_at or utcnow(), source=source or event_type,
                       version=snapshot["version"])
    await publish_household_event(session, event_type, snapshot, actor=actor,
                                  extra={"changed_paths": paths, **(extra or {})})
    return snapshot


def validated_new_household(body: dict[str, Any], household_id: str | None = None) -> dict:
    """The canonical version-1 snapshot ``create_household`` would store (raises 422 Problem)."""
    return _validated_snapshot(body, household_id or new_household_id(), 1)


async def bulk_create_households(session: AsyncSession, snapshots: list[dict], principal: Principal, *,
                                 note: str | None = None) -> None:
    """Insert already validated version-1 snapshots in a few statements (ledger import).

    The caller has checked the ids and persons against the database and within the batch;
    the primary keys of ``households`` and ``person_index`` still refuse any duplicate.
    """
    if not snapshots:
        return
    now = utcnow()
    await session.execute(insert(households), [
        {"id": s["id"], "created_by": principal.subject, "created_at": now, "updated_at": now, **_row_values(s)}
        for s in snapshots])
    persons = [{"id_number": m["id_number"], "household_id": s["id"], "person_id": m["id"]}
               for s in snapshots for m in s["members"] if m.get("id_number") and not m.get("deceased")]
    if persons:
        await session.execute(insert(person_index), persons)
    await session.execute(insert(household_versions), [
        {"household_id": s["id"], "version": s["version"], "event_type": "household.registered",
         "changed_paths": [], "snapshot": s, "actor": principal.subject, "note": note, "at": now}
        for s in snapshots])
    await publish_household_events_bulk(session, "household.registered", snapshots, actor=principal.subject)


async def patch_household(session: AsyncSession, household_id: str, patch: dict, if_match: str | None,
                          principal: Principal) -> dict:
    if not isinstance(patch, dict):
        raise Problem(422, "Invalid merge patch", "A JSON merge patch must be an object.",
                      type_="https://jingzhun.dev/problems/validation",
                      errors=[{"loc": ["body"], "msg": "must be a JSON object"}])
    forbidden = [f for f in ("id", "version", *PROCEDURE_FIELDS) if f in patch]
    if forbidden:
        raise Problem(422, "Field not patchable", "Status and exit date change only through transitions; "
                      "id and version are assigned by the registry.",
                      type_="https://jingzhun.dev/problems/validation",
                      errors=[{"loc": ["body", f], "msg": "not patchable"} for f in forbidden])
    before = await load_household(session, household_id, principal, for_update=True)
    check_if_match(if_match, before["version"])
    after = apply_merge_patch(before, patch)
    check_area(principal, after)
    return await save_new_version(session, before, after, event_type="household.updated",
                                  actor=principal.subject)


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except Exception as exc:  # noqa: BLE001
        raise Problem(400, "Invalid cursor", "The cursor is not one this API returned.") from exc


async def list_households(session: AsyncSession, principal: Principal, *, village_code: str | None,
                          township_code: str | None, region_code: str | None, status: str | None,
                          cursor: str | None, limit: int, category: str | None = None,
                          cadre_id: str | None = None) -> tuple[list[dict], str | None]:
    query = select(households.c.id, households.c.snapshot).order_by(households.c.id).limit(limit + 1)
    if category:
        query = query.where(households.c.categories.contains(f",{category},", autoescape=True))
    if cadre_id:
        query = query.where(households.c.id.in_(select(pairings.c.household_id).where(
            pairings.c.cadre_id == cadre_id, pairings.c.ended_at.is_(None))))
    if village_code:
        query = query.where(households.c.village_code == village_code)
    if township_code:
        query = query.where(households.c.township_code == township_code)
    if region_code:
        query = query.where(households.c.region_code == region_code)
    if status:
        query = query.where(households.c.status == status)
    if principal.area and not principal.is_admin:
        query = query.where(households.c.village_code.startswith(principal.area, autoescape=True)
                            | households.c.region_code.startswith(principal.area, autoescape=True))
    if cursor:
        query = query.where(households.c.id > decode_cursor(cursor))
    rows = (await session.execute(query)).all()
    items = [row.snapshot for row in rows[:limit]]
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return items, next_cursor


def present(snapshot: dict, principal: Principal) -> dict:
    """Responses mask ID numbers unless the caller holds admin; a masked member carries ``birth_year``
    instead of ``birth_date``, because the mask hides exactly the birth-date digits (docs/security.md)."""
    if principal.is_admin:
        return snapshot
    return masked_snapshot(snapshot)


# ------------------------------------------------------------------ summaries, field selection, search

# A list of 500 full snapshots is about a megabyte; a summary names the household and its head.
SNAPSHOT_FIELDS = tuple(Household.model_fields)


def summary(snapshot: dict, matched: list[dict] | None = None) -> dict:
    """A household in a list or a search result. ID numbers are always masked here, admin or not: a list
    is for finding a household; its clear numbers are in the full snapshot (admin only). No birth dates."""
    members = snapshot.get("members") or []
    head = next((m for m in members if m.get("relation") == "head"), None)
    village = snapshot.get("village") or {}
    out = {"id": snapshot["id"], "version": snapshot["version"], "status": snapshot["status"],
           "region_code": snapshot.get("region_code"),
           "village": {k: village.get(k) for k in ("code", "name", "township_code", "township_name")},
           "categories": snapshot.get("categories") or [], "identified_year": snapshot.get("identified_year"),
           "exit_date": snapshot.get("exit_date"), "head": _person_summary(head) if head else None,
           "member_count": len(members), "living_members": sum(not m.get("deceased") for m in members)}
    if matched is not None:
        out["matched_members"] = [_person_summary(m) for m in matched]
    return out


def _person_summary(member: dict) -> dict:
    number = member.get("id_number")
    return {"id": member.get("id"), "name": member.get("name"), "relation": member.get("relation"),
            "id_number": mask_id_number(number) if number else None, "deceased": bool(member.get("deceased"))}


def parse_fields(fields: str) -> list[str]:
    """``fields=id,status,income`` → the snapshot's top-level fields to return (``id`` always)."""
    names = [name.strip() for name in fields.split(",") if name.strip()]
    unknown = [name for name in names if name not in SNAPSHOT_FIELDS]
    if not names or unknown:
        raise Problem(422, "Unknown field", f"fields names the snapshot's top-level fields: {', '.join(SNAPSHOT_FIELDS)}.",
                      type_="https://jingzhun.dev/problems/validation", accepted=list(SNAPSHOT_FIELDS),
                      errors=[{"loc": ["query", "fields"], "msg": f"unknown field {name!r}" if unknown else "empty"}
                              for name in (unknown or [""])])
    return ["id", *dict.fromkeys(n for n in names if n != "id")]


def select_fields(snapshot: dict, names: list[str]) -> dict:
    return {name: snapshot.get(name) for name in names}


SEARCH_PAGE_ROWS = 200  # households of one village read per round while matching names


async def search_by_id_number(session: AsyncSession, principal: Principal, id_number: str) -> list[dict]:
    """The household a living person with this number belongs to (the person index's primary key: no scan).

    Deceased members are not in the person index, so their numbers find nothing; search them by name."""
    row = (await session.execute(select(person_index.c.household_id, person_index.c.person_id)
                                 .where(person_index.c.id_number == id_number))).first()
    if row is None:
        return []
    snapshot = await session.scalar(select(households.c.snapshot).where(households.c.id == row.household_id))
    if snapshot is None or not principal.sees_area(area_code_of(snapshot)):
        return []  # another area's person is not confirmed to exist
    return [summary(snapshot, [m for m in snapshot.get("members") or [] if m.get("id") == row.person_id])]


async def search_by_name(session: AsyncSession, principal: Principal, name: str, village_code: str, *,
                         cursor: str | None, limit: int) -> tuple[list[dict], str | None]:
    """Households of the village with a member whose name starts with ``name`` (an exact name is its own
    prefix), by household id. The village bounds the read (ix_households_village_status); names are matched
    here because they live in the snapshot, a few hundred households per village at most."""
    wanted = name.strip()
    if principal.area and not principal.is_admin and not village_code.startswith(principal.area):
        return [], None
    found: list[dict] = []
    after = decode_cursor(cursor) if cursor else None
    while len(found) <= limit:
        query = (select(households.c.id, households.c.snapshot).where(households.c.village_code == village_code)
                 .order_by(households.c.id).limit(SEARCH_PAGE_ROWS))
        if after is not None:
            query = query.where(households.c.id > after)
        rows = (await session.execute(query)).all()
        for row in rows:
            matched = [m for m in row.snapshot.get("members") or [] if (m.get("name") or "").strip().startswith(wanted)]
            if matched and principal.sees_area(area_code_of(row.snapshot)):
                found.append(summary(row.snapshot, matched))
        if len(rows) < SEARCH_PAGE_ROWS:
            break
        after = rows[-1].id
    next_cursor = encode_cursor(found[limit - 1]["id"]) if len(found) > limit else None
    return found[:limit], next_cursor
