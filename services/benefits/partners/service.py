"""Partner clients: create, rotate, disable, authenticate; tokens signed with the partner key."""
from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.benefits.partners.secrets import hash_secret, new_client_id, new_secret, verify_secret
from services.benefits.partners.tables import partner_clients
from shared.auth import PARTNER_TOKEN_SCOPES, PartnerSigner
from shared.config import BenefitsSettings
from shared.events import as_aware, utcnow
from shared.problems import Problem

PARTNER_SCOPES = tuple(sorted(PARTNER_TOKEN_SCOPES))  # ("credit", "dci", "settlement")
#: A partner client's area: an administrative code prefix (province 2 digits ... village 12).
AREA = re.compile(r"[0-9]{2,12}")
AREA_PATTERN = f"^{AREA.pattern}$"  # the same, as a schema pattern


def check_scopes(scopes: list[str]) -> list[str]:
    wanted = sorted(set(scopes))
    bad = [s for s in wanted if s not in PARTNER_SCOPES]
    if not wanted or bad:
        raise Problem(422, "Invalid partner scopes",
                      f"A partner client holds one or more of: {', '.join(PARTNER_SCOPES)}.",
                      type_="https://jingzhun.dev/problems/validation",
                      errors=[{"loc": ["body", "scopes"], "msg": f"allowed: {', '.join(PARTNER_SCOPES)}"}])
    return wanted


def check_area(area: str | None) -> str | None:
    """None (no limit) or 2 to 12 ASCII digits: the prefix its tokens carry as their ``area`` claim."""
    if area is not None and not AREA.fullmatch(area):
        raise Problem(422, "Invalid partner area",
                      "A partner client's area is an administrative code prefix of 2 to 12 digits, e.g. 360703.",
                      type_="https://jingzhun.dev/problems/validation",
                      errors=[{"loc": ["body", "area"], "msg": "2 to 12 digits"}])
    return area


def client_view(row) -> dict:
    return {"client_id": row.client_id, "name": row.name, "scopes": row.scopes.split(), "area": row.area,
            "status": row.status, "created_at": row.created_at, "rotated_at": row.rotated_at,
            "disabled_at": row.disabled_at}


async def create_client(session: AsyncSession, name: str, scopes: list[str], area: str | None = None) -> dict:
    scopes, area = check_scopes(scopes), check_area(area)
    client_id, secret = new_client_id(), new_secret()
    secret_hash = await asyncio.to_thread(hash_secret, secret)
    now = utcnow()
    await session.execute(insert(partner_clients).values(
        client_id=client_id, name=name, scopes=" ".join(scopes), secret_hash=secret_hash, status="active",
        created_at=now, area=area))
    row = (await session.execute(select(partner_clients).where(partner_clients.c.client_id == client_id))).one()
    return {**client_view(row), "client_secret": secret}


async def _get(session: AsyncSession, client_id: str):
    row = (await session.execute(select(partner_clients).where(partner_clients.c.client_id == client_id))).first()
    if row is None:
        raise Problem(404, "Unknown client", f"No partner client {client_id}.")
    return row


async def rotate_client(session: AsyncSession, client_id: str, grace_seconds: int = 0) -> dict:
    row = await _get(session, client_id)
    if row.status != "active":
        raise Problem(409, "Client disabled", "A disabled client cannot be rotated; create a new one.")
    secret = new_secret()
    now = utcnow()
    values = {"secret_hash": await asyncio.to_thread(hash_secret, secret), "rotated_at": now,
              "previous_secret_hash": row.secret_hash if grace_seconds > 0 else None,
              "previous_valid_until": now + timedelta(seconds=grace_seconds) if grace_seconds > 0 else None}
    await session.execute(update(partner_clients).where(partner_clients.c.client_id == client_id).values(**values))
    row = await _get(session, client_id)
    return {**client_view(row), "client_secret": secret, "previous_secret_valid_until": values["previous_valid_until"]}


