"""A bulk recompute job run as partitions in worker processes (PostgreSQL) ends in exactly the state a
single in-process run reaches: a run killed after some partitions' batches committed resumes each
partition after its last batch, and nothing is lost, recomputed into a second decision or announced twice.
On SQLite the job runs in process whatever the worker count."""
from __future__ import annotations

import datetime as dt
import json
from collections import Counter

from sqlalchemy import select

from bench.bench_recompute import store_snapshots
from bench.datagen import generate_households
from services.benefits.recompute import partitions
from services.benefits.recompute.scope import Scope
from services.benefits.recompute.service import create_job, get_job, run_job, unfinished_jobs
from services.benefits.tables import assessments, entitlement_history, entitlements, outbox, recompute_jobs
from shared.db import make_engine, make_sessionmaker, transaction
from shared.migrate import upgrade_to_head
from shared.policy import default_registry

AS_OF = dt.date(2020, 6, 30)
HOUSEHOLDS = generate_households(24, seed=21)


async def fresh(databases, name: str):
    engine = make_engine(await databases.url(name))
    await upgrade_to_head("benefits", engine)
    await store_snapshots(engine, iter(HOUSEHOLDS))
    return engine, make_sessionmaker(engine)


async def state_of(sessionmaker) -> tuple:
    async with sessionmaker() as session:
        current = sorted((r.household_id, r.program, r.person_key, str(r.amount), json.dumps(r.explanation))
                         for r in (await session.execute(select(entitlements))).all())
        judged = sorted((r.household_id, r.kind, r.result) for r in (await session.execute(select(assessments))).all())
        history = Counter((r.household_id, r.program, r.person_id, r.change, json.dumps(r.after, sort_keys=True))
                          for r in (await session.execute(select(entitlement_history))).all())
        payloads = [json.loads(p) for p in (await session.execute(select(outbox.c.payload))).scalars()]
    assert len({p["id"] for p in payloads}) == len(payloads)
    events = Counter((p["type"], p["subject"], p["sequence"], json.dumps(p["data"].get("household_id"))) for p in payloads)
    return current, judged, history, events


async def test_partitions_killed_and_resumed_end_like_one_run(databases):
    if databases.backend == "sqlite":  # one writer: the job runs in process whatever the worker count
        engine, sessionmaker = await fresh(databases, "benefits")
        try:
            assert not partitions.parallel(sessionmaker, 2)
            async with transaction(sessionmaker) as session:
                job = await create_job(session, Scope(kind="all"), AS_OF, batch_size=30)
            done = await run_job(sessionmaker, job["id"], default_registry(), workers=2)
            assert done["status"] == "done" and done["processed"] == 24 and partitions.LAST_RUN == []
        finally:
            await engine.dispose()
        return
    single_engine, single = await fresh(databases, "benefits_single")
    split_engine, split = await fresh(databases, "benefits_split")
    packs = default_registry()
    try:
        async with transaction(single) as session:
            one = await create_job(session, Scope(kind="all"), AS_OF, batch_size=4)
        done_single = await run_job(single, one["id"], packs, workers=1)
        assert done_single["status"] == "done" and done_single["processed"] == 24 and done_single["decisions"] > 24

        async with transaction(split) as session:
            job = await create_job(session, Scope(kind="all"), AS_OF, batch_size=4)
        assert partitions.parallel(split, 2)
        children = await partitions._claim(split, job["id"], 2)  # split as a run would, then "killed" ...
        assert len(children) == 2
        async with split() as session:
            rows = (await session.execute(select(recompute_jobs).where(recompute_jobs.c.id.in_(children))
                                          .order_by(recompute_jobs.c.total))).all()
            assert [row.total for row in rows] == [12, 12]
            assert await unfinished_jobs(session) == [job["id"]]  # partitions resume with their parent
        # ... after the first partition committed one batch and the second two:
        await run_job(split, children[0], packs, max_batches=1, workers=1)
        await run_job(split, children[1], packs, max_batches=2, workers=1)
        async with split() as session:
            partial = await get_job(session, job["id"])
        assert partial["status"] == "running" and partial["processed"] == 12
        assert partial["scope"] == {"kind": "all", "code": None}  # the API shows the job as requested

        done = await run_job(split, job["id"], packs, workers=2)  # resumed: two worker processes
        assert sorted(run["processed"] for run in partitions.LAST_RUN) == [12, 12]
        assert done["status"] == "done" and done["processed"] == 24 and done["finished_at"]
        assert (done["decisions"], done["households_changed"]) == (done_single["decisions"],
                                                                   done_single["households_changed"])
        resumed_state = await state_of(split)
        assert resumed_state == await state_of(single)
        _, _, history, events = resumed_state
        assert all(count == 1 for count in history.values()), "a decision was recorded twice"
        assert sum(history.values()) and all(count == 1 for count in events.values()), "an event was staged twice"

        async with transaction(split) as session:  # nothing changed since: no decision, no row written
            again = await create_job(session, Scope(kind="all"), AS_OF, batch_size=30)
        rerun = await run_job(split, again["id"], packs, workers=2)  # one batch: too small to split
        assert rerun["status"] == "done" and rerun["processed"] == 24 and rerun["decisions"] == 0
        assert await state_of(split) == resumed_state
    finally:
        await single_engine.dispose()
        await split_engine.dispose()
