"""The relay backs off while its outbox stays empty, and a commit still wakes it at once (issue 15): PostgreSQL
through NOTIFY, SQLite through the database file changing. No broker: the passes are counted, not published."""
from __future__ import annotations

import asyncio
import time

from shared.config import TOPIC_REGISTRY, CommonSettings
from shared.db import make_engine, make_sessionmaker, transaction
from shared.events import Envelope
from shared.migrate import upgrade_to_head
from shared.outbox import add_to_outbox
from shared.outbox_relay import OutboxRelay
from services.registry.tables import outbox


class CountingRelay(OutboxRelay):
    """Counts passes; publishes nothing (the pending rows are what it would publish)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.passes: list[tuple[float, int]] = []

    async def publish_pending(self) -> int:
        self.passes.append((time.monotonic(), await self.pending()))
        return 0


async def test_idle_relay_backs_off_and_a_commit_wakes_it(databases, tmp_path):
    engine = make_engine(await databases.url("registry"))
    await upgrade_to_head("registry", engine)
    settings = CommonSettings(var_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", outbox_poll_interval_s=0.05,
                              outbox_idle_poll_max_s=0.8)
    relay = CountingRelay(engine, settings, name="relay-test")
    relay._unapplied = False  # as after a sweep that found everything applied
    running = asyncio.create_task(relay.run(drain_on_stop=False))
    try:
        await asyncio.sleep(2.5)
        idle_passes = len(relay.passes)
        # Polling every 50 ms would be about 50 passes; backing off to 0.8 s leaves a handful.
        assert 2 <= idle_passes <= 12, relay.passes
        # Timed from before the commit: the wake-up can start a pass before this coroutine runs again (on a
        # loaded machine the pass that saw the row began before a clock read after the commit).
        committing = time.monotonic()
        async with transaction(make_sessionmaker(engine)) as session:
            await add_to_outbox(session, outbox, TOPIC_REGISTRY, "hh-1", Envelope(
                source="registry", type="household.updated", subject="household/hh-1", sequence=1, data={}))
        deadline = time.monotonic() + 0.6  # well inside the 0.8 s the relay had backed off to
        while time.monotonic() < deadline and not any(at > committing and pending for at, pending in relay.passes):
            await asyncio.sleep(0.02)
        assert any(at > committing and pending == 1 for at, pending in relay.passes), relay.passes[idle_passes - 2:]
    finally:
        relay.stop()
        await running
        await engine.dispose()
