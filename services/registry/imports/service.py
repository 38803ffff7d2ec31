"""Ledger import and export: validate the whole file, then write all of it (or, asked to, the valid part).

Import phases: read (CSV/XLSX, every sheet) → map the headers (unknown ones are warnings, or errors
with ``strict``; missing required ones one file-level error) → parse and validate every row and
household (``ledger.py``) → check ids and persons against the database, a chunk at a time → write in
one transaction with the same events and version history as the API. With any error and no
``skip_invalid`` nothing is written and the report lists every problem as ``{row, column, message}``;
a header problem blocks even with ``skip_invalid`` (no row can be trusted to be read right).

``mode="create"`` registers new households (a known one is an error). ``mode="update"`` is the yearly
re-import: a household is matched by 户编号 (the registry id) or its head's ID number; an unknown one
is created, a known one gets a new version (``household.updated``, the import as provenance) when
the file changes it, and the report says per household created / changed (with the changed paths) /
unchanged / conflict. Columns the file does not have keep the registry's values.
"""
from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timezone
from typing import Any, Literal

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.households.service import (area_code_of, bulk_create_households, prepare_new_version,
                                                  save_new_version, validated_new_household)
from services.registry.imports import ledger
from services.registry.imports.cells import bilingual
from services.registry.imports.limits import UploadLimits
from services.registry.imports.tabular import WorkbookWriter, read_sheets
from services.registry.tables import households, imports, person_index
from shared.auth import Principal
from shared.db import transaction
from shared.events import utcnow
from shared.idcard import mask_id_number
from shared.migrate import analyze_tables
from shared.personal_data import birth_year
from shared.problems import Problem

log = logging.getLogger("registry.imports")

CHUNK = 500
MAX_REPORTED_ERRORS = 10_000
# progress(phase, advance, total): phases "validate" (rows) and "write" (households)
Progress = Callable[[str, int, int], None]
Mode = Literal["create", "update"]


def _validate(body: dict, household_id: str | None) -> dict:
    return validated_new_household(body, household_id)


def _known_headers(row: list[str]) -> int:
    return sum(1 for title in row if title and ledger.MAIN_HEADERS.key_of(title))


def _error(household: ledger.LedgerHousehold, key: str, zh: str, en: str, row: int | None = None) -> None:
    household.errors.append(ledger.problem(row or household.rows[0], ledger.TITLE[key], zh, en))


def _member_line(household: ledger.LedgerHousehold, number: str) -> int:
    return next((row for row, cells in zip(household.rows, household.cells) if cells.get("id_number") == number),
                household.rows[0])


async def _check_against_database(session: AsyncSession, parse: ledger.LedgerParse, principal: Principal) -> None:
    candidates = [h for h in parse.households if h.snapshot is not None and not h.errors]
    for start in range(0, len(candidates), CHUNK):
        chunk = candidates[start:start + CHUNK]
        ids = [h.snapshot["id"] for h in chunk]
        existing = set((await session.execute(select(households.c.id).where(households.c.id.in_(ids)))).scalars())
        numbers = {m["id_number"]: h for h in chunk for m in h.snapshot["members"]
                   if m.get("id_number") and not m.get("deceased")}
        taken = {}
        if numbers:
            taken = dict((await session.execute(select(person_index.c.id_number, person_index.c.household_id)
                                                .where(person_index.c.id_number.in_(list(numbers))))).all())
        for household in chunk:
            if not principal.sees_area(area_code_of(household.snapshot)):
                _error(household, "village_code", f"不在你的辖区 {principal.area} 内",
                       f"outside your area {principal.area}")
            if household.snapshot["id"] in existing:
                _error(household, "household_id", f"户 {household.snapshot['id']} 已登记（更新请用 --update / mode=update）",
                       f"household {household.snapshot['id']} is already registered "
                       "(to update it, import with --update / mode=update)")
        for number, other in taken.items():
            household = numbers[number]
            _error(household, "id_number", f"{mask_id_number(number)} 已是户 {other} 的成员",
                   f"{mask_id_number(number)} already lives in household {other}", _member_line(household, number))


# ---------------------------------------------------------------- update mode

def _copy_path(source: dict, target: dict, path: tuple[str, ...]) -> None:
    value = ledger.get_path(source, path)
    if value is None:
        return
    for part in path[:-1]:
        nxt = target.get(part)
        if not isinstance(nxt, dict):
            nxt = target[part] = {}
        target = nxt
    target[path[-1]] = copy.deepcopy(value)