async def disable_client(session: AsyncSession, client_id: str) -> dict:
    await _get(session, client_id)
    await session.execute(update(partner_clients).where(partner_clients.c.client_id == client_id)
                          .values(status="disabled", disabled_at=utcnow(), previous_secret_hash=None,
                                  previous_valid_until=None))
    return client_view(await _get(session, client_id))


async def list_clients(session: AsyncSession) -> list[dict]:
    rows = (await session.execute(select(partner_clients).order_by(partner_clients.c.created_at))).all()
    return [client_view(row) for row in rows]


def _oauth_error(status: int, error: str, description: str) -> Problem:
    problem = Problem(status, error.replace("_", " ").capitalize(), description,
                      type_=f"https://jingzhun.dev/problems/oauth/{error}", error=error,
                      error_description=description)
    if status == 401:
        problem.headers = {"WWW-Authenticate": 'Basic realm="jingzhun-partners"'}
    return problem


@dataclass(frozen=True)
class Authenticated:
    row: object
    # Set when the previous secret (in its grace period) was presented: the token must not outlive it.
    previous_secret_until: object = None


async def authenticate(session: AsyncSession, client_id: str, secret: str) -> Authenticated:
    row = (await session.execute(select(partner_clients).where(partner_clients.c.client_id == client_id))).first()
    if row is None or row.status != "active":
        # Same answer for unknown and disabled clients; still spend the hashing time.
        await asyncio.to_thread(verify_secret, secret, "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA")
        raise _oauth_error(401, "invalid_client", "Unknown client, wrong secret or disabled client.")
    if await asyncio.to_thread(verify_secret, secret, row.secret_hash):
        return Authenticated(row)
    grace = as_aware(row.previous_valid_until)
    if grace is not None and grace > utcnow() and await asyncio.to_thread(verify_secret, secret,
                                                                           row.previous_secret_hash):
        return Authenticated(row, previous_secret_until=grace)
    raise _oauth_error(401, "invalid_client", "Unknown client, wrong secret or disabled client.")


