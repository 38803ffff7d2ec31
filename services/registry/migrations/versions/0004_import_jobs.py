"""Ledger uploads as jobs (state, progress, outcome) and the importing caller's area on imports

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER TABLE ADD COLUMN inside every Alembic path otherwise
    with op.batch_alter_table('imports') as batch:
        batch.add_column(sa.Column('area', sa.String(length=16), nullable=True))
    op.create_table('import_jobs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=True),
    sa.Column('actor', sa.String(length=128), nullable=True),
    sa.Column('area', sa.String(length=16), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('options', sa.JSON(), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=True),
    sa.Column('rows_done', sa.Integer(), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('import_jobs')
    with op.batch_alter_table('imports') as batch:
        batch.drop_column('area')
