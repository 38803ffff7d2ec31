"""Assistance measures change after they are recorded (PATCH /v1/monitoring/objects/{id}/measures/{id},
docs/monitoring.md): their end date, who changed them last and when, and every status change; the status
``stopped`` becomes ``cancelled`` (the measures' status table: planned → in_progress | cancelled,
in_progress → completed | cancelled)

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('monitoring_measures') as batch:
        batch.add_column(sa.Column('end_date', sa.Date(), nullable=True))
        batch.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('updated_by', sa.String(128), nullable=True))
        batch.add_column(sa.Column('status_history', sa.JSON(), nullable=False, server_default=sa.text("'[]'")))
    op.execute("UPDATE monitoring_measures SET status = 'cancelled' WHERE status = 'stopped'")


def downgrade() -> None:
    op.execute("UPDATE monitoring_measures SET status = 'stopped' WHERE status = 'cancelled'")
    with op.batch_alter_table('monitoring_measures') as batch:
        batch.drop_column('status_history')
        batch.drop_column('updated_by')
        batch.drop_column('updated_at')
        batch.drop_column('end_date')
