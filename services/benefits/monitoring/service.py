"""防止返贫动态监测, benefits side (docs/monitoring.md): the income history risk elimination reads, the
automatic lead (`monitoring.risk_detected`) raised when a household enters the monitoring range, and
the elimination answer the registry asks for before eliminating a risk.

The rules are pure (services/benefits/rules/assessments.py); this module reads and writes the
benefits database only, inside the caller's transaction.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any, Literal, Sequence

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.benefits.rules.assessments import IncomeObservation
from services.benefits.tables import household_snapshots, income_observations
from shared.clock import today_in_china
from shared.events import Envelope, utcnow

Trigger = Literal["registry_change", "threshold_change"]
RISK_DETECTED = "monitoring.risk_detected"
#: Households whose evaluation reads the income history (risk_elimination is judged for them only).
HISTORY_STATUSES = ("monitored",)
_CHUNK = 500


def observation_of(snapshot: dict) -> dict[str, Any]:
    """The income facts of a snapshot that the history keeps."""
    income = snapshot.get("income") or {}
    rigid = snapshot.get("rigid_expenses")
    rigid_total = None
    if rigid:
        rigid_total = sum((Decimal(str(rigid.get(item) or 0)) for item in
                           ("medical", "schooling", "disaster", "accident", "disability_care")), Decimal(0))
    living = sum(1 for member in snapshot.get("members") or [] if not member.get("deceased"))
    per_capita = income.get("per_capita_net")
    return {"income_year": income.get("year"),
            "per_capita_net": None if per_capita is None else Decimal(str(per_capita)).quantize(Decimal("0.01")),
            "living_members": living, "rigid_total": None if rigid_total is None else rigid_total.quantize(Decimal("0.01"))}


async def record_observation(session: AsyncSession, snapshot: dict, observed_on: date | None) -> bool:
    """Keep the snapshot's income facts with the day they were recorded, unless they equal the last row."""
    facts = observation_of(snapshot)
    last = (await session.execute(
        select(income_observations.c.income_year, income_observations.c.per_capita_net,
               income_observations.c.living_members, income_observations.c.rigid_total)
        .where(income_observations.c.household_id == snapshot["id"])
        .order_by(income_observations.c.id.desc()).limit(1))).first()
    if last is not None and same_observation(dict(last._mapping), facts):
        return False
    await session.execute(insert(income_observations).values(
        household_id=snapshot["id"], household_version=snapshot["version"],
        observed_on=observed_on or today_in_china(), recorded_at=utcnow(), **facts))
    return True


def same_observation(stored: dict, facts: dict) -> bool:
    def norm(value):
        return None if value is None else Decimal(str(value))
    return (stored["income_year"] == facts["income_year"] and stored["living_members"] == facts["living_members"]
            and norm(stored["per_capita_net"]) == norm(facts["per_capita_net"])
            and norm(stored["rigid_total"]) == norm(facts["rigid_total"]))


async def load_histories(session: AsyncSession, household_ids: Sequence[str]) -> dict[str, list[IncomeObservation]]:
    """Dated income observations of many households, oldest first (one query per chunk)."""
    found: dict[str, list[IncomeObservation]] = defaultdict(list)
    ids = list(household_ids)
    for start in range(0, len(ids), _CHUNK):
        rows = (await session.execute(
            select(income_observations).where(income_observations.c.household_id.in_(ids[start:start + _CHUNK]))
            .order_by(income_observations.c.household_id, income_observations.c.observed_on,
                      income_observations.c.id))).all()
        for row in rows:
            found[row.household_id].append(IncomeObservation(
                observed_on=row.observed_on, income_year=row.income_year,
                per_capita_net=None if row.per_capita_net is None else Decimal(row.per_capita_net),
                household_version=row.household_version))
    return found


def needs_history(snapshot: dict) -> bool:
    return snapshot.get("status") in HISTORY_STATUSES


def risk_detected_event(snapshot: dict, evaluation: dict, previous_result: bool | None, *, trigger: Trigger,
                        actor: str) -> Envelope | None:
    """The automatic lead when ``monitoring_range`` turns true (false or absent before); else None.

    Pure: the caller stages it in the outbox in the transaction that stores the new assessment, so
    a household that stays inside the range never raises a second one."""
    from services.benefits.rules.assessments import risk_causes
    from services.benefits.rules.common import Assessment
    from shared.snapshot import Household

    found = next((item for item in evaluation["assessments"] if item["kind"] == "monitoring_range"), None)
    if found is None or not found["result"] or previous_result is True:
        return None
    household_id, version = snapshot["id"], snapshot["version"]
    causes = risk_causes(Household.model_validate(snapshot), Assessment.model_validate(found))
    data = {"household_id": household_id, "household_version": version, "as_of": evaluation["as_of"],
            "trigger": trigger, "risk_causes": causes,
            "assessment": {key: found.get(key) for key in ("kind", "result", "unmet", "explanation", "source")}}
    return Envelope(source="benefits", type=RISK_DETECTED, subject=f"household/{household_id}",
                    sequence=version, data=data, actor=actor)


# --- GET /v1/households/{id}/monitoring/elimination -------------------------------------------------

async def stored_household(session: AsyncSession, household_id: str) -> dict | None:
    return await session.scalar(select(household_snapshots.c.snapshot)
                                .where(household_snapshots.c.household_id == household_id))


def area_of(snapshot: dict) -> str:
    return (snapshot.get("village") or {}).get("code") or snapshot["region_code"]


async def elimination_answer(session: AsyncSession, snapshot: dict, as_of: date, packs) -> dict[str, Any]:
    """Whether the household meets the elimination criteria on ``as_of`` (pure rule over the stored
    snapshot and its income history)."""
    from services.benefits.rules.assessments import elimination, monitoring_in_force
    from services.benefits.rules.common import RuleContext, cond
    from shared.policy import default_registry
    from shared.snapshot import Household

    registry = packs or default_registry()
    household = Household.model_validate(snapshot)
    policy = registry.resolve(household.region_code, as_of)
    history = (await load_histories(session, [household.id])).get(household.id, [])
    ref = {"pack": policy.pack, "version": policy.version, "chain": list(policy.chain)}
    if not monitoring_in_force(policy, as_of):
        first = policy.param("monitoring.first_year", None)
        check = cond(f"the monitoring mechanism is in force on {as_of} (from {first})", as_of.isoformat(), False)
        return {"household_id": household.id, "eligible": False, "months_above_range": 0,
                "above_range_since": None, "explanation": [check.model_dump(mode="json")], "unmet": ["in_force"],
                "source": None, "as_of": as_of.isoformat(), "household_version": household.version, "policy": ref}
    assessment, since, months = elimination(RuleContext(household, policy, as_of, history))
    body = assessment.model_dump(mode="json")
    return {"household_id": household.id, "eligible": assessment.result, "months_above_range": months,
            "above_range_since": since.isoformat() if since else None, "explanation": body["explanation"],
            "unmet": body["unmet"], "source": body["source"], "as_of": as_of.isoformat(),
            "household_version": household.version, "policy": ref}
