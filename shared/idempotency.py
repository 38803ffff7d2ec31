"""``Idempotency-Key`` on the creating POSTs (IETF httpapi-idempotency-key draft), as pure ASGI middleware.

A phone or a bank that sent a create and got no answer sends it again with the same key; the
service answers what it answered the first time instead of creating a second object.

* Scope: a key belongs to the authenticated caller (JWT ``sub``, or the partner's ``client_id``),
  so two callers never see each other's keys. The token is verified with the service's own
  ``TokenVerifier`` (the one the routes use); without a valid token the request passes through
  untouched and the route answers 401.
* Fingerprint: sha256 of method, path, query string and the raw body bytes. Same key + same
  fingerprint → the stored status, body and Content-Type/ETag/Location, plus
  ``Idempotent-Replayed: true``. Same key + another fingerprint (another body or another route) → 422.
* Reservation: a row is committed *before* the handler runs (the primary key (principal, key)
  lets exactly one of two concurrent requests win; the other gets 409) and filled in with the
  response after it. 2xx and the deterministic 4xx (400, 404, 409, 412, 422) are kept; for 5xx,
  401, 403, 429 and the like the reservation is dropped, because retrying those may succeed.
* The handler commits its own transaction, so its work and the stored response are not atomic: if
  the process dies in between, the reservation stays unfilled and a retry gets 409 "outcome
  unknown" instead of a second object (docs/idempotency.md).
* Keys live ``idempotency_ttl_hours`` (``JZ_IDEMPOTENCY_TTL_HOURS``, default 24); an expired row is
  ignored and deleted, and each process purges expired rows every few minutes.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartParser
from starlette.routing import compile_path

from shared.db import transaction
from shared.events import as_aware
from shared.idempotency_table import define_idempotency_keys
from shared.problems import BUSY_HEADERS, Problem, busy_problem, problem_response

log = logging.getLogger("idempotency")

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
IN_FLIGHT = 0  # status_code of a reserved key whose first request has not answered yet
# Outcomes a retry would get again: kept. Anything else (5xx, 401, 403, 429, …) may go otherwise next time.
STORED_CLIENT_ERRORS = frozenset({400, 404, 409, 412, 422})
REPLAYED_HEADERS = ("content-type", "etag", "location")
# A reservation older than this with no response is taken as lost (the process died mid-request),
# not as still running; the longest create (a large ledger import) finishes well within it.
ABANDONED_AFTER = timedelta(minutes=10)
PURGE_EVERY_S = 300.0

PROBLEM_BASE = "https://jingzhun.dev/problems/"
_metadata_table: Table | None = None


def idempotency_table() -> Table:
    """The table's shape, bound to no service's metadata (every service has an identical copy)."""
    global _metadata_table
    if _metadata_table is None:
        from sqlalchemy import MetaData
        _metadata_table = define_idempotency_keys(MetaData())
    return _metadata_table


def parse_key(raw: str) -> str:
    """The key itself: bare, or as the draft's Structured Field string (``"…"``); visible ASCII, ≤ 255."""
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH or any(not 0x21 <= ord(ch) <= 0x7E for ch in key):
        raise Problem(400, "Invalid Idempotency-Key",
                      f"The {HEADER} header must be 1–{MAX_KEY_LENGTH} visible ASCII characters (no spaces), "
                      "e.g. a UUID.",
                      type_=PROBLEM_BASE + "idempotency-key-invalid", header=HEADER)
    return key


def request_fingerprint(method: str, path: str, query_string: bytes, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query_string):
        digest.update(part)
        digest.update(b"\n")
    digest.update(body)
    return digest.hexdigest()


async def canonical_body(headers: Headers, body: bytes) -> bytes:
    """The body as fingerprinted: raw bytes, except that a multipart form is taken part by part.

    A client retrying an upload re-encodes it with a fresh random boundary, so the raw bytes of a
    faithful retry differ; the parts (name, filename, type, content digest) do not.
    """
    if not headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return body

    async def stream():
        yield body

    try:
        form = await MultiPartParser(headers, stream(), max_part_size=max(len(body), 1024 * 1024)).parse()
    except Exception:  # noqa: BLE001 - a malformed form is fingerprinted as it came; the route refuses it
        return body
    parts = []
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                content = await value.read()
                parts.append(["file", name, value.filename, value.content_type, hashlib.sha256(content).hexdigest()])
            else:
                parts.append(["field", name, value])
    finally:
        await form.close()
    return json.dumps(parts, ensure_ascii=False).encode()


