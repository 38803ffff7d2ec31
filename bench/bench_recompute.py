"""Bulk recompute throughput (households/s) on SQLite and PostgreSQL, against the pure engine.

    .venv/bin/python -m bench.bench_recompute [--n 100000] [--backend sqlite|postgres|both]
                                              [--postgres-url postgresql+asyncpg://postgres@127.0.0.1/postgres]

For each backend: a fresh database migrated to head; ``household_snapshots`` seeded in bulk
from ``bench.datagen`` (streamed in chunks, never all in memory); then three recompute jobs of
scope ``all``, timed end to end (the same code path as ``POST /v1/recompute``):

1. initial  - nothing stored yet: every entitlement and assessment is a decision;
2. no-change - same packs again: must emit 0 decisions and write no entitlement rows;
3. policy   - ``nankang-2020`` with ``crop_livestock.household_cap`` 8000 -> 5000: decisions only
              for the households the cap now binds.

Baseline, measured in the same run on the same households: the pure engine alone (parse,
evaluate, serialise to JSON: what the job does per household before touching the database), both
as ``evaluate(...).model_dump(mode="json")`` and as ``evaluate_json`` (the same dict, faster).
Households are generated in chunks before each timed stretch, for the baseline and for the seed
alike: no timed figure includes making up test data (the jobs read the stored snapshots). Each job
prints its ratio to the baseline (recompute households/s ÷ baseline households/s).

Scale mode (PostgreSQL only), for the issue's target "a policy change over 1,000,000 households in
<= 10 minutes, <= 512 MiB RSS per process, 1M costing <= 11 x 100k":

    .venv/bin/python -m bench.bench_recompute --scale --sizes 100000,1000000 --workers 2 \
        --postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres

For each size, on a fresh database: the snapshots seeded in bulk, an initial job, then a policy change
(``double_rice_oil.household_cap`` 3000 -> 2400, which changes about a third of the households; the
cap-5000 change of the default mode changes about 80 %), each run as ``--workers`` partitions in
worker processes (recompute/partitions.py). Printed: households/s, wall time, the peak RSS of this
process, of every worker and of every PostgreSQL backend serving the database (VmHWM from /proc,
sampled every second), and the cost ratio of each size to the first (seconds per size ratio against
the households ratio: 1.0 = linear).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import os
import random
import resource
import time
import uuid
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url

from bench.backends import admin_sql, on_backends
from bench.datagen import generate_household
from services.benefits.engine import evaluate, evaluate_json
from shared.policy import default_registry
from services.benefits.recompute.scope import Scope
from services.benefits.recompute import partitions
from services.benefits.recompute.service import create_job, run_job
from services.benefits.tables import entitlement_history, entitlements, household_snapshots, outbox
from shared.db import make_engine, make_sessionmaker, transaction
from shared.migrate import upgrade_to_head

AS_OF = dt.date(2020, 6, 30)
SEED = 42
CHUNK = 2000


def stream_households(n: int, seed: int = SEED):
    """The same households as ``generate_households(n, seed)``, one at a time."""
    rng = random.Random(seed)
    for index in range(n):
        yield generate_household(rng, index)


def household_chunks(n: int, seed: int = SEED, chunk: int = CHUNK):
    """``stream_households(n, seed)`` as lists of ``chunk``: generated before a caller times its work on
    one, so generation stays out of every timed figure (and never all in memory)."""
    households = stream_households(n, seed)
    while batch := list(itertools.islice(households, chunk)):
        yield batch


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def line(label: str, count: int, seconds: float, extra: str = "") -> float:
    rate = count / seconds if seconds else float("inf")
    print(f"  {label:<34} {count:>8} in {seconds:8.2f}s = {rate:8.0f} households/s {extra}", flush=True)
    return rate


def baseline(n: int, which: str = "model_dump") -> float:
    """Households/s of the pure engine (evaluate + JSON) over the benchmark's households, generated
    chunk by chunk before each timed stretch. ``which``: ``model_dump`` (``evaluate(...).model_dump(
    mode="json")``, what the job used) or ``evaluate_json`` (the same dict without pydantic per condition)."""
    registry = default_registry()
    if which == "evaluate_json":
        work, label = (lambda h: evaluate_json(h, AS_OF, registry)), "baseline: pure engine (evaluate_json)"
    else:
        work, label = (lambda h: evaluate(h, AS_OF, registry).model_dump(mode="json")), \
            "baseline: pure engine (eval+json)"
    for household in stream_households(200, seed=SEED + 1):  # warm-up: pack resolution, serializers
        work(household)
    seconds, documents = 0.0, 0
    for households in household_chunks(n):
        start = time.perf_counter()
        for household in households:
            documents += bool(work(household))
        seconds += time.perf_counter() - start
    return line(label, documents, seconds)


async def seed(engine, n: int) -> float:
    return line("seed household_snapshots", n, await store_snapshots(engine, stream_households(n)))


async def store_snapshots(engine, households, chunk: int = CHUNK) -> float:
    """Benefits' stored snapshots of ``households`` (an iterator: never all in memory), in chunks; the
    seconds spent storing them (each chunk is generated before its insert is timed)."""
    sessionmaker = make_sessionmaker(engine)
    seconds, now = 0.0, dt.datetime.now(dt.timezone.utc)
    households = iter(households)
    while batch := list(itertools.islice(households, chunk)):
        rows = [{"household_id": household["id"], "version": household["version"],
                 "region_code": household["region_code"], "village_code": household["village"]["code"],
                 "township_code": household["village"]["township_code"], "status": household["status"],
                 "snapshot": household, "updated_at": now} for household in batch]
        start = time.perf_counter()
        async with transaction(sessionmaker) as session:
            await session.execute(insert(household_snapshots), rows)
        seconds += time.perf_counter() - start
    return seconds


async def timed_job(engine, label: str, packs, batch_size: int, workers: int = 1) -> dict:
    sessionmaker = make_sessionmaker(engine)
    async with transaction(sessionmaker) as session:
        job = await create_job(session, Scope(kind="all"), AS_OF, batch_size=batch_size, requested_by="bench")
    start = time.perf_counter()
    job = await run_job(sessionmaker, job["id"], packs, workers=workers)
    seconds = time.perf_counter() - start
    assert job["status"] == "done", job
    job["seconds"] = seconds
    job["rate"] = line(label, job["processed"], seconds,
                       f"({job['households_changed']} households changed, {job['decisions']} decisions)")
    return job


async def run_backend(name: str, url: str, n: int, batch_size: int, base_rate: float) -> dict:
    print(f"\n{name}: {make_url(url).render_as_string(hide_password=True)}", flush=True)
    engine = make_engine(url)
    try:
        await upgrade_to_head("benefits", engine)
        await seed(engine, n)
        packs = default_registry()
        initial = await timed_job(engine, "recompute 1: initial (all new)", packs, batch_size)
        unchanged = await timed_job(engine, "recompute 2: no change", packs, batch_size)
        assert unchanged["decisions"] == 0, unchanged
        changed_packs = packs.with_overrides("nankang-2020", {"crop_livestock.household_cap": Decimal(5000)})
        policy = await timed_job(engine, "recompute 3: policy change (cap 5000)", changed_packs, batch_size)
        async with engine.connect() as conn:
            counts = {t.name: await conn.scalar(select(func.count()).select_from(t))
                      for t in (entitlements, entitlement_history, outbox)}
        print(f"  rows now: {counts}; peak RSS {peak_rss_mb():.0f} MB", flush=True)
        print(f"  ratios, recompute households/s / baseline households/s ({base_rate:.0f}/s, pure engine on "
              "pre-generated households):")
        for label, job in (("initial", initial), ("no change", unchanged), ("policy change", policy)):
            print(f"    {label:<13} {job['rate']:8.0f}/s / {base_rate:.0f}/s = {job['rate'] / base_rate:.2f}")
        return {"initial": initial, "unchanged": unchanged, "policy": policy}
    finally:
        await engine.dispose()


async def main(n: int, backends: list[str], postgres_url: str | None, batch_size: int) -> None:
    print(f"bulk recompute benchmark: {n} households, batch {batch_size}, as of {AS_OF}", flush=True)
    base_rate = baseline(n)
    results = await on_backends(backends, postgres_url, "benefits",
                                lambda name, url: run_backend(name, url, n, batch_size, base_rate))
    print(f"\nsummary ({n} households; baseline {base_rate:.0f}/s, pure engine, data generated outside the "
          "timing; ratio = recompute/baseline):")
    for backend, jobs in results.items():
        print("  " + backend.ljust(11) + "  ".join(
            f"{label}: {job['rate']:.0f}/s ({job['decisions']} decisions, ratio {job['rate'] / base_rate:.2f})"
            for label, job in jobs.items()))


# --- scale mode ------------------------------------------------------------------------------------

POLICY_CHANGE = ("nankang-2020", "double_rice_oil.household_cap", Decimal(2400))  # 3000 in the pack


class BackendMemory:
    """Peak RSS (VmHWM) and CPU time of the PostgreSQL backends serving one database, from /proc."""

    TICKS = os.sysconf("SC_CLK_TCK")

    def __init__(self, database: str) -> None:
        self.database, self.peaks, self.cpu, self.cpu_start = database, {}, {}, {}

    def sample(self) -> None:
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                cmdline = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if not cmdline.startswith("postgres:") or f" {self.database} " not in cmdline:
                    continue
                text = status.read_text()
                fields = (status.parent / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(status.parent.name)
            self.cpu[pid] = (int(fields[11]) + int(fields[12])) / self.TICKS  # utime + stime
            for row in text.splitlines():
                if row.startswith("VmHWM:"):
                    self.peaks[pid] = max(self.peaks.get(pid, 0), int(row.split()[1]) / 1024)

    async def run(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(1)

    def take(self) -> tuple[list[float], float]:
        """Peak RSS per backend and the CPU seconds backends used since the last take (then reset)."""
        peaks, self.peaks = sorted(self.peaks.values(), reverse=True), {}
        cpu = sum(seconds - self.cpu_start.get(pid, 0.0) for pid, seconds in self.cpu.items())
        self.cpu_start = dict(self.cpu)
        return peaks, cpu


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def scale_job(engine, label: str, packs, batch_size: int, workers: int, memory: BackendMemory) -> dict:
    memory.sample()
    memory.take()
    own = cpu_seconds()
    job = await timed_job(engine, label, packs, batch_size, workers)
    memory.sample()
    runs = partitions.LAST_RUN if workers > 1 else []
    job["worker_rss"] = [round(run["peak_rss_mb"]) for run in runs]
    peaks, backend_cpu = memory.take()
    job["backend_rss"] = [round(mb) for mb in peaks]
    # CPU seconds of everything the job ran on (this process, the workers, PostgreSQL's backends): unlike
    # the wall time, it does not grow when other work shares the machine.
    job["cpu"] = {"bench": cpu_seconds() - own, "workers": sum(run.get("cpu_seconds", 0) for run in runs),
                  "postgres": backend_cpu}
    cpu = sum(job["cpu"].values())
    print(f"    wall {job['seconds']:.1f}s; peak RSS: this process {peak_rss_mb():.0f} MB, workers "
          f"{job['worker_rss'] or '-'} MB, PostgreSQL backends {job['backend_rss'][:6]} MB; CPU "
          + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in job["cpu"].items())
          + f" = {cpu * 1000 / job['processed']:.2f} ms per household", flush=True)
    partitions.LAST_RUN.clear()
    return job


async def _seed_decided_range(url: str, after: str | None, upto: str | None, packs) -> int:
    """Store the current entitlements and assessments of the snapshots in (after, upto] as a finished
    job would have left them (``diff_household`` against nothing stored), without decisions: the state a
    policy change starts from, minus the history and events the initial computation also wrote."""
    from services.benefits.entitlements.service import diff_household, persist_changes
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    written = 0
    try:
        while True:
            async with transaction(sessionmaker) as session:
                query = select(household_snapshots.c.household_id, household_snapshots.c.snapshot) \
                    .order_by(household_snapshots.c.household_id).limit(CHUNK)
                if after is not None:
                    query = query.where(household_snapshots.c.household_id > after)
                if upto is not None:
                    query = query.where(household_snapshots.c.household_id <= upto)
                rows = (await session.execute(query)).all()
                if not rows:
                    return written
                now = dt.datetime.now(dt.timezone.utc)
                changes = []
                for row in rows:
                    change = diff_household(row.snapshot, evaluate_json(row.snapshot, AS_OF, packs), [], [],
                                            cause_event_id=None, actor="bench-seed", now=now)
                    change.history, change.events = [], []
                    changes.append(change)
                await persist_changes(session, changes)
            written += len(rows)
            after = rows[-1].household_id
    finally:
        await engine.dispose()


def _seed_decided_worker(url: str, after: str | None, upto: str | None, packs) -> int:
    return asyncio.run(_seed_decided_range(url, after, upto, packs))


async def seed_decided(engine, url: str, n: int, packs, workers: int) -> float:
    """The decided state of every stored snapshot, ``workers`` processes over key ranges (seconds)."""
    import concurrent.futures
    import multiprocessing
    start = time.perf_counter()
    if n < 5_000:  # a worker's start-up would cost more than it saves (the CI smoke)
        written = await _seed_decided_range(url, None, None, packs)
        assert written == n, written
        return line("seed decided state (no events)", n, time.perf_counter() - start)
    async with engine.connect() as conn:
        ids = select(household_snapshots.c.household_id).order_by(household_snapshots.c.household_id)
        bounds = [None] + [await conn.scalar(ids.offset(n * k // workers - 1).limit(1)) for k in range(1, workers)] \
            + [None]
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        loop = asyncio.get_running_loop()
        counts = await asyncio.gather(*(loop.run_in_executor(pool, _seed_decided_worker, url, bounds[k], bounds[k + 1],
                                                             packs) for k in range(workers)))
    assert sum(counts) == n, counts
    return line("seed decided state (no events)", n, time.perf_counter() - start)


async def scale_size(postgres_url: str, n: int, batch_size: int, workers: int, initial_job: bool = True) -> dict:
    database = f"jz_bench_scale_{uuid.uuid4().hex[:8]}"
    await admin_sql(postgres_url, f'CREATE DATABASE "{database}"')
    memory = BackendMemory(database)
    sampler = asyncio.create_task(memory.run())
    url = make_url(postgres_url).set(database=database).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        print(f"\n{n} households on PostgreSQL ({database}), {workers} worker(s), batch {batch_size}", flush=True)
        await upgrade_to_head("benefits", engine)
        await seed(engine, n)
        packs = default_registry()
        if initial_job:
            initial = await scale_job(engine, "initial (all new)", packs, batch_size, workers, memory)
        else:
            await seed_decided(engine, url, n, packs, workers)
            initial = None
        pack, parameter, value = POLICY_CHANGE
        changed = packs.with_overrides(pack, {parameter: value})
        policy = await scale_job(engine, f"policy change ({parameter} {value})", changed, batch_size, workers, memory)
        return {"n": n, "initial": initial, "policy": policy}
    finally:
        sampler.cancel()
        await engine.dispose()
        await admin_sql(postgres_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def scale(postgres_url: str, sizes: list[int], batch_size: int, workers: int, baseline_n: int,
                initial_job: bool = True, json_path: str | None = None) -> None:
    print(f"bulk recompute at scale: sizes {sizes}, {workers} worker(s), batch {batch_size}, as of {AS_OF}",
          flush=True)
    base_old = baseline(baseline_n)
    base_new = baseline(baseline_n, "evaluate_json")
    results = []
    for n in sizes:
        results.append(await scale_size(postgres_url, n, batch_size, workers, initial_job))
    first = results[0]
    print(f"\nsummary (PostgreSQL, {workers} worker(s); same-run pure engine: {base_old:.0f}/s eval+model_dump, "
          f"{base_new:.0f}/s evaluate_json, one process):")
    print(f"  {'households':>10} {'job':<14} {'seconds':>9} {'households/s':>13} {'decisions':>10} "
          f"{'changed':>8} {'vs engine':>9} {'cost vs first':>14} {'CPU ms/household':>17}")
    labels = ("initial", "policy") if initial_job else ("policy",)
    for result in results:
        for label in labels:
            job = result[label]
            cost = (job["seconds"] / first[label]["seconds"]) / (result["n"] / first["n"])
            print(f"  {result['n']:>10} {label:<14} {job['seconds']:>9.1f} {job['rate']:>13.0f} {job['decisions']:>10} "
                  f"{job['households_changed']:>8} {job['rate'] / base_new:>9.2f} "
                  f"{job['seconds'] / first[label]['seconds']:>6.2f}x ({cost:.2f}) "
                  f"{sum(job['cpu'].values()) * 1000 / job['processed']:>17.2f}")
    for result in results:
        rss = [result[label]["worker_rss"] for label in labels]
        backends = [max(result[label]["backend_rss"] or [0]) for label in labels]
        print(f"  peak RSS at {result['n']}: bench process {peak_rss_mb():.0f} MB (whole run), workers {rss} MB, "
              f"largest PostgreSQL backend {backends} MB")
    if json_path:  # for bench.all's one table
        with open(json_path, "w", encoding="utf-8") as out:
            json.dump({"workers": workers, "engine_eval_json_rate": base_new, "engine_model_dump_rate": base_old,
                       "bench_rss_mb": peak_rss_mb(), "sizes": results}, out, indent=1, default=str)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="households (default 100000)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--postgres-url", default=os.environ.get("JZ_BENCH_POSTGRES_URL")
                        or os.environ.get("JZ_TEST_POSTGRES_URL"))
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--scale", action="store_true", help="scale mode: --sizes on PostgreSQL, in partitions")
    parser.add_argument("--sizes", default="100000,1000000", help="scale mode: households per run (comma-separated)")
    parser.add_argument("--workers", type=int, default=2, help="scale mode: worker processes (partitions)")
    parser.add_argument("--baseline-n", type=int, default=20_000, help="scale mode: households in the baseline")
    parser.add_argument("--no-initial-job", action="store_true",
                        help="scale mode: store the decided state directly (no events) instead of timing an initial job")
    parser.add_argument("--json", help="scale mode: also write the sizes' results and the baselines to this file")
    args = parser.parse_args()
    if args.scale:
        if not args.postgres_url:
            parser.error("--scale needs --postgres-url (or JZ_BENCH_POSTGRES_URL)")
        asyncio.run(scale(args.postgres_url, [int(size) for size in args.sizes.split(",")], args.batch_size,
                          args.workers, args.baseline_n, not args.no_initial_job, args.json))
    else:
        chosen = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
        asyncio.run(main(args.n, chosen, args.postgres_url, args.batch_size))
