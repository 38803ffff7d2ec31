"""Monitoring against a return to poverty (防止返贫动态监测和帮扶): leads, monitoring objects, their steps
and assistance measures (docs/monitoring.md); dead letters of the registry's consumer of jz.benefits.v1

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _area_columns() -> list:
    return [sa.Column('region_code', sa.String(12), nullable=True),
            sa.Column('township_code', sa.String(16), nullable=True),
            sa.Column('village_code', sa.String(16), nullable=True)]


def upgrade() -> None:
    op.create_table(
        'monitoring_leads',
        sa.Column('id', sa.String(40), primary_key=True),
        sa.Column('client_lead_id', sa.String(80), nullable=False, unique=True),
        sa.Column('household_id', sa.String(40), nullable=False),
        sa.Column('channel', sa.String(16), nullable=False),
        sa.Column('risk_causes', sa.JSON(), nullable=False),
        sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_by', sa.String(128), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('merged_into', sa.String(40), nullable=True),
        sa.Column('monitoring_object_id', sa.String(40), nullable=True),
        sa.Column('notes', sa.Text(), nullable=True),
        sa.Column('source_event_id', sa.String(64), nullable=True),
        sa.Column('dismiss_reason', sa.Text(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        *_area_columns(),
    )
    op.create_index('ix_monitoring_leads_household', 'monitoring_leads', ['household_id', 'status'])
    op.create_index('ix_monitoring_leads_status', 'monitoring_leads', ['status', 'recorded_at', 'id'])
    op.create_index('ix_monitoring_leads_village', 'monitoring_leads', ['village_code', 'status', 'recorded_at'])
    op.create_table(
        'monitoring_objects',
        sa.Column('id', sa.String(40), primary_key=True),
        sa.Column('household_id', sa.String(40), nullable=False),
        sa.Column('case_no', sa.Integer(), nullable=False),
        sa.Column('open_household_id', sa.String(40), nullable=True, unique=True),
        sa.Column('category', sa.String(24), nullable=False),
        sa.Column('channel', sa.String(16), nullable=False),
        sa.Column('lead_ids', sa.JSON(), nullable=False),
        sa.Column('risk_causes', sa.JSON(), nullable=False),
        sa.Column('assigned_cadre', sa.String(40), nullable=True),
        sa.Column('procedure', sa.String(16), nullable=True),
        sa.Column('step', sa.String(32), nullable=True),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('notice_started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('notice_ends_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('last_actor', sa.String(128), nullable=True),
        sa.Column('step_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('identified_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('first_measure_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('eliminated_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        *_area_columns(),
    )
    op.create_index('ix_monitoring_objects_household', 'monitoring_objects', ['household_id', 'case_no'], unique=True)
    op.create_index('ix_monitoring_objects_status', 'monitoring_objects', ['status', 'step', 'step_at'])
    op.create_index('ix_monitoring_objects_category', 'monitoring_objects', ['category', 'status', 'id'])
    op.create_index('ix_monitoring_objects_village', 'monitoring_objects', ['village_code', 'status', 'id'])
    op.create_table(
        'monitoring_steps',
        sa.Column('id', _BigId, primary_key=True, autoincrement=True),
        sa.Column('object_id', sa.String(40), nullable=False),
        sa.Column('object_version', sa.Integer(), nullable=False),
        sa.Column('procedure', sa.String(16), nullable=False),
        sa.Column('step', sa.String(32), nullable=False),
        sa.Column('actor', sa.String(128), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('evidence', sa.JSON(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_monitoring_steps_object', 'monitoring_steps', ['object_id', 'id'])
    op.create_table(
        'monitoring_measures',
        sa.Column('id', sa.String(40), primary_key=True),
        sa.Column('object_id', sa.String(40), nullable=False),
        sa.Column('household_id', sa.String(40), nullable=False),
        sa.Column('type', sa.String(32), nullable=False),
        sa.Column('risk_cause', sa.String(32), nullable=True),
        sa.Column('responsible', sa.String(128), nullable=False),
        sa.Column('start_date', sa.Date(), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('notes', sa.Text(), nullable=True),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_by', sa.String(128), nullable=False),
    )
    op.create_index('ix_monitoring_measures_object', 'monitoring_measures', ['object_id', 'recorded_at'])
    op.create_table(
        'dead_letters',
        sa.Column('id', _BigId, primary_key=True, autoincrement=True),
        sa.Column('consumer_group', sa.String(64), nullable=False),
        sa.Column('topic', sa.String(200), nullable=False),
        sa.Column('partition', sa.Integer(), nullable=False),
        sa.Column('offset', sa.BigInteger(), nullable=False),
        sa.Column('key', sa.Text(), nullable=True),
        sa.Column('value', sa.LargeBinary(), nullable=True),
        sa.Column('headers', sa.JSON(), nullable=False),
        sa.Column('error', sa.Text(), nullable=False),
        sa.Column('event_id', sa.String(64), nullable=True),
        sa.Column('event_type', sa.String(64), nullable=True),
        sa.Column('subject', sa.String(128), nullable=True),
        sa.Column('dead_lettered_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('redriven_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('redrive_outcome', sa.Text(), nullable=True),
        sa.Column('redriven_by', sa.String(128), nullable=True),
        sa.UniqueConstraint('consumer_group', 'topic', 'partition', 'offset', name='uq_dead_letters_source'),
    )


def downgrade() -> None:
    op.drop_table('dead_letters')
    op.drop_table('monitoring_measures')
    op.drop_table('monitoring_steps')
    op.drop_table('monitoring_objects')
    op.drop_table('monitoring_leads')
