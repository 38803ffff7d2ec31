"""Fixtures shared by the whole suite: databases on SQLite and PostgreSQL, a real broker."""
from __future__ import annotations

import os
import uuid

import pytest

from shared.broker import BrokerProcess

POSTGRES_URL = os.environ.get("JZ_TEST_POSTGRES_URL")  # e.g. postgresql+asyncpg://postgres@127.0.0.1/postgres
REQUIRE_POSTGRES = os.environ.get("JZ_REQUIRE_POSTGRES") == "1"

_postgres_outcomes = {"passed": 0, "skipped": 0}


def pytest_runtest_logreport(report):
    if "[postgres" in report.nodeid and (report.when == "call" or report.skipped):
        if report.skipped:
            _postgres_outcomes["skipped"] += 1
        elif report.passed:
            _postgres_outcomes["passed"] += 1


def pytest_sessionfinish(session, exitstatus):
    # CI must fail, not skip, when the PostgreSQL half of the suite does not run.
    if REQUIRE_POSTGRES and session.testscollected and (
            _postgres_outcomes["skipped"] or not _postgres_outcomes["passed"]):
        print(f"\nPostgreSQL tests did not all run: {_postgres_outcomes}")
        session.exitstatus = 1


async def _admin_execute(sql: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url
    url = make_url(POSTGRES_URL).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class Databases:
    """Hands out one fresh database per service name for the current backend."""

    def __init__(self, backend: str, tmp_path) -> None:
        self.backend, self.tmp_path = backend, tmp_path
        self.created: list[str] = []

    async def url(self, service: str) -> str:
        if self.backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.tmp_path / (service + '.db')}"
        from sqlalchemy.engine import make_url
        name = f"jz_test_{service}_{uuid.uuid4().hex[:10]}"
        await _admin_execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    async def drop_all(self) -> None:
        for name in self.created:
            await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
async def databases(request, tmp_path):
    if request.param == "postgres" and not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("JZ_TEST_POSTGRES_URL is not set but PostgreSQL tests are required")
        pytest.skip("set JZ_TEST_POSTGRES_URL to run the PostgreSQL half")
    dbs = Databases(request.param, tmp_path)
    yield dbs
    await dbs.drop_all()


@pytest.fixture
async def broker():
    """A fresh Tansu broker per test: isolated topics and consumer groups, starts in milliseconds."""
    process = BrokerProcess()
    await process.start()
    yield process
    process.stop()
