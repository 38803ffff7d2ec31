"""decision items: one audit_entitlement_decisions row per entitlement an event lists

Revision ID: 0006
Revises: 0005

benefits now publishes one ``entitlements.decided`` event per household version, listing every
entitlement it granted, changed or revoked (issue 15). The projection keeps one row per listed
entitlement, so its key becomes (record_id, item), ``item`` being the position in the list; the rows
of older one-entitlement-per-event records keep item 0. Grants on the table are kept (0002).
"""
import warnings

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

TABLE = 'audit_entitlement_decisions'


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.add_column(TABLE, sa.Column('item', sa.Integer(), nullable=False, server_default='0'))
        op.alter_column(TABLE, 'item', server_default=None)
        op.drop_constraint(f'{TABLE}_pkey', TABLE, type_='primary')
        op.create_primary_key(f'{TABLE}_pkey', TABLE, ['record_id', 'item'])
        return
    # SQLite: the table is copied with the new key (SQLAlchemy warns that the reflected key differs: it does)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Table '_alembic_tmp_", sa.exc.SAWarning)
        with op.batch_alter_table(TABLE, recreate='always') as batch_op:
            batch_op.add_column(sa.Column('item', sa.Integer(), nullable=False, server_default='0'))
            batch_op.create_primary_key(f'{TABLE}_pkey', ['record_id', 'item'])


def downgrade() -> None:
    op.execute(f'DELETE FROM {TABLE} WHERE item > 0')
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint(f'{TABLE}_pkey', TABLE, type_='primary')
        op.create_primary_key(f'{TABLE}_pkey', TABLE, ['record_id'])
        op.drop_column(TABLE, 'item')
        return
    with op.batch_alter_table(TABLE, recreate='always') as batch_op:
        batch_op.create_primary_key(f'{TABLE}_pkey', ['record_id'])
        batch_op.drop_column('item')
