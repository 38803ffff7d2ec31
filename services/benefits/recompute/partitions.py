"""A bulk recompute in parallel: the job split into key ranges, each run by a worker process.

On PostgreSQL with more than one worker (``JZ_RECOMPUTE_WORKERS``, or ``run_job(..., workers=N)``), a
fresh job is split into N partitions of the household-id order of its scope, cut so each holds about
the same number of stored snapshots. Each partition is a job row of its own (``scope`` adds ``parent``,
``after`` and ``upto``; the API shows neither the partitions nor these keys) and runs exactly like a
whole job (service.run_batch: one transaction per batch, the snapshots locked, only differences written,
its progress and the parent's counters committed with the batch), in a process of its own with its own
connections: evaluation, diffing, signing and the driver's work use every core, and PostgreSQL
serves the partitions side by side.

Killed at any point (the parent or a worker), a run resumes every unfinished partition after its last
committed batch: nothing is recomputed twice and no decision is lost or announced twice. A partition
that fails marks the parent failed with its error; resuming the parent resumes the partition.
"""
from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
import uuid
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.benefits.recompute import service
from services.benefits.tables import household_snapshots, recompute_jobs
from shared.db import make_engine, make_sessionmaker, transaction
from shared.events import utcnow
from shared.policy import PackRegistry

log = logging.getLogger("benefits.recompute")

WORKERS_ENV = "JZ_RECOMPUTE_WORKERS"
#: A job smaller than this many batches per worker runs in process: a worker's start-up (about a second
#: of imports) would cost more than it saves.
MIN_BATCHES_PER_WORKER = 2
#: Per worker of the last partitioned run in this process: partition id, status, peak RSS, CPU seconds
#: (benchmarks).
LAST_RUN: list[dict[str, Any]] = []


def worker_count(workers: int | None = None) -> int:
    if workers is None:
        try:
            workers = int(os.environ.get(WORKERS_ENV, "1"))
        except ValueError:
            workers = 1
    return max(1, workers)


def parallel(sessionmaker: async_sessionmaker[AsyncSession], workers: int | None) -> bool:
    bind = sessionmaker.kw.get("bind")
    return worker_count(workers) > 1 and bind is not None and bind.dialect.name == "postgresql"


def _partition_of(job_id: str):
    return recompute_jobs.c.scope["parent"].as_string() == job_id