def principal_id(principal) -> str:
    """Partners by client id, everyone else by subject; fits the 128-character column."""
    name = f"client:{principal.client_id}" if principal.client_id else f"sub:{principal.subject}"
    return name if len(name) <= 128 else "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def storable(status: int) -> bool:
    return 200 <= status < 300 or status in STORED_CLIENT_ERRORS


@dataclass(frozen=True)
class Replay:
    status: int
    body: bytes
    headers: dict[str, str]


# The problems below are written in English; the caller gets them in their language (shared/i18n.py).
def _reused(key: str, route: str, first_at: datetime) -> Problem:
    return Problem(422, "Idempotency-Key reused for another request",
                   f"{HEADER} '{key}' was first used for a different request ({route} at {first_at.isoformat()}); "
                   "a new request needs a new key.",
                   type_=PROBLEM_BASE + "idempotency-key-reused", idempotency_key=key,
                   first_request={"route": route, "at": first_at.isoformat()})


def _in_flight(key: str, reserved_at: datetime, now: datetime) -> Problem:
    if now - reserved_at < ABANDONED_AFTER:
        problem = Problem(409, "Request with this Idempotency-Key still in progress",
                          f"The first request with {HEADER} '{key}' (since {reserved_at.isoformat()}) has not "
                          "answered yet; retry in a moment to get its response.",
                          type_=PROBLEM_BASE + "idempotency-key-in-flight", idempotency_key=key,
                          reserved_at=reserved_at.isoformat())
        problem.headers = {"Retry-After": "1"}
        return problem
    return Problem(409, "Outcome of the first request unknown",
                   f"The first request with {HEADER} '{key}' (at {reserved_at.isoformat()}) never answered: the "
                   f"service stopped while handling it, and it may or may not have taken effect. Look up "
                   "whether the object exists before sending it again with a new key.",
                   type_=PROBLEM_BASE + "idempotency-outcome-unknown", idempotency_key=key,
                   reserved_at=reserved_at.isoformat())


