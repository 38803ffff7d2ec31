"""Sustained pipeline: registry writes at the rate the registry accepts, benefits' and audit's lag over time.

Starts the system with the launcher (broker, relay, registry, benefits, audit: one process each) on SQLite in a
temporary directory or on three fresh PostgreSQL databases, then ``--clients`` writers POST ``--n`` households
(``jingzhun_cli.demo.demo_households`` bodies, all distinct people) to the registry as fast as it answers.
With ``--source import`` the households come instead as one registry ledger import (``POST /v1/imports`` of a
generated 台账 of about N households, "未脱贫"), which the registry writes far faster than one POST at a time, so
the consumers' own throughput shows. Every ``--sample`` seconds it reads the ``benefits`` and ``audit`` consumer groups' lag. It waits until both
lags are 0 and every household is in benefits' snapshots and in audit's read model, and reports households/s
end to end (first write to the last household audited), the registry's own write rate, the lag trend, and the
decision events audit ledgered per household.

Same-run raw ceiling (issue 15's baseline), on the same broker once the system is idle: aiokafka produces the
same N household payloads to a fresh 6-partition topic, one consumer reads them back, and each fetched batch is
inserted with one batched statement (asyncpg ``executemany`` on PostgreSQL, sqlite3 ``executemany`` on SQLite)
into a table of the benchmark's own. Ratio = end-to-end households/s ÷ ceiling households/s.

    .venv/bin/python -m bench.bench_pipeline_sustained --n 2000 --postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
    .venv/bin/python -m bench.bench_pipeline_sustained --source import --n 3000 --postgres-url ...
    .venv/bin/python -m bench.bench_pipeline_sustained --quick          # SQLite, 30 households (the CI smoke)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    backend: str
    n: int
    clients: int
    write_s: float = 0.0
    total_s: float = 0.0
    failed_writes: int = 0
    samples: list[tuple[float, int, int]] = field(default_factory=list)  # (t, benefits lag, audit lag)
    benefits_snapshots: int = 0
    audit_households: int = 0
    decision_records: int = 0
    decision_types: dict[str, int] = field(default_factory=dict)
    ceiling_s: float = 0.0

    @property
    def write_rate(self) -> float:
        return self.n / self.write_s if self.write_s else 0.0

    @property
    def end_to_end(self) -> float:
        return self.n / self.total_s if self.total_s else 0.0

    @property
    def ceiling(self) -> float:
        return self.n / self.ceiling_s if self.ceiling_s else 0.0

    def lag_trend(self) -> tuple[int, int, str]:
        """Max lag (benefits + audit) in the first and second half of the write phase, and a verdict:
        bounded when the second half's peak is at most 1.1 x the first half's plus 50 messages."""
        during = [(t, b + a) for t, b, a in self.samples if t <= self.write_s]
        if len(during) < 2:
            return 0, 0, "too short to tell"
        middle = self.write_s / 2
        first = max((lag for t, lag in during if t <= middle), default=0)
        second = max((lag for t, lag in during if t > middle), default=0)
        return first, second, "bounded" if second <= 1.1 * first + 50 else "growing"


async def _postgres_urls(admin_url: str) -> dict[str, str]:
    from sqlalchemy.engine import make_url

    from bench.backends import admin_sql
    urls = {}
    for service in ("registry", "benefits", "audit"):
        name = f"jz_bench_{service}_{uuid.uuid4().hex[:8]}"
        await admin_sql(admin_url, f'CREATE DATABASE "{name}"')
        urls[service] = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return urls


async def _drop(admin_url: str, urls: dict[str, str]) -> None:
    from sqlalchemy.engine import make_url

    from bench.backends import admin_sql
    for url in urls.values():
        await admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


async def _scalar(url: str, sql: str, **params):
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text(sql), params)).all()
    finally:
        await engine.dispose()


async def _lags(bootstrap: str) -> tuple[int, int]:
    from shared.bus import consumer_lag
    from shared.config import TOPIC_REGISTRY, TOPICS
    benefits, audit = await asyncio.gather(consumer_lag(bootstrap, "benefits", [TOPIC_REGISTRY]),
                                           consumer_lag(bootstrap, "audit", list(TOPICS)))
    return benefits, audit


async def _counts(launcher, ids: list[str]) -> tuple[int, int]:
    """Households of this run in benefits' snapshots and in audit's read model."""
    wanted = set(ids)
    stored = {r[0] for r in await _scalar(launcher.config.database_url("benefits"),
                                          "SELECT household_id FROM household_snapshots")}
    audited = {r[0] for r in await _scalar(launcher.config.database_url("audit"),
                                           "SELECT household_id FROM audit_households")}
    return len(wanted & stored), len(wanted & audited)


async def _benefits_unpublished(launcher) -> int:
    """Benefits' events not yet on the broker: decisions of stored households the lag cannot show yet."""
    return int((await _scalar(launcher.config.database_url("benefits"),
                              "SELECT count(*) FROM outbox WHERE published_at IS NULL"))[0][0])