def _match_member(person: dict, existing: list[dict], taken: set[str]) -> dict | None:
    for key in ("id", "id_number", "name"):
        wanted = person.get(key)
        if not wanted:
            continue
        found = [m for m in existing if m.get(key) == wanted and m["id"] not in taken]
        if len(found) == 1:
            return found[0]
        if key != "name" and found:
            return found[0]
    return None


def merged_body(before: dict, household: ledger.LedgerHousehold, present: set[str]) -> dict:
    """What the file says for a known household; what it has no column for keeps the registry's value,
    its members keep their person ids (matched by 成员编号, 身份证号 or name) and the registry's order."""
    body = copy.deepcopy(household.body)
    for column in ledger.HOUSEHOLD_COLUMNS:
        if column.path and column.key not in present:
            _copy_path(before, body, column.path)
    for key in ("status", "exit_date"):  # a blank keeps the registry's: these change by procedure only
        if body.get(key) is None and before.get(key) is not None:
            body[key] = before[key]
    existing = before.get("members") or []
    order = {m["id"]: index for index, m in enumerate(existing)}
    taken: set[str] = set()
    ranked = []
    for position, (line, person) in enumerate(zip(household.member_rows, body["members"])):
        match = _match_member(person, existing, taken)
        if match is not None:
            taken.add(match["id"])
            person["id"] = match["id"]
            for column in ledger.PERSON_COLUMNS:
                if column.path and column.key not in present and column.path != ("id",):
                    _copy_path(match, person, column.path)
        rank = order[match["id"]] if match is not None else len(existing) + position
        ranked.append((rank, line, person))
    ranked.sort(key=lambda item: item[0])
    household.member_rows = [line for _, line, _ in ranked]
    body["members"] = [person for _, _, person in ranked]
    return body


async def _plan_updates(session: AsyncSession, parse: ledger.LedgerParse, principal: Principal) -> list[dict]:
    """Per valid household: what update mode would do (``outcome`` created / changed / unchanged /
    conflict), with the snapshots to write. Conflicts are also added to the household's errors."""
    plans: list[dict] = []
    candidates = [h for h in parse.households if h.snapshot is not None and not h.errors]
    claimed: dict[str, int] = {}  # registry id → row of the file household matched to it
    for start in range(0, len(candidates), CHUNK):
        chunk = candidates[start:start + CHUNK]
        file_ids = [h.cells[0].get("household_id") for h in chunk if h.cells[0].get("household_id")]
        numbers = {m["id_number"] for h in chunk for m in h.snapshot["members"]
                   if m.get("id_number") and not m.get("deceased")}
        owners = dict((await session.execute(select(person_index.c.id_number, person_index.c.household_id)
                                             .where(person_index.c.id_number.in_(list(numbers)))))
                      .all()) if numbers else {}
        wanted = set(file_ids) | set(owners.values())
        stored = dict((await session.execute(select(households.c.id, households.c.snapshot)
                                             .where(households.c.id.in_(list(wanted))))).all()) if wanted else {}
        for household in chunk:
            plans.append(_plan_one(household, parse, principal, owners, stored, claimed))
    return plans


