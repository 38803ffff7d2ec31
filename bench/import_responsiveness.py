"""Registry responsiveness during a ledger import: /healthz p50/p99 idle and during a large import.

    .venv/bin/python -m bench.import_responsiveness [ROWS]

Starts a real registry (uvicorn in its own process, embedded profile, SQLite in a temporary
directory), measures ``/healthz`` every 20 ms for a few seconds idle (the baseline), then uploads a
generated ROWS-row CSV ledger (default 100,000) with ``curl`` (a separate process, so the client's
own work is not counted) as an asynchronous job (``Prefer: respond-async``) and measures ``/healthz``
the same way from the first byte of the upload until the job is done. Prints both, their ratio, the
import's rows/s, and whether p99 during the import met the target (< 100 ms). ``python -m
bench.import_responsiveness 10000`` runs in about a minute.
"""
from __future__ import annotations

import asyncio
import csv
import json
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

from services.registry.imports.sample import generate_ledger
from shared.auth import mint_token
from shared.config import RegistrySettings

TARGET_P99_S = 0.100
POLL_INTERVAL_S = 0.02
BASELINE_S = 5.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _summary(latencies: list[float]) -> str:
    return (f"{len(latencies)} polls, p50 {_percentile(latencies, 0.5) * 1000:.1f} ms, "
            f"p99 {_percentile(latencies, 0.99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")


async def _poll_healthz(client: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get("/healthz")
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        await asyncio.sleep(POLL_INTERVAL_S)
    return latencies


async def _start_registry(var_dir: Path, port: int) -> asyncio.subprocess.Process:
    env = {**os.environ, "JZ_VAR_DIR": str(var_dir), "JZ_KAFKA_BOOTSTRAP": "127.0.0.1:1", "JZ_LOG_LEVEL": "WARNING",
           "JZ_REGISTRY_DATABASE_URL": f"sqlite+aiosqlite:///{var_dir / 'registry.db'}"}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "uvicorn", "services.registry.app:create_app", "--factory", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--no-access-log", env=env,
        stdout=asyncio.subprocess.DEVNULL)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(300):
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    server.terminate()
    raise RuntimeError("the registry did not start")


async def main(rows: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="jz-bench-import-") as folder:
        var_dir = Path(folder)
        started = time.perf_counter()
        header, table = generate_ledger(rows, seed=41)
        ledger = var_dir / "ledger.csv"
        with open(ledger, "w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(table)
        print(f"generated {len(table):,} rows ({ledger.stat().st_size / 1e6:.1f} MB CSV) in "
              f"{time.perf_counter() - started:.1f} s")
        token = mint_token(RegistrySettings(var_dir=var_dir), "admin", subject="bench")  # makes the dev key first
        port = _free_port()
        server = await _start_registry(var_dir, port)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                         headers={"Authorization": f"Bearer {token}"}) as client:
                stop = asyncio.Event()
                poller = asyncio.create_task(_poll_healthz(client, stop))
                await asyncio.sleep(BASELINE_S)
                stop.set()
                baseline = await poller

                stop = asyncio.Event()
                poller = asyncio.create_task(_poll_healthz(client, stop))
                import_started = time.perf_counter()
                curl = await asyncio.create_subprocess_exec(
                    "curl", "-s", "-H", f"Authorization: Bearer {token}", "-H", "Prefer: respond-async",
                    "-F", f"file=@{ledger};type=text/csv", f"http://127.0.0.1:{port}/v1/imports",
                    stdout=asyncio.subprocess.PIPE)
                answer, _ = await curl.communicate()
                accepted = json.loads(answer)
                import_id = accepted["import_id"]
                while True:
                    job = (await client.get(f"/v1/imports/{import_id}")).json()
                    if job["state"] not in ("queued", "running"):
                        break
                    await asyncio.sleep(1.0)
                elapsed = time.perf_counter() - import_started
                stop.set()
                during = await poller
        finally:
            server.terminate()
            await server.wait()
    assert job["state"] == "done", {k: v for k, v in job.items() if k != "outcome"}
    return {"rows": job["rows_done"], "households": job["written"], "import_s": elapsed,
            "baseline": baseline, "during": during}


if __name__ == "__main__":
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(f"platform: {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    result = asyncio.run(main(rows))
    baseline, during = result["baseline"], result["during"]
    print(f"import: {result['rows']:,} rows, {result['households']:,} households written in {result['import_s']:.1f} s "
          f"({result['rows'] / result['import_s']:,.0f} rows/s, as a job in a worker "
          f"{os.environ.get('JZ_REGISTRY_IMPORT_WORKER', 'process')})")
    print(f"/healthz idle (baseline):  {_summary(baseline)}")
    print(f"/healthz during import:    {_summary(during)}")
    ratio = _percentile(during, 0.99) / _percentile(baseline, 0.99)
    p99 = _percentile(during, 0.99)
    print(f"p99 ratio during/idle: {ratio:.1f}x; target p99 < {TARGET_P99_S * 1000:.0f} ms: "
          f"{'met' if p99 < TARGET_P99_S else 'NOT met'} ({p99 * 1000:.1f} ms)")
