"""Dashboard banner: regions of the area whose current entitlement decisions were made under the national pack only.

Each decision's projection keeps the pack it was evaluated under (``audit_entitlements.pack``);
a decision under the national root (region "") was evaluated ``national_only``. The banner names
the region, how many households, and which local pack lapsed on the dashboard's evaluation
date, or, when a local pack is valid on that date, that the decisions need a recompute.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit.supervision.common import in_area
from services.audit.tables import audit_entitlements, audit_households
from shared.policy import PackRegistry, default_registry
from shared.policy.coverage import coverage, coverage_of_pack, coverage_warning


async def national_only_regions(session: AsyncSession, area: str | None, on: dt.date,
                                packs: PackRegistry | None = None) -> list[dict]:
    packs = packs or default_registry()
    query = (select(audit_households.c.region_code, audit_entitlements.c.pack,
                    func.count(func.distinct(audit_entitlements.c.household_id)).label("households"))
             .join(audit_households, audit_households.c.household_id == audit_entitlements.c.household_id)
             .where(audit_entitlements.c.pack.is_not(None), audit_households.c.region_code.is_not(None))
             .group_by(audit_households.c.region_code, audit_entitlements.c.pack)
             .order_by(audit_households.c.region_code, audit_entitlements.c.pack))
    condition = in_area(audit_households, area)
    if condition is not None:
        query = query.where(condition)
    banner = []
    for row in (await session.execute(query)).all():
        decided = coverage_of_pack(packs, row.pack, row.region_code, on)
        if decided["coverage"] != "national_only":
            continue
        now = coverage(packs, row.region_code, on)
        if now["coverage"] == "local":
            local = packs.resolve(row.region_code, on).pack
            text = (f"区域 {row.region_code} 的决定按国家政策包（{row.pack}）作出，但 {on.isoformat()} 有本地政策包 "
                    f"{local} 生效：请重新计算。 Decisions in region {row.region_code} were evaluated national_only "
                    f"({row.pack}), but on {on.isoformat()} local pack {local} is valid: recompute.")
        else:
            text = coverage_warning(row.region_code, on, now["lapsed"])
        banner.append({"region_code": row.region_code, "pack": row.pack, "households": row.households,
                       "lapsed": now["lapsed"], "text": text})
    return banner
