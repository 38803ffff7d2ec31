"""ledger records keep their source's signature

Revision ID: 0003
Revises: 0002

``signer`` (key id) and ``signature`` (the source's ``ledger_signature`` over the record's ledger
content, shared/signing.py) let ``GET /v1/audit/verify`` re-check the origin of every record, not
only the order. Plain ``ADD COLUMN`` (no batch rebuild): on SQLite a table rebuild would drop the
append-only triggers of 0001.
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('ledger_records', sa.Column('signer', sa.String(length=64), nullable=True))
    op.add_column('ledger_records', sa.Column('signature', sa.String(length=128), nullable=True))


def downgrade() -> None:
    op.drop_column('ledger_records', 'signature')
    op.drop_column('ledger_records', 'signer')
