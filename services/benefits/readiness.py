"""Benefits' readiness warnings: regions of stored households evaluated national_only on the evaluation date.

`/readyz` is polled every few seconds, so the distinct region codes are read at most once per
``ttl_s`` (one indexed-or-not DISTINCT, a handful of rows), and coverage itself is a pure
function of the packs in force (``app.state.packs``, which a publication may replace).
"""
from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI
from sqlalchemy import select

from services.benefits.tables import household_snapshots
from shared.clock import evaluation_date
from shared.policy import default_registry
from shared.policy.coverage import coverage, coverage_warning


class CoverageWarnings:
    def __init__(self, ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.ttl_s = ttl_s
        self.clock = clock
        self._regions: list[str] | None = None
        self._read_at = 0.0

    async def regions(self, app: FastAPI) -> list[str]:
        if self._regions is None or self.clock() - self._read_at >= self.ttl_s:
            async with app.state.sessionmaker() as session:
                rows = await session.execute(select(household_snapshots.c.region_code).distinct()
                                             .where(household_snapshots.c.status != "removed"))
                self._regions = sorted(code for (code,) in rows)
            self._read_at = self.clock()
        return self._regions

    async def __call__(self, app: FastAPI) -> list[str]:
        packs = getattr(app.state, "packs", None) or default_registry()
        on = evaluation_date(app.state.settings)
        warnings = []
        for region in await self.regions(app):
            covered = coverage(packs, region, on)
            if covered["coverage"] == "national_only":
                warnings.append(coverage_warning(region, on, covered["lapsed"]))
        return warnings
