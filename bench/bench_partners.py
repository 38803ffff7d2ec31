"""Partner API throughput and latency next to a trivial authenticated endpoint, in one run.

    .venv/bin/python -m bench.bench_partners [--households 3000] [--requests 3000] [--concurrency 50]

Seeds a SQLite benefits database with generated households (through the same
``store_snapshot`` path the registry consumer uses, so the person look-up index is
filled), creates a bank and an insurer client, starts the benefits app under uvicorn
in a subprocess on a free port (rate limit off), then drives each endpoint with N
requests from ``--concurrency`` concurrent clients (httpx.AsyncClient):

* ``GET /v1/partners/whoami`` (token check only: the trivial baseline, run first and last)
* ``POST /v1/credit/eligibility`` (look-up, pack, rule, decision row + access event)
* ``POST /v1/settlements/one-stop`` (look-up, year-to-date lock, layers, settlement row + two events)

and prints requests/s, p50 and p99 for each, and the p99 ratio to the baseline (target: within 2x).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.datagen import generate_households

AS_OF = "2020-06-30"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_env(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JZ_")}
    env.update({"JZ_VAR_DIR": str(var_dir), "JZ_KAFKA_BOOTSTRAP": "127.0.0.1:1", "JZ_LOG_LEVEL": "WARNING",
                "JZ_BENEFITS_DATABASE_URL": f"sqlite+aiosqlite:///{var_dir / 'benefits.db'}",
                "JZ_BENEFITS_RUN_CONSUMER": "false", "JZ_BENEFITS_EVALUATION_DATE": AS_OF,
                "JZ_BENEFITS_PARTNER_RATE_LIMIT_ENABLED": "false",
                "JZ_IDENTITY_KEY": "bench-identity-key-not-secret"})
    return env


async def seed(households: list[dict]) -> dict[str, dict]:
    from services.benefits.consumer import store_snapshot
    from services.benefits.partners.service import create_client
    from shared.config import service_settings
    from shared.db import make_engine, make_sessionmaker, transaction
    from shared.migrate import upgrade_to_head

    settings = service_settings("benefits")
    engine = make_engine(settings.resolved_database_url())
    await upgrade_to_head("benefits", engine)
    sessionmaker = make_sessionmaker(engine)
    for start in range(0, len(households), 250):
        async with transaction(sessionmaker) as session:
            for household in households[start:start + 250]:
                await store_snapshot(session, household)
    async with transaction(sessionmaker) as session:
        clients = {"bank": await create_client(session, "Bench bank", ["credit"]),
                   "insurer": await create_client(session, "Bench insurer", ["settlement"])}
    await engine.dispose()
    return clients


async def wait_ready(base: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"benefits exited with {process.returncode}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError("benefits did not become ready")


async def token(client: httpx.AsyncClient, credentials: dict) -> str:
    response = await client.post("/oauth/token", data={"grant_type": "client_credentials",
                                                       "client_id": credentials["client_id"],
                                                       "client_secret": credentials["client_secret"]})
    response.raise_for_status()
    return response.json()["access_token"]


async def drive(client: httpx.AsyncClient, make_request, total: int, concurrency: int) -> dict:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def worker() -> None:
        nonlocal errors
        for index in counter:
            method, path, body = make_request(index)
            started = time.perf_counter()
            response = await client.request(method, path, json=body)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"requests": total, "errors": errors, "rps": total / elapsed,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000}


async def run(args) -> None:
    households = generate_households(args.households, seed=7)
    numbers = [m["id_number"] for h in households for m in h["members"]]
    with tempfile.TemporaryDirectory(prefix="jz-bench-partners-") as tmp:
        var_dir = Path(tmp)
        env = bench_env(var_dir)
        os.environ.update(env)
        t0 = time.perf_counter()
        clients = await seed(households)
        print(f"seeded {len(households)} households ({len(numbers)} persons) in {time.perf_counter() - t0:.1f}s")
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "services.benefits.app:create_app", "--factory", "--host",
             "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
            env=env, cwd=Path(__file__).resolve().parents[1])
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_ready(base, process)
            limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
            async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
                bank = {"Authorization": f"Bearer {await token(client, clients['bank'])}"}
                insurer = {"Authorization": f"Bearer {await token(client, clients['insurer'])}"}
                rng = random.Random(1)

                def whoami(_: int):
                    return "GET", "/v1/partners/whoami", None

                def eligibility(_: int):
                    return "POST", "/v1/credit/eligibility", {
                        "id_number": rng.choice(numbers), "amount": str(rng.randrange(1000, 60000, 1000)),
                        "term_months": rng.choice([12, 24, 36]), "purpose": rng.choice(["livestock", "crops", "wedding"])}

                def one_stop(index: int):
                    total = rng.randrange(500, 200000)
                    return "POST", "/v1/settlements/one-stop", {
                        "id_number": rng.choice(numbers), "admission_date": "2020-05-01",
                        "discharge_date": "2020-05-08", "hospital_level": rng.choice([1, 2, 3]),
                        "in_district": rng.random() < 0.9, "total_cost": str(total),
                        "in_policy_cost": str(int(total * rng.uniform(0.5, 1.0))), "claim_id": f"bench-{index}"}

                # Warm up every path (imports, pack resolution, connection pool).
                client.headers.update(bank)
                await drive(client, whoami, 200, args.concurrency)
                await drive(client, eligibility, 200, args.concurrency)
                client.headers.update(insurer)
                await drive(client, lambda i: one_stop(i + 10_000_000), 200, args.concurrency)

                results = {}
                client.headers.update(bank)
                results["whoami (trivial, before)"] = await drive(client, whoami, args.requests, args.concurrency)
                results["credit eligibility"] = await drive(client, eligibility, args.requests, args.concurrency)
                client.headers.update(insurer)
                results["one-stop settlement"] = await drive(client, one_stop, args.requests, args.concurrency)
                results["whoami (trivial, after)"] = await drive(client, whoami, args.requests, args.concurrency)
        finally:
            process.terminate()
            process.wait(timeout=30)
    baseline = max(results["whoami (trivial, before)"]["p99_ms"], results["whoami (trivial, after)"]["p99_ms"])
    print(f"\n{args.requests} requests per endpoint, {args.concurrency} concurrent clients, SQLite, one uvicorn worker")
    print(f"{'endpoint':<28} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99/trivial':>12} {'errors':>7}")
    for name, r in results.items():
        print(f"{name:<28} {r['rps']:>8.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
              f"{r['p99_ms'] / baseline:>12.2f} {r['errors']:>7}")
    print(f"\nratio p99 eligibility / trivial = {results['credit eligibility']['p99_ms'] / baseline:.2f}; "
          f"one-stop / trivial = {results['one-stop settlement']['p99_ms'] / baseline:.2f} (target <= 2)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
