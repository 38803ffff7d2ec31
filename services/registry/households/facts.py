"""Observed household facts and their provenance (which visit or write last set them, and when).

A fact is the smallest piece a field visit can observe: ``income``, ``guarantees.food``,
``housing.safety_grade``, ``members.<person id>.health``. The registry keeps, per household and
fact, when it was observed; a visit observed earlier than that never overwrites it.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.tables import fact_provenance
from shared.events import as_aware

GROUP_FACTS = ("guarantees", "housing", "water", "relocation")
MEMBER_FACTS = ("health", "disability", "self_care", "bedridden", "labour_capacity", "deceased")


def fact_of(path: str, members: list[dict]) -> str | None:
    """The fact a changed field path (``changed_paths`` form) belongs to, or None if untracked."""
    parts = path.split(".")
    head = parts[0]
    if head == "income":
        return "income"
    if head in GROUP_FACTS and len(parts) > 1:
        return f"{head}.{parts[1]}"
    if head == "members" and len(parts) >= 3 and parts[1].isdigit():
        index = int(parts[1])
        if index < len(members) and parts[2] in MEMBER_FACTS:
            return f"members.{members[index]['id']}.{parts[2]}"
    return None


def facts_of(paths: list[str], members: list[dict]) -> list[str]:
    return sorted({fact for path in paths if (fact := fact_of(path, members))})


async def observed_facts(session: AsyncSession, household_id: str) -> dict[str, dict]:
    rows = (await session.execute(select(fact_provenance).where(
        fact_provenance.c.household_id == household_id))).all()
    return {row.fact: {"observed_at": as_aware(row.observed_at), "source": row.source, "version": row.version}
            for row in rows}


async def record_facts(session: AsyncSession, household_id: str, facts: list[str], *, observed_at: datetime,
                       source: str, version: int) -> None:
    if not facts:
        return
    # delete + insert is a portable upsert (SQLite and PostgreSQL); the household row is locked.
    await session.execute(delete(fact_provenance).where(fact_provenance.c.household_id == household_id,
                                                        fact_provenance.c.fact.in_(facts)))
    await session.execute(insert(fact_provenance), [
        {"household_id": household_id, "fact": fact, "observed_at": observed_at, "source": source[:80],
         "version": version} for fact in facts])