async def _write_all(client: httpx.AsyncClient, url: str, bodies: list[dict], clients: int, run: Run) -> list[str]:
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    ids: list[str] = []

    async def writer() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            for attempt in range(5):
                answer = await client.post(url + "/v1/households", json=body)
                if answer.status_code < 300:
                    ids.append(answer.json()["id"])
                    break
                if answer.status_code < 500 and answer.status_code not in (409, 429):
                    run.failed_writes += 1
                    print(f"  write refused: {answer.status_code} {answer.text[:300]}")
                    break
                await asyncio.sleep(0.2 * (attempt + 1))
            else:
                run.failed_writes += 1

    await asyncio.gather(*(writer() for _ in range(clients)))
    return ids


async def _import_all(client: httpx.AsyncClient, launcher, n: int, run: Run) -> list[str]:
    """A generated household ledger (about 3.5 person rows per household) through ``POST /v1/imports``
    as one job; the ids of the households it wrote, from the registry's database."""
    import csv
    import io

    from services.registry.imports.sample import generate_ledger
    header, table = generate_ledger(int(n * 3.5), seed=11, status="未脱贫")
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *table])
    before = {r[0] for r in await _scalar(launcher.config.database_url("registry"), "SELECT id FROM households")}
    answer = await client.post(launcher.url("registry") + "/v1/imports", headers={"Prefer": "respond-async"},
                               files={"file": ("bench.csv", buffer.getvalue().encode("utf-8-sig"), "text/csv")})
    answer.raise_for_status()
    job = answer.json()
    while job["state"] in ("queued", "running"):
        await asyncio.sleep(0.5)
        job = (await client.get(launcher.url("registry") + f"/v1/imports/{job['id']}")).json()
    if job["state"] != "done":
        run.failed_writes += 1
        print(f"  import {job['state']}: {json.dumps(job)[:500]}")
    return sorted({r[0] for r in await _scalar(launcher.config.database_url("registry"), "SELECT id FROM households")}
                  - before)