async def _split(session: AsyncSession, job, workers: int) -> list[str]:
    """Partition rows for a fresh job: key ranges with about the same number of snapshots each."""
    scope, _ = service.split_scope(job.scope)
    conditions = scope.conditions()
    total = await session.scalar(select(func.count()).select_from(household_snapshots).where(*conditions)) or 0
    workers = min(workers, max(1, total // (job.batch_size * MIN_BATCHES_PER_WORKER)))
    if workers < 2:
        return []
    ids = select(household_snapshots.c.household_id).where(*conditions).order_by(household_snapshots.c.household_id)
    cuts = [total * k // workers for k in range(workers + 1)]
    bounds: list[str | None] = [None]
    for cut in cuts[1:-1]:  # the last key of each partition but the last
        bounds.append(await session.scalar(ids.offset(cut - 1).limit(1)))
    bounds.append(None)
    now, children = utcnow(), []
    for k in range(workers):
        child = str(uuid.uuid4())
        await session.execute(insert(recompute_jobs).values(
            id=child, scope={**job.scope, "parent": job.id, "after": bounds[k], "upto": bounds[k + 1]},
            status="pending", total=cuts[k + 1] - cuts[k], processed=0, changed=0, decisions=0,
            last_household_id=None, error=None, as_of=job.as_of, batch_size=job.batch_size,
            requested_by=job.requested_by, created_at=now, updated_at=now))
        children.append(child)
    await session.execute(update(recompute_jobs).where(recompute_jobs.c.id == job.id).values(
        status="running", total=total, started_at=job.started_at or now, updated_at=now))
    return children


async def _claim(sessionmaker: async_sessionmaker[AsyncSession], job_id: str, workers: int) -> list[str] | None:
    """The partitions to run (splitting a fresh job); None when the job is not to run in partitions."""
    async with transaction(sessionmaker) as session:
        await session.execute(update(recompute_jobs).where(recompute_jobs.c.id == job_id).values(updated_at=utcnow()))
        job = (await session.execute(select(recompute_jobs).where(recompute_jobs.c.id == job_id))).first()
        if job is None or job.status not in service.UNFINISHED or "parent" in job.scope:
            return None
        rows = (await session.execute(select(recompute_jobs.c.id, recompute_jobs.c.status)
                                      .where(_partition_of(job_id)).order_by(recompute_jobs.c.created_at,
                                                                            recompute_jobs.c.id))).all()
        if not rows:
            if job.processed or job.last_household_id is not None:
                return None  # begun in process before: it finishes the way it started
            return await _split(session, job, workers) or None
        failed = [row.id for row in rows if row.status == "failed"]
        if failed:  # the parent was resumed: so are its failed partitions
            await session.execute(update(recompute_jobs).where(recompute_jobs.c.id.in_(failed))
                                  .values(status="running", error=None, updated_at=utcnow()))
        return [row.id for row in rows if row.status != "done"]


async def _signing_key(sessionmaker: async_sessionmaker[AsyncSession]) -> bytes | None:
    """The raw Ed25519 key events staged in this database are signed with (None: the worker's own
    configuration decides, as a script's would)."""
    from cryptography.hazmat.primitives import serialization
    from shared.signing import SigningConfigError, signer_for
    try:
        async with sessionmaker() as session:
            signer = signer_for(session, "benefits")
    except SigningConfigError:
        return None
    return signer.private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                            serialization.NoEncryption())


async def _run_partition(url: str, job_id: str, packs: PackRegistry | None, key: bytes | None) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        if key is not None:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            from shared.signing import EventSigner, bind_signer
            bind_signer(engine, EventSigner.from_private_key("benefits", Ed25519PrivateKey.from_private_bytes(key)))
        job = await service.run_job(make_sessionmaker(engine), job_id, packs, workers=1, analyze=False)
        return {"job": job_id, "status": job["status"], "error": job["error"], "processed": job["processed"]}
    finally:
        await engine.dispose()


def _worker(url: str, job_id: str, packs: PackRegistry | None, key: bytes | None, conn) -> None:
    """A worker process's entry point: run one partition, report to the parent through ``conn``."""
    try:
        result = asyncio.run(_run_partition(url, job_id, packs, key))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the job with it
        result = {"job": job_id, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["peak_rss_mb"], result["cpu_seconds"] = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    conn.send(result)
    conn.close()


async def _wait(process, conn) -> dict[str, Any]:
    while process.is_alive() and not conn.poll():
        await asyncio.sleep(0.2)
    try:
        result = conn.recv() if conn.poll() else None
    except EOFError:  # died before reporting
        result = None
    await asyncio.to_thread(process.join)
    return result or {"status": "failed", "error": f"worker exited with code {process.exitcode}"}


async def run_partitioned(sessionmaker: async_sessionmaker[AsyncSession], job_id: str, packs: PackRegistry | None,
                          workers: int) -> dict[str, Any] | None:
    """Run (or resume) ``job_id`` as partitions in ``workers`` processes; None when it runs in process
    instead (a partition itself, a job begun in process, one too small to split, or nothing to run)."""
    children = await _claim(sessionmaker, job_id, workers)
    if children is None:
        return None
    url = sessionmaker.kw["bind"].url.render_as_string(hide_password=False)
    key = await _signing_key(sessionmaker)
    context = multiprocessing.get_context("spawn")  # never fork a process with an event loop and threads
    started = []
    try:
        for child in children:
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(target=_worker, args=(url, child, packs, key, sender),
                                      name=f"recompute:{child}", daemon=True)
            process.start()
            sender.close()
            started.append((child, process, receiver))
        results = await asyncio.gather(*(_wait(process, receiver) for _, process, receiver in started))
    except BaseException:
        for _, process, _ in started:  # a batch is one transaction: a killed worker loses nothing
            if process.is_alive():
                process.terminate()
        for _, process, _ in started:
            process.join(5)
        raise
    LAST_RUN[:] = [{"partition": child, **result} for (child, _, _), result in zip(started, results)]
    failed = [(child, result) for (child, _, _), result in zip(started, results) if result.get("status") != "done"]
    async with transaction(sessionmaker) as session:
        now = utcnow()
        if failed:
            child, result = failed[0]
            await session.execute(update(recompute_jobs).where(recompute_jobs.c.id == child,
                                                               recompute_jobs.c.status.in_(service.UNFINISHED))
                                  .values(status="failed", error=result.get("error"), updated_at=now))
            await session.execute(update(recompute_jobs).where(recompute_jobs.c.id == job_id).values(
                status="failed", updated_at=now,
                error=f"partition {child}: {result.get('error') or result.get('status')}"[:4000]))
        else:
            await session.execute(update(recompute_jobs).where(recompute_jobs.c.id == job_id).values(
                status="done", finished_at=now, updated_at=now))
    if not failed:
        await service.analyze_after(sessionmaker, job_id)
    async with sessionmaker() as session:
        return await service.get_job(session, job_id)
