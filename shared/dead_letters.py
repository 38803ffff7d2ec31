"""Dead letters an operator can act on: a durable copy of every message a consumer gave up on, a list,
one message in full, and a redrive through the consumer's normal handler.

The development broker keeps its ``.dlq`` topics in memory only, so each consuming service (benefits,
audit) keeps its own copy in its own database: ``Consumer`` calls the hook of ``durable_dead_letter_hook``
after the ``.dlq`` send and before it commits the offset, so a message is never acknowledged without it.

A redrive runs the very ``handler(record)`` the service's consumer runs (signature check, event-id dedupe,
version guard) on a ``ConsumerRecord`` rebuilt from the stored row: the exact bytes, the original topic and
partition (audit chains per source partition). It never republishes to the broker, so other consumer
groups are not disturbed, and the event-id dedupe makes a message that already went through a no-op.
A row is redriven once: asking again answers the first outcome without running anything.
"""
from __future__ import annotations

import base64
import json
import logging
import re
import traceback
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from aiokafka.structs import ConsumerRecord
from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy import (BigInteger, Column, DateTime, Integer, JSON, LargeBinary, MetaData, String, Table, Text,
                        UniqueConstraint, insert, select, update)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.auth import Principal, require_scopes
from shared.bounds import IdCursor
from shared.bus import DeadLetterHook, Handler
from shared.db import transaction
from shared.events import as_aware, utcnow
from shared.idcard import mask_id_number
from shared.personal_data import ledger_form
from shared.problems import PROBLEM_RESPONSES, Problem

log = logging.getLogger("dead_letters")

#: Outcomes of a redrive that went through; a failed one is ``"failed: <error>"`` and leaves the row open.
APPLIED, ALREADY_APPLIED = "applied", "already applied"
ERROR_MAX = 8000  # characters kept of an error text (a traceback line, not a novel)

Status = Literal["open", "redriven", "all"]
AlreadyApplied = Callable[[AsyncSession, str], Awaitable[bool]]


