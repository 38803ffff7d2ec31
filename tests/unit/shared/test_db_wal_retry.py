"""A new SQLite connection retries SQLITE_NOTADB a few times (shared.db._wal_mode), but a file that is not a
database is still refused, not opened as an empty one."""
from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import text

from shared.db import _wal_mode, make_engine


class FlakyCursor:
    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def execute(self, sql: str) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise sqlite3.DatabaseError("file is not a database")


def test_a_transient_not_a_database_is_tried_again():
    cursor = FlakyCursor(failures=2)
    _wal_mode(cursor)
    assert cursor.calls == 3


def test_other_errors_are_not_retried():
    class Locked(FlakyCursor):
        def execute(self, sql: str) -> None:
            self.calls += 1
            raise sqlite3.OperationalError("disk I/O error")
    cursor = Locked(0)
    with pytest.raises(sqlite3.OperationalError):
        _wal_mode(cursor)
    assert cursor.calls == 1


async def test_a_file_that_is_not_a_database_is_still_refused(tmp_path):
    path = tmp_path / "registry.db"
    path.write_bytes(b"this is not an SQLite file, just text long enough to have a header" * 20)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        with pytest.raises(Exception, match="not a database"):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    assert path.read_bytes().startswith(b"this is not")  # left as it was
