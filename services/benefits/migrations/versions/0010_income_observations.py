"""income observations: each stored household version's income facts with the day it was recorded

Risk elimination (防止返贫监测, issue 13) asks how long a household's income has been above the
monitoring range; the pure rule takes this history as input. A row is written when a stored
snapshot's income facts differ from the household's previous row.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'income_observations',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), primary_key=True, autoincrement=True),
        sa.Column('household_id', sa.String(40), nullable=False),
        sa.Column('household_version', sa.Integer(), nullable=False),
        sa.Column('observed_on', sa.Date(), nullable=False),
        sa.Column('income_year', sa.Integer(), nullable=True),
        sa.Column('per_capita_net', sa.Numeric(14, 2), nullable=True),
        sa.Column('living_members', sa.Integer(), nullable=False),
        sa.Column('rigid_total', sa.Numeric(14, 2), nullable=True),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_income_observations_household', 'income_observations', ['household_id', 'observed_on'])


def downgrade() -> None:
    op.drop_index('ix_income_observations_household', table_name='income_observations')
    op.drop_table('income_observations')
