"""registry service tables: procedures, areas, cadres and pairing, visits, provenance, imports

Revision ID: 0002
Revises: 0001
"""
import json

from alembic import op
import sqlalchemy as sa

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('households', schema=None) as batch_op:
        batch_op.add_column(sa.Column('categories', sa.String(length=160), nullable=True))
    _backfill_categories()

    op.create_table('household_procedures',
    sa.Column('household_id', sa.String(length=40), nullable=False),
    sa.Column('procedure', sa.String(length=32), nullable=True),
    sa.Column('step', sa.String(length=32), nullable=True),
    sa.Column('notice_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('notice_ends_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('override', sa.JSON(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('household_id')
    )
    op.create_table('procedure_steps',
    sa.Column('id', _BigId, autoincrement=True, nullable=False),
    sa.Column('household_id', sa.String(length=40), nullable=False),
    sa.Column('household_version', sa.Integer(), nullable=False),
    sa.Column('procedure', sa.String(length=32), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('outcome', sa.String(length=64), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=False),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('override', sa.Boolean(), nullable=False),
    sa.Column('overridden_criteria', sa.JSON(), nullable=False),
    sa.Column('assessment', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_procedure_steps_household', 'procedure_steps', ['household_id', 'id'])

    op.create_table('areas',
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('parent_code', sa.String(length=16), nullable=True),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_index('ix_areas_parent', 'areas', ['parent_code', 'code'])
    op.create_index('ix_areas_level', 'areas', ['level', 'code'])

    op.create_table('cadres',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('unit', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('area_code', sa.String(length=16), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('pairings',
    sa.Column('id', _BigId, autoincrement=True, nullable=False),
    sa.Column('household_id', sa.String(length=40), nullable=False),
    sa.Column('cadre_id', sa.String(length=40), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_by', sa.String(length=128), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.String(length=128), nullable=True),
    sa.Column('end_reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_pairings_household', 'pairings', ['household_id', 'ended_at'])
    op.create_index('ix_pairings_cadre', 'pairings', ['cadre_id', 'ended_at'])

    op.create_table('village_team',
    sa.Column('id', _BigId, autoincrement=True, nullable=False),
    sa.Column('village_code', sa.String(length=16), nullable=False),
    sa.Column('cadre_id', sa.String(length=40), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_village_team_village', 'village_team', ['village_code', 'ended_at'])
    op.create_index('ix_village_team_cadre', 'village_team', ['cadre_id', 'ended_at'])

    op.create_table('visits',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('client_visit_id', sa.String(length=64), nullable=False),
    sa.Column('household_id', sa.String(length=40), nullable=False),
    sa.Column('cadre_id', sa.String(length=128), nullable=False),
    sa.Column('visited_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('client_visit_id')
    )
    op.create_index('ix_visits_household', 'visits', ['household_id', 'visited_at'])

    op.create_table('fact_provenance',
    sa.Column('household_id', sa.String(length=40), nullable=False),
    sa.Column('fact', sa.String(length=128), nullable=False),
    sa.Column('observed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=80), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('household_id', 'fact')
    )
    op.create_table('imports',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=True),
    sa.Column('actor', sa.String(length=128), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('households', sa.Integer(), nullable=False),
    sa.Column('written', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def _backfill_categories() -> None:
    """Fill the new filter column from the stored snapshots, a page at a time."""
    bind = op.get_bind()
    table = sa.table('households', sa.column('id', sa.String), sa.column('snapshot', sa.JSON),
                     sa.column('categories', sa.String))
    last = ''
    while True:
        rows = bind.execute(sa.select(table.c.id, table.c.snapshot).where(table.c.id > last)
                            .order_by(table.c.id).limit(1000)).all()
        if not rows:
            return
        for row in rows:
            snapshot = row.snapshot if isinstance(row.snapshot, dict) else json.loads(row.snapshot)
            categories = snapshot.get('categories') or []
            bind.execute(table.update().where(table.c.id == row.id)
                         .values(categories=',' + ','.join(categories) + ',' if categories else None))
        last = rows[-1].id


def downgrade() -> None:
    op.drop_table('imports')
    op.drop_table('fact_provenance')
    op.drop_index('ix_visits_household', table_name='visits')
    op.drop_table('visits')
    op.drop_index('ix_village_team_cadre', table_name='village_team')
    op.drop_index('ix_village_team_village', table_name='village_team')
    op.drop_table('village_team')
    op.drop_index('ix_pairings_cadre', table_name='pairings')
    op.drop_index('ix_pairings_household', table_name='pairings')
    op.drop_table('pairings')
    op.drop_table('cadres')
    op.drop_index('ix_areas_level', table_name='areas')
    op.drop_index('ix_areas_parent', table_name='areas')
    op.drop_table('areas')
    op.drop_index('ix_procedure_steps_household', table_name='procedure_steps')
    op.drop_table('procedure_steps')
    op.drop_table('household_procedures')
    with op.batch_alter_table('households', schema=None) as batch_op:
        batch_op.drop_column('categories')
