"""The DCI Social Registry API v1.0.0 (docs/dci.md): registered senders, transactions (answers replayed for a
resent message), subscriptions, and the deliveries the worker sends (callbacks and notifications, with retries
and a dead-letter list)

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_Time = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'dci_senders',
        sa.Column('sender_id', sa.String(99), primary_key=True),
        sa.Column('client_id', sa.String(128), nullable=False),
        sa.Column('name', sa.String(200), nullable=False),
        sa.Column('callback_uri', sa.String(500), nullable=False),
        sa.Column('public_key', sa.Text(), nullable=True),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('created_at', _Time, nullable=False),
        sa.Column('created_by', sa.String(128), nullable=False),
        sa.Column('updated_at', _Time, nullable=True),
    )
    op.create_table(
        'dci_transactions',
        sa.Column('correlation_id', sa.String(40), primary_key=True),
        sa.Column('sender_id', sa.String(99), nullable=False),
        sa.Column('message_id', sa.String(99), nullable=False),
        sa.Column('body_hash', sa.String(64), nullable=False),
        sa.Column('transaction_id', sa.String(99), nullable=False),
        sa.Column('action', sa.String(16), nullable=False),
        sa.Column('mode', sa.String(8), nullable=False),
        sa.Column('caller', sa.JSON(), nullable=False),
        sa.Column('header', sa.JSON(), nullable=False),
        sa.Column('message', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(8), nullable=False),
        sa.Column('response', sa.JSON(), nullable=True),
        sa.Column('created_at', _Time, nullable=False),
        sa.Column('completed_at', _Time, nullable=True),
        sa.UniqueConstraint('sender_id', 'message_id', name='uq_dci_transactions_message'),
    )
    op.create_index('ix_dci_transactions_txn', 'dci_transactions', ['sender_id', 'transaction_id'])
    op.create_table(
        'dci_subscriptions',
        sa.Column('code', sa.String(40), primary_key=True),
        sa.Column('sender_id', sa.String(99), nullable=False),
        sa.Column('correlation_id', sa.String(40), nullable=False),
        sa.Column('reference_id', sa.String(99), nullable=False),
        sa.Column('caller', sa.JSON(), nullable=False),
        sa.Column('reg_event_type', sa.String(64), nullable=False),
        sa.Column('filter_type', sa.String(16), nullable=False),
        sa.Column('filter', sa.JSON(), nullable=False),
        sa.Column('response_entity', sa.String(16), nullable=False),
        sa.Column('notify_uri', sa.String(600), nullable=False),
        sa.Column('frequency', sa.JSON(), nullable=True),
        sa.Column('start_time', _Time, nullable=True),
        sa.Column('end_time', _Time, nullable=True),
        sa.Column('locale', sa.String(3), nullable=True),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('created_at', _Time, nullable=False),
        sa.Column('unsubscribed_at', _Time, nullable=True),
    )
    op.create_index('ix_dci_subscriptions_status', 'dci_subscriptions', ['status'])
    op.create_table(
        'dci_deliveries',
        sa.Column('id', _BigId, primary_key=True, autoincrement=True),
        sa.Column('dedup_key', sa.String(200), nullable=False, unique=True),
        sa.Column('kind', sa.String(8), nullable=False),
        sa.Column('sender_id', sa.String(99), nullable=False),
        sa.Column('correlation_id', sa.String(40), nullable=True),
        sa.Column('subscription_code', sa.String(40), nullable=True),
        sa.Column('url', sa.String(600), nullable=False),
        sa.Column('action', sa.String(16), nullable=False),
        sa.Column('header', sa.JSON(), nullable=True),
        sa.Column('message', sa.JSON(), nullable=True),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', _Time, nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', _Time, nullable=False),
        sa.Column('delivered_at', _Time, nullable=True),
        sa.Column('redriven_at', _Time, nullable=True),
        sa.Column('redriven_by', sa.String(128), nullable=True),
    )
    op.create_index('ix_dci_deliveries_due', 'dci_deliveries', ['status', 'next_attempt_at'])


def downgrade() -> None:
    op.drop_table('dci_deliveries')
    op.drop_table('dci_subscriptions')
    op.drop_index('ix_dci_transactions_txn', 'dci_transactions')
    op.drop_table('dci_transactions')
    op.drop_table('dci_senders')