def _plan_one(household: ledger.LedgerHousehold, parse: ledger.LedgerParse, principal: Principal,
              owners: dict[str, str], stored: dict[str, dict], claimed: dict[str, int]) -> dict:
    row = household.rows[0]
    file_id = household.cells[0].get("household_id") or None
    head = next((m for m in household.snapshot["members"] if m["relation"] == "head"), None)
    head_number = head.get("id_number") if head else None
    by_id = stored.get(file_id) if file_id else None
    owner_id = owners.get(head_number) if head_number else None
    plan: dict[str, Any] = {"household": household, "row": row, "household_id": household.snapshot["id"],
                            "matched_by": None, "changed_paths": []}

    def conflict(key: str, zh: str, en: str, line: int | None = None) -> dict:
        _error(household, key, zh, en, line)
        return {**plan, "outcome": "conflict"}

    if by_id is not None and owner_id is not None and owner_id != by_id["id"]:
        return conflict("head_id_number", f"户编号 {file_id} 与户主身份证号所在的户 {owner_id} 不是同一户",
                        f"户编号 {file_id} and the head's ID number (household {owner_id}) point to different "
                        "households")
    before = by_id if by_id is not None else stored.get(owner_id) if owner_id else None
    if before is not None:
        plan.update(household_id=before["id"], matched_by="household_id" if by_id is not None else "head_id_number")
        if not principal.sees_area(area_code_of(before)):
            return conflict("village_code", f"户 {before['id']} 不在你的辖区 {principal.area} 内",
                            f"household {before['id']} is outside your area {principal.area}")
        if before["id"] in claimed:
            return conflict("household_id", f"与第 {claimed[before['id']]} 行是同一户 {before['id']}",
                            f"the same household {before['id']} as row {claimed[before['id']]}")
        claimed[before["id"]] = row
    target = before["id"] if before is not None else household.snapshot["id"]
    for member in household.snapshot["members"]:
        number = member.get("id_number")
        other = owners.get(number) if number and not member.get("deceased") else None
        if other is not None and other != target:
            return conflict("id_number", f"{mask_id_number(number)} 是另一户 {other} 的成员",
                            f"{mask_id_number(number)} belongs to another household, {other}",
                            _member_line(household, number))
    if before is None:
        if not principal.sees_area(area_code_of(household.snapshot)):
            return conflict("village_code", f"不在你的辖区 {principal.area} 内", f"outside your area {principal.area}")
        return {**plan, "outcome": "created", "snapshot": household.snapshot}
    body = merged_body(before, household, parse.present)
    for key in ("status", "exit_date"):
        if body.get(key) != before.get(key):
            return conflict(key, f"{ledger.TITLE[key]}只能通过程序（识别、退出、返贫等）变更，登记为 "
                                 f"{before.get(key)!r}，文件为 {body.get(key)!r}",
                            f"{key} changes only through procedures (transitions); the registry has "
                            f"{before.get(key)!r}, the file {body.get(key)!r}")
    try:
        snapshot, paths = prepare_new_version(before, body)
    except Problem as invalid:
        for error in invalid.extra.get("errors", []):
            household.errors.append(ledger.locate(error, household))
        return {**plan, "outcome": "invalid"}
    if not principal.sees_area(area_code_of(snapshot)):
        return conflict("village_code", f"不在你的辖区 {principal.area} 内", f"outside your area {principal.area}")
    outcome = "changed" if paths else "unchanged"
    return {**plan, "outcome": outcome, "before": before, "body": body, "snapshot": snapshot, "changed_paths": paths}


# ---------------------------------------------------------------- report and import

def _report(parse: ledger.LedgerParse, *, written: int, import_id: str | None, dry_run: bool,
            skip_invalid: bool, mode: Mode, strict: bool, plans: list[dict] | None = None) -> dict[str, Any]:
    errors = parse.all_errors()
    invalid = sum(1 for h in parse.households if h.errors or h.snapshot is None)
    report = {"import_id": import_id, "mode": mode, "strict": strict, "rows": parse.rows,
              "households": len(parse.households), "valid_households": len(parse.households) - invalid,
              "invalid_households": invalid, "written": written, "dry_run": dry_run, "skip_invalid": skip_invalid,
              "warning_count": len(parse.warnings), "warnings": parse.warnings, "error_count": len(errors),
              "errors": errors[:MAX_REPORTED_ERRORS]}
    if plans is not None:
        counts = {outcome: 0 for outcome in ("created", "changed", "unchanged", "conflict")}
        for plan in plans:
            if plan["outcome"] in counts:
                counts[plan["outcome"]] += 1
        report.update(counts)
        report["results"] = [{"row": p["row"], "household_id": p["household_id"], "outcome": p["outcome"],
                              "matched_by": p["matched_by"], "changed_paths": p["changed_paths"]}
                             for p in plans][:MAX_REPORTED_ERRORS]
    return report


def _blocked(report: dict, header: bool) -> Problem:
    if header:
        zh = "表头有问题，未读取任何行，未写入任何数据"
        en = "the header has problems; no row was read and nothing was written"
        title = "Invalid ledger header"
    else:
        zh = (f"{report['invalid_households']} 户共 {report['error_count']} 处问题，未写入任何数据；"
              "请修正，或用 skip_invalid 只写入无误的户")
        en = (f"{report['error_count']} problem(s) in {report['invalid_households']} household(s); nothing was "
              "written. Fix them, or import with skip_invalid to write the valid households only.")
        title = "Invalid ledger"
    return Problem(422, title, bilingual(zh, en), type_="https://jingzhun.dev/problems/validation", report=report,
                   errors=[{"loc": ["file", *([e["sheet"]] if e.get("sheet") else []), e["row"], e["column"]],
                            "msg": e["message"]} for e in report["errors"][:1000]])


