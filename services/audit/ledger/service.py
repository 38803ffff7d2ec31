"""Appending to and reading the ledger."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit.ledger.chain import Algorithm, ChainVerifier, GENESIS_HASH, mask_personal_data, record_hash
from services.audit.tables import ledger_records
from shared.events import Envelope, utcnow


def chain_id_for(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


async def append_event(session: AsyncSession, envelope: Envelope, chain_id: str,
                       algorithm: Algorithm) -> dict | None:
    """Append one event to its chain; None if the event id is already in the ledger."""
    if await session.scalar(select(ledger_records.c.id).where(ledger_records.c.event_id == envelope.id)):
        return None
    head = (await session.execute(select(ledger_records.c.seq, ledger_records.c.hash)
                                  .where(ledger_records.c.chain_id == chain_id)
                                  .order_by(ledger_records.c.seq.desc()).limit(1))).first()
    seq, prev_hash = (head.seq + 1, head.hash) if head else (1, GENESIS_HASH)
    record = {"chain_id": chain_id, "seq": seq, "event_id": envelope.id, "source": envelope.source,
              "type": envelope.type, "subject": envelope.subject,
              "time": envelope.time.isoformat().replace("+00:00", "Z"), "actor": envelope.actor,
              "data": mask_personal_data(envelope.model_dump(mode="json")["data"])}
    record["prev_hash"] = prev_hash
    record["hash"] = record_hash(prev_hash, record, algorithm)
    # The unique (chain_id, seq) constraint turns a concurrent append into an error and a retry,
    # never a fork of the chain.
    await session.execute(insert(ledger_records).values(recorded_at=utcnow(), **record))
    return record


def record_view(row) -> dict[str, Any]:
    return {"id": row.id, "chain_id": row.chain_id, "seq": row.seq, "event_id": row.event_id,
            "source": row.source, "type": row.type, "subject": row.subject, "time": row.time,
            "actor": row.actor, "data": row.data, "prev_hash": row.prev_hash, "hash": row.hash}


async def list_records(session: AsyncSession, *, subject: str | None, type_: str | None, since: datetime | None,
                       actor: str | None, cursor: int | None, limit: int) -> tuple[list[dict], int | None]:
    query = select(ledger_records).order_by(ledger_records.c.id).limit(limit + 1)
    if subject:
        query = query.where(ledger_records.c.subject == subject)
    if type_:
        query = query.where(ledger_records.c.type == type_)
    if actor:
        query = query.where(ledger_records.c.actor == actor)
    if since:
        query = query.where(ledger_records.c.time >= since.isoformat().replace("+00:00", "Z"))
    if cursor:
        query = query.where(ledger_records.c.id > cursor)
    rows = (await session.execute(query)).all()
    return [record_view(r) for r in rows[:limit]], (rows[limit - 1].id if len(rows) > limit else None)


async def verify_ledger(sessionmaker: async_sessionmaker[AsyncSession], algorithm: Algorithm,
                        page_size: int = 5000) -> dict[str, Any]:
    """Recompute every chain, streaming page by page (never the whole table in memory)."""
    async with sessionmaker() as session:
        chain_ids = (await session.execute(select(ledger_records.c.chain_id).distinct()
                                           .order_by(ledger_records.c.chain_id))).scalars().all()
    checked, heads, first_bad = 0, {}, None
    for chain_id in chain_ids:
        verifier = ChainVerifier(chain_id, algorithm)
        last_seq = 0
        while verifier.first_bad is None:
            async with sessionmaker() as session:
                rows = (await session.execute(select(ledger_records).where(
                    ledger_records.c.chain_id == chain_id, ledger_records.c.seq > last_seq)
                    .order_by(ledger_records.c.seq).limit(page_size))).all()
            if not rows:
                break
            for row in rows:
                if not verifier.feed(record_view(row)):
                    break
            last_seq = rows[-1].seq
        checked += verifier.checked
        heads[chain_id] = verifier.prev_hash
        if verifier.first_bad and first_bad is None:
            first_bad = verifier.first_bad
    return {"ok": first_bad is None, "records_checked": checked, "head_hash": combined_head(heads),
            "chain_heads": heads, "first_bad_record": first_bad}


def combined_head(heads: dict[str, str]) -> str:
    """One hash committing to every chain head (what an outsider anchors)."""
    import hashlib
    if not heads:
        return GENESIS_HASH
    return hashlib.sha256("".join(f"{k}={v};" for k, v in sorted(heads.items())).encode()).hexdigest()
