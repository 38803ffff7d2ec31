"""Find a person by ID number without keeping ID numbers in a searchable clear column.

``person_lookup`` is keyed by ``id_number_hash`` = HMAC-SHA256(identity key, normalised ID number),
which the registry's events carry beside the masked number (they never carry the clear one). The
index is maintained in the transaction that stores a household snapshot
(``index_persons``, called from ``consumer.store_snapshot``), together with the
household's status history (day-by-day credit eligibility) and the insurers'
roster sequence (a person's row gets a new ``roster_seq`` whenever what the roster
shows about them changes).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.benefits.partners.tables import household_status_history, partner_sequences, person_lookup
from services.benefits.tables import household_snapshots
from shared.events import utcnow
from shared.idcard import mask_id_number
from shared.personal_data import CLEAR_ID_NUMBER, ID_HASH_FIELD, identity_hasher, normalise_id_number

#: Household statuses under which a person can be on the insurers' roster (coverage is
#: then decided by the pack and date when the roster is read).
ROSTER_STATUSES = ("registered", "returned", "exited", "monitored")


def normalise(id_number: str) -> str:
    return normalise_id_number(id_number)


def id_hash(id_number: str) -> str:
    """The keyed hash of a clear number a bank or insurer sends: the same identity key as the
    registry's ``id_number_hash``, so it finds the person the registry published."""
    return identity_hasher()(id_number)


def member_hash(member: dict) -> str | None:
    """A member's look-up key: the registry's ``id_number_hash``, or the hash of a clear number (a
    snapshot stored before the registry stopped publishing clear numbers, or a what-if household)."""
    if member.get(ID_HASH_FIELD):
        return member[ID_HASH_FIELD]
    number = member.get("id_number")
    if number and CLEAR_ID_NUMBER.match(number.strip()):
        return id_hash(number)
    return None


def _date(value: Any) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def roster_relevant(row: dict) -> bool:
    """Could the person be covered (status-wise)? The pack and the date decide the rest."""
    return (row["in_household"] and not row["deceased"] and row["status"] in ROSTER_STATUSES
            and not (row["status"] == "monitored" and "marginal" in row["categories"]))


def person_rows(snapshot: dict) -> list[dict]:
    """Look-up rows for every member with an ID number (pure).

    ``deceased_on`` is the member's ``date_of_death`` when the snapshot carries one; otherwise
    ``index_persons`` fills in the day the death was recorded.
    """
    rows = []
    for member in snapshot.get("members") or []:
        number, person_id, key = member.get("id_number"), member.get("id"), member_hash(member)
        if not number or not person_id or not key:
            continue
        rows.append({"id_hash": key, "household_id": snapshot["id"], "person_id": person_id,
                     "id_masked": mask_id_number(normalise(number)), "region_code": snapshot["region_code"],
                     "status": snapshot["status"], "exit_date": _date(snapshot.get("exit_date")),
                     "identified_year": snapshot.get("identified_year"),
                     "categories": sorted(snapshot.get("categories") or []),
                     "deceased": bool(member.get("deceased")), "in_household": True,
                     "deceased_on": _date(member.get("date_of_death")) if member.get("deceased") else None})
    return rows


_ROSTER_FIELDS = ("household_id", "person_id", "region_code", "status", "exit_date", "identified_year",
                  "categories", "deceased", "in_household")


def _roster_view(row: dict) -> tuple:
    return tuple(row[name] for name in _ROSTER_FIELDS) if roster_relevant(row) else ("not_covered",)


async def next_sequence(session: AsyncSession, name: str, count: int = 1) -> int:
    """Reserve ``count`` values; the UPDATE's row lock serialises writers until commit."""
    await session.execute(update(partner_sequences).where(partner_sequences.c.name == name)
                          .values(value=partner_sequences.c.value + count))
    value = await session.scalar(select(partner_sequences.c.value).where(partner_sequences.c.name == name))
    if value is None:  # first use on a database created without the seed row
        await session.execute(insert(partner_sequences).values(name=name, value=count))
        value = count
    return value - count + 1


#: ID hashes probed per statement (one ``UNION ALL`` branch each); a larger household takes more statements.
PROBES_PER_STATEMENT = 50


