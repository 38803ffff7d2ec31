"""The table behind the ``Idempotency-Key`` header (IETF httpapi-idempotency-key draft).

Each service that takes the header keeps its own copy of this table in its own database: a key is
remembered per caller (``principal``) and route, with a digest of the request body and the first
response, so a retried create answers exactly what the first one did.
"""
from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text


def define_idempotency_keys(metadata: MetaData) -> Table:
    return Table(
        "idempotency_keys", metadata,
        Column("principal", String(128), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("route", String(200), nullable=False),
        Column("request_digest", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("response_body", Text, nullable=False),
        Column("response_headers", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Index("ix_idempotency_keys_expires_at", "expires_at"),
    )
