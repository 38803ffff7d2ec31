"""Registry throughput: ledger import (rows/s) and visit-batch ingest (visits/s).

    .venv/bin/python -m bench.bench_registry [ROWS] [VISITS]

Defaults: a 100,000-row generated ledger, 5,000 visits in batches of 500 through the HTTP API
(in-process ASGI transport, so no network cost is counted). The visits part first records as many
older visits with the reference one-by-one path (``record_batch_one_by_one``: a transaction per
visit, called directly, no HTTP) as a same-run baseline, then the batch API; it prints the ratio.
Every visit changes the household's income, so each is a new household version in both runs.
``python -m bench.bench_registry 3000 1000`` runs in well under two minutes. SQLite in a temporary directory;
set JZ_BENCH_POSTGRES_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres) to run
the same on a fresh PostgreSQL database as well.
"""
from __future__ import annotations

import asyncio
import csv
import io
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert, select

from services.registry.app import create_app
from services.registry.imports.sample import generate_ledger
from services.registry.imports.service import import_ledger
from services.registry.tables import cadres, households, pairings
from services.registry.visits.service import record_batch_one_by_one
from shared.auth import Principal, mint_token
from shared.config import RegistrySettings
from shared.events import utcnow

ADMIN = Principal(subject="bench", scopes=frozenset({"admin"}))


def _csv_bytes(header, rows) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8-sig")


async def _postgres_database(base: str) -> str:
    import asyncpg
    from sqlalchemy.engine import make_url
    name = f"jz_bench_registry_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(make_url(base).set(drivername="postgresql").render_as_string(hide_password=False))
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    return make_url(base).set(database=name).render_as_string(hide_password=False)


async def _drop_database(base: str, url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url
    conn = await asyncpg.connect(make_url(base).set(drivername="postgresql").render_as_string(hide_password=False))
    await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    await conn.close()


async def bench(label: str, url: str, var_dir: Path, rows: int, visit_count: int) -> None:
    settings = RegistrySettings(var_dir=var_dir, database_url=url, kafka_bootstrap="127.0.0.1:1", log_json=False,
                                log_level="WARNING")
    app = create_app(settings)
    header, table = generate_ledger(rows, seed=42, status="未脱贫")
    data = _csv_bytes(header, table)
    async with app.router.lifespan_context(app):
        phases: dict[str, float] = {}
        marks = {"start": time.perf_counter()}

        def progress(phase: str, _advance: int, _total: int) -> None:
            marks.setdefault(f"{phase}_first", time.perf_counter())
            marks[f"{phase}_last"] = time.perf_counter()

        start = time.perf_counter()
        report = await import_ledger(app.state.sessionmaker, data, "bench.csv", ADMIN, progress=progress)
        total = time.perf_counter() - start
        phases["validate"] = marks.get("write_first", time.perf_counter()) - start
        phases["write"] = total - phases["validate"]
        print(f"[{label}] import {report['rows']:>7} rows / {report['written']} households in {total:7.2f}s "
              f"= {report['rows'] / total:8.0f} rows/s   (validate+checks {phases['validate']:.2f}s, "
              f"write {phases['write']:.2f}s)")

        # visits: one cadre paired with the first households, batches of 500 through the API
        async with app.state.sessionmaker() as session, session.begin():
            ids = list((await session.execute(select(households.c.id).order_by(households.c.id)
                                              .limit(visit_count))).scalars())
            await session.execute(insert(cadres).values(id="bench-cadre", name="测试", unit="bench", role="pairing_cadre",
                                                        version=1, created_at=utcnow(), updated_at=utcnow()))
            await session.execute(insert(pairings), [{"household_id": h, "cadre_id": "bench-cadre",
                                                      "started_at": utcnow()} for h in ids])
        token = mint_token(settings, "visits:write", subject="bench-cadre")
        cadre = Principal(subject="bench-cadre", scopes=frozenset({"visits:write"}))
        now = app.state.clock()

        def visits_of(offset: timedelta, income: int) -> list[dict]:
            return [{"client_visit_id": str(uuid.uuid4()), "household_id": ids[i % len(ids)],
                     "visited_at": (now - offset - timedelta(minutes=visit_count - i)).isoformat(),
                     "location": {"lat": 25.66, "lon": 114.76}, "guarantees": {"food": True},
                     "observations": {"income": {"year": 2020, "per_capita_net": f"{income + i % 900}.00"}},
                     "notes": "bench"} for i in range(visit_count)]

        def batches_of(visits: list[dict]) -> list[list[dict]]:
            return [visits[i:i + 500] for i in range(0, len(visits), 500)]

        # same-run baseline: the same kind of visits (older, so the batch run below still applies)
        start = time.perf_counter()
        statuses: dict[int, int] = {}
        for batch in batches_of(visits_of(timedelta(days=2), 3000)):
            for item in await record_batch_one_by_one(app.state.sessionmaker, batch, cadre, now=now):
                statuses[item["status"]] = statuses.get(item["status"], 0) + 1
        seconds = time.perf_counter() - start
        baseline = visit_count / seconds
        print(f"[{label}] visits one by one (baseline) {visit_count:>6} visits in {seconds:7.2f}s "
              f"= {baseline:8.0f} visits/s   statuses {statuses}")

        batches = batches_of(visits_of(timedelta(0), 4000))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                     headers={"Authorization": f"Bearer {token}"}, timeout=600) as client:
            for attempt in ("first send", "resend"):
                start = time.perf_counter()
                statuses = {}
                for batch in batches:
                    response = await client.post("/v1/visits:batch", json={"visits": batch})
                    response.raise_for_status()
                    for item in response.json()["items"]:
                        statuses[item["status"]] = statuses.get(item["status"], 0) + 1
                seconds = time.perf_counter() - start
                print(f"[{label}] visits:batch {attempt:<10}         {visit_count:>6} visits in {seconds:7.2f}s "
                      f"= {visit_count / seconds:8.0f} visits/s   statuses {statuses}   "
                      f"x{visit_count / seconds / baseline:.1f} vs baseline")


def main(rows: int = 100_000, visit_count: int = 5_000) -> None:
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(bench("sqlite", f"sqlite+aiosqlite:///{tmp}/registry.db", Path(tmp), rows, visit_count))
        base = os.environ.get("JZ_BENCH_POSTGRES_URL")
        if base:
            url = asyncio.run(_postgres_database(base))
            try:
                asyncio.run(bench("postgres", url, Path(tmp), rows, visit_count))
            finally:
                asyncio.run(_drop_database(base, url))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