def stored_rows_queries(household_id: str, id_hashes: list[str]) -> list:
    """The statements that read the stored look-up rows of a household's members and of the ID hashes
    it now lists: the rows of ``household_id = ? OR id_hash IN (...)``, without that ``OR``.

    Every branch is one index probe: the household's rows through ``ix_person_lookup_household_id``,
    each listed hash through the primary key (``id_hash = ?``, one branch per hash), glued with
    ``UNION ALL``. PostgreSQL planned the ``OR`` (and an ``IN`` list of two hashes or more) as a scan
    of the whole table while the table was small and never analysed, and the generic plan it caches for
    a prepared statement kept that scan as the table grew (nothing re-plans it until the table is
    analysed): one full scan per stored household. In that state each single probe is still planned
    on its index (tests/integration/test_lookup_plan.py). A row found by two branches comes back
    twice, identical.
    """
    by_household = select(person_lookup).where(person_lookup.c.household_id == household_id)
    by_hash = [select(person_lookup).where(person_lookup.c.id_hash == key) for key in dict.fromkeys(id_hashes)]
    statements = []
    for start in range(0, max(len(by_hash), 1), PROBES_PER_STATEMENT):
        branches = ([by_household] if start == 0 else []) + by_hash[start:start + PROBES_PER_STATEMENT]
        statements.append(union_all(*branches) if len(branches) > 1 else branches[0])
    return statements


async def stored_rows(session: AsyncSession, household_id: str, id_hashes: list[str]) -> dict[str, dict]:
    """id_hash -> stored row, for every row ``stored_rows_queries`` finds."""
    found: dict[str, dict] = {}
    for statement in stored_rows_queries(household_id, id_hashes):
        for row in (await session.execute(statement)).all():
            found.setdefault(row.id_hash, dict(row._mapping))
    return found


async def index_persons(session: AsyncSession, snapshot: dict, observed_on: dt.date | None = None) -> None:
    """Refresh the look-up rows, status history and roster sequence of one household snapshot.

    ``observed_on`` is the day the registry recorded this version (its event's time; default
    today): the effective date of a status change or a death the snapshot does not date itself.
    """
    now = utcnow()
    observed_on = observed_on or now.date()
    status_since = await _record_status(session, snapshot, now, observed_on)
    new_rows = {row["id_hash"]: {**row, "status_since": status_since} for row in person_rows(snapshot)}
    old_rows = await stored_rows(session, snapshot["id"], list(new_rows))
    changes, bump = _lookup_changes(snapshot, new_rows, old_rows, observed_on)
    first = await next_sequence(session, "roster", len(bump)) if bump else 0
    seqs = {key: first + index for index, key in enumerate(bump)}
    for key, values, is_new in changes:
        if key in seqs:
            values["roster_seq"], values["roster_listed"] = seqs[key], True
        values["updated_at"] = now
        values.pop("id_hash", None)
        if is_new:
            await session.execute(insert(person_lookup).values(id_hash=key, **values))
        else:
            await session.execute(update(person_lookup).where(person_lookup.c.id_hash == key).values(**values))


async def index_persons_many(session: AsyncSession, items: list[tuple[dict, dt.date | None]]) -> None:
    """``index_persons`` for many household snapshots (each household at most once), in order, with a few
    multi-row statements: the same rows, status history and roster sequence numbers as calling
    ``index_persons`` for each in turn.

    The stored rows every household may touch (its own, and those of the ID hashes it lists) are read
    at once; each household's changes are then worked out in order against that state as the earlier
    households left it (a person moving between two households of the batch), and written at the end.
    """
    if not items:
        return
    now = utcnow()
    snapshots = [snapshot for snapshot, _ in items]
    status_since = await _record_statuses(session, items, now)
    wanted = {snapshot["id"]: {row["id_hash"]: {**row, "status_since": status_since[snapshot["id"]]}
                               for row in person_rows(snapshot)} for snapshot in snapshots}
    state = await stored_rows_many(session, [s["id"] for s in snapshots],
                                   [key for rows in wanted.values() for key in rows])
    originally = set(state)
    bumped_count = 0
    offsets: dict[str, int] = {}  # id_hash -> its latest roster number, relative to the batch's first
    touched: dict[str, dict] = {}
    for snapshot, observed_on in items:
        household_id, new_rows = snapshot["id"], wanted[snapshot["id"]]
        old_rows = {key: row for key, row in state.items() if row["household_id"] == household_id or key in new_rows}
        changes, bumped = _lookup_changes(snapshot, new_rows, old_rows, observed_on or now.date())
        for index, key in enumerate(bumped):
            offsets[key] = bumped_count + index
        bumped_count += len(bumped)
        for key, values, _ in changes:
            values.pop("id_hash", None)
            values["updated_at"] = now
            if key in bumped:
                values["roster_listed"] = True
            state[key] = touched[key] = values
    first = await next_sequence(session, "roster", bumped_count) if bumped_count else 0
    for key, offset in offsets.items():
        touched[key]["roster_seq"] = first + offset
    inserts = [{"id_hash": key, **values} for key, values in touched.items() if key not in originally]
    updates = [{"b_id_hash": key, **values} for key, values in touched.items() if key in originally]
    for start in range(0, len(inserts), 500):
        await session.execute(insert(person_lookup), inserts[start:start + 500])
    if updates:  # one executemany: the SET clause is every column the rows carry
        await session.execute(update(person_lookup).where(person_lookup.c.id_hash == bindparam("b_id_hash")),
                              updates)