class IdempotencyStore:
    """Reserve, fill and drop keys in a service's ``idempotency_keys`` table."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ttl: timedelta) -> None:
        self.sessionmaker, self.ttl = sessionmaker, ttl
        self.table = idempotency_table()

    def _this(self, principal: str, key: str):
        return (self.table.c.principal == principal) & (self.table.c.key == key)

    async def reserve(self, principal: str, key: str, route: str, fingerprint: str, now: datetime, *,
                      purge: bool = False) -> Replay | Problem | None:
        """None: reserved, run the handler. Replay: answer that. Problem: answer that, run nothing."""
        table = self.table
        for _ in range(3):
            try:
                async with transaction(self.sessionmaker) as session:
                    if purge:
                        await session.execute(delete(table).where(table.c.expires_at <= now))
                    row = (await session.execute(select(table).where(self._this(principal, key)))).first()
                    if row is not None and as_aware(row.expires_at) <= now:
                        await session.execute(delete(table).where(self._this(principal, key)))
                        row = None
                    if row is not None:
                        return self._answer(row, key, fingerprint, now)
                    await session.execute(insert(table).values(
                        principal=principal, key=key, route=route[:200], request_digest=fingerprint,
                        status_code=IN_FLIGHT, response_body="", response_headers=None,
                        created_at=now, expires_at=now + self.ttl))
                return None
            except IntegrityError:
                # a concurrent request with the same key reserved it first: answer as its retry would be
                async with self.sessionmaker() as session:
                    row = (await session.execute(select(table).where(self._this(principal, key)))).first()
                if row is not None:
                    return self._answer(row, key, fingerprint, now)
                purge = False  # it was released meanwhile (its answer was not kept): try again
        return _in_flight(key, now, now)

    @staticmethod
    def _answer(row, key: str, fingerprint: str, now: datetime) -> Replay | Problem:
        if row.request_digest != fingerprint:
            return _reused(key, row.route, as_aware(row.created_at))
        if row.status_code == IN_FLIGHT:
            return _in_flight(key, as_aware(row.created_at), now)
        return Replay(row.status_code, row.response_body.encode(), json.loads(row.response_headers or "{}"))

    async def fill(self, principal: str, key: str, status: int, body: str, headers: dict[str, str]) -> None:
        table = self.table
        async with transaction(self.sessionmaker) as session:
            await session.execute(update(table).where(self._this(principal, key), table.c.status_code == IN_FLIGHT)
                                  .values(status_code=status, response_body=body,
                                          response_headers=json.dumps(headers, ensure_ascii=False)))

    async def drop(self, principal: str, key: str) -> None:
        table = self.table
        async with transaction(self.sessionmaker) as session:
            await session.execute(delete(table).where(self._this(principal, key), table.c.status_code == IN_FLIGHT))


def _header(scope, name: bytes) -> str | None:
    for header, value in scope.get("headers", ()):
        if header == name:
            return value.decode("latin-1")
    return None


class IdempotencyMiddleware:
    """Honours ``Idempotency-Key`` on POSTs to the given path templates (as in the OpenAPI document).

    It needs ``app.state.sessionmaker``, ``app.state.token_verifier`` and ``app.state.settings``
    (``idempotency_ttl_hours``); ``app.state.clock``, when set, is the clock (tests step it).
    """

    def __init__(self, app, *, routes: Iterable[str]) -> None:
        self.app = app
        self.routes = [compile_path(template)[0] for template in routes]
        self._next_purge = 0.0

    def _applies(self, scope) -> bool:
        if scope["type"] != "http" or scope["method"] != "POST":
            return False
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root):]
        return any(pattern.match(path) for pattern in self.routes)

    async def __call__(self, scope, receive, send) -> None:
        raw_key = _header(scope, b"idempotency-key") if self._applies(scope) else None
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        caller = await self._caller(app, scope)
        if caller is None:  # no valid token: the route answers 401 as usual
            await self.app(scope, receive, send)
            return
        try:
            key = parse_key(raw_key)
        except Problem as problem:
            await problem_response(problem)(scope, receive, send)
            return
        body, complete = await _read_body(receive)
        if not complete:
            return  # the client went away before sending its body: nothing to do

        store = IdempotencyStore(app.state.sessionmaker, timedelta(hours=app.state.settings.idempotency_ttl_hours))
        now = getattr(app.state, "clock", _utcnow)().astimezone(timezone.utc)
        route = f"POST {scope['path']}"
        fingerprint = request_fingerprint("POST", scope["path"], scope.get("query_string", b""),
                                          await canonical_body(Headers(scope=scope), body))
        try:
            outcome = await store.reserve(caller, key, route, fingerprint, now, purge=self._purge_due())
        except PoolTimeout:  # outside the app's exception handlers: answered here, as the app would
            await problem_response(busy_problem(), BUSY_HEADERS)(scope, receive, send)
            return
        if isinstance(outcome, Problem):
            await problem_response(outcome, getattr(outcome, "headers", None))(scope, receive, send)
            return
        if isinstance(outcome, Replay):
            await _send_replay(outcome, send)
            return
        await self._run_and_keep(scope, _replaying(body, receive), send, store, caller, key)

    async def _caller(self, app, scope) -> str | None:
        authorization = _header(scope, b"authorization") or ""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        try:
            return principal_id(await app.state.token_verifier.averify(token.strip()))
        except Exception:  # noqa: BLE001 - an unverifiable token is the route's to refuse
            return None

    def _purge_due(self) -> bool:
        now = time.monotonic()
        if now < self._next_purge:
            return False
        self._next_purge = now + PURGE_EVERY_S
        return True

    async def _run_and_keep(self, scope, receive, send, store: IdempotencyStore, caller: str, key: str) -> None:
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []
        answered = False

        async def keep_then_send(message) -> None:
            nonlocal start, answered
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or answered:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            answered = True
            assert start is not None
            body = b"".join(chunks)
            await self._settle(store, caller, key, start, body)
            await send(start)
            await send({"type": "http.response.body", "body": body, "more_body": False})

        try:
            await self.app(scope, receive, keep_then_send)
        except Exception:
            if not answered:
                await self._forget(store, caller, key)
            raise
        if not answered:  # the app returned without a complete response
            await self._forget(store, caller, key)

    async def _settle(self, store: IdempotencyStore, caller: str, key: str, start: dict, body: bytes) -> None:
        status = start["status"]
        try:
            text = body.decode("utf-8") if storable(status) else None
        except UnicodeDecodeError:
            text = None
        try:
            if text is None:
                await store.drop(caller, key)
                return
            headers = {name.decode("latin-1").lower(): value.decode("latin-1")
                       for name, value in start.get("headers", ()) if name.decode("latin-1").lower() in REPLAYED_HEADERS}
            await store.fill(caller, key, status, text, headers)
        except Exception:  # noqa: BLE001 - the caller still gets the real answer; a retry then gets 409
            log.exception("could not store the response for an Idempotency-Key")

    @staticmethod
    async def _forget(store: IdempotencyStore, caller: str, key: str) -> None:
        try:
            await store.drop(caller, key)
        except Exception:  # noqa: BLE001
            log.exception("could not release an Idempotency-Key reservation")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


async def _read_body(receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"", False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replaying(body: bytes, receive) -> Callable:
    """The body once, as the app expects it; then the real channel (for disconnect notices)."""
    sent = False

    async def replay_receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay_receive


async def _send_replay(replay: Replay, send) -> None:
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in replay.headers.items()]
    headers += [(b"content-length", str(len(replay.body)).encode()), (b"idempotent-replayed", b"true")]
    await send({"type": "http.response.start", "status": replay.status, "headers": headers})
    await send({"type": "http.response.body", "body": replay.body, "more_body": False})


HEADER_DESCRIPTION = (
    "Optional. An opaque key (1–255 visible ASCII characters, e.g. a UUID) that makes this create safe to "
    "retry: the same key with the same request answers the first response again (same status and body, "
    "header `Idempotent-Replayed: true`) and creates nothing; the same key with another request → 422; "
    "while the first request is still running → 409. Keys are per caller and kept for "
    "`JZ_IDEMPOTENCY_TTL_HOURS` (default 24 h).\n\n"
    "可选。幂等键(1–255 个可见 ASCII 字符,如 UUID),使创建请求可以安全重试:相同的键和相同的请求返回第一次的"
    "应答(状态码和内容相同,带 `Idempotent-Replayed: true`),不会重复创建;相同的键用于不同的请求 → 422;"
    "第一个请求仍在处理 → 409。幂等键按调用方区分,保留 24 小时(`JZ_IDEMPOTENCY_TTL_HOURS`)。")


def document_header(schema: dict, routes: Iterable[str]) -> dict:
    """Adds the ``Idempotency-Key`` header parameter to the POST operation of every route."""
    for template in routes:
        operation = schema.get("paths", {}).get(template, {}).get("post")
        if operation is None:
            continue
        parameters = operation.setdefault("parameters", [])
        if any(p.get("in") == "header" and p.get("name", "").lower() == "idempotency-key" for p in parameters):
            continue
        parameters.append({"name": HEADER, "in": "header", "required": False, "description": HEADER_DESCRIPTION,
                           "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH,
                                      "pattern": "^[!-~]+$"},
                           "example": "5b0f6c1e-8d7f-4c53-9d0e-2f5b8f6a9c11"})
    return schema


def install_idempotency(app, routes: Iterable[str]) -> None:
    """Middleware plus the documented header; call before the outer middleware is added."""
    routes = tuple(routes)
    app.add_middleware(IdempotencyMiddleware, routes=routes)
    build_openapi = app.openapi

    def openapi() -> dict:
        return document_header(build_openapi(), routes)

    app.openapi = openapi


__all__ = ["HEADER", "IdempotencyMiddleware", "IdempotencyStore", "canonical_body", "document_header",
           "install_idempotency", "parse_key", "principal_id", "request_fingerprint", "storable"]
