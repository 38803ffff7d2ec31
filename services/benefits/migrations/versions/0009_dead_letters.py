"""dead letters kept by the benefits consumer, for operators to list, show and redrive

Revision ID: 0009
Revises: 0008

The development broker keeps its ``.dlq`` topics in memory only; this table is the durable copy
(shared/dead_letters.py), one row per source position and consumer group.
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'dead_letters',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True, autoincrement=True),
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
