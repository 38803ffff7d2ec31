"""Ledger import and export: validate the whole file, then write all of it (or, asked to, the valid part).

Import phases: read (CSV/XLSX) → parse and validate every row and household (``ledger.py``) →
check ids and persons against the database, a chunk at a time → write in one transaction with the
same events and version history as ``POST /v1/households``. With any error and no ``skip_invalid``
nothing is written and the report lists every problem as ``{row, column, message}``.
"""
from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.households.service import area_code_of, bulk_create_households, validated_new_household
from services.registry.imports import ledger
from services.registry.imports.tabular import read_table
from services.registry.tables import households, imports, person_index
from shared.auth import Principal
from shared.db import transaction
from shared.events import utcnow
from shared.idcard import mask_id_number
from shared.problems import Problem

CHUNK = 500
MAX_REPORTED_ERRORS = 10_000
# progress(phase, advance, total): phases "validate" (rows) and "write" (households)
Progress = Callable[[str, int, int], None]


def _validate(body: dict, household_id: str | None) -> dict:
    return validated_new_household(body, household_id)


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
                household.errors.append({"row": household.rows[0], "column": ledger.TITLE["village_code"],
                                         "message": f"outside your area {principal.area}"})
            if household.snapshot["id"] in existing:
                household.errors.append({"row": household.rows[0], "column": ledger.TITLE["household_id"],
                                         "message": f"household {household.snapshot['id']} is already registered"})
        for number, other in taken.items():
            household = numbers[number]
            line = next((row for row, cells in zip(household.rows, household.cells)
                         if cells.get("id_number", "").upper() == number), household.rows[0])
            household.errors.append({"row": line, "column": ledger.TITLE["id_number"],
                                     "message": f"{mask_id_number(number)} already lives in household {other}"})


def _report(parse: ledger.LedgerParse, *, written: int, import_id: str | None, dry_run: bool,
            skip_invalid: bool) -> dict[str, Any]:
    errors = parse.all_errors()
    invalid = sum(1 for h in parse.households if h.errors or h.snapshot is None)
    return {"import_id": import_id, "rows": parse.rows, "households": len(parse.households),
            "valid_households": len(parse.households) - invalid, "invalid_households": invalid,
            "written": written, "dry_run": dry_run, "skip_invalid": skip_invalid, "error_count": len(errors),
            "errors": errors[:MAX_REPORTED_ERRORS]}


async def import_ledger(sessionmaker: async_sessionmaker[AsyncSession], data: bytes, filename: str | None,
                        principal: Principal, *, skip_invalid: bool = False, dry_run: bool = False,
                        progress: Progress | None = None) -> dict[str, Any]:
    """Returns the report; raises a 422 Problem carrying it when errors block an all-or-nothing import."""
    header, rows = read_table(data, filename)
    tick = (lambda n: progress("validate", n, len(rows))) if progress else None
    parse = ledger.parse_ledger(header, rows, _validate, admin=principal.is_admin, progress=tick)
    async with sessionmaker() as session:
        await _check_against_database(session, parse, principal)
    blocked = bool(parse.all_errors()) and not skip_invalid
    if blocked:
        report = _report(parse, written=0, import_id=None, dry_run=dry_run, skip_invalid=skip_invalid)
        raise Problem(422, "Invalid ledger", f"{report['error_count']} problem(s) in {report['invalid_households']} "
                      "household(s); nothing was written. Fix them, or import with skip_invalid to write the "
                      "valid households only.", type_="https://jingzhun.dev/problems/validation", report=report,
                      errors=[{"loc": ["file", e["row"], e["column"]], "msg": e["message"]}
                              for e in report["errors"][:1000]])
    valid = [h.snapshot for h in parse.valid]
    if dry_run or not valid:
        return _report(parse, written=0, import_id=None, dry_run=dry_run, skip_invalid=skip_invalid)
    import_id = f"imp-{uuid.uuid4().hex[:12]}"
    note = f"ledger import {import_id} ({filename or 'upload'}) by {principal.subject}"
    async with transaction(sessionmaker) as session:
        for start in range(0, len(valid), CHUNK):
            chunk = valid[start:start + CHUNK]
            await bulk_create_households(session, chunk, principal, note=note)
            if progress:
                progress("write", len(chunk), len(valid))
        report = _report(parse, written=len(valid), import_id=import_id, dry_run=False, skip_invalid=skip_invalid)
        await session.execute(insert(imports).values(
            id=import_id, filename=(filename or "")[:255], actor=principal.subject, at=utcnow(), rows=parse.rows,
            households=len(parse.households), written=len(valid), skipped=report["invalid_households"],
            report={k: v for k, v in report.items() if k != "errors"} | {"errors": report["errors"][:1000]}))
    return report


async def get_import(session: AsyncSession, import_id: str) -> dict:
    row = (await session.execute(select(imports).where(imports.c.id == import_id))).first()
    if row is None:
        raise Problem(404, "Import not found", f"No import {import_id}.")
    return {**row.report, "filename": row.filename, "actor": row.actor, "at": row.at.isoformat()}


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


async def export_rows(sessionmaker, principal: Principal, **filters) -> AsyncIterator[list]:
    mask = None if principal.is_admin else mask_id_number
    async for snapshot in export_snapshots(sessionmaker, principal, **filters):
        for row in ledger.ledger_rows(snapshot, mask=mask):
            yield row
