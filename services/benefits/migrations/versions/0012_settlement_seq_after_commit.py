"""settlements get their records-feed position after commit

A one-stop settlement used to take the next value of the ``settlements`` sequence row inside its own
transaction, so every settlement in the province waited for the one before it to commit (about 60 a
second on the benchmark machine, issue 15). Now ``seq`` is null at insert and
``services.benefits.settlement.service.sequence_settlements`` gives the committed rows their positions
in one short transaction before the feed is read; a partial index finds the rows still without one.

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('settlements') as batch:
        batch.alter_column('seq', existing_type=sa.BigInteger(), nullable=True)
    op.create_index('ix_settlements_unsequenced', 'settlements', ['created_at', 'settlement_id'],
                    postgresql_where=sa.text('seq IS NULL'), sqlite_where=sa.text('seq IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_settlements_unsequenced', table_name='settlements')
    # Rows still without a position get theirs in created_at order first: the column is NOT NULL again.
    bind = op.get_bind()
    last = bind.execute(sa.text("SELECT value FROM partner_sequences WHERE name = 'settlements'")).scalar() or 0
    pending = bind.execute(sa.text("SELECT settlement_id FROM settlements WHERE seq IS NULL "
                                   "ORDER BY created_at, settlement_id")).scalars().all()
    for offset, settlement_id in enumerate(pending, start=1):
        bind.execute(sa.text("UPDATE settlements SET seq = :seq WHERE settlement_id = :id"),
                     {"seq": last + offset, "id": settlement_id})
    bind.execute(sa.text("UPDATE partner_sequences SET value = :value WHERE name = 'settlements'"),
                 {"value": last + len(pending)})
    with op.batch_alter_table('settlements') as batch:
        batch.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
