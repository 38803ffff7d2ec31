"""benefits service tables beyond the foundation: office entitlement lists and recompute jobs

* ``entitlements.area_code`` (village code, else county code) for ``GET /v1/entitlements?area=``,
  back-filled from the stored snapshots;
* ``recompute_jobs``: policy date, decisions emitted, batch size, requester and timings.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('entitlements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('area_code', sa.String(length=16), nullable=True))
        batch_op.create_index('ix_entitlements_area_code', ['area_code'], unique=False)
    op.execute(
        "UPDATE entitlements SET area_code = COALESCE("
        "(SELECT s.village_code FROM household_snapshots s WHERE s.household_id = entitlements.household_id), "
        "entitlements.region_code)")
    with op.batch_alter_table('recompute_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('as_of', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('decisions', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('batch_size', sa.Integer(), nullable=False, server_default='500'))
        batch_op.add_column(sa.Column('requested_by', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('started_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('recompute_jobs', schema=None) as batch_op:
        batch_op.drop_column('finished_at')
        batch_op.drop_column('started_at')
        batch_op.drop_column('requested_by')
        batch_op.drop_column('batch_size')
        batch_op.drop_column('decisions')
        batch_op.drop_column('as_of')
    with op.batch_alter_table('entitlements', schema=None) as batch_op:
        batch_op.drop_index('ix_entitlements_area_code')
        batch_op.drop_column('area_code')
