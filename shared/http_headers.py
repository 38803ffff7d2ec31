"""Security headers on every response and the ``/metrics`` guard (pure ASGI: no BaseHTTPMiddleware).

* every response: ``X-Content-Type-Options: nosniff`` (no MIME sniffing of JSON into HTML) and
  ``Referrer-Policy: no-referrer`` (no URL, with its query, leaks to another site);
* responses that can carry personal data (``/v1/``, ``/oauth/``, ``/dashboard``, ``/dci/``):
  ``Cache-Control: no-store``, so no proxy or browser cache keeps them;
* ``/metrics``: with ``JZ_METRICS_TOKEN`` set, only ``Authorization: Bearer <token>``; without
  it (embedded profile only: production refuses to start), only loopback callers.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import time

from shared.body_limit import call_within_limit
from shared.i18n import _header, is_problem_start, localized_answer, negotiate
from shared.logs import log_request, request_id_of, request_id_var
from shared.problems import PROBLEM_MEDIA_TYPE

PERSONAL_DATA_PREFIXES = ("/v1/", "/oauth/", "/dashboard", "/dci/")
ALWAYS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
NO_STORE = (b"cache-control", b"no-store")


REPLACED = frozenset({b"server", b"x-content-type-options", b"referrer-policy"})


def secured_headers(headers, no_store: bool) -> list:
    """A response's headers with the security headers (and no server banner); ``no_store`` for personal data."""
    if no_store:
        kept = [(k, v) for k, v in headers if (name := k.lower()) not in REPLACED and name != b"cache-control"]
        kept.extend(ALWAYS)
        kept.append(NO_STORE)
    else:
        kept = [(k, v) for k, v in headers if k.lower() not in REPLACED]
        kept.extend(ALWAYS)
    return kept


def _is_loopback(client) -> bool:
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


class SecurityHeadersMiddleware:
    def __init__(self, app, metrics_token: str | None = None) -> None:
        self.app, self.metrics_token = app, metrics_token

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        no_store = path.startswith(PERSONAL_DATA_PREFIXES)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": secured_headers(message.get("headers", []), no_store)}
            await send(message)

        if path.rstrip("/") == "/metrics" and not self._metrics_allowed(scope):
            await self._refuse_metrics(send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)

    def _metrics_allowed(self, scope) -> bool:
        if self.metrics_token is None:
            return _is_loopback(scope.get("client"))
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                                          self.metrics_token.encode())
        return False

    async def _refuse_metrics(self, send) -> None:
        if self.metrics_token is None:
            status, title, detail = 403, "指标仅限本机 / Metrics are loopback-only", \
                "Set JZ_METRICS_TOKEN to read /metrics from another host."
        else:
            status, title, detail = 401, "需要指标令牌 / Metrics token required", \
                "Send Authorization: Bearer <JZ_METRICS_TOKEN>."
        body = json.dumps({"type": "https://jingzhun.dev/problems/unauthorized", "title": title,
                           "status": status, "detail": detail}, ensure_ascii=False).encode()
        headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="metrics"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class ServiceEdge:
    """The layers every request of a service passes, as one pure-ASGI layer (issue 15).

    What it does is what these did, outermost first, and each still exists on its own (the reference the
    tests hold this to): ``shared.metrics.RequestMetrics``, ``shared.i18n.ProblemLanguageMiddleware``,
    ``SecurityHeadersMiddleware`` above, ``shared.logs.RequestIdMiddleware`` (request id and the access line)
    and ``shared.body_limit.BodyLimitMiddleware``. Stacked, every message of every response went through five
    ``send`` wrappers, and each response start was copied up to three times; here a response start is rebuilt
    once, its body passes through one function, and a problem body is held and localized as before:

    * ``/metrics`` without the token (or from another host without one) is refused first: no request id, no
      access line, as when the guard sat outside those layers;
    * the body limit: 413 at once for a declared length over the route's limit, else the body is counted as
      it is read; the app's answer to a body that passed the limit is replaced by the 413;
    * a response start gets ``X-Request-ID``, then the security headers (``secured_headers``); a problem+json
      response is then held and answered in the caller's language (``shared.i18n.localized_answer``);
    * the access line carries the status the app (or the 413) answered; the metrics the status and
      Content-Length that went out, both after an exception too.
    """

    def __init__(self, app, *, metrics, body_limits, metrics_token: str | None = None) -> None:
        self.app, self.metrics, self.body_limits, self.metrics_token = app, metrics, body_limits, metrics_token
        self.log = logging.getLogger("http")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path = scope.get("root_path", "")
        path = scope.get("path", "")
        no_store = path.startswith(PERSONAL_DATA_PREFIXES)
        final = [500, 0]  # status and Content-Length as answered (metrics)
        held: list = []  # a problem's start message, then its body chunks

        async def answer(message) -> None:  # what went out: the metrics' status and size
            if message["type"] == "http.response.start":
                final[0] = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"content-length":
                        final[1] = int(value)
                        break
            await send(message)

        async def secured(message) -> None:  # the security headers, then the problem's language
            if message["type"] == "http.response.start":
                message = {**message, "headers": secured_headers(message.get("headers", []), no_store)}
                if is_problem_start(message["headers"]):
                    held.append(message)
                    return
            elif message["type"] == "http.response.body" and held:
                held.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                start, body = localized_answer(held[0], b"".join(held[1:]),
                                               negotiate(_header(scope, b"accept-language")))
                held.clear()
                await answer(start)
                await answer({"type": "http.response.body", "body": body})
                return
            await answer(message)

        if path.rstrip("/") == "/metrics" and not self._metrics_allowed(scope):
            try:
                await self._refuse_metrics(secured)
            finally:
                self.metrics.record(scope, root_path, final[0], final[1], started)
            return

        request_id = request_id_of(scope)
        request_id_header = (b"x-request-id", request_id.encode("latin-1"))
        token = request_id_var.set(request_id)
        logged_status = 500
        limit = self.body_limits.limit_for(scope["path"])

        async def identified(message) -> None:  # the request id, and the status the access line shows
            nonlocal logged_status
            if message["type"] == "http.response.start":
                logged_status = message["status"]
                message["headers"] = [*message.get("headers", []), request_id_header]
            await secured(message)

        try:
            await call_within_limit(self.app, scope, receive, identified, limit)
        finally:
            log_request(self.log, scope, logged_status, started)
            request_id_var.reset(token)
            self.metrics.record(scope, root_path, final[0], final[1], started)

    _metrics_allowed = SecurityHeadersMiddleware._metrics_allowed
    _refuse_metrics = SecurityHeadersMiddleware._refuse_metrics
