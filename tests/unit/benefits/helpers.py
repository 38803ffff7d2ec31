from __future__ import annotations

import datetime as dt

from services.benefits.engine import evaluate

AS_OF = dt.date(2020, 6, 30)


def base_household(**overrides) -> dict:
    household = {
        "id": "hh-t", "version": 1, "region_code": "360703", "status": "registered",
        "village": {"code": "360703101201", "name": "卢屋村", "township_code": "360703101", "township_name": "唐江镇",
                    "is_poor_village": False, "is_deep_poverty_village": False},
        "income": {"year": 2019, "per_capita_net": "5000.00"},
        "members": [{"id": "a", "birth_date": "1980-01-01", "labour_capacity": "full"}],
    }
    household.update(overrides)
    return household


def person(**fields) -> dict:
    return {"id": "a", "birth_date": "1980-01-01", "labour_capacity": "full", **fields}


def amount_of(household: dict, program: str, person_id=None, as_of=AS_OF) -> str | None:
    result = evaluate(household, as_of)
    found = result.entitlement(program, person_id)
    if found is None:
        return None
    return str(found.amount) if found.eligible else "ineligible"
