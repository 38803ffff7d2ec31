"""Partner APIs: clients, person look-up, status history, credit, one-stop settlement

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

TABLES = ("settlement_ytd", "settlements", "credit_subsidies_paid", "credit_claim_lines", "credit_claims",
          "credit_loan_events", "credit_loans", "credit_decisions", "household_status_history", "person_lookup",
          "partner_sequences", "partner_clients")


def upgrade() -> None:
    op.create_table('partner_clients',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('scopes', sa.String(length=200), nullable=False),
    sa.Column('secret_hash', sa.String(length=300), nullable=False),
    sa.Column('previous_secret_hash', sa.String(length=300), nullable=True),
    sa.Column('previous_valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('client_id')
    )
    op.create_table('partner_sequences',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('person_lookup',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('household_id', sa.String(length=40), nullable=False),
    sa.Column('person_id', sa.String(length=40), nullable=False),
    sa.Column('id_masked', sa.String(length=18), nullable=False),
    sa.Column('region_code', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('exit_date', sa.Date(), nullable=True),
    sa.Column('identified_year', sa.Integer(), nullable=True),
    sa.Column('categories', sa.JSON(), nullable=False),
    sa.Column('deceased', sa.Boolean(), nullable=False),
    sa.Column('in_household', sa.Boolean(), nullable=False),
    sa.Column('roster_listed', sa.Boolean(), nullable=False),
    sa.Column('roster_seq', sa.BigInteger(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id_hash')
    )
    op.create_index('ix_person_lookup_roster_seq', 'person_lookup', ['roster_seq'], unique=False)
    op.create_index(op.f('ix_person_lookup_household_id'), 'person_lookup', ['household_id'], unique=False)
    op.create_table('household_status_history',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('household_id', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('exit_date', sa.Date(), nullable=True),
    sa.Column('categories', sa.JSON(), nullable=False),
    sa.Column('effective_on', sa.Date(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_household_status_history_household', 'household_status_history', ['household_id', 'version'], unique=False)
    op.create_table('credit_decisions',
    sa.Column('decision_id', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('id_masked', sa.String(length=18), nullable=False),
    sa.Column('household_id', sa.String(length=40), nullable=True),
    sa.Column('person_id', sa.String(length=40), nullable=True),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('decision_id')
    )
    op.create_index(op.f('ix_credit_decisions_client_id'), 'credit_decisions', ['client_id'], unique=False)
    op.create_table('credit_loans',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('loan_id', sa.String(length=64), nullable=False),
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('id_masked', sa.String(length=18), nullable=False),
    sa.Column('household_id', sa.String(length=40), nullable=True),
    sa.Column('person_id', sa.String(length=40), nullable=True),
    sa.Column('region_code', sa.String(length=12), nullable=True),
    sa.Column('principal', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('outstanding', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('extended_to', sa.Date(), nullable=True),
    sa.Column('covid_extension', sa.Boolean(), nullable=False),
    sa.Column('purpose', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('renewed_from', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('defaulted_on', sa.Date(), nullable=True),
    sa.Column('subsidy_eligible', sa.Boolean(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('county_pays_interest', sa.Boolean(), nullable=False),
    sa.Column('decision_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('client_id', 'loan_id')
    )
    op.create_index(op.f('ix_credit_loans_id_hash'), 'credit_loans', ['id_hash'], unique=False)
    op.create_table('credit_loan_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('report_id', sa.String(length=64), nullable=False),
    sa.Column('loan_id', sa.String(length=64), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('on', sa.Date(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('outstanding_after', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('body_hash', sa.String(length=64), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('client_id', 'report_id', name='uq_credit_loan_events_report')
    )
    op.create_index('ix_credit_loan_events_loan', 'credit_loan_events', ['client_id', 'loan_id', 'on'], unique=False)
    op.create_table('credit_claims',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('claim_id', sa.String(length=64), nullable=False),
    sa.Column('decision_id', sa.String(length=40), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('quarter', sa.Integer(), nullable=False),
    sa.Column('body_hash', sa.String(length=64), nullable=False),
    sa.Column('total_claimed', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('total_approved', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('client_id', 'claim_id'),
    sa.UniqueConstraint('decision_id')
    )
    op.create_index('ix_credit_claims_quarter', 'credit_claims', ['client_id', 'year', 'quarter'], unique=False)
    op.create_table('credit_claim_lines',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('claim_id', sa.String(length=64), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('loan_id', sa.String(length=64), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('quarter', sa.Integer(), nullable=False),
    sa.Column('claimed', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('approved', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=48), nullable=True),
    sa.Column('payer', sa.String(length=24), nullable=True),
    sa.PrimaryKeyConstraint('client_id', 'claim_id', 'line')
    )
    op.create_table('credit_subsidies_paid',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('loan_id', sa.String(length=64), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('quarter', sa.Integer(), nullable=False),
    sa.Column('claim_id', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.PrimaryKeyConstraint('client_id', 'loan_id', 'year', 'quarter')
    )
    op.create_table('settlements',
    sa.Column('settlement_id', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('claim_id', sa.String(length=80), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('id_masked', sa.String(length=18), nullable=False),
    sa.Column('household_id', sa.String(length=40), nullable=True),
    sa.Column('person_id', sa.String(length=40), nullable=True),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('eligible', sa.Boolean(), nullable=False),
    sa.Column('total_cost', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('patient_pays', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('body_hash', sa.String(length=64), nullable=False),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('settlement_id'),
    sa.UniqueConstraint('client_id', 'claim_id', name='uq_settlements_claim'),
    sa.UniqueConstraint('seq')
    )
    op.create_index(op.f('ix_settlements_id_hash'), 'settlements', ['id_hash'], unique=False)
    op.create_table('settlement_ytd',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('out_of_pocket', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('stays', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id_hash', 'year')
    )
    op.bulk_insert(sa.table("partner_sequences", sa.column("name", sa.String), sa.column("value", sa.BigInteger)),
                   [{"name": "roster", "value": 0}, {"name": "settlements", "value": 0}])
    _index_existing_snapshots()


def _index_existing_snapshots() -> None:
    """Households stored before this revision get their look-up rows (a page at a time)."""
    import datetime as dt
    import json
    from services.benefits.partners.lookup import person_rows, roster_relevant

    bind = op.get_bind()
    lookup = sa.table("person_lookup", sa.column("categories", sa.JSON()), *[sa.column(name) for name in (
        "id_hash", "household_id", "person_id", "id_masked", "region_code", "status", "exit_date",
        "identified_year", "deceased", "in_household", "roster_listed", "roster_seq", "updated_at")])
    history = sa.table("household_status_history", sa.column("household_id"), sa.column("version"),
                       sa.column("status"), sa.column("exit_date"), sa.column("categories", sa.JSON()),
                       sa.column("effective_on"), sa.column("recorded_at"))
    now = dt.datetime.now(dt.timezone.utc)
    seq, after = 0, ""
    while True:
        rows = bind.execute(sa.text("SELECT household_id, version, snapshot FROM household_snapshots "
                                    "WHERE household_id > :after ORDER BY household_id LIMIT 500"),
                            {"after": after}).all()
        if not rows:
            break
        people, statuses = {}, []
        for household_id, version, snapshot in rows:
            snapshot = json.loads(snapshot) if isinstance(snapshot, str) else snapshot
            for row in person_rows(snapshot):
                listed = roster_relevant(row)
                if listed:
                    seq += 1
                people[row["id_hash"]] = {**row, "roster_listed": listed, "roster_seq": seq if listed else None,
                                          "updated_at": now}
            exit_date = snapshot.get("exit_date")
            statuses.append({"household_id": household_id, "version": version, "status": snapshot["status"],
                             "exit_date": dt.date.fromisoformat(exit_date[:10]) if exit_date else None,
                             "categories": sorted(snapshot.get("categories") or []), "effective_on": None,
                             "recorded_at": now})
        if people:
            op.bulk_insert(lookup, list(people.values()))
        op.bulk_insert(history, statuses)
        after = rows[-1][0]
    if seq:
        bind.execute(sa.text("UPDATE partner_sequences SET value = :seq WHERE name = 'roster'"), {"seq": seq})


def downgrade() -> None:
    for name in TABLES:
        op.drop_table(name)
