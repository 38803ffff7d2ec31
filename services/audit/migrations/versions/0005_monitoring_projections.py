"""monitoring projections: leads, monitoring objects, and which household each monitoring record is about

Revision ID: 0005
Revises: 0004

Read models of the anti-return-to-poverty monitoring loop (docs/monitoring.md), filled by the consumer
from the registry's ``monitoring.*`` events and rebuilt by replaying the ledger like the others (0002).
The ledger stays append-only; the service role gets full DML on these projection tables.
"""
import os
import re

from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

TABLES = ("audit_record_households", "audit_monitoring_leads", "audit_monitoring_objects")


def grant_service_role() -> None:
    bind = op.get_bind()
    role = os.environ.get("JZ_AUDIT_SERVICE_ROLE")
    if bind.dialect.name != "postgresql" or not role:
        return
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", role):
        raise ValueError("JZ_AUDIT_SERVICE_ROLE must be a plain SQL identifier")
    if not bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar():
        return  # as in 0002: skipped when the role does not exist yet
    for table in TABLES:
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{role}"')


def upgrade() -> None:
    op.create_table(
        'audit_record_households',
        sa.Column('record_id', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('household_id', sa.String(64), nullable=False),
        sa.Column('time', sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint('record_id'),
    )
    op.create_index('ix_audit_record_households', 'audit_record_households', ['household_id', 'time', 'record_id'])
    op.create_table(
        'audit_monitoring_leads',
        sa.Column('id', sa.String(64), nullable=False),
        sa.Column('household_id', sa.String(64), nullable=False),
        sa.Column('region_code', sa.String(12), nullable=True),
        sa.Column('township_code', sa.String(16), nullable=True),
        sa.Column('village_code', sa.String(16), nullable=True),
        sa.Column('channel', sa.String(32), nullable=True),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('risk_causes', sa.JSON(), nullable=False),
        sa.Column('reported_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('merged_into', sa.String(64), nullable=True),
        sa.Column('monitoring_object_id', sa.String(64), nullable=True),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.Column('record_id', sa.BigInteger(), nullable=False),
        sa.Column('event_id', sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_audit_monitoring_leads_household', 'audit_monitoring_leads', ['household_id'])
    op.create_index('ix_audit_monitoring_leads_village', 'audit_monitoring_leads', ['village_code', 'status'])
    op.create_table(
        'audit_monitoring_objects',
        sa.Column('id', sa.String(64), nullable=False),
        sa.Column('household_id', sa.String(64), nullable=False),
        sa.Column('case_no', sa.String(64), nullable=True),
        sa.Column('region_code', sa.String(12), nullable=True),
        sa.Column('township_code', sa.String(16), nullable=True),
        sa.Column('village_code', sa.String(16), nullable=True),
        sa.Column('category', sa.String(32), nullable=True),
        sa.Column('channel', sa.String(32), nullable=True),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('procedure', sa.String(32), nullable=True),
        sa.Column('step', sa.String(48), nullable=True),
        sa.Column('lead_ids', sa.JSON(), nullable=False),
        sa.Column('lead_reported_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('identified_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('first_measure_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('eliminated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('dismissed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('measures', sa.Integer(), nullable=False),
        sa.Column('steps', sa.JSON(), nullable=False),
        sa.Column('elimination_evidence', sa.JSON(), nullable=True),
        sa.Column('labour_capacity', sa.String(16), nullable=True),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.Column('first_record_id', sa.BigInteger(), nullable=False),
        sa.Column('record_id', sa.BigInteger(), nullable=False),
        sa.Column('event_id', sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_audit_monitoring_objects_household', 'audit_monitoring_objects', ['household_id'])
    op.create_index('ix_audit_monitoring_objects_village', 'audit_monitoring_objects', ['village_code', 'status'])
    grant_service_role()


def downgrade() -> None:
    op.drop_index('ix_audit_monitoring_objects_village', 'audit_monitoring_objects')
    op.drop_index('ix_audit_monitoring_objects_household', 'audit_monitoring_objects')
    op.drop_table('audit_monitoring_objects')
    op.drop_index('ix_audit_monitoring_leads_village', 'audit_monitoring_leads')
    op.drop_index('ix_audit_monitoring_leads_household', 'audit_monitoring_leads')
    op.drop_table('audit_monitoring_leads')
    op.drop_index('ix_audit_record_households', 'audit_record_households')
    op.drop_table('audit_record_households')
