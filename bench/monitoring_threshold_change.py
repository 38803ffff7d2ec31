"""A yearly threshold change over stored households: automatic monitoring leads raised per second.

    .venv/bin/python -m bench.monitoring_threshold_change [--n 100000] [--backend postgres|sqlite]
                                                          [--postgres-url postgresql+asyncpg://postgres@127.0.0.1/postgres]

Households from ``bench.datagen`` (every status, the demo district's villages), given a 2021 income
between 4,000 and 12,000 yuan per person and, one in ten, rigid expenses; stored in a fresh benefits
database (PostgreSQL by default) migrated to head. Then, timed end to end through the same code path
as ``POST /v1/recompute`` and a policy publication's job:

1. initial      - recompute under the packs as shipped (2021 range line 6,000): the first decisions,
                  and a lead for every household already inside the range;
2. threshold    - the province raises its 2021 range line to 6,500 (``cn-national`` overridden, as a
                  publication would): a ``monitoring.risk_detected`` lead for every household the new
                  line puts inside, and only for them (checked against the pure rule).

Baseline, in the same run on the same households: the pure engine under the raised line (parse,
evaluate, serialise to JSON: what the job does per household before touching the database).
Peak RSS is the process's high-water mark after each step.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import datetime as dt
import json
import os
import random
import resource
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Iterator

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench.backends import admin_sql
from bench.bench_recompute import store_snapshots
from bench.datagen import generate_household
from services.benefits.engine import evaluate
from services.benefits.recompute.scope import Scope
from services.benefits.recompute.service import create_job, run_job
from services.benefits.tables import outbox
from shared.config import BenefitsSettings
from shared.db import make_engine, make_sessionmaker, transaction
from shared.migrate import upgrade_to_head
from shared.policy import default_registry
from shared.signing import bind_signer, event_signer

AS_OF = dt.date(2021, 6, 30)
SEED = 2021
CHUNK = 2000
OLD_LINE, NEW_LINE = Decimal(6000), Decimal(6500)


def stream_households(n: int, seed: int = SEED) -> Iterator[dict]:
    """Deterministic households with a 2021 income around the range line (never all in memory)."""
    rng, incomes = random.Random(seed), random.Random(seed + 1)
    for index in range(n):
        household = generate_household(rng, index)
        household["income"] = {"year": 2021, "per_capita_net": f"{Decimal(incomes.randint(400_000, 1_200_000)) / 100}"}
        if incomes.random() < 0.1:
            household["rigid_expenses"] = {"year": 2021, "medical": f"{incomes.randint(0, 60_000)}.00",
                                           "schooling": f"{incomes.randint(0, 10_000)}.00"}
        yield household


def raised_packs(packs=None):
    packs = packs or default_registry()
    return packs.with_overrides("cn-national", {"monitoring.range_line": {2021: NEW_LINE}})


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Table:
    HEADER = (f"  {'step':<40} {'households':>10} {'leads':>7} {'seconds':>8} {'households/s':>12} "
              f"{'leads/s':>8} {'peak RSS MB':>11}")

    def __init__(self) -> None:
        self.rows: list[str] = []

    def add(self, step: str, households: int, leads: int | None, seconds: float) -> dict:
        rate = households / seconds if seconds else float("inf")
        lead_rate = None if leads is None else (leads / seconds if seconds else float("inf"))
        row = (f"  {step:<40} {households:>10} {'-' if leads is None else leads:>7} {seconds:>8.2f} {rate:>12.0f} "
               f"{'-' if lead_rate is None else f'{lead_rate:.0f}':>8} {peak_rss_mb():>11.0f}")
        self.rows.append(row)
        print(row, flush=True)
        return {"households": households, "leads": leads, "seconds": seconds, "rate": rate, "lead_rate": lead_rate}

    def print(self) -> None:
        print(self.HEADER)
        for row in self.rows:
            print(row)


def baseline(n: int, table: Table) -> tuple[dict, int]:
    """The pure engine under the raised line; also the leads the change must raise, by the pure rule."""
    old, new = default_registry(), raised_packs()
    for household in stream_households(200, seed=SEED + 99):  # warm-up: resolution, serializers
        evaluate(household, AS_OF, new).model_dump(mode="json")
    # Households are generated in chunks outside the timed stretches: the baseline times the engine only.
    seconds, households = 0.0, stream_households(n)
    while chunk := list(itertools.islice(households, CHUNK)):
        start = time.perf_counter()
        for household in chunk:
            evaluate(household, AS_OF, new).model_dump(mode="json")
        seconds += time.perf_counter() - start
    result = table.add("baseline: pure engine (eval+json), 6500", n, None, seconds)
    expected = 0
    for household in stream_households(n):  # untimed: which households the new line puts inside
        before, after = (evaluate(household, AS_OF, packs).assessment("monitoring_range") for packs in (old, new))
        expected += bool(after is not None and after.result and not (before is not None and before.result))
    return result, expected


async def seed(engine, n: int) -> float:
    return await store_snapshots(engine, stream_households(n), CHUNK)


async def count_leads(engine) -> int:
    async with engine.connect() as conn:
        # The payload is the signed envelope's JSON text; its type field names the event.
        return await conn.scalar(select(func.count()).select_from(outbox).where(
            outbox.c.payload.like('%"type":"monitoring.risk_detected"%')))


async def timed_job(engine, table: Table, label: str, packs, batch_size: int) -> dict:
    sessionmaker = make_sessionmaker(engine)
    before = await count_leads(engine)
    async with transaction(sessionmaker) as session:
        job = await create_job(session, Scope(kind="all"), AS_OF, batch_size=batch_size, requested_by="bench")
    start = time.perf_counter()
    job = await run_job(sessionmaker, job["id"], packs)
    seconds = time.perf_counter() - start
    assert job["status"] == "done", job
    leads = await count_leads(engine) - before
    return {**table.add(label, job["processed"], leads, seconds), "decisions": job["decisions"]}


async def run(url: str, n: int, *, batch_size: int = 500, table: Table | None = None) -> dict:
    """Seed, initial recompute, threshold change; returns each step's figures and the expected leads."""
    table = table or Table()
    base, expected = baseline(n, table)
    engine = make_engine(url)
    keys = tempfile.TemporaryDirectory(prefix="jz-bench-keys-")
    # As the service does at start-up: decisions staged in this database are signed with benefits' key.
    bind_signer(engine, event_signer(BenefitsSettings(var_dir=Path(keys.name))))
    try:
        await upgrade_to_head("benefits", engine)
        seconds = await seed(engine, n)
        table.add("seed household_snapshots", n, None, seconds)
        initial = await timed_job(engine, table, "recompute 1: initial (range 6000)", default_registry(), batch_size)
        change = await timed_job(engine, table, "recompute 2: threshold 6000 -> 6500", raised_packs(), batch_size)
    finally:
        await engine.dispose()
        keys.cleanup()
    return {"baseline": base, "initial": initial, "threshold": change, "expected_leads": expected}


