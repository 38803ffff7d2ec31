"""partner client area: an administrative code prefix that limits what a partner's tokens see

A DCI Social Registry consumer (scope ``dci``) is registered for one county, township or village;
its tokens carry the prefix as their ``area`` claim. Null: no limit (banks and insurers, as before).

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('partner_clients') as batch:
        batch.add_column(sa.Column('area', sa.String(12), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('partner_clients') as batch:
        batch.drop_column('area')
