"""Idle latency from a registry write to its audited decision, through the real processes.

Starts broker, relay and the three services (SQLite, or PostgreSQL with --postgres URL),
then writes households one at a time and waits for the `entitlements.decided` record in
audit. Baseline in the same run: the registry write's own HTTP round trip.

    .venv/bin/python -m bench.bench_pipeline --n 30
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from jingzhun_cli.demo import demo_households
from shared.auth import mint_token
from shared.broker import free_port
from shared.config import CommonSettings
from shared.launcher import LaunchConfig, SystemLauncher


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def measure(n: int, database_urls: dict[str, str]) -> None:
    var_dir = Path(tempfile.mkdtemp(prefix="jz-bench-"))
    print("var dir:", var_dir)
    config = LaunchConfig(var_dir=var_dir, ports={s: free_port() for s in ("registry", "benefits", "audit")},
                          broker_port=free_port(), database_urls=database_urls)
    launcher = SystemLauncher(config)
    await launcher.start()
    token = mint_token(CommonSettings(var_dir=var_dir), "admin")
    write_ms, pipeline_ms = [], []
    try:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            bodies = [body for _, body in demo_households(n + 1, seed=7)]
            for index, body in enumerate(bodies):
                body["status"] = "registered"
                started = time.perf_counter()
                created = await client.post(launcher.url("registry") + "/v1/households", json=body)
                written = time.perf_counter()
                created.raise_for_status()
                subject = f"household/{created.json()['id']}"
                while True:
                    records = (await client.get(launcher.url("audit") + "/v1/audit/records",
                                                params={"subject": subject, "type": "entitlements.decided",
                                                        "limit": 1})).json()["items"]
                    if records:
                        break
                    await asyncio.sleep(0.02)
                done = time.perf_counter()
                if index == 0:
                    continue  # the first one includes consumer-group joins: not idle latency
                write_ms.append((written - started) * 1000)
                pipeline_ms.append((done - started) * 1000)
    finally:
        await launcher.shutdown()
    backend = "postgresql" if database_urls else "sqlite"
    print(f"backend={backend} writes={len(pipeline_ms)}")
    print(f"registry write (baseline)      p50 {statistics.median(write_ms):7.1f} ms   p95 {percentile(write_ms, .95):7.1f} ms")
    print(f"write → audited decision       p50 {statistics.median(pipeline_ms):7.1f} ms   p95 {percentile(pipeline_ms, .95):7.1f} ms"
          f"   max {max(pipeline_ms):7.1f} ms")
    print(f"ratio pipeline/write p50: {statistics.median(pipeline_ms) / statistics.median(write_ms):.1f}x")


async def postgres_urls(admin_url: str) -> dict[str, str]:
    import uuid

    import asyncpg
    from sqlalchemy.engine import make_url
    base = make_url(admin_url)
    conn = await asyncpg.connect(base.set(drivername="postgresql").render_as_string(hide_password=False))
    urls = {}
    for service in ("registry", "benefits", "audit"):
        name = f"jz_bench_{service}_{uuid.uuid4().hex[:8]}"
        await conn.execute(f'CREATE DATABASE "{name}"')
        urls[service] = base.set(database=name).render_as_string(hide_password=False)
    await conn.close()
    return urls


async def drop_databases(admin_url: str | None, urls: dict[str, str]) -> None:
    if not admin_url or not urls:
        return
    import asyncpg
    from sqlalchemy.engine import make_url
    conn = await asyncpg.connect(make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False))
    for url in urls.values():
        await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--postgres", help="admin URL, e.g. postgresql+asyncpg://postgres@127.0.0.1/postgres")
    args = parser.parse_args()

    async def run() -> None:
        urls = await postgres_urls(args.postgres) if args.postgres else {}
        try:
            await measure(args.n, urls)
        finally:
            await drop_databases(args.postgres, urls)

    asyncio.run(run())


if __name__ == "__main__":
    main()