async def main(n: int, backend: str, postgres_url: str | None, batch_size: int) -> None:
    print(f"monitoring threshold change: {n} households, batch {batch_size}, as of {AS_OF}, "
          f"2021 range line {OLD_LINE} -> {NEW_LINE}, backend {backend}", flush=True)
    table = Table()
    print(Table.HEADER, flush=True)
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="jz-bench-") as folder:
            result = await run(f"sqlite+aiosqlite:///{Path(folder) / 'benefits.db'}", n, batch_size=batch_size,
                               table=table)
    else:
        if not postgres_url:
            raise SystemExit("PostgreSQL: pass --postgres-url or set JZ_TEST_POSTGRES_URL")
        database = f"jz_bench_{uuid.uuid4().hex[:8]}"
        await admin_sql(postgres_url, f'CREATE DATABASE "{database}"')
        try:
            url = make_url(postgres_url).set(database=database).render_as_string(hide_password=False)
            result = await run(url, n, batch_size=batch_size, table=table)
        finally:
            await admin_sql(postgres_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    change, base = result["threshold"], result["baseline"]
    assert change["leads"] == result["expected_leads"], (change["leads"], result["expected_leads"])
    print(f"\nsummary ({n} households, {backend}):")
    table.print()
    print(f"  threshold change: {change['leads']} leads (pure rule expects {result['expected_leads']}), "
          f"{change['lead_rate']:.0f} leads/s, {change['rate']:.0f} households/s = "
          f"x{change['rate'] / base['rate']:.2f} of the pure engine; peak RSS {peak_rss_mb():.0f} MB")
    print(json.dumps({k: v for k, v in result.items() if k != "expected_leads"}, default=str))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="households (default 100000)")
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--postgres-url", default=os.environ.get("JZ_BENCH_POSTGRES_URL")
                        or os.environ.get("JZ_TEST_POSTGRES_URL"))
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.backend, args.postgres_url, args.batch_size))
