"""The audit ledger: append-only, one hash chain per source topic partition."""
from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, Index, Integer, JSON, MetaData, String,
                        Table, UniqueConstraint)

from shared.dead_letters import define_dead_letters

metadata = MetaData()

dead_letters = define_dead_letters(metadata)  # messages the consumer gave up on (shared/dead_letters.py)

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
    # The source's key id and its signature over the record's ledger content (shared/signing.py);
    # hashed with the record. Every record written since migration 0003 has both.
    Column("signer", String(64), nullable=True),
    Column("signature", String(128), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("chain_id", "seq", name="uq_ledger_chain_seq"),
    Index("ix_ledger_subject", "subject", "id"),
    Index("ix_ledger_type", "type", "id"),
)

# ---------------------------------------------------------------- read models
# Projections the consumer maintains in the same transaction as the append. They are
# derived data: everything in them can be rebuilt by replaying the ledger
# (``services.audit.projections.rebuild``), so unlike the ledger they may be updated.

audit_households = Table(
    "audit_households", metadata,
    Column("household_id", String(64), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),
    Column("region_code", String(12), nullable=True),
    Column("village_code", String(16), nullable=True),
    Column("village_name", String(64), nullable=True),
    Column("township_code", String(16), nullable=True),
    Column("township_name", String(64), nullable=True),
    Column("head_name", String(64), nullable=True),
    Column("head_masked_id", String(24), nullable=True),
    Column("identified_year", Integer, nullable=True),
    Column("exit_date", String(10), nullable=True),
    Column("exit_year", Integer, nullable=True),
    Column("categories", JSON, nullable=False),
    Column("relocated", Boolean, nullable=False, default=False),
    Column("moved_in", Boolean, nullable=False, default=False),
    Column("moved_in_at_exit", Boolean, nullable=True),
    Column("population", Integer, nullable=False, default=0),
    Column("income_history", JSON, nullable=False),  # {"2019": {"amount": "2800.00", "record_id": 12}}
    Column("registered_at", DateTime(timezone=True), nullable=True),
    Column("last_visit_at", DateTime(timezone=True), nullable=True),
    Column("last_visit_record_id", BigInteger, nullable=True),
    Column("exit_override", Boolean, nullable=False, default=False),
    Column("exit_evidence", JSON, nullable=True),  # the exit steps: record ids, actor, reason, overridden criteria
    Column("exit_readiness", JSON, nullable=True),  # latest assessment {result, unmet, record_id, event_id}
    Column("readiness_at_exit", JSON, nullable=True),
    Column("cadres", JSON, nullable=False),  # cadre ids paired per the latest snapshot
    Column("first_record_id", BigInteger, nullable=False),
    Column("last_record_id", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_audit_households_village", "village_code"),
    Index("ix_audit_households_status", "status", "exit_year"),
)

audit_members = Table(
    "audit_members", metadata,
    Column("household_id", String(64), primary_key=True),
    Column("person_id", String(64), primary_key=True),
    Column("masked_id", String(24), nullable=True),
    Column("id_hash", String(64), nullable=True),  # keyed hash (HMAC) of the ID number, never the number
    Column("deceased", Boolean, nullable=False, default=False),
    Column("record_id", BigInteger, nullable=False),
    Index("ix_audit_members_id_hash", "id_hash"),
)

audit_villages = Table(
    "audit_villages", metadata,
    Column("code", String(16), primary_key=True),
    Column("name", String(64), nullable=True),
    Column("township_code", String(16), nullable=True),
    Column("township_name", String(64), nullable=True),
    Column("version", BigInteger, nullable=False, default=0),
    Column("data", JSON, nullable=False),
    Column("record_id", BigInteger, nullable=True),
)

audit_entitlements = Table(
    "audit_entitlements", metadata,
    Column("household_id", String(64), primary_key=True),
    Column("program", String(64), primary_key=True),
    Column("person_key", String(64), primary_key=True),  # person id or "" for household-level
    Column("person_id", String(64), nullable=True),
    Column("amount_fen", BigInteger, nullable=True),  # fen (0.01 yuan): sums stay exact on every database
    Column("unit", String(16), nullable=True),
    Column("period", String(32), nullable=True),
    Column("pack", String(64), nullable=True),
    Column("household_version", BigInteger, nullable=True),
    Column("record_id", BigInteger, nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
)

audit_entitlement_decisions = Table(
    "audit_entitlement_decisions", metadata,
    Column("record_id", BigInteger, primary_key=True, autoincrement=False),
    # position in the record's list: an ``entitlements.decided`` record lists several (0 for the older
    # one-entitlement-per-event records)
    Column("item", Integer, primary_key=True, autoincrement=False),
    Column("household_id", String(64), nullable=False),
    Column("program", String(64), nullable=False),
    Column("person_id", String(64), nullable=True),
    Column("change", String(16), nullable=False),  # granted | changed | revoked
    Column("amount_fen", BigInteger, nullable=True),  # after the decision (before it, for a revocation); fen, exact sums
    Column("unit", String(16), nullable=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Index("ix_audit_decisions_household", "household_id", "record_id"),
    Index("ix_audit_decisions_time", "time"),
)

audit_pairings = Table(
    "audit_pairings", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("household_id", String(64), nullable=False),
    Column("cadre_id", String(64), nullable=False),
    Column("paired_at", DateTime(timezone=True), nullable=True),
    Column("unpaired_at", DateTime(timezone=True), nullable=True),
    Column("paired_record_id", BigInteger, nullable=True),
    Column("unpaired_record_id", BigInteger, nullable=True),
    Index("ix_audit_pairings_household", "household_id", "cadre_id"),
)

audit_partner_access = Table(
    "audit_partner_access", metadata,
    Column("record_id", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", String(64), nullable=False),
    Column("client_id", String(128), nullable=True),
    Column("scope", String(32), nullable=True),
    Column("endpoint", String(128), nullable=True),
    Column("kind", String(16), nullable=False),  # lookup | delivery | other
    Column("person_key", String(96), nullable=True),  # id hash, else masked id, else person id
    Column("masked_id", String(24), nullable=True),
    Column("person_id", String(64), nullable=True),
    Column("household_id", String(64), nullable=True),
    Column("decision_id", String(64), nullable=True),
    Column("eligible", Boolean, nullable=True),
    Column("time", DateTime(timezone=True), nullable=False),
    Index("ix_audit_access_person", "client_id", "person_key", "time"),
)

# ---------------------------------------------------------------- monitoring (防止返贫动态监测)
# The registry's monitoring events are about a lead or a monitoring object (subject ``monitoring/<id>``),
# yet each names its household: this index lets the household's decision history find them.

audit_record_households = Table(
    "audit_record_households", metadata,
    Column("record_id", BigInteger, primary_key=True, autoincrement=False),
    Column("household_id", String(64), nullable=False),
    Column("time", String(40), nullable=False),  # the record's own time, so the history orders as it does
    Index("ix_audit_record_households", "household_id", "time", "record_id"),
)

audit_monitoring_leads = Table(
    "audit_monitoring_leads", metadata,
    Column("id", String(64), primary_key=True),
    Column("household_id", String(64), nullable=False),
    Column("region_code", String(12), nullable=True),
    Column("township_code", String(16), nullable=True),
    Column("village_code", String(16), nullable=True),
    Column("channel", String(32), nullable=True),
    Column("status", String(16), nullable=False),  # open | verifying | dismissed | merged
    Column("risk_causes", JSON, nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=True),
    Column("merged_into", String(64), nullable=True),
    Column("monitoring_object_id", String(64), nullable=True),  # the object opened from it (or that lists it)
    Column("version", BigInteger, nullable=False),  # 0: known so far only from an object that lists it
    Column("record_id", BigInteger, nullable=False),
    Column("event_id", String(64), nullable=True),
    Index("ix_audit_monitoring_leads_household", "household_id"),
    Index("ix_audit_monitoring_leads_village", "village_code", "status"),
)

audit_monitoring_objects = Table(
    "audit_monitoring_objects", metadata,
    Column("id", String(64), primary_key=True),
    Column("household_id", String(64), nullable=False),
    Column("case_no", String(64), nullable=True),
    Column("region_code", String(12), nullable=True),
    Column("township_code", String(16), nullable=True),
    Column("village_code", String(16), nullable=True),
    Column("category", String(32), nullable=True),
    Column("channel", String(32), nullable=True),
    Column("status", String(16), nullable=False),
    Column("procedure", String(32), nullable=True),
    Column("step", String(48), nullable=True),
    Column("lead_ids", JSON, nullable=False),
    Column("lead_reported_at", DateTime(timezone=True), nullable=True),  # earliest report of its leads
    Column("opened_at", DateTime(timezone=True), nullable=True),
    Column("identified_at", DateTime(timezone=True), nullable=True),
    Column("first_measure_at", DateTime(timezone=True), nullable=True),
    Column("eliminated_at", DateTime(timezone=True), nullable=True),
    Column("dismissed_at", DateTime(timezone=True), nullable=True),
    Column("measures", Integer, nullable=False, default=0),
    Column("steps", JSON, nullable=False),  # [{procedure, step, actor, at}] (evidence stays in the ledger)
    Column("elimination_evidence", JSON, nullable=True),  # the county_confirmation step, with its record ids
    Column("labour_capacity", String(16), nullable=True),
    Column("version", BigInteger, nullable=False),
    Column("first_record_id", BigInteger, nullable=False),
    Column("record_id", BigInteger, nullable=False),  # the record of the version held here
    Column("event_id", String(64), nullable=True),
    Index("ix_audit_monitoring_objects_household", "household_id"),
    Index("ix_audit_monitoring_objects_village", "village_code", "status"),
)
