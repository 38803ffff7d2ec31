"""Request body size limits per route, as a pure ASGI middleware (413 problem+json).

A request whose ``Content-Length`` already exceeds its route's limit is refused before a byte of the
body is read. Otherwise the bytes the client actually streams are counted (a client may send no
``Content-Length``, chunked transfer, or a wrong one): the moment the count passes the limit the app's
``receive`` raises, whatever the app answers from then on is dropped, and the client gets the 413.
So no route ever holds more than its limit of body in memory or on disk.

Limits come from the settings: ``body_limit_bytes`` for every route (JSON bodies) and
``body_limit_routes`` for the routes that take uploads (path → bytes; ``{name}`` matches one path
segment), e.g. ``JZ_BODY_LIMIT_ROUTES='{"/v1/imports": 67108864}'``.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping

from shared.problems import PROBLEM_MEDIA_TYPE

PROBLEM_TYPE = "https://jingzhun.dev/problems/body-too-large"


class BodyTooLarge(Exception):
    """Raised from ``receive`` once the streamed body passes the limit (the middleware answers 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^/{}]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "/?")


def too_large_body(limit: int) -> bytes:
    return json.dumps({
        # English here; the caller gets it in their language (shared/i18n.py, shared/messages/catalogue.yaml)
        "type": PROBLEM_TYPE, "title": "Request body too large", "status": 413,
        "detail": f"The request body exceeds this route's limit of {limit} bytes.",
        "limit": limit}, ensure_ascii=False).encode()


class BodyLimitMiddleware:
    def __init__(self, app, *, default_limit: int, route_limits: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.default_limit = default_limit
        # exact paths first (a dict look-up), templates after, in the order given
        self.exact: dict[str, int] = {}
        self.templates: list[tuple[re.Pattern[str], int]] = []
        for template, limit in (route_limits or {}).items():
            if "{" in template:
                self.templates.append((_pattern(template), int(limit)))
            else:
                self.exact[template.rstrip("/") or "/"] = int(limit)

    def limit_for(self, path: str) -> int:
        found = self.exact.get(path.rstrip("/") or "/")
        if found is not None:
            return found
        for pattern, limit in self.templates:
            if pattern.fullmatch(path):
                return limit
        return self.default_limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await call_within_limit(self.app, scope, receive, send, self.limit_for(scope["path"]))


async def call_within_limit(app, scope, receive, send, limit: int) -> None:
    """Runs ``app`` with at most ``limit`` bytes of request body, answering the 413 itself through ``send``."""
    declared = _content_length(scope)
    if declared is not None and declared > limit:
        await _send_413(send, limit)
        return
    received = 0
    exceeded = False
    started = False

    async def counting_receive():
        nonlocal received, exceeded
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                exceeded = True
                raise BodyTooLarge(limit)
        return message

    async def guarded_send(message) -> None:
        nonlocal started
        if exceeded and not started:
            return  # the app's answer to the failed read (a 400 or 500) is replaced by the 413
        if message["type"] == "http.response.start":
            started = True
        await send(message)

    try:
        await app(scope, counting_receive, guarded_send)
    except Exception:
        if not exceeded or started:
            raise
    if exceeded and not started:
        await _send_413(send, limit)


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send, limit: int) -> None:
    body = too_large_body(limit)
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})  # the unread rest of the body is not wanted
    await send({"type": "http.response.body", "body": body})
