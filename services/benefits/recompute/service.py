"""Bulk recompute after a policy change: a resumable job over the stored snapshots.

The job walks ``household_snapshots`` in household-id order (keyset pagination), one
transaction per batch: the batch's stored entitlements and assessments are read with
one query per table, every household is evaluated, only differences are written and
announced, and the job row's progress (``last_household_id``) commits with them. A job
stopped at any point (crash, deploy, Ctrl-C) resumes after its last committed batch and
never re-announces a decision: a re-run batch would find nothing changed anyway.

Each batch begins by updating the job row, which takes its write lock on PostgreSQL and
SQLite alike, so two processes resuming the same job take turns batch by batch.

In parallel (PostgreSQL, ``workers`` > 1: ``JZ_RECOMPUTE_WORKERS`` or the ``workers`` argument), a
fresh job is split into that many partitions of the household-id order, each a job row of its own
(``scope`` carries ``parent``, ``after`` and ``upto``), run by a worker process with its own
connections. A partition is an ordinary job over its key range: one transaction per batch, its
progress committed with the batch, and the parent's counters added to in the same transaction, so
the parent's ``processed``/``changed``/``decisions`` are exact at every commit. A killed run resumes
each unfinished partition after its last committed batch (``partitions.py``).
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import date
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.benefits.entitlements.service import recompute_households
from shared.policy import PackRegistry
from services.benefits.recompute.scope import Scope
from services.benefits.tables import household_snapshots, recompute_jobs
from shared.db import transaction
from shared.migrate import analyze_tables
from shared.events import utcnow
from shared.clock import today_in_china

log = logging.getLogger("benefits.recompute")

DEFAULT_BATCH_SIZE = 500
UNFINISHED = ("pending", "running")
#: Keys a partition's stored scope adds to the job's scope: the parent job, and its key range
#: (``after`` exclusive, ``upto`` inclusive; None = open).
PARTITION_KEYS = ("parent", "after", "upto")


def split_scope(stored: dict) -> tuple[Scope, dict[str, Any]]:
    """The job's scope and, for a partition, its parent and key range (empty for a whole job)."""
    return (Scope.model_validate({k: v for k, v in stored.items() if k not in PARTITION_KEYS}),
            {k: stored[k] for k in PARTITION_KEYS if k in stored})


def job_view(row) -> dict[str, Any]:
    return {
        "id": row.id, "scope": {k: v for k, v in row.scope.items() if k not in PARTITION_KEYS}, "as_of": row.as_of.isoformat() if row.as_of else None,
        "status": row.status, "total": row.total, "processed": row.processed,
        "households_changed": row.changed, "decisions": row.decisions, "batch_size": row.batch_size,
        "last_household_id": row.last_household_id, "error": row.error, "requested_by": row.requested_by,
        "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat(),
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }


async def create_job(session: AsyncSession, scope: Scope, as_of: date, *, batch_size: int = DEFAULT_BATCH_SIZE,
                     requested_by: str | None = None) -> dict[str, Any]:
    total = await session.scalar(select(func.count()).select_from(household_snapshots).where(*scope.conditions()))
    now = utcnow()
    job_id = str(uuid.uuid4())
    await session.execute(insert(recompute_jobs).values(
        id=job_id, scope=scope.model_dump(), status="pending", total=total or 0, processed=0, changed=0,
        decisions=0, last_household_id=None, error=None, as_of=as_of, batch_size=batch_size,
        requested_by=requested_by, created_at=now, updated_at=now))
    return await get_job(session, job_id)


async def get_job(session: AsyncSession, job_id: str) -> dict[str, Any] | None:
    row = (await session.execute(select(recompute_jobs).where(recompute_jobs.c.id == job_id))).first()
    return job_view(row) if row else None


async def unfinished_jobs(session: AsyncSession) -> list[str]:
    """Unfinished jobs as requested (a partition is resumed by its parent's run, never on its own)."""
    rows = (await session.execute(select(recompute_jobs.c.id, recompute_jobs.c.scope)
                                  .where(recompute_jobs.c.status.in_(UNFINISHED))
                                  .order_by(recompute_jobs.c.created_at))).all()
    return [row.id for row in rows if "parent" not in row.scope]


