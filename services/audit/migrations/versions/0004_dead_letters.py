"""dead letters kept by the audit consumer, for operators to list, show and redrive

Revision ID: 0004
Revises: 0003

The development broker keeps its ``.dlq`` topics in memory only; this table is the durable copy
(shared/dead_letters.py). It is operational state, not ledger: rows are updated when redriven, so
the service role (``JZ_AUDIT_SERVICE_ROLE``, see 0002) gets SELECT, INSERT and UPDATE on it.
"""
import os
import re

from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def grant_service_role() -> None:
    bind = op.get_bind()
    role = os.environ.get("JZ_AUDIT_SERVICE_ROLE")
    if bind.dialect.name != "postgresql" or not role:
        return
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", role):
        raise ValueError("JZ_AUDIT_SERVICE_ROLE must be a plain SQL identifier")
    if not bind.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).scalar():
        return  # as in 0002: skipped when the role does not exist yet
    op.execute(f'GRANT SELECT, INSERT, UPDATE ON dead_letters TO "{role}"')
    op.execute(f'GRANT USAGE, SELECT ON SEQUENCE dead_letters_id_seq TO "{role}"')


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
    grant_service_role()


def downgrade() -> None:
    op.drop_table('dead_letters')
