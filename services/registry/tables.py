"""The registry's own tables (its database is private to it)."""
from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, JSON, MetaData, String, Text, Table

from shared.outbox import define_outbox

metadata = MetaData()

outbox = define_outbox(metadata)

households = Table(
    "households", metadata,
    Column("id", String(40), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("region_code", String(12), nullable=False),
    Column("village_code", String(16), nullable=True),
    Column("township_code", String(16), nullable=True),
    Column("status", String(16), nullable=False),
    Column("snapshot", JSON, nullable=False),
    Column("created_by", String(128), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_households_village_status", "village_code", "status"),
    Index("ix_households_region_status", "region_code", "status"),
)

# A living person belongs to at most one household: the primary key enforces it.
person_index = Table(
    "person_index", metadata,
    Column("id_number", String(18), primary_key=True),
    Column("household_id", String(40), nullable=False, index=True),
    Column("person_id", String(40), nullable=False),
)

# Every version of every household, so history is never lost.
household_versions = Table(
    "household_versions", metadata,
    Column("household_id", String(40), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("event_type", String(64), nullable=False),
    Column("changed_paths", JSON, nullable=False),
    Column("snapshot", JSON, nullable=False),
    Column("actor", String(128), nullable=True),
    Column("note", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
)
