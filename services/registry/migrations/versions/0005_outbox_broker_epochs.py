"""Outbox rows remember where the broker put them and when every consumer applied them; relay_epochs
holds the broker epoch each topic was replayed into (bounded, ordered replay after a broker restart)

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbox') as batch:
        batch.add_column(sa.Column('kafka_partition', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('kafka_offset', sa.BigInteger(), nullable=True))
        # Rows published before this revision count as not applied: the first fresh broker gets them once.
        batch.add_column(sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_outbox_unapplied', 'outbox', ['applied_at', 'topic', 'kafka_partition', 'kafka_offset'])
    op.create_table(
        'relay_epochs',
        sa.Column('topic', sa.String(128), primary_key=True),
        sa.Column('epoch', sa.String(64), nullable=False),
        sa.Column('adopted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('rows_replayed', sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table('relay_epochs')
    op.drop_index('ix_outbox_unapplied', 'outbox')
    with op.batch_alter_table('outbox') as batch:
        batch.drop_column('applied_at')
        batch.drop_column('kafka_offset')
        batch.drop_column('kafka_partition')
