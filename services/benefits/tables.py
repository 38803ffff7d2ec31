"""The benefits service's own tables."""
from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, Date, DateTime, Index, Integer, JSON, MetaData, Numeric,
                        String, Table, Text, UniqueConstraint)

from shared.dead_letters import define_dead_letters
from shared.idempotency_table import define_idempotency_keys
from shared.outbox import define_outbox, define_relay_epochs

metadata = MetaData()

outbox = define_outbox(metadata)
relay_epochs = define_relay_epochs(metadata)
idempotency_keys = define_idempotency_keys(metadata)
dead_letters = define_dead_letters(metadata)  # messages the consumer gave up on (shared/dead_letters.py)

# Latest snapshot per household as carried by registry events (event-carried state).
household_snapshots = Table(
    "household_snapshots", metadata,
    Column("household_id", String(40), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("region_code", String(12), nullable=False),
    Column("village_code", String(16), nullable=True, index=True),
    Column("township_code", String(16), nullable=True),
    Column("status", String(16), nullable=False),
    Column("snapshot", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Events already applied: a redelivered event finds its id here and changes nothing.
processed_events = Table(
    "processed_events", metadata,
    Column("event_id", String(64), primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False),
)

entitlements = Table(
    "entitlements", metadata,
    Column("household_id", String(40), primary_key=True),
    Column("program", String(64), primary_key=True),
    Column("person_key", String(40), primary_key=True),  # person id, or "" for household-level
    Column("person_id", String(40), nullable=True),
    Column("eligible", Boolean, nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("unit", String(8), nullable=False),
    Column("period", String(32), nullable=True),
    Column("household_version", Integer, nullable=False),
    Column("pack", String(64), nullable=False),
    Column("pack_version", String(32), nullable=False),
    Column("explanation", JSON, nullable=False),
    Column("source", JSON, nullable=False),
    Column("region_code", String(12), nullable=False),
    Column("township_code", String(16), nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The household's most specific administrative code (village, else county): office lists
    # filter by prefix of it, so township and village offices see only their own (0002).
    Column("area_code", String(16), nullable=True),
    Index("ix_entitlements_program_region", "program", "region_code"),
    Index("ix_entitlements_area_code", "area_code"),
)

entitlement_history = Table(
    "entitlement_history", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("household_id", String(40), nullable=False, index=True),
    Column("program", String(64), nullable=False),
    Column("person_id", String(40), nullable=True),
    Column("change", String(16), nullable=False),  # granted | changed | revoked
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("household_version", Integer, nullable=False),
    Column("pack", String(64), nullable=False),
    Column("pack_version", String(32), nullable=False),
    Column("cause_event_id", String(64), nullable=True),
    Column("decision_event_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

assessments = Table(
    "assessments", metadata,
    Column("household_id", String(40), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("result", Boolean, nullable=False),
    Column("unmet", JSON, nullable=False),
    Column("explanation", JSON, nullable=False),
    Column("source", JSON, nullable=False),
    Column("household_version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

villages = Table(
    "villages", metadata,
    Column("code", String(16), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("data", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

recompute_jobs = Table(
    "recompute_jobs", metadata,
    Column("id", String(40), primary_key=True),
    Column("scope", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | running | done | failed
    Column("total", Integer, nullable=False),
    Column("processed", Integer, nullable=False),
    Column("changed", Integer, nullable=False),
    Column("last_household_id", String(40), nullable=True),  # resume point
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # 0002: the policy date of the job, decisions emitted (``changed`` counts households), timings.
    Column("as_of", Date, nullable=True),
    Column("decisions", Integer, nullable=False, server_default="0", default=0),
    Column("batch_size", Integer, nullable=False, server_default="500", default=500),
    Column("requested_by", String(128), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)

# Policy packs published at run time (0007): one row per (pack, version), never updated. The packs in
# force are the files plus these rows; a version governs evaluation dates from its effective_from on.
policy_publications = Table(
    "policy_publications", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("version", String(64), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("text", Text, nullable=False),  # what the office sent; reloaded from this, exactly
    Column("content_hash", String(64), nullable=False),
    Column("diff", JSON, nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("published_by", String(128), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=False),
    Column("recompute_job_id", String(40), nullable=True),
    UniqueConstraint("name", "version", name="uq_policy_publications_name_version"),
)

# Income facts of each stored household version with the day the registry recorded it (0010): the
# history risk elimination reads (how long income has been above the monitoring range). A row is
# written only when the facts differ from the household's previous row.
income_observations = Table(
    "income_observations", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("household_id", String(40), nullable=False),
    Column("household_version", Integer, nullable=False),
    Column("observed_on", Date, nullable=False),
    Column("income_year", Integer, nullable=True),
    Column("per_capita_net", Numeric(14, 2), nullable=True),
    Column("living_members", Integer, nullable=False),
    Column("rigid_total", Numeric(14, 2), nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_income_observations_household", "household_id", "observed_on"),
)
