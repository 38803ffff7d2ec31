"""Policy simulation: what would change if a pack's parameters were different, or if a whole
candidate pack were published (``after_packs``). Read-only.

Every household in scope is evaluated under the packs in force and under a copy in
which the named pack states the overridden values (or the candidate is in force);
households whose policy chain does not pass through that pack, before or after, cannot
change and are evaluated once. Snapshots are
read in keyset-paginated batches, so memory stays bounded whatever the scope.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.benefits.engine import as_household, evaluate_with_policy
from shared.policy import PackRegistry, to_policy_value
from services.benefits.recompute.scope import Scope
from services.benefits.tables import household_snapshots
from shared.money import format_yuan

BATCH_SIZE = 1000
ZERO = Decimal("0")


class OverrideError(ValueError):
    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


def _coerce(current: Any, value: Any, loc: list) -> Any:
    """The override in the shape of the current value: numbers become Decimal; a mapping is
    merged into the current one (change one rate of a table without restating the others)."""
    if isinstance(current, bool) or isinstance(value, bool):
        if isinstance(current, bool) and isinstance(value, bool):
            return value
        raise OverrideError([{"loc": loc, "msg": f"expected {type(current).__name__}, got {type(value).__name__}"}])
    if isinstance(current, Decimal):
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                number = Decimal(str(value).strip())
            except InvalidOperation:
                number = None
            if number is not None and number.is_finite():
                return number
        raise OverrideError([{"loc": loc, "msg": "expected a number (JSON number or decimal string)"}])
    if isinstance(current, dict):
        if not isinstance(value, dict):
            raise OverrideError([{"loc": loc, "msg": "expected an object (merged into the current table)"}])
        merged = dict(current)
        for key, item in value.items():
            if key not in current:
                raise OverrideError([{"loc": [*loc, key], "msg": f"unknown key; known: {', '.join(map(str, current))}"}])
            merged[key] = _coerce(current[key], item, [*loc, key])
        return merged
    if isinstance(current, list):
        if not isinstance(value, list):
            raise OverrideError([{"loc": loc, "msg": "expected a list"}])
        if current:
            return [_coerce(current[0], item, [*loc, index]) for index, item in enumerate(value)]
        return to_policy_value(value)
    if isinstance(current, date):
        try:
            return date.fromisoformat(value) if isinstance(value, str) else _fail()
        except ValueError:
            raise OverrideError([{"loc": loc, "msg": "expected a date YYYY-MM-DD"}]) from None
    if isinstance(current, str):
        if isinstance(value, str):
            return value
        raise OverrideError([{"loc": loc, "msg": "expected a string"}])
    return to_policy_value(value)


def _fail():
    raise ValueError


def overridden_registry(packs: PackRegistry, pack: str, overrides: dict[str, Any]) -> PackRegistry:
    if pack not in packs.names():
        raise OverrideError([{"loc": ["body", "pack"], "msg": f"unknown pack; known: {', '.join(packs.names())}"}])
    resolved = packs.resolved(pack)
    errors, coerced = [], {}
    for name, value in overrides.items():
        loc = ["body", "overrides", name]
        if not resolved.has(name):
            errors.append({"loc": loc, "msg": f"pack {pack} has no parameter {name!r} (chain {resolved.chain})"})
            continue
        try:
            coerced[name] = _coerce(resolved.param(name), value, loc)
        except OverrideError as exc:
            errors.extend(exc.errors)
    if errors:
        raise OverrideError(errors)
    return packs.with_overrides(pack, coerced)


@dataclass
class _Totals:
    households_affected: int = 0
    amount_before: Decimal = ZERO
    amount_after: Decimal = ZERO
    name: str = ""
    units: set = field(default_factory=set)
    gained: int = 0
    lost: int = 0
    changed: int = 0

    def view(self) -> dict[str, Any]:
        return {"households_affected": self.households_affected, "amount_before": format_yuan(self.amount_before),
                "amount_after": format_yuan(self.amount_after),
                "delta": format_yuan(self.amount_after - self.amount_before)}


def _amounts(evaluation) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for entitlement in evaluation.entitlements:
        if entitlement.eligible:
            totals[entitlement.program] += Decimal(entitlement.amount)
    return totals


def _units(evaluation) -> dict[str, str]:
    return {e.program: e.unit for e in evaluation.entitlements if e.eligible}


async def simulate(session: AsyncSession, packs: PackRegistry, *, pack: str, overrides: dict[str, Any],
                   scope: Scope, as_of: date, batch_size: int = BATCH_SIZE,
                   after_packs: PackRegistry | None = None) -> dict[str, Any]:
    changed_packs = after_packs if after_packs is not None else overridden_registry(packs, pack, overrides)
    programs: dict[str, _Totals] = defaultdict(_Totals)
    townships: dict[str, _Totals] = defaultdict(_Totals)
    total = _Totals()
    evaluated = under_pack = 0
    last_id = None
    while True:
        query = (select(household_snapshots.c.household_id, household_snapshots.c.snapshot)
                 .where(*scope.conditions()).order_by(household_snapshots.c.household_id).limit(batch_size))
        if last_id is not None:
            query = query.where(household_snapshots.c.household_id > last_id)
        rows = (await session.execute(query)).all()
        if not rows:
            break
        last_id = rows[-1].household_id
        for row in rows:
            household = as_household(row.snapshot)
            policy = packs.resolve(household.region_code, as_of)
            before = evaluate_with_policy(household, policy, as_of)
            after_policy = changed_packs.resolve(household.region_code, as_of)
            if pack in policy.chain or pack in after_policy.chain:
                under_pack += 1
                try:
                    after = evaluate_with_policy(household, after_policy, as_of)
                except Exception as exc:  # noqa: BLE001 - an override the rules cannot work with is bad input
                    raise OverrideError([{"loc": ["body", "overrides"],
                                          "msg": f"the rules cannot use these values ({type(exc).__name__}: {exc}); "
                                                 f"household {household.id}"}]) from None
            else:
                after = before
            evaluated += 1
            old, new = _amounts(before), _amounts(after)
            units = {**_units(before), **_units(after)}
            village = household.village
            township = townships[(village.township_code if village else "") or household.region_code]
            if village and village.township_name:
                township.name = village.township_name
            household_affected = False
            for program in set(old) | set(new):
                a, b = old.get(program, ZERO), new.get(program, ZERO)
                item = programs[program]
                item.amount_before += a
                item.amount_after += b
                item.units.add(units[program])
                if a != b:
                    item.households_affected += 1
                    household_affected = True
                    if program not in old:
                        item.gained += 1
                    elif program not in new:
                        item.lost += 1
                    else:
                        item.changed += 1
            for bucket in (township, total):
                bucket.amount_before += sum(old.values(), ZERO)
                bucket.amount_after += sum(new.values(), ZERO)
                bucket.households_affected += household_affected
    return {
        "pack": pack, "as_of": as_of.isoformat(), "scope": scope.model_dump(),
        "overrides": {name: _jsonable(value) for name, value in overrides.items()},
        "households_evaluated": evaluated, "households_under_pack": under_pack,
        "households_affected": total.households_affected,
        "programs": [{"program": name, "units": sorted(item.units), **item.view(),
                      "households_gained": item.gained, "households_lost": item.lost,
                      "households_changed": item.changed}
                     for name, item in sorted(programs.items())],
        "townships": [{"township_code": code, "township_name": item.name, **item.view()}
                      for code, item in sorted(townships.items())],
        "total": total.view(),
        "note": "Amounts are summed as each programme states them (per its unit: once, month, year, term, claim).",
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
