"""Tables of the partner APIs (banks, insurers), on the benefits service's metadata.

Created by migration 0003. ID numbers are never stored in clear here: look-ups go
through ``id_hash`` (HMAC-SHA256 with the service's look-up key), displays use the
masked form.
"""
from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Column, Date, DateTime, Index, Integer, JSON, Numeric, String,
                        Table, Text, UniqueConstraint, text)

from services.benefits.tables import metadata

BIG_ID = BigInteger().with_variant(Integer, "sqlite")

# OAuth2 client-credentials clients (one per bank or insurer system).
partner_clients = Table(
    "partner_clients", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("scopes", String(200), nullable=False),  # space-separated: credit | settlement | dci
    Column("secret_hash", String(300), nullable=False),
    Column("previous_secret_hash", String(300), nullable=True),  # still accepted until the grace ends
    Column("previous_valid_until", DateTime(timezone=True), nullable=True),
    Column("status", String(16), nullable=False),  # active | disabled
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("rotated_at", DateTime(timezone=True), nullable=True),
    Column("disabled_at", DateTime(timezone=True), nullable=True),
    # Administrative code prefix its tokens are limited to (their ``area`` claim); null: no limit.
    Column("area", String(12), nullable=True),  # migration 0011
)

# Counters whose increments are serialised by a row lock, so a polling reader never
# skips a value that a slower transaction commits later.
partner_sequences = Table(
    "partner_sequences", metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# ID number (keyed hash) -> person, maintained whenever a household snapshot is stored.
person_lookup = Table(
    "person_lookup", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("household_id", String(40), nullable=False, index=True),
    Column("person_id", String(40), nullable=False),
    Column("id_masked", String(18), nullable=False),
    Column("region_code", String(12), nullable=False),
    Column("status", String(16), nullable=False),  # the household's status
    Column("exit_date", Date, nullable=True),
    Column("identified_year", Integer, nullable=True),
    Column("categories", JSON, nullable=False),
    Column("deceased", Boolean, nullable=False),
    Column("in_household", Boolean, nullable=False),  # false once the person left the household
    Column("roster_listed", Boolean, nullable=False),  # ever shown on the insurers' roster
    Column("roster_seq", BigInteger, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # When the death took effect: the snapshot's date_of_death, else the day the registry recorded it.
    Column("deceased_on", Date, nullable=True),
    # When the household's current status took effect (null: the first status known, since ever).
    Column("status_since", Date, nullable=True),
    Index("ix_person_lookup_roster_seq", "roster_seq"),
)

# A household's status over time, for day-by-day eligibility (interest subsidy).
household_status_history = Table(
    "household_status_history", metadata,
    Column("id", BIG_ID, primary_key=True, autoincrement=True),
    Column("household_id", String(40), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("exit_date", Date, nullable=True),
    Column("categories", JSON, nullable=False),
    Column("effective_on", Date, nullable=True),  # null: the first status known, in force since ever
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Index("ix_household_status_history_household", "household_id", "version"),
)

credit_decisions = Table(
    "credit_decisions", metadata,
    Column("decision_id", String(40), primary_key=True),
    Column("client_id", String(64), nullable=False, index=True),
    Column("id_masked", String(18), nullable=False),
    Column("household_id", String(40), nullable=True),
    Column("person_id", String(40), nullable=True),
    Column("request", JSON, nullable=False),  # without the ID number
    Column("result", JSON, nullable=False),
    Column("as_of", Date, nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

credit_loans = Table(
    "credit_loans", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("loan_id", String(64), primary_key=True),
    Column("id_hash", String(64), nullable=False, index=True),
    Column("id_masked", String(18), nullable=False),
    Column("household_id", String(40), nullable=True),
    Column("person_id", String(40), nullable=True),
    Column("region_code", String(12), nullable=True),
    Column("principal", Numeric(14, 2), nullable=False),
    Column("outstanding", Numeric(14, 2), nullable=False),
    Column("issued_on", Date, nullable=False),
    Column("due_on", Date, nullable=False),  # original maturity
    Column("extended_to", Date, nullable=True),
    Column("covid_extension", Boolean, nullable=False),
    Column("purpose", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # new | renewal
    Column("renewed_from", String(64), nullable=True),
    Column("status", String(16), nullable=False),  # active | repaid | renewed | defaulted
    Column("defaulted_on", Date, nullable=True),
    Column("subsidy_eligible", Boolean, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("county_pays_interest", Boolean, nullable=False),
    Column("decision_id", String(40), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Every loan report, idempotent by the bank's report id; the principal schedule comes from here.
credit_loan_events = Table(
    "credit_loan_events", metadata,
    Column("id", BIG_ID, primary_key=True, autoincrement=True),
    Column("client_id", String(64), nullable=False),
    Column("report_id", String(64), nullable=False),
    Column("loan_id", String(64), nullable=False),
    Column("event", String(16), nullable=False),  # issuance | repayment | extension | renewal | default
    Column("on", Date, nullable=False),
    Column("amount", Numeric(14, 2), nullable=True),
    Column("outstanding_after", Numeric(14, 2), nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("result", JSON, nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("client_id", "report_id", name="uq_credit_loan_events_report"),
    Index("ix_credit_loan_events_loan", "client_id", "loan_id", "on"),
)

credit_claims = Table(
    "credit_claims", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("claim_id", String(64), primary_key=True),
    Column("decision_id", String(40), nullable=False, unique=True),
    Column("year", Integer, nullable=False),
    Column("quarter", Integer, nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("total_claimed", Numeric(14, 2), nullable=False),
    Column("total_approved", Numeric(14, 2), nullable=False),
    Column("result", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_credit_claims_quarter", "client_id", "year", "quarter"),
)

credit_claim_lines = Table(
    "credit_claim_lines", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("claim_id", String(64), primary_key=True),
    Column("line", Integer, primary_key=True),
    Column("loan_id", String(64), nullable=False),
    Column("year", Integer, nullable=False),
    Column("quarter", Integer, nullable=False),
    Column("claimed", Numeric(14, 2), nullable=False),
    Column("approved", Numeric(14, 2), nullable=False),
    Column("status", String(16), nullable=False),  # approved | rejected
    Column("reason", String(48), nullable=True),
    Column("payer", String(24), nullable=True),
)

# One approved subsidy per loan and quarter: the primary key refuses a second payment.
credit_subsidies_paid = Table(
    "credit_subsidies_paid", metadata,
    Column("client_id", String(64), primary_key=True),
    Column("loan_id", String(64), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("quarter", Integer, primary_key=True),
    Column("claim_id", String(64), nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
)

settlements = Table(
    "settlements", metadata,
    Column("settlement_id", String(40), primary_key=True),
    Column("client_id", String(64), nullable=False),
    Column("claim_id", String(80), nullable=False),
    # The records feed's position, given after commit by ``settlement.service.sequence_settlements`` (null
    # until then), so that concurrent settlements do not queue on one sequence row (issue 15).
    Column("seq", BigInteger, nullable=True, unique=True),
    Column("id_hash", String(64), nullable=False, index=True),
    Column("id_masked", String(18), nullable=False),
    Column("household_id", String(40), nullable=True),
    Column("person_id", String(40), nullable=True),
    Column("year", Integer, nullable=False),
    Column("eligible", Boolean, nullable=False),
    Column("total_cost", Numeric(14, 2), nullable=False),
    Column("patient_pays", Numeric(14, 2), nullable=False),
    Column("body_hash", String(64), nullable=False),
    Column("request", JSON, nullable=False),  # without the ID number
    Column("result", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("client_id", "claim_id", name="uq_settlements_claim"),
    Index("ix_settlements_unsequenced", "created_at", "settlement_id",
          postgresql_where=text("seq IS NULL"), sqlite_where=text("seq IS NULL")),
)

# Year-to-date out-of-pocket per person: the row lock orders two stays of one person.
settlement_ytd = Table(
    "settlement_ytd", metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("out_of_pocket", Numeric(14, 2), nullable=False),
    Column("stays", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

SEQUENCES = ("roster", "settlements")
