"""The monitoring threshold-change benchmark stays runnable (a small smoke, no timing assertions): the
leads a raised range line produces are exactly the crossings the pure rule predicts."""
from __future__ import annotations

from bench.monitoring_threshold_change import Table, run


async def test_threshold_change_benchmark_smoke(databases):
    result = await run(await databases.url("benefits"), 300, batch_size=100, table=Table())
    assert result["initial"]["households"] == result["threshold"]["households"] == 300
    assert result["initial"]["leads"] > 0
    assert result["threshold"]["leads"] == result["expected_leads"] > 0
