"""Partner decisions take turns to write on SQLite (issue 15): from a decision's first write to its commit no
other decision of the process writes, so none waits in SQLite's busy handler (up to 100 ms a try). Reads are not
held up, and on PostgreSQL nothing is locked here."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

from sqlalchemy import Column, Integer, MetaData, Table, insert, select

from services.benefits.partners.service import decision_transaction, take_write_turn
from shared.db import make_engine, make_sessionmaker

metadata = MetaData()
rows = Table("rows", metadata, Column("id", Integer, primary_key=True))


async def test_writes_take_turns_until_the_commit_and_reads_do_not_wait(tmp_path):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'gate.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    state = SimpleNamespace(sessionmaker=make_sessionmaker(engine))
    steps: list[str] = []
    first_wrote = asyncio.Event()

    async def first() -> None:
        async with decision_transaction(state) as session:
            await take_write_turn(session)
            await session.execute(insert(rows).values(id=1))
            steps.append("first wrote")
            first_wrote.set()
            await asyncio.sleep(0.2)  # a slow decision: the other one must not write meanwhile
            steps.append("first commits")

    async def second() -> None:
        await first_wrote.wait()
        async with decision_transaction(state) as session:
            await session.scalar(select(rows.c.id))  # a read: no turn needed
            steps.append("second read")
            await take_write_turn(session)
            committed = (await session.execute(select(rows.c.id))).scalars().all()
            steps.append(f"second writes after {committed}")
            await session.execute(insert(rows).values(id=2))

    try:
        await asyncio.wait_for(asyncio.gather(first(), second()), 10)
        assert steps == ["first wrote", "second read", "first commits", "second writes after [1]"]
        assert not state.sqlite_writer.locked()
        async with state.sessionmaker() as session:
            assert (await session.execute(select(rows.c.id).order_by(rows.c.id))).scalars().all() == [1, 2]
    finally:
        await engine.dispose()


async def test_a_failed_decision_gives_its_turn_back(tmp_path):
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'gate.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    state = SimpleNamespace(sessionmaker=make_sessionmaker(engine))
    try:
        try:
            async with decision_transaction(state) as session:
                await take_write_turn(session)
                await session.execute(insert(rows).values(id=1))
                raise RuntimeError("the decision failed")
        except RuntimeError:
            pass
        assert not state.sqlite_writer.locked()
        async with decision_transaction(state) as session:  # rolled back: id 1 is free again
            await take_write_turn(session)
            await session.execute(insert(rows).values(id=1))
    finally:
        await engine.dispose()