def _lookup_changes(snapshot: dict, new_rows: dict[str, dict], old_rows: dict[str, dict],
                    observed_on: dt.date) -> tuple[list[tuple[str, dict, bool]], list[str]]:
    """Pure: the rows to write for one snapshot (id_hash, values, insert?) and the keys whose roster
    sequence moves, in order."""
    changes: list[tuple[str, dict, bool]] = []  # (id_hash, values, insert?)
    for key, old in old_rows.items():
        if key not in new_rows and old["household_id"] == snapshot["id"] and old["in_household"]:
            changes.append((key, {**old, "in_household": False}, False))  # left the household
    for key, row in new_rows.items():
        old = old_rows.get(key)
        if row["deceased"] and row["deceased_on"] is None:
            # The first version that shows the death dates it; later versions keep that date.
            row["deceased_on"] = (old or {}).get("deceased_on") if (old or {}).get("deceased") else None
            row["deceased_on"] = row["deceased_on"] or observed_on
        changes.append((key, {**(old or {"roster_listed": False, "roster_seq": None}), **row}, old is None))
    bump = []
    for key, values, _ in changes:
        old = old_rows.get(key)
        relevant = roster_relevant(values)
        if (old is None and relevant) or (old is not None and _roster_view(old) != _roster_view(values)
                                          and (relevant or old["roster_listed"])):
            bump.append(key)
    return changes, bump


async def stored_rows_many(session: AsyncSession, household_ids: list[str], id_hashes: list[str]) -> dict[str, dict]:
    """id_hash -> stored row, for the rows of many households and ID hashes: ``stored_rows_queries``'
    index probes (one per household, one per hash), ``PROBES_PER_STATEMENT`` to a statement."""
    branches = ([select(person_lookup).where(person_lookup.c.household_id == h) for h in dict.fromkeys(household_ids)]
                + [select(person_lookup).where(person_lookup.c.id_hash == k) for k in dict.fromkeys(id_hashes)])
    found: dict[str, dict] = {}
    for start in range(0, len(branches), PROBES_PER_STATEMENT):
        chunk = branches[start:start + PROBES_PER_STATEMENT]
        for row in (await session.execute(union_all(*chunk) if len(chunk) > 1 else chunk[0])).all():
            found.setdefault(row.id_hash, dict(row._mapping))
    return found


def _status_entry(last, snapshot: dict, observed_on: dt.date) -> tuple[bool, dt.date | None]:
    """Pure: (append a history row?, the current status's effective date) given the last stored entry."""
    status, exit_date = snapshot["status"], _date(snapshot.get("exit_date"))
    categories = sorted(snapshot.get("categories") or [])
    if last is not None and (last.status, last.exit_date, sorted(last.categories or [])) == (status, exit_date,
                                                                                              categories):
        return False, last.effective_on
    if last is None:
        return True, None  # first status known: in force since ever
    if status in ("exited", "monitored") and exit_date is not None and last.status in ("registered", "returned"):
        return True, exit_date
    if status == "monitored" and last.status == "exited" and "marginal" not in categories:
        return True, last.effective_on  # monitoring after exit: still the exit's status, from the exit
    return True, observed_on