async def import_ledger(sessionmaker: async_sessionmaker[AsyncSession], data: bytes, filename: str | None,
                        principal: Principal, *, skip_invalid: bool = False, dry_run: bool = False,
                        progress: Progress | None = None, mode: Mode = "create",
                        strict: bool = False, import_id: str | None = None,
                        limits: UploadLimits | None = None) -> dict[str, Any]:
    """Returns the report; raises a 422 Problem carrying it when errors block an all-or-nothing import
    (413 past ``limits``). CPU-bound throughout: a server runs it in the import worker (``jobs.py``)."""
    sheets = read_sheets(data, filename, header_hint=_known_headers, limits=limits)
    main = sheets[0]
    tick = (lambda n: progress("validate", n, len(main.rows))) if progress else None
    parse = ledger.parse_ledger(main.header, main.rows, _validate, admin=principal.is_admin, progress=tick,
                                sheets=sheets[1:], strict=strict, first_line=main.first_line)
    options = {"dry_run": dry_run, "skip_invalid": skip_invalid, "mode": mode, "strict": strict}
    header_errors = [e for e in parse.errors if e["row"] == 1]
    if header_errors or not parse.header_ok:
        raise _blocked(_report(parse, written=0, import_id=None, **options), header=True)
    plans = None
    async with sessionmaker() as session:
        if mode == "update":
            plans = await _plan_updates(session, parse, principal)
        else:
            await _check_against_database(session, parse, principal)
    if parse.all_errors() and not skip_invalid:
        raise _blocked(_report(parse, written=0, import_id=None, plans=plans, **options), header=False)
    if plans is None:
        plans = [{"outcome": "created", "snapshot": h.snapshot} for h in parse.valid]
        listed = None
    else:
        listed = plans
    writes = [p for p in plans if p["outcome"] in ("created", "changed")]
    if dry_run or not writes:
        return _report(parse, written=0, import_id=None, plans=listed, **options)
    import_id = import_id or new_import_id()
    note = f"ledger import {import_id} ({filename or 'upload'}) by {principal.subject}"
    created = [p["snapshot"] for p in writes if p["outcome"] == "created"]
    changed = [p for p in writes if p["outcome"] == "changed"]
    async with transaction(sessionmaker) as session:
        for start in range(0, len(created), CHUNK):
            chunk = created[start:start + CHUNK]
            await bulk_create_households(session, chunk, principal, note=note)
            if progress:
                progress("write", len(chunk), len(writes))
        for plan in changed:
            plan["snapshot"] = await save_new_version(
                session, plan["before"], plan["body"], event_type="household.updated", actor=principal.subject,
                note=f"{note}, row {plan['row']}", source=f"import:{import_id}",
                extra={"provenance": {"import_id": import_id, "filename": filename, "row": plan["row"]}})
            if progress:
                progress("write", 1, len(writes))
        report = _report(parse, written=len(writes), import_id=import_id, plans=listed, **options)
        stored = {k: v for k, v in report.items() if k not in ("errors", "results")}
        await session.execute(insert(imports).values(
            id=import_id, filename=(filename or "")[:255], actor=principal.subject, area=principal.area,
            at=utcnow(), rows=parse.rows,
            households=len(parse.households), written=len(writes), skipped=report["invalid_households"],
            report=stored | {"errors": report["errors"][:1000]}
            | ({"results": report["results"][:MAX_REPORTED_ERRORS]} if "results" in report else {})))
    await _analyze_imported(sessionmaker, len(writes))
    return report


#: What a ledger import fills (the outbox is drained by the relay: its statistics would be stale at once).
IMPORTED_TABLES = ("households", "person_index", "household_versions")


