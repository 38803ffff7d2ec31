"""The partner client status cache reads a stale client once however many requests find it stale together
(issue 15: every 5 s all requests in flight queued for a connection each: the partner endpoints' p99), and a
read under way when the client is disabled or rotated (``forget``) is not kept."""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from types import SimpleNamespace

from services.benefits.partners.service import ClientStatusCache


class Rows:
    """A sessionmaker stand-in answering the client's row after a pause, counting the reads."""

    def __init__(self, status: str = "active") -> None:
        self.status, self.reads, self.release = status, 0, asyncio.Event()

    def __call__(self):
        rows = self

        @asynccontextmanager
        async def session():
            class Session:
                async def execute(self, _query):
                    rows.reads += 1
                    await rows.release.wait()
                    row = SimpleNamespace(status=rows.status, rotated_at=None, previous_valid_until=None)
                    return SimpleNamespace(first=lambda: row)
            yield Session()
        return session()


async def test_requests_that_find_the_entry_stale_together_share_one_read():
    cache, rows = ClientStatusCache(ttl_s=5.0), Rows()
    waiting = [asyncio.ensure_future(cache.state(rows, "bank-1")) for _ in range(50)]
    await asyncio.sleep(0)
    rows.release.set()
    states = await asyncio.gather(*waiting)
    assert rows.reads == 1 and {state.status for state in states} == {"active"}
    assert (await cache.state(rows, "bank-1")).status == "active" and rows.reads == 1  # fresh: no read
    cache.ttl_s = 0.0  # stale again: one more read
    await cache.state(rows, "bank-1")
    assert rows.reads == 2


async def test_a_caller_that_goes_away_does_not_cancel_the_read_of_the_others():
    cache, rows = ClientStatusCache(ttl_s=5.0), Rows()
    first, second = (asyncio.ensure_future(cache.state(rows, "bank-1")) for _ in range(2))
    await asyncio.sleep(0)
    first.cancel()
    rows.release.set()
    assert (await second).status == "active" and rows.reads == 1


async def test_a_read_under_way_when_the_client_is_forgotten_is_not_kept():
    cache, rows = ClientStatusCache(ttl_s=60.0), Rows()
    before = asyncio.ensure_future(cache.state(rows, "bank-1"))
    await asyncio.sleep(0)
    cache.forget("bank-1")  # disabled meanwhile: the row read so far may predate it
    rows.status = "disabled"
    after = asyncio.ensure_future(cache.state(rows, "bank-1"))  # a new read, not the one under way
    await asyncio.sleep(0)
    rows.release.set()
    await before
    assert (await after).status == "disabled" and rows.reads == 2
    assert (await cache.state(rows, "bank-1")).status == "disabled" and rows.reads == 2
