"""No clear ID numbers in benefits: stored snapshots keep the mask and the identity-key hash

Registry events now carry per member ``id_number`` = mask and ``id_number_hash`` = HMAC with the
identity key (``JZ_IDENTITY_KEY``). Snapshots stored before hold clear numbers, and every
``id_hash`` column (person_lookup, credit_loans, settlements, settlement_ytd) was computed with the
old benefits-only look-up key. This revision, a page at a time:

* rewrites each stored snapshot with ``shared.personal_data.event_form`` (mask + new hash);
* finds each such member's old hash through its look-up row (household id, person id) and replaces
  it by the new one in every table keyed by it, so loans, settlements and year-to-date totals keep
  finding their person. No old key is needed.

A person who had left every stored household keeps an old hash (nothing left to compute the new one
from). After any later change of the identity key: replay the registry's events (or let it re-publish
the households) so the snapshots carry new hashes, then rebuild the index (``reindex_all``).
The downgrade cannot bring clear numbers back (they are gone on purpose) and leaves the data as is.

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_HASHED_TABLES = ("person_lookup", "credit_loans", "settlements", "settlement_ytd")


def upgrade() -> None:
    from shared.personal_data import CLEAR_ID_NUMBER, event_form, identity_hasher

    bind = op.get_bind()
    new_hash = identity_hasher()
    snapshots = sa.table("household_snapshots", sa.column("household_id", sa.String()),
                         sa.column("snapshot", sa.JSON()))
    lookup = sa.table("person_lookup", sa.column("id_hash", sa.String()), sa.column("household_id", sa.String()),
                      sa.column("person_id", sa.String()))
    hashed = {name: sa.table(name, sa.column("id_hash", sa.String())) for name in _HASHED_TABLES}
    after = ""
    while True:
        rows = bind.execute(sa.select(snapshots.c.household_id, snapshots.c.snapshot)
                            .where(snapshots.c.household_id > after)
                            .order_by(snapshots.c.household_id).limit(500)).all()
        if not rows:
            break
        remap: dict[str, str] = {}
        for household_id, snapshot in rows:
            snapshot = json.loads(snapshot) if isinstance(snapshot, str) else snapshot
            members = [m for m in snapshot.get("members") or []
                       if isinstance(m.get("id_number"), str) and CLEAR_ID_NUMBER.match(m["id_number"].strip())]
            if not members:
                continue
            for member in members:
                old = bind.scalar(sa.select(lookup.c.id_hash).where(lookup.c.household_id == household_id,
                                                                     lookup.c.person_id == member.get("id")))
                new = new_hash(member["id_number"])
                if old is not None and old != new:
                    remap[old] = new
            bind.execute(sa.update(snapshots).where(snapshots.c.household_id == household_id)
                         .values(snapshot=event_form(snapshot, new_hash)))
        for old, new in remap.items():
            for table in hashed.values():
                bind.execute(sa.update(table).where(table.c.id_hash == old).values(id_hash=new))
        after = rows[-1][0]


def downgrade() -> None:
    pass  # clear numbers are not kept anywhere to bring back