def define_dead_letters(metadata: MetaData) -> Table:
    return Table(
        "dead_letters", metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("consumer_group", String(64), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        Column("key", Text, nullable=True),  # the message key as text (None when absent or not clean UTF-8)
        Column("value", LargeBinary, nullable=True),  # the exact message bytes: a redrive hands these over
        Column("headers", JSON, nullable=False),  # [{"key", "value"} | {"key", "base64"}], the record's own
        Column("error", Text, nullable=False),
        # Parsed best-effort from the value for the list; None when the value is not an envelope.
        Column("event_id", String(64), nullable=True),
        Column("event_type", String(64), nullable=True),
        Column("subject", String(128), nullable=True),
        Column("dead_lettered_at", DateTime(timezone=True), nullable=False),
        Column("redriven_at", DateTime(timezone=True), nullable=True),  # None: open
        Column("redrive_outcome", Text, nullable=True),
        Column("redriven_by", String(128), nullable=True),
        # A redelivery dead-lettered again (crash before the offset commit) is the same source position.
        UniqueConstraint("consumer_group", "topic", "partition", "offset", name="uq_dead_letters_source"),
    )


# ---------------------------------------------------------------- storing

def _clean_text(raw: bytes | None) -> str | None:
    """``raw`` as text if it is UTF-8 without NUL (PostgreSQL text refuses NUL), else None."""
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _no_nul(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def headers_form(headers) -> list[dict[str, str]]:
    out = []
    for key, value in headers or ():
        text = _clean_text(value)
        entry = {"key": _no_nul(str(key))}
        if text is not None:
            entry["value"] = text
        else:
            entry["base64"] = base64.b64encode(value or b"").decode("ascii")
        out.append(entry)
    return out


def _headers_back(stored) -> tuple[tuple[str, bytes], ...]:
    return tuple((h["key"], h["value"].encode("utf-8") if "value" in h else base64.b64decode(h.get("base64", "")))
                 for h in stored or [])


def event_fields(value: bytes | None) -> dict[str, str | None]:
    """``event_id`` / ``event_type`` / ``subject`` of an envelope; None for anything that is not one.

    Never raises: the message is here precisely because it may be garbage."""
    fields: dict[str, str | None] = {"event_id": None, "event_type": None, "subject": None}
    try:
        wire = json.loads(value) if value else None
    except (ValueError, TypeError, RecursionError):
        return fields
    if not isinstance(wire, dict):
        return fields
    for name, column, size in (("id", "event_id", 64), ("type", "event_type", 64), ("subject", "subject", 128)):
        item = wire.get(name)
        if isinstance(item, str) and 0 < len(item) <= size and "\x00" not in item:
            fields[column] = item
    return fields


def error_text(exc: BaseException) -> str:
    """The error as the consumer writes it in the ``.dlq`` headers (exception type and message)."""
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


def row_values(record: ConsumerRecord, group_id: str, error: str) -> dict[str, Any]:
    return {"consumer_group": group_id, "topic": record.topic, "partition": record.partition,
            "offset": record.offset, "key": _clean_text(record.key), "value": record.value,
            "headers": headers_form(record.headers), "error": _no_nul(error)[:ERROR_MAX],
            **event_fields(record.value), "dead_lettered_at": utcnow()}


def durable_dead_letter_hook(sessionmaker: async_sessionmaker[AsyncSession], table: Table) -> DeadLetterHook:
    """The ``on_dead_letter`` hook of a ``Consumer``: one row per source position, in its own transaction.

    Idempotent: the same (group, topic, partition, offset) again is already kept and changes nothing. If
    the database is away the hook raises, the consumer does not commit the offset, and the message comes
    back: a dead letter is never acknowledged without its durable copy."""
    async def keep(record: ConsumerRecord, group_id: str, error: str) -> None:
        try:
            async with transaction(sessionmaker) as session:
                await session.execute(insert(table).values(**row_values(record, group_id, error)))
        except IntegrityError:
            async with sessionmaker() as session:
                kept = await session.scalar(select(table.c.id).where(
                    table.c.consumer_group == group_id, table.c.topic == record.topic,
                    table.c.partition == record.partition, table.c.offset == record.offset))
            if kept is None:
                raise  # not the duplicate we thought: let the consumer retry the message
            log.info("dead letter %s@%d/%d (%s) already kept as %d", record.topic, record.partition,
                     record.offset, group_id, kept)
    return keep


def consumer_record(row) -> ConsumerRecord:
    """The record the consumer saw, rebuilt from a stored row (exact value, original topic and partition)."""
    value = bytes(row.value) if row.value is not None else None
    key = row.key.encode("utf-8") if row.key is not None else None
    dead_lettered_at = as_aware(row.dead_lettered_at)
    return ConsumerRecord(topic=row.topic, partition=row.partition, offset=row.offset,
                          timestamp=int(dead_lettered_at.timestamp() * 1000), timestamp_type=0, key=key,
                          value=value, checksum=None, serialized_key_size=len(key) if key is not None else -1,
                          serialized_value_size=len(value) if value is not None else -1,
                          headers=_headers_back(row.headers))


# ---------------------------------------------------------------- what an operator sees

_CLEAR_ID_TEXT = re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)")
_CLEAR_ID_BYTES = re.compile(rb"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")


def _iso(value) -> str | None:
    value = as_aware(value)
    return value.isoformat() if value is not None else None


def _masked_strings(value: Any) -> Any:
    """Any clear ID number inside any string becomes its mask (a forged message may carry one anywhere)."""
    if isinstance(value, str):
        return _CLEAR_ID_TEXT.sub(lambda m: mask_id_number(m.group()), value)
    if isinstance(value, dict):
        return {key: _masked_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked_strings(item) for item in value]
    return value


def masked_value(raw: bytes | None) -> tuple[Any, str | None]:
    """The message for display and its encoding: JSON decoded (``"json"``) else base64 (``"base64"``).

    Shown as the ledger keeps events (``ledger_form``: masked numbers, birth year instead of the exact
    birth date, so the mask cannot be undone) with any other clear number masked as well."""
    if raw is None:
        return None, None
    try:
        decoded = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        masked = _CLEAR_ID_BYTES.sub(lambda m: mask_id_number(m.group().decode("ascii")).encode("ascii"), raw)
        return base64.b64encode(masked).decode("ascii"), "base64"
    return _masked_strings(ledger_form(decoded)), "json"


def item_view(row) -> dict[str, Any]:
    return {"id": row.id, "consumer_group": row.consumer_group, "topic": row.topic, "partition": row.partition,
            "offset": row.offset, "event_id": row.event_id, "event_type": row.event_type, "subject": row.subject,
            "error": row.error, "dead_lettered_at": _iso(row.dead_lettered_at), "redriven_at": _iso(row.redriven_at),
            "redrive_outcome": row.redrive_outcome}


def detail_view(row) -> dict[str, Any]:
    value, encoding = masked_value(row.value)
    headers = [{**h, "value": _masked_strings(h["value"])} if "value" in h else h for h in row.headers or []]
    return {**item_view(row), "redriven_by": row.redriven_by, "key": row.key, "headers": headers,
            "value": value, "value_encoding": encoding}


def redrive_view(row) -> dict[str, Any]:
    return {"id": row.id, "outcome": row.redrive_outcome, "redriven_at": _iso(row.redriven_at)}


# ---------------------------------------------------------------- list, show, redrive

async def dead_letters_page(session: AsyncSession, table: Table, *, status: Status = "open",
                            topic: str | None = None, cursor: int | None = None,
                            limit: int = 100) -> tuple[list[dict], int | None]:
    """Oldest first; ``next_cursor`` is the last id of a full page."""
    query = select(*[c for c in table.c if c.name not in ("value", "headers")]).order_by(table.c.id).limit(limit + 1)
    if status == "open":
        query = query.where(table.c.redriven_at.is_(None))
    elif status == "redriven":
        query = query.where(table.c.redriven_at.is_not(None))
    if topic:
        query = query.where(table.c.topic == topic)
    if cursor:
        query = query.where(table.c.id > cursor)
    rows = (await session.execute(query)).all()
    return [item_view(row) for row in rows[:limit]], (rows[limit - 1].id if len(rows) > limit else None)


async def _row(sessionmaker: async_sessionmaker[AsyncSession], table: Table, dead_letter_id: int):
    async with sessionmaker() as session:
        return (await session.execute(select(table).where(table.c.id == dead_letter_id))).first()


async def get_dead_letter(sessionmaker: async_sessionmaker[AsyncSession], table: Table,
                          dead_letter_id: int) -> dict[str, Any] | None:
    row = await _row(sessionmaker, table, dead_letter_id)
    return detail_view(row) if row is not None else None


class UnknownDeadLetter(LookupError):
    pass


class RedriveFailed(Exception):
    """The handler failed again; the row stays open with this error."""

    def __init__(self, dead_letter_id: int, error: str) -> None:
        super().__init__(error)
        self.dead_letter_id, self.error = dead_letter_id, error


async def redrive(sessionmaker: async_sessionmaker[AsyncSession], table: Table, dead_letter_id: int,
                  handler: Handler, *, actor: str, already_applied: AlreadyApplied | None = None) -> dict[str, Any]:
    """Run the consumer's handler on the stored message and record the outcome: ``{"id", "outcome",
    "redriven_at"}``. A row already redriven answers its first outcome and runs nothing.

    ``already_applied(session, event_id)``: whether the service's dedupe already holds the event, asked
    before the handler runs, so the outcome says ``"already applied"`` when the handler was a no-op.
    Raises ``UnknownDeadLetter``, or ``RedriveFailed`` (the row keeps its open state and the new error).
    """
    row = await _row(sessionmaker, table, dead_letter_id)
    if row is None:
        raise UnknownDeadLetter(dead_letter_id)
    if row.redriven_at is not None:
        return redrive_view(row)
    seen = False
    if already_applied is not None and row.event_id:
        async with sessionmaker() as session:
            seen = await already_applied(session, row.event_id)
    open_row = (table.c.id == dead_letter_id) & table.c.redriven_at.is_(None)
    try:
        await handler(consumer_record(row))
    except Exception as exc:  # noqa: BLE001 - whatever the consumer would have dead-lettered
        error = _no_nul(error_text(exc))[:ERROR_MAX]
        async with transaction(sessionmaker) as session:
            await session.execute(update(table).where(open_row).values(error=error, redrive_outcome=f"failed: {error}"))
        after = await _row(sessionmaker, table, dead_letter_id)
        if after is not None and after.redriven_at is not None:  # a concurrent redrive went through first
            return redrive_view(after)
        log.warning("redrive of dead letter %d (%s@%d/%d) failed again: %s", dead_letter_id, row.topic,
                    row.partition, row.offset, error)
        raise RedriveFailed(dead_letter_id, error) from exc
    async with transaction(sessionmaker) as session:
        # Only the first to finish records its outcome; a concurrent second answers the first's.
        await session.execute(update(table).where(open_row).values(
            redriven_at=utcnow(), redrive_outcome=ALREADY_APPLIED if seen else APPLIED, redriven_by=actor[:128]))
    done = await _row(sessionmaker, table, dead_letter_id)
    log.info("dead letter %d (%s@%d/%d) redriven by %s: %s", dead_letter_id, row.topic, row.partition, row.offset,
             actor, done.redrive_outcome)
    return redrive_view(done)


# ---------------------------------------------------------------- the admin routes (one router per service)

DeadLetterId = Annotated[int, Path(ge=1, le=2**62, description="The dead letter's id (from the list)")]
TopicFilter = Annotated[str | None, Query(max_length=200, description="Only this source topic")]
ListLimit = Annotated[int, Query(ge=1, le=500)]


def dead_letter_router(table: Table, handler_of: Callable[[Any], Handler],
                       already_applied: AlreadyApplied | None = None):
    """``/v1/admin/dead-letters`` for one service: ``handler_of(app)`` gives its consumer's handler."""
    router = APIRouter(tags=["dead letters"], responses=PROBLEM_RESPONSES)

    def unknown(dead_letter_id: int) -> Problem:
        return Problem(404, "Unknown dead letter", f"没有第 {dead_letter_id} 号死信。/ No dead letter {dead_letter_id}.")

    @router.get("/v1/admin/dead-letters", summary="Messages the consumer gave up on (admin), oldest first")
    async def list_dead_letters(request: Request, status: Status = "open",
                                topic: TopicFilter = None, cursor: IdCursor = None, limit: ListLimit = 100,
                                principal: Principal = Depends(require_scopes("admin"))) -> dict[str, Any]:
        """`status`: `open` (not redriven yet, the default), `redriven` or `all`. Items never carry the
        message itself: `GET /v1/admin/dead-letters/{id}` shows it."""
        async with request.app.state.sessionmaker() as session:
            items, next_cursor = await dead_letters_page(session, table, status=status, topic=topic, cursor=cursor,
                                                         limit=limit)
        return {"items": items, "next_cursor": str(next_cursor) if next_cursor else None}

    @router.get("/v1/admin/dead-letters/{dead_letter_id}", summary="One dead letter with its headers and message")
    async def show_dead_letter(request: Request, dead_letter_id: DeadLetterId,
                               principal: Principal = Depends(require_scopes("admin"))) -> dict[str, Any]:
        """`value`: the message decoded as JSON (`value_encoding: json`) else base64, with ID numbers
        masked and the birth year instead of the birth date, as the ledger keeps events."""
        found = await get_dead_letter(request.app.state.sessionmaker, table, dead_letter_id)
        if found is None:
            raise unknown(dead_letter_id)
        return found

    @router.post("/v1/admin/dead-letters/{dead_letter_id}:redrive",
                 summary="Run the message through the consumer's normal handler again (admin)",
                 responses={404: {"description": "No such dead letter"},
                            409: {"description": "It failed again; the dead letter stays open with the new error"}})
    async def redrive_dead_letter(request: Request, dead_letter_id: DeadLetterId,
                                  principal: Principal = Depends(require_scopes("admin"))) -> dict[str, Any]:
        """The same path as a delivery: signature check, event-id dedupe, version guard, in this process
        (nothing is republished). `outcome`: `applied`, or `already applied` when the event had gone
        through meanwhile. A dead letter is redriven once: asking again answers the first outcome."""
        try:
            return await redrive(request.app.state.sessionmaker, table, dead_letter_id, handler_of(request.app),
                                 actor=principal.subject, already_applied=already_applied)
        except UnknownDeadLetter:
            raise unknown(dead_letter_id) from None
        except RedriveFailed as exc:
            raise Problem(409, "Redrive failed", f"重投再次失败，死信保持未处理：{exc.error} / The redrive failed "
                          f"again; the dead letter stays open: {exc.error}",
                          type_="https://jingzhun.dev/problems/redrive-failed", id=dead_letter_id,
                          error=exc.error) from None

    return router
