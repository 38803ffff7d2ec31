"""The audit ledger: append-only, one hash chain per source topic partition."""
from __future__ import annotations

from sqlalchemy import (BigInteger, Column, DateTime, Index, Integer, JSON, MetaData, String, Table,
                        UniqueConstraint)

metadata = MetaData()

ledger_records = Table(
    "ledger_records", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("chain_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("event_id", String(64), nullable=False, unique=True),
    Column("source", String(32), nullable=False),
    Column("type", String(64), nullable=False),
    Column("subject", String(128), nullable=False),
    Column("time", String(40), nullable=False),
    Column("actor", String(128), nullable=True),
    Column("data", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("chain_id", "seq", name="uq_ledger_chain_seq"),
    Index("ix_ledger_subject", "subject", "id"),
    Index("ix_ledger_type", "type", "id"),
)