def issue_token(signer: PartnerSigner, settings: BenefitsSettings, authenticated: Authenticated,
                requested_scope: str | None) -> dict:
    row = authenticated.row
    held = row.scopes.split()
    scopes = held if not requested_scope else requested_scope.split()
    if not set(scopes) <= set(held):
        raise _oauth_error(400, "invalid_scope", f"This client may request: {' '.join(held)}.")
    until = authenticated.previous_secret_until
    extra = {"client_id": row.client_id}
    if row.area:  # Principal.area on every service: the partner sees this prefix only
        extra["area"] = row.area
    token, ttl = signer.mint(scopes, subject=row.client_id, ttl_s=settings.partner_token_ttl_s, extra=extra,
                             not_after=until.timestamp() if until is not None else None)
    return {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": " ".join(scopes)}


@dataclass(frozen=True)
class ClientState:
    status: str | None
    rotated_at: float | None = None  # Unix time of the last secret rotation
    old_tokens_until: float | None = None  # tokens issued before the rotation work until then

    def refuses(self, issued_at: float | None, now: float) -> str | None:
        """Why a token issued at ``issued_at`` no longer works, or None."""
        if self.status == "disabled":
            return "This partner client has been disabled."
        if self.rotated_at is not None and now >= (self.old_tokens_until or self.rotated_at):
            # iat has whole seconds: a token minted in the rotation's own second counts as after it.
            if issued_at is None or int(issued_at) < int(self.rotated_at):
                return "This token was issued before the client secret was rotated and its grace period ended."
        return None


class ClientStatusCache:
    """Disabling a client, or the end of a rotation's grace period, stops its unexpired tokens
    (noticed after at most ``ttl_s``).

    One read per client when the entry is stale, however many requests find it stale at once (issue 15):
    the others wait for that read instead of each reading the row. Before, every ``ttl_s`` all the requests
    in flight for a client (50 under the benchmark) queued for database connections at once: whoami's p99.
    ``forget`` (a rotation, a disable) drops the entry and makes a read already under way count for nothing.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._seen: dict[str, tuple[ClientState, float]] = {}
        self._loading: dict[str, asyncio.Task] = {}
        self._generation: dict[str, int] = {}

    def forget(self, client_id: str) -> None:
        self._seen.pop(client_id, None)
        self._loading.pop(client_id, None)
        self._generation[client_id] = self._generation.get(client_id, 0) + 1

    async def state(self, sessionmaker, client_id: str) -> ClientState:
        cached = self._seen.get(client_id)
        if cached is not None and time.monotonic() - cached[1] < self.ttl_s:
            return cached[0]
        loading = self._loading.get(client_id)
        if loading is None:
            loading = self._loading[client_id] = asyncio.ensure_future(self._load(sessionmaker, client_id))
            loading.add_done_callback(lambda task: self._loaded(client_id, task))
        # shielded: a caller that goes away (a closed connection) does not cancel the read the others wait for
        return await asyncio.shield(loading)

    def _loaded(self, client_id: str, task: asyncio.Task) -> None:
        if self._loading.get(client_id) is task:
            del self._loading[client_id]
        if not task.cancelled():
            task.exception()  # retrieved here too: every waiter may have gone

    async def _load(self, sessionmaker, client_id: str) -> ClientState:
        generation, started = self._generation.get(client_id, 0), time.monotonic()
        async with sessionmaker() as session:
            row = (await session.execute(
                select(partner_clients.c.status, partner_clients.c.rotated_at, partner_clients.c.previous_valid_until)
                .where(partner_clients.c.client_id == client_id))).first()
        if row is None:
            state = ClientState(None)
        else:
            rotated, until = as_aware(row.rotated_at), as_aware(row.previous_valid_until)
            state = ClientState(row.status, rotated.timestamp() if rotated else None,
                                until.timestamp() if until else None)
        if self._generation.get(client_id, 0) == generation:  # not forgotten meanwhile
            self._seen[client_id] = (state, started)
        return state

    async def status(self, sessionmaker, client_id: str) -> str | None:
        return (await self.state(sessionmaker, client_id)).status


@asynccontextmanager
async def decision_transaction(state) -> AsyncIterator[AsyncSession]:
    """One partner decision's transaction (``shared.db.transaction``), with its writes taking turns on SQLite.

    SQLite has one writer at a time. Concurrent decisions used to find the write lock taken and wait in
    SQLite's busy handler, which sleeps up to 100 ms between tries while the holder waits for the event loop
    to run its next statement: 50 connections made 38 eligibility decisions a second with a p99 of 4 s. Here
    a decision reads as before and, from its first write (``take_write_turn``) until its commit, holds this
    process's writer lock: the next one starts writing the moment the lock is free. On PostgreSQL nothing
    changes (row locks, no lock here). ``state``: the app's state (its sessionmaker, and the lock)."""
    async with state.sessionmaker() as session:
        lock = None
        if session.bind.dialect.name == "sqlite":
            lock = getattr(state, "sqlite_writer", None)
            if lock is None:
                lock = state.sqlite_writer = asyncio.Lock()
        held = False

        async def take_turn() -> None:
            nonlocal held
            if lock is not None and not held:
                await lock.acquire()
                held = True

        session.info[_WRITE_TURN] = take_turn
        try:
            async with session.begin():
                yield session
        finally:
            session.info.pop(_WRITE_TURN, None)
            if held:
                lock.release()


_WRITE_TURN = "jz_write_turn"


async def take_write_turn(session: AsyncSession) -> None:
    """Before a decision's first write: its turn to write (``decision_transaction``; elsewhere nothing)."""
    take = session.info.get(_WRITE_TURN)
    if take is not None:
        await take()