async def _record_statuses(session: AsyncSession, items: list[tuple[dict, dt.date | None]],
                           now) -> dict[str, dt.date | None]:
    """``_record_status`` for many households (each once): one read of their latest entries, one insert."""
    h = household_status_history.c
    ids = [snapshot["id"] for snapshot, _ in items]
    latest = (select(h.household_id, func.max(h.version).label("version")).where(h.household_id.in_(ids))
              .group_by(h.household_id).subquery())
    last = {row.household_id: row for row in (await session.execute(
        select(h.household_id, h.status, h.exit_date, h.categories, h.effective_on)
        .join(latest, and_(h.household_id == latest.c.household_id, h.version == latest.c.version)))).all()}
    since, rows = {}, []
    for snapshot, observed_on in items:
        append, since[snapshot["id"]] = _status_entry(last.get(snapshot["id"]), snapshot, observed_on or now.date())
        if append:
            rows.append({"household_id": snapshot["id"], "version": snapshot["version"], "status": snapshot["status"],
                         "exit_date": _date(snapshot.get("exit_date")),
                         "categories": sorted(snapshot.get("categories") or []),
                         "effective_on": since[snapshot["id"]], "recorded_at": now})
    if rows:
        await session.execute(insert(household_status_history), rows)
    return since


async def _record_status(session: AsyncSession, snapshot: dict, now, observed_on: dt.date) -> dt.date | None:
    """Append the household's status to its history if it changed; the current status's effective date."""
    last = (await session.execute(
        select(household_status_history.c.status, household_status_history.c.exit_date,
               household_status_history.c.categories, household_status_history.c.effective_on)
        .where(household_status_history.c.household_id == snapshot["id"])
        .order_by(household_status_history.c.version.desc()).limit(1))).first()
    append, effective = _status_entry(last, snapshot, observed_on)
    if append:
        await session.execute(insert(household_status_history).values(
            household_id=snapshot["id"], version=snapshot["version"], status=snapshot["status"],
            exit_date=_date(snapshot.get("exit_date")), categories=sorted(snapshot.get("categories") or []),
            effective_on=effective, recorded_at=now))
    return effective


def status_on(history, day: dt.date):
    """The household's status entry in force on ``day`` (history oldest first), or None."""
    entry = None
    for item in history:
        if item.effective_on is None or item.effective_on <= day:
            entry = item
    return entry


@dataclass(frozen=True)
class FoundPerson:
    household_id: str
    person_id: str
    snapshot: dict
    person: dict
    deceased_on: dt.date | None = None  # when the death took effect, for a deceased person

    @property
    def region_code(self) -> str:
        return self.snapshot["region_code"]


async def find_person(session: AsyncSession, id_number: str) -> FoundPerson | None:
    """The person currently holding this ID number in a stored household, or None."""
    row = (await session.execute(
        select(person_lookup.c.household_id, person_lookup.c.person_id, person_lookup.c.deceased_on,
               household_snapshots.c.snapshot)
        .join(household_snapshots, household_snapshots.c.household_id == person_lookup.c.household_id)
        .where(person_lookup.c.id_hash == id_hash(id_number), person_lookup.c.in_household.is_(True)))).first()
    if row is None:
        return None
    person = next((m for m in row.snapshot.get("members") or [] if m.get("id") == row.person_id), None)
    if person is None:
        return None
    return FoundPerson(row.household_id, row.person_id, row.snapshot, person, row.deceased_on)


async def status_history(session: AsyncSession, household_id: str) -> list:
    return (await session.execute(
        select(household_status_history.c.status, household_status_history.c.exit_date,
               household_status_history.c.categories, household_status_history.c.effective_on)
        .where(household_status_history.c.household_id == household_id)
        .order_by(household_status_history.c.version))).all()


async def reindex_all(session: AsyncSession, batch: int = 500) -> int:
    """Rebuild the index from the stored snapshots, a page at a time.

    After a change of the identity key the stored hashes are stale: replay the registry's events
    (or re-publish the households) so the snapshots carry new hashes, then call this."""
    await session.execute(delete(person_lookup))
    done, after = 0, ""
    while True:
        rows = (await session.execute(select(household_snapshots.c.household_id, household_snapshots.c.snapshot)
                                      .where(household_snapshots.c.household_id > after)
                                      .order_by(household_snapshots.c.household_id).limit(batch))).all()
        if not rows:
            return done
        for row in rows:
            await index_persons(session, row.snapshot)
        done += len(rows)
        after = rows[-1].household_id