async def _analyze_imported(sessionmaker: async_sessionmaker[AsyncSession], written: int) -> None:
    """ANALYZE what the committed import filled (PostgreSQL; autovacuum's rule, so a small import into a
    large registry analyses nothing): a bulk import can multiply the rows of these tables, and plans made
    on the old statistics (or none) would scan them whole."""
    try:
        await analyze_tables(sessionmaker, IMPORTED_TABLES, changed_rows=written)
    except Exception:  # noqa: BLE001 - statistics are an optimisation: the import is committed
        log.warning("ANALYZE after a ledger import failed", exc_info=True)


def new_import_id() -> str:
    return f"imp-{uuid.uuid4().hex[:12]}"


def may_see_import(principal: Principal | None, area: str | None) -> bool:
    """An area-limited caller sees the imports of callers within its area (an unlimited caller's
    import has no area and is seen by unlimited callers only)."""
    if principal is None or principal.area is None or principal.is_admin:
        return True
    return bool(area) and area.startswith(principal.area)


def import_not_found(import_id: str) -> Problem:
    return Problem(404, "导入不存在 / Import not found", f"没有导入 {import_id} / No import {import_id}.")


async def get_import(session: AsyncSession, import_id: str, principal: Principal | None = None) -> dict | None:
    """The stored report of an import that wrote households; None if there is none (a 404 if the caller
    may not see it: another area's import is not told apart from a missing one)."""
    row = (await session.execute(select(imports).where(imports.c.id == import_id))).first()
    if row is None:
        return None
    if not may_see_import(principal, row.area):
        raise import_not_found(import_id)
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=timezone.utc)  # SQLite drops the zone
    return {**row.report, "filename": row.filename, "actor": row.actor, "at": at.isoformat()}


# ---------------------------------------------------------------- export

async def export_snapshots(sessionmaker: async_sessionmaker[AsyncSession], principal: Principal, *,
                           village_code: str | None = None, township_code: str | None = None,
                           region_code: str | None = None, status: str | None = None,
                           page: int = 1000) -> AsyncIterator[dict]:
    """Households in id order, a page at a time (never the whole table in memory)."""
    from services.registry.households.service import decode_cursor, list_households
    cursor = None
    while True:
        async with sessionmaker() as session:
            items, cursor = await list_households(session, principal, village_code=village_code,
                                                  township_code=township_code, region_code=region_code,
                                                  status=status, cursor=cursor, limit=page)
        for item in items:
            yield item
        if not cursor:
            return
        decode_cursor(cursor)


def _mask_for(principal: Principal):
    return None if principal.is_admin else mask_id_number


def _export_view(snapshot: dict, principal: Principal) -> dict:
    """A non-admin export keeps only the birth year in 出生日期: beside the masked number the exact
    date would give the number back (the mask hides exactly those eight digits)."""
    if principal.is_admin:
        return snapshot
    return {**snapshot, "members": [{**member, "birth_date": birth_year(member.get("birth_date"))}
                                    for member in snapshot.get("members") or []]}


async def export_rows(sessionmaker, principal: Principal, **filters) -> AsyncIterator[list]:
    """Rows of a one-sheet (CSV) ledger, ``ledger.CSV_HEADER`` order: lists as JSON in their columns."""
    mask = _mask_for(principal)
    async for snapshot in export_snapshots(sessionmaker, principal, **filters):
        snapshot = _export_view(snapshot, principal)
        for row in ledger.ledger_rows(snapshot, mask=mask, lists_in_cells=True):
            yield row


async def export_workbook(sessionmaker, principal: Principal, target, **filters) -> int:
    """An XLSX ledger: the main sheet (``ledger.HEADER``) and the sheets 农机购置 and 培训记录.
    Returns the number of main-sheet rows."""
    mask = _mask_for(principal)
    main = "台账"
    machinery, trainings = ledger.SHEETS["machinery"][0], ledger.SHEETS["trainings"][0]
    writer = WorkbookWriter([(main, ledger.HEADER), (machinery, ledger.SHEET_HEADER["machinery"]),
                             (trainings, ledger.SHEET_HEADER["trainings"])])
    rows = 0
    async for snapshot in export_snapshots(sessionmaker, principal, **filters):
        snapshot = _export_view(snapshot, principal)
        for row in ledger.ledger_rows(snapshot, mask=mask):
            writer.append(main, row)
            rows += 1
        for row in ledger.machinery_sheet_rows(snapshot):
            writer.append(machinery, row)
        for row in ledger.training_sheet_rows(snapshot, mask=mask):
            writer.append(trainings, row)
    writer.save(target)
    return rows
