"""The registry's own tables (its database is private to it)."""
from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, Date, DateTime, Index, Integer, JSON, MetaData, String, Table,
                        Text, UniqueConstraint)

from shared.dead_letters import define_dead_letters
from shared.idempotency_table import define_idempotency_keys
from shared.outbox import define_outbox, define_relay_epochs

metadata = MetaData()

outbox = define_outbox(metadata)
relay_epochs = define_relay_epochs(metadata)
idempotency_keys = define_idempotency_keys(metadata)

households = Table(
    "households", metadata,
    Column("id", String(40), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("region_code", String(12), nullable=False),
    Column("village_code", String(16), nullable=True),
    Column("township_code", String(16), nullable=True),
    Column("status", String(16), nullable=False),
    # ",dibao,marginal," so a category filter is a portable LIKE (0002)
    Column("categories", String(160), nullable=True),
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


# ------------------------------------------------------------------ registry service tables (0002)
# Ids that grow without bound use BIGINT on PostgreSQL and INTEGER on SQLite (its rowid alias).
_BigId = BigInteger().with_variant(Integer, "sqlite")

# Where a household stands in a running procedure (its status lives on `households`).
household_procedures = Table(
    "household_procedures", metadata,
    Column("household_id", String(40), primary_key=True),
    Column("procedure", String(32), nullable=True),
    Column("step", String(32), nullable=True),
    Column("notice_started_at", DateTime(timezone=True), nullable=True),
    Column("notice_ends_at", DateTime(timezone=True), nullable=True),
    # The override a running exit proposal was made with: {reason, criteria, actor}.
    Column("override", JSON, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Every procedure step ever taken (actor, time, outcome, note): append-only.
procedure_steps = Table(
    "procedure_steps", metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("household_id", String(40), nullable=False),
    Column("household_version", Integer, nullable=False),
    Column("procedure", String(32), nullable=True),
    Column("action", String(32), nullable=False),
    Column("outcome", String(64), nullable=False),
    Column("from_status", String(16), nullable=False),
    Column("to_status", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=True),
    Column("note", Text, nullable=True),
    Column("override", Boolean, nullable=False),
    Column("overridden_criteria", JSON, nullable=False),
    Column("assessment", JSON, nullable=True),
    Index("ix_procedure_steps_household", "household_id", "id"),
)

# Administrative areas: province → city → county → township → village → villager group.
areas = Table(
    "areas", metadata,
    Column("code", String(16), primary_key=True),
    Column("parent_code", String(16), nullable=True),
    Column("level", String(16), nullable=False),
    Column("name", String(128), nullable=False),
    Column("flags", JSON, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_areas_parent", "parent_code", "code"),
    Index("ix_areas_level", "level", "code"),
)

cadres = Table(
    "cadres", metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("unit", String(128), nullable=False),
    Column("role", String(32), nullable=False),
    Column("phone", String(32), nullable=True),
    Column("area_code", String(16), nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Cadre ↔ household pairing (结对帮扶); an ended pairing is kept (ended_at set).
pairings = Table(
    "pairings", metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("household_id", String(40), nullable=False),
    Column("cadre_id", String(40), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("started_by", String(128), nullable=True),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Column("ended_by", String(128), nullable=True),
    Column("end_reason", Text, nullable=True),
    Index("ix_pairings_household", "household_id", "ended_at"),
    Index("ix_pairings_cadre", "cadre_id", "ended_at"),
)

# Village work team (驻村工作队) and first secretary (第一书记).
village_team = Table(
    "village_team", metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("village_code", String(16), nullable=False),
    Column("cadre_id", String(40), nullable=False),
    Column("role", String(32), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),
    Index("ix_village_team_village", "village_code", "ended_at"),
    Index("ix_village_team_cadre", "cadre_id", "ended_at"),
)

# Home visits (入户走访); `result` is the first response, replayed on resend.
visits = Table(
    "visits", metadata,
    Column("id", String(40), primary_key=True),
    Column("client_visit_id", String(64), nullable=False, unique=True),
    Column("household_id", String(40), nullable=False),
    Column("cadre_id", String(128), nullable=False),
    Column("visited_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("result", JSON, nullable=False),
    Index("ix_visits_household", "household_id", "visited_at"),
)

# When each observed household fact (income, guarantees.food, members.<id>.health, …) was last
# observed and by what, so a late visit never overwrites a newer fact.
fact_provenance = Table(
    "fact_provenance", metadata,
    Column("household_id", String(40), primary_key=True),
    Column("fact", String(128), primary_key=True),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    Column("source", String(80), nullable=False),
    Column("version", Integer, nullable=False),
)

# Ledger imports that wrote something (a refused all-or-nothing import leaves no row).
imports = Table(
    "imports", metadata,
    Column("id", String(40), primary_key=True),
    Column("filename", String(255), nullable=True),
    Column("actor", String(128), nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("households", Integer, nullable=False),
    Column("written", Integer, nullable=False),
    Column("skipped", Integer, nullable=False),
    Column("report", JSON, nullable=False),
    Column("area", String(16), nullable=True),  # the importing caller's area claim (object-level reads, 0004)
)

# Every ledger upload is a job (0004): streamed to a private temp file, parsed in a worker process, its
# state and progress here. ``outcome`` is the answer the import gave (the report or the problem body).
import_jobs = Table(
    "import_jobs", metadata,
    Column("id", String(40), primary_key=True),  # the import id the households are written under
    Column("state", String(16), nullable=False),  # queued running done refused failed
    Column("phase", String(16), nullable=True),  # reading validating checking writing
    Column("filename", String(255), nullable=True),
    Column("actor", String(128), nullable=True),
    Column("area", String(16), nullable=True),
    Column("size_bytes", BigInteger, nullable=False),
    Column("options", JSON, nullable=False),
    Column("rows_total", Integer, nullable=True),
    Column("rows_done", Integer, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("outcome", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)


# ------------------------------------------------------------------ monitoring against a return to poverty (0006)
# docs/monitoring.md. Area columns copy the household's at write time, so lists filter without the snapshot.

# Leads (监测线索): self-reports, cadre observations, departments' pushes, supervision, platform analysis.
monitoring_leads = Table(
    "monitoring_leads", metadata,
    Column("id", String(40), primary_key=True),
    Column("client_lead_id", String(80), nullable=False, unique=True),  # a uuid, "benefits:<event>", "import:…"
    Column("household_id", String(40), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("risk_causes", JSON, nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # open verifying dismissed merged
    Column("merged_into", String(40), nullable=True),  # the open lead or monitoring object it was attached to
    Column("monitoring_object_id", String(40), nullable=True),
    Column("notes", Text, nullable=True),
    Column("source_event_id", String(64), nullable=True),
    Column("dismiss_reason", Text, nullable=True),
    Column("version", Integer, nullable=False),
    Column("region_code", String(12), nullable=True),
    Column("township_code", String(16), nullable=True),
    Column("village_code", String(16), nullable=True),
    Index("ix_monitoring_leads_household", "household_id", "status"),
    Index("ix_monitoring_leads_status", "status", "recorded_at", "id"),
    Index("ix_monitoring_leads_village", "village_code", "status", "recorded_at"),
)

# Monitoring objects (监测对象): one row per case; a household may be one several times over the years.
monitoring_objects = Table(
    "monitoring_objects", metadata,
    Column("id", String(40), primary_key=True),
    Column("household_id", String(40), nullable=False),
    Column("case_no", Integer, nullable=False),
    # = household_id while the case is open, NULL once eliminated or dismissed: the unique index keeps one
    # open case per household on every database (NULLs never collide).
    Column("open_household_id", String(40), nullable=True, unique=True),
    Column("category", String(24), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("lead_ids", JSON, nullable=False),
    Column("risk_causes", JSON, nullable=False),
    Column("assigned_cadre", String(40), nullable=True),
    Column("procedure", String(16), nullable=True),
    Column("step", String(32), nullable=True),
    Column("status", String(16), nullable=False),
    Column("notice_started_at", DateTime(timezone=True), nullable=True),
    Column("notice_ends_at", DateTime(timezone=True), nullable=True),
    Column("last_actor", String(128), nullable=True),
    Column("step_at", DateTime(timezone=True), nullable=False),  # when the current step was reached
    Column("opened_at", DateTime(timezone=True), nullable=False),
    Column("identified_at", DateTime(timezone=True), nullable=True),
    Column("first_measure_at", DateTime(timezone=True), nullable=True),
    Column("eliminated_at", DateTime(timezone=True), nullable=True),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False),
    Column("region_code", String(12), nullable=True),
    Column("township_code", String(16), nullable=True),
    Column("village_code", String(16), nullable=True),
    Index("ix_monitoring_objects_household", "household_id", "case_no", unique=True),
    Index("ix_monitoring_objects_status", "status", "step", "step_at"),
    Index("ix_monitoring_objects_category", "category", "status", "id"),
    Index("ix_monitoring_objects_village", "village_code", "status", "id"),
)

# Every step of every monitoring object (actor, evidence, time): append-only.
monitoring_steps = Table(
    "monitoring_steps", metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("object_id", String(40), nullable=False),
    Column("object_version", Integer, nullable=False),
    Column("procedure", String(16), nullable=False),
    Column("step", String(32), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=True),
    Column("evidence", JSON, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_monitoring_steps_object", "object_id", "id"),
)

# Assistance measures (帮扶措施) of a monitoring object.
monitoring_measures = Table(
    "monitoring_measures", metadata,
    Column("id", String(40), primary_key=True),
    Column("object_id", String(40), nullable=False),
    Column("household_id", String(40), nullable=False),
    Column("type", String(32), nullable=False),
    Column("risk_cause", String(32), nullable=True),
    Column("responsible", String(128), nullable=False),
    Column("start_date", Date, nullable=False),
    Column("status", String(16), nullable=False),
    Column("notes", Text, nullable=True),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("recorded_by", String(128), nullable=False),
    # changes after recording (PATCH …/measures/{id}, migration 0007): who and when last, every status change
    Column("end_date", Date, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=True),
    Column("updated_by", String(128), nullable=True),
    Column("status_history", JSON, nullable=False, default=list),
    Index("ix_monitoring_measures_object", "object_id", "recorded_at"),
)

# Messages the registry's consumer (monitoring.risk_detected from benefits) gave up on (shared/dead_letters.py).
dead_letters = define_dead_letters(metadata)


# ------------------------------------------------------------------ DCI Social Registry API (0008, docs/dci.md)

# Systems allowed to call /registry/...: onboarded by an administrator (the spec leaves onboarding to the
# deployment). ``client_id`` is the token's client (or subject) that may speak for this sender_id; callbacks
# go only under ``callback_uri``; a sender with ``public_key`` (Ed25519, PEM) must sign every request.
dci_senders = Table(
    "dci_senders", metadata,
    Column("sender_id", String(99), primary_key=True),
    Column("client_id", String(128), nullable=False),
    Column("name", String(200), nullable=False),
    Column("callback_uri", String(500), nullable=False),
    Column("public_key", Text, nullable=True),
    Column("status", String(16), nullable=False),  # active | disabled
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
)

# Every accepted message: its answer is replayed for a resend with the same (sender_id, message_id), and
# refused for a different body under the same id. One row per transaction the registry answers.
dci_transactions = Table(
    "dci_transactions", metadata,
    Column("correlation_id", String(40), primary_key=True),
    Column("sender_id", String(99), nullable=False),
    Column("message_id", String(99), nullable=False),
    Column("body_hash", String(64), nullable=False),  # sha256 of the canonical {header, message}
    Column("transaction_id", String(99), nullable=False),
    Column("action", String(16), nullable=False),  # search | subscribe | unsubscribe | txn-status
    Column("mode", String(8), nullable=False),  # async | sync
    Column("caller", JSON, nullable=False),  # {subject, client_id, scopes, area}: whose rights the answer uses
    Column("header", JSON, nullable=False),
    Column("message", JSON, nullable=False),
    Column("status", String(8), nullable=False),  # pdng | succ | rjct (the callback header's status)
    Column("response", JSON, nullable=True),  # the answer's message (SearchResponse, …) once computed
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("sender_id", "message_id", name="uq_dci_transactions_message"),
    Index("ix_dci_transactions_txn", "sender_id", "transaction_id"),
)

# Subscriptions to household changes; notifications are staged by the consumer of jz.registry.v1.
dci_subscriptions = Table(
    "dci_subscriptions", metadata,
    Column("code", String(40), primary_key=True),
    Column("sender_id", String(99), nullable=False),
    Column("correlation_id", String(40), nullable=False),
    Column("reference_id", String(99), nullable=False),
    Column("caller", JSON, nullable=False),
    Column("reg_event_type", String(64), nullable=False),
    Column("filter_type", String(16), nullable=False),
    Column("filter", JSON, nullable=False),
    Column("response_entity", String(16), nullable=False),
    Column("notify_uri", String(600), nullable=False),
    Column("frequency", JSON, nullable=True),
    Column("start_time", DateTime(timezone=True), nullable=True),
    Column("end_time", DateTime(timezone=True), nullable=True),
    Column("locale", String(3), nullable=True),
    Column("status", String(16), nullable=False),  # subscribe | unsubscribe
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("unsubscribed_at", DateTime(timezone=True), nullable=True),
    Index("ix_dci_subscriptions_status", "status"),
)

# What the registry sends out: callbacks (on-search, on-subscribe, on-unsubscribe, txn/on-status) and
# notifications, delivered by the worker with retries; ``dead`` after the last attempt (the dead-letter list,
# redriven by an administrator). ``dedup_key`` makes staging idempotent (a redelivered event, a re-run step).
dci_deliveries = Table(
    "dci_deliveries", metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("dedup_key", String(200), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),  # callback | notify
    Column("sender_id", String(99), nullable=False),
    Column("correlation_id", String(40), nullable=True),
    Column("subscription_code", String(40), nullable=True),
    Column("url", String(600), nullable=False),
    Column("action", String(16), nullable=False),  # on-search | on-subscribe | on-unsubscribe | txn-on-status | notify
    Column("header", JSON, nullable=True),  # null until the worker computed the answer (callbacks)
    Column("message", JSON, nullable=True),
    Column("status", String(16), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("redriven_at", DateTime(timezone=True), nullable=True),
    Column("redriven_by", String(128), nullable=True),
    Index("ix_dci_deliveries_due", "status", "next_attempt_at"),
)
