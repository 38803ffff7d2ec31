"""Person look-up dates: when a death and the household's current status took effect

Insurer coverage is judged on a stay's dates (a death after discharge does not matter, one
before admission does), and roster changes carry their effective date.

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
    with op.batch_alter_table('person_lookup') as batch:
        batch.add_column(sa.Column('deceased_on', sa.Date(), nullable=True))
        batch.add_column(sa.Column('status_since', sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('person_lookup') as batch:
        batch.drop_column('status_since')
        batch.drop_column('deceased_on')
