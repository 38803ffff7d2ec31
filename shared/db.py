"""Async database engines and sessions for SQLite (embedded) and PostgreSQL (production)."""
from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import orjson
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default, separators=(",", ":"))


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


#: Files SQLite keeps beside a database; they hold the same personal data as the file itself.
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def create_private_database_file(path: Path) -> None:
    """Create the SQLite file 0600 before the engine opens it (SQLite would create it 0644 under the
    usual umask), and tighten an existing one: registry and benefits files hold personal data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    restrict_sidecar_files(path)


def restrict_sidecar_files(path: Path) -> None:
    """SQLite creates -wal/-shm/-journal with the database file's mode, but a file made by an older
    version (or another tool) may be wider: make every one that exists 0600."""
    for suffix in SQLITE_SIDECARS:
        sidecar = path.with_name(path.name + suffix)
        try:
            if sidecar.stat().st_mode & 0o077:
                os.chmod(sidecar, 0o600)
        except FileNotFoundError:
            continue


def _wal_mode(cursor, attempts: int = 5) -> None:
    """``PRAGMA journal_mode=WAL`` on a new SQLite connection. Twice in a full local suite run (never alone) a
    new connection to a database other processes were writing got SQLITE_NOTADB ("file is not a database")
    here; the cause is not found. It is tried again a few times, 0.1 s apart; a file that really is not a
    database still fails, after about half a second (tests/unit/shared/test_db_wal_retry.py)."""
    import sqlite3
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.DatabaseError as exc:
            if "not a database" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.1)


class NulInText(ValueError):
    """A statement's text parameter holds a NUL character (U+0000)."""


def refuse_nul_text(engine: AsyncEngine) -> None:
    """No text with a NUL character is written or looked up, on either database.

    PostgreSQL's text refuses it (a request whose id or filter held one was a 500, found by fuzzing on
    PostgreSQL); SQLite stores it, and the file would then hold what the other database cannot. Checked once,
    at the statement, for whatever path the value came by (a body field, a query filter, an event). JSON
    columns are not affected: json_dumps writes a NUL as the escape ``\\u0000``. Raised before the statement
    runs, so the caller's transaction rolls back whole; the services answer it 422
    (``shared.problems``)."""
    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _refuse(_conn, _cursor, _statement, parameters, _context, executemany) -> None:
        for row in (parameters if executemany else (parameters,)) if parameters else ():
            for value in (row.values() if isinstance(row, dict) else row):
                if value.__class__ is str and "\x00" in value:
                    raise NulInText("a text value holds a NUL character (U+0000)")


def make_engine(url: str, **kwargs) -> AsyncEngine:
    if is_sqlite(url):
        database = make_url(url).database
        on_disk = bool(database) and database != ":memory:" and not database.startswith("file:")
        if on_disk:
            create_private_database_file(Path(database))
        engine = create_async_engine(url, json_serializer=json_dumps, json_deserializer=orjson.loads,
                                     connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # WAL lets the relay and the API read while another writer commits;
            # busy_timeout makes concurrent writers wait instead of failing.
            cursor = dbapi_connection.cursor()
            _wal_mode(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
            if on_disk:  # WAL just created -wal and -shm beside the file
                restrict_sidecar_files(Path(database))

        refuse_nul_text(engine)
        return engine
    # Ten connections per process, kept; a request past the tenth in flight waits for one. With 20 more as
    # overflow, each such request opened a connection (a PostgreSQL backend, an SSL attempt) and closed it on
    # return: under 50 connections of partner decisions the workers spent their time in that churn (one-stop
    # 61 -> 114/s, eligibility 214 -> 324/s, household reads 0.08 -> 0.13 of the bare route when it went;
    # issue 15). Keeping 25 instead exhausted PostgreSQL's 100 connections across six workers. Nothing holds
    # one connection while it waits for a second (the benchmark's 25 requests in flight per worker would hang).
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 0)
    ping_after_idle_s = kwargs.pop("ping_after_idle_s", PING_AFTER_IDLE_S)
    # orjson reads the JSON columns back (the same values as json.loads, several times faster: stored
    # entitlements' explanations and sources were 13 % of a policy recompute); json_dumps still writes them.
    engine = create_async_engine(url, json_serializer=json_dumps, json_deserializer=orjson.loads, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        ping_idle_connections(engine, ping_after_idle_s)
    refuse_nul_text(engine)
    return engine


#: A pooled PostgreSQL connection idle longer than this is pinged before it is handed out (see below).
PING_AFTER_IDLE_S = 10.0


def ping_idle_connections(engine: AsyncEngine, after_s: float) -> None:
    """``pool_pre_ping`` for connections that sat idle, instead of on every checkout.

    SQLAlchemy's pre-ping on asyncpg is three round trips (BEGIN; SELECT; ROLLBACK) per checkout: on a one-statement
    request (a registry create) it was three of four. A connection the server dropped (a restart, a failover, an
    idle timeout) is found where it matters, after idling; one that was in use a moment ago is handed out as is. A
    connection lost while busy still fails that request, and SQLAlchemy then replaces every pooled connection
    (a disconnect invalidates the pool), as it did before."""
    returned_at = "jz_returned_at"

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(_dbapi_connection, record) -> None:
        if record is not None:
            record.info[returned_at] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checkout(dbapi_connection, record, _proxy) -> None:
        since = record.info.get(returned_at)
        if since is None or time.monotonic() - since < after_s:
            return
        record.info[returned_at] = None
        try:
            if engine.dialect.do_ping(dbapi_connection):
                return
        except Exception as exc:  # noqa: BLE001 - any failure: the pool retries with a new connection
            raise DisconnectionError(f"idle connection failed its ping: {exc}") from exc
        raise DisconnectionError("idle connection failed its ping")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit on success, roll back on any error."""
    async with sessionmaker() as session:
        async with session.begin():
            yield session


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