async def run_batch(session: AsyncSession, job_id: str, packs: PackRegistry | None) -> bool:
    """Process the next batch of the job; False when the job is finished (or not runnable)."""
    now = utcnow()
    await session.execute(update(recompute_jobs).where(recompute_jobs.c.id == job_id).values(updated_at=now))
    job = (await session.execute(select(recompute_jobs).where(recompute_jobs.c.id == job_id))).first()
    if job is None or job.status not in UNFINISHED:
        return False
    scope, partition = split_scope(job.scope)
    query = (select(household_snapshots.c.household_id, household_snapshots.c.snapshot)
             .where(*scope.conditions()).order_by(household_snapshots.c.household_id).limit(job.batch_size))
    after = job.last_household_id if job.last_household_id is not None else partition.get("after")
    if after is not None:
        query = query.where(household_snapshots.c.household_id > after)
    if partition.get("upto") is not None:
        query = query.where(household_snapshots.c.household_id <= partition["upto"])
    # Locked until the batch commits: a registry event applied meanwhile would otherwise get its newer
    # decisions into the outbox before this batch's older ones (ledger order per household is version order).
    rows = (await session.execute(query.with_for_update())).all()
    if not rows:
        await session.execute(update(recompute_jobs).where(recompute_jobs.c.id == job_id)
                              .values(status="done", finished_at=now, started_at=job.started_at or now))
        return False
    result = await recompute_households(session, [row.snapshot for row in rows], job.as_of or today_in_china(),
                                        cause_event_id=f"recompute:{job_id}",
                                        actor=job.requested_by or "benefits-recompute", packs=packs,
                                        trigger="threshold_change")
    await session.execute(update(recompute_jobs).where(recompute_jobs.c.id == job_id).values(
        status="running", started_at=job.started_at or now, processed=recompute_jobs.c.processed + len(rows),
        changed=recompute_jobs.c.changed + result.households_changed,
        decisions=recompute_jobs.c.decisions + result.decisions, last_household_id=rows[-1].household_id))
    if partition.get("parent"):  # the parent's totals move with the batch, in its transaction
        await session.execute(update(recompute_jobs).where(recompute_jobs.c.id == partition["parent"]).values(
            updated_at=now, processed=recompute_jobs.c.processed + len(rows),
            changed=recompute_jobs.c.changed + result.households_changed,
            decisions=recompute_jobs.c.decisions + result.decisions))
    return True


async def run_job(sessionmaker: async_sessionmaker[AsyncSession], job_id: str, packs: PackRegistry | None = None,
                  *, max_batches: int | None = None, on_batch=None, workers: int | None = None,
                  analyze: bool = True) -> dict[str, Any]:
    """Run (or resume) a job until it is done; ``max_batches`` stops early, leaving it resumable.
    ``workers`` > 1 (default ``JZ_RECOMPUTE_WORKERS``, else 1) runs it as that many partitions in worker
    processes on PostgreSQL (``partitions.run_partitioned``); SQLite and ``max_batches`` run in process."""
    from services.benefits.recompute import partitions
    if max_batches is None and partitions.parallel(sessionmaker, workers):
        done = await partitions.run_partitioned(sessionmaker, job_id, packs, partitions.worker_count(workers))
        if done is not None:
            return done
    batches = 0
    try:
        while max_batches is None or batches < max_batches:
            async with transaction(sessionmaker) as session:
                more = await run_batch(session, job_id, packs)
            if not more:
                if batches and analyze:  # this run wrote the job's last batches: fresh statistics for what it filled
                    await analyze_after(sessionmaker, job_id)
                break
            batches += 1
            if on_batch is not None:
                async with sessionmaker() as session:
                    on_batch(await get_job(session, job_id))
            await asyncio.sleep(0)  # let requests in between batches
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - recorded on the job; resumable after the cause is fixed
        log.exception("recompute job %s failed", job_id)
        async with transaction(sessionmaker) as session:
            await session.execute(update(recompute_jobs).where(recompute_jobs.c.id == job_id).values(
                status="failed", error=f"{type(exc).__name__}: {exc}"[:4000], updated_at=utcnow()))
    async with sessionmaker() as session:
        return await get_job(session, job_id)


#: What a recompute fills (the outbox is drained by the relay: its statistics would be stale at once).
FILLED_TABLES = ("entitlements", "assessments", "entitlement_history")


async def analyze_after(sessionmaker: async_sessionmaker[AsyncSession], job_id: str) -> None:
    """ANALYZE the tables a finished job filled (PostgreSQL; autovacuum's rule, so a job that changed
    little analyses nothing): a bulk recompute can multiply their rows, and plans made on the old
    statistics (or none) would scan them whole."""
    async with sessionmaker() as session:
        job = await get_job(session, job_id)
    if job and job["status"] == "done":
        try:
            await analyze_tables(sessionmaker, FILLED_TABLES, changed_rows=job["decisions"])
        except Exception:  # noqa: BLE001 - statistics are an optimisation: the job itself is done
            log.warning("ANALYZE after recompute job %s failed", job_id, exc_info=True)


async def resume_failed_job(session: AsyncSession, job_id: str) -> bool:
    """Put a failed job back in the queue; it continues after its last committed batch."""
    result = await session.execute(update(recompute_jobs).where(recompute_jobs.c.id == job_id,
                                                                recompute_jobs.c.status == "failed")
                                   .values(status="running", error=None, updated_at=utcnow()))
    return bool(result.rowcount)


class JobRunner:
    """Runs jobs as background tasks of the service; started jobs survive restarts via the table."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], packs: PackRegistry | None) -> None:
        self.sessionmaker, self.packs = sessionmaker, packs
        self.tasks: dict[str, asyncio.Task] = {}

    def start(self, job_id: str) -> None:
        if job_id in self.tasks and not self.tasks[job_id].done():
            return
        task = asyncio.create_task(run_job(self.sessionmaker, job_id, self.packs), name=f"recompute:{job_id}")
        self.tasks[job_id] = task
        task.add_done_callback(lambda _: self.tasks.pop(job_id, None))

    async def resume_unfinished(self) -> list[str]:
        async with self.sessionmaker() as session:
            job_ids = await unfinished_jobs(session)
        for job_id in job_ids:
            log.info("resuming recompute job %s", job_id)
            self.start(job_id)
        return job_ids

    async def stop(self) -> None:
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