async def _ceiling(bootstrap: str, payloads: list[bytes], backend: str, database_url: str, var_dir: Path) -> float:
    """aiokafka produce + consume + one batched insert per fetched batch of the same payloads: seconds."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from shared.bus import ensure_topics
    topic = f"jz.bench.ceiling.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, 6, topics=[topic], with_dlq=False)
    if backend == "PostgreSQL":
        import asyncpg
        from sqlalchemy.engine import make_url
        conn = await asyncpg.connect(make_url(database_url).set(drivername="postgresql")
                                     .render_as_string(hide_password=False))
        await conn.execute("CREATE TABLE bench_ceiling (topic text, part int, off bigint, key text, payload jsonb, "
                           "PRIMARY KEY (topic, part, off))")

        async def insert(rows):
            await conn.executemany("INSERT INTO bench_ceiling VALUES ($1, $2, $3, $4, $5::jsonb)", rows)
    else:
        lite = sqlite3.connect(var_dir / "ceiling.db")
        lite.execute("CREATE TABLE bench_ceiling (topic text, part int, off int, key text, payload text, "
                     "PRIMARY KEY (topic, part, off))")

        async def insert(rows):
            with lite:
                lite.executemany("INSERT INTO bench_ceiling VALUES (?, ?, ?, ?, ?)", rows)
    started = time.perf_counter()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        pending = [await producer.send(topic, value, key=f"hh-{index}".encode()) for index, value in enumerate(payloads)]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    got = 0
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(6)])
        while got < len(payloads):
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for tp, messages in batches.items():
                await insert([(m.topic, m.partition, m.offset, m.key.decode(), m.value.decode()) for m in messages])
                got += len(messages)
    finally:
        await consumer.stop()
    seconds = time.perf_counter() - started
    if backend == "PostgreSQL":
        await conn.close()
    else:
        lite.close()
    return seconds


async def measure(args, database_urls: dict[str, str]) -> Run:
    from jingzhun_cli.demo import demo_households
    from shared.auth import mint_token
    from shared.broker import free_port
    from shared.config import CommonSettings
    from shared.launcher import LaunchConfig, SystemLauncher

    backend = "PostgreSQL" if database_urls else "SQLite"
    run = Run(backend=f"{backend}/{args.source}", n=args.n, clients=args.clients)
    var_dir = Path(tempfile.mkdtemp(prefix="jz-bench-sustained-"))
    log = open(var_dir / "system.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    config = LaunchConfig(var_dir=var_dir, ports={s: free_port() for s in ("registry", "benefits", "audit")},
                          broker_port=free_port(), database_urls=database_urls,
                          extra_env={"PYTHONPATH": str(ROOT), "JZ_LOG_LEVEL": "WARNING",
                                     # uvicorn processes per service, each consuming its share of the partitions
                                     # (the launcher keeps 1 on SQLite)
                                     **{f"JZ_{s.upper()}_WORKERS": str(args.workers)
                                        for s in ("registry", "benefits", "audit")}},
                          log_sink=lambda name, line: log.write(f"{name} | {line}\n"))
    launcher = SystemLauncher(config)
    print(f"{backend}: starting the system (var dir {var_dir})", flush=True)
    await launcher.start()
    token = mint_token(CommonSettings(var_dir=var_dir), "admin")
    bodies = []
    for _, body in demo_households(args.n, seed=11):
        body["status"] = "registered"  # every household is evaluated for entitlements
        bodies.append(body)
    try:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
            # warm up: consumer groups joined and the first decision through before the clock starts
            warm = demo_households(args.n + 1, seed=11)[-1][1]
            warm["status"] = "registered"
            warm_ids = await _write_all(client, launcher.url("registry"), [warm], 1, run)
            deadline = time.monotonic() + 120
            while await _counts(launcher, warm_ids) != (1, 1) or any(await _lags(config.bootstrap)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the warm-up household did not get through in 120 s; see {var_dir}")
                await asyncio.sleep(0.5)
            print(f"  system up; writing {args.n} households with {args.clients} clients", flush=True)
            started = time.perf_counter()
            writing = asyncio.create_task(_import_all(client, launcher, args.n, run) if args.source == "import"
                                          else _write_all(client, launcher.url("registry"), bodies, args.clients, run))
            ids: list[str] = []
            last_print = 0.0
            while True:
                await asyncio.sleep(args.sample)
                now = time.perf_counter() - started
                benefits_lag, audit_lag = await _lags(config.bootstrap)
                run.samples.append((now, benefits_lag, audit_lag))
                if writing.done() and not ids:
                    ids = writing.result()
                    run.write_s = time.perf_counter() - started
                if now - last_print >= args.print_every:
                    last_print = now
                    print(f"  t={now:6.1f}s  benefits lag {benefits_lag:6d}  audit lag {audit_lag:6d}"
                          + ("" if writing.done() else "  (writing)"), flush=True)
                if ids and benefits_lag == 0 and audit_lag == 0:
                    stored, audited = await _counts(launcher, ids)
                    # Through means also: benefits' decisions relayed, and audit caught up with them (a run
                    # once ended with 28 of 30 decisions still in benefits' outbox).
                    if stored == len(ids) and audited == len(ids) and await _benefits_unpublished(launcher) == 0 \
                            and await _lags(config.bootstrap) == (0, 0):
                        run.total_s = time.perf_counter() - started
                        run.benefits_snapshots, run.audit_households = stored, audited
                        break
                if now > args.timeout:
                    run.benefits_snapshots, run.audit_households = await _counts(launcher, ids)
                    run.total_s = now
                    print(f"  timed out after {args.timeout:.0f} s", flush=True)
                    break
        run.n = len(ids)
        types = await _scalar(config.database_url("audit"),
                              "SELECT type, count(*) FROM ledger_records WHERE source = 'benefits' GROUP BY type")
        run.decision_types = {t: int(c) for t, c in types}
        run.decision_records = sum(run.decision_types.values())
        payloads = [json.dumps({"household": bodies[i % len(bodies)]}, ensure_ascii=False).encode()
                    for i in range(len(ids))]
        print("  raw ceiling: produce + consume + batched insert of the same payloads", flush=True)
        run.ceiling_s = await _ceiling(config.bootstrap, payloads, backend, config.database_url("audit"), var_dir)
    finally:
        await launcher.shutdown()
        log.close()
    return run


def table(runs: list[Run], workers: int = 1) -> str:
    processes = "one process per service" if workers == 1 else f"{workers} processes per service on PostgreSQL"
    lines = [f"sustained pipeline, {processes}, {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
             f"{'backend/source':<18} {'households':>10} {'writes/s':>9} {'end-to-end/s':>13} {'ceiling/s':>10} "
             f"{'ratio':>6} {'peak lag 1st/2nd half':>22} {'lag':>9} {'events/hh':>13}"]
    for run in runs:
        first, second, verdict = run.lag_trend()
        per = run.decision_records / run.n if run.n else 0.0
        lines.append(f"{run.backend:<18} {run.n:>10} {run.write_rate:>9.1f} {run.end_to_end:>13.1f} "
                     f"{run.ceiling:>10.1f} {run.end_to_end / run.ceiling if run.ceiling else 0:>6.3f} "
                     f"{f'{first}/{second}':>22} {verdict:>9} {per:>13.2f}")
    for run in runs:
        lines.append(f"{run.backend}: {run.n} written ({run.failed_writes} refused) in {run.write_s:.1f} s, all "
                     f"through in {run.total_s:.1f} s; benefits holds {run.benefits_snapshots}/{run.n}, audit "
                     f"{run.audit_households}/{run.n}; ceiling {run.ceiling_s:.2f} s; benefits records in the "
                     f"ledger: {run.decision_records} {json.dumps(run.decision_types, sort_keys=True)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="households to write (default 2000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent registry writers (default 8)")
    parser.add_argument("--source", choices=("http", "import"), default="http",
                        help="http: POST /v1/households one by one (default); import: one ledger import "
                             "(POST /v1/imports) of about N households, as fast as the registry imports")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default=None,
                        help="default: postgres when a URL is given, else sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("JZ_BENCH_POSTGRES_URL"))
    parser.add_argument("--sample", type=float, default=1.0, help="seconds between lag samples")
    parser.add_argument("--print-every", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--quick", action="store_true", help="30 households on SQLite, 4 clients (CI smoke)")
    parser.add_argument("--json", help="also write the runs as JSON here")
    parser.add_argument("--workers", type=int, default=1, help="processes per service (PostgreSQL only)")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.clients, args.sample, args.print_every = min(args.n, 30), 4, 0.5, 5.0
        args.backend = args.backend or "sqlite"
    backends = {"sqlite": ["sqlite"], "postgres": ["postgres"], "both": ["sqlite", "postgres"],
                None: ["postgres"] if args.postgres_url else ["sqlite"]}[args.backend]

    async def go() -> list[Run]:
        runs = []
        for backend in backends:
            if backend == "sqlite":
                runs.append(await measure(args, {}))
                continue
            if not args.postgres_url:
                print("PostgreSQL skipped: pass --postgres-url or set JZ_BENCH_POSTGRES_URL")
                continue
            urls = await _postgres_urls(args.postgres_url)
            try:
                runs.append(await measure(args, urls))
            finally:
                await _drop(args.postgres_url, urls)
        return runs

    runs = asyncio.run(go())
    print(table(runs, args.workers))
    if args.json:
        Path(args.json).write_text(json.dumps([{**run.__dict__, "end_to_end": run.end_to_end, "ceiling": run.ceiling,
                                                "write_rate": run.write_rate, "lag_trend": run.lag_trend()}
                                               for run in runs], indent=2))
    return 0 if all(r.benefits_snapshots == r.n and r.audit_households == r.n for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
