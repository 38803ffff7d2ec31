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

from shared.problems import PROBLEM_MEDIA_TYPE

PERSONAL_DATA_PREFIXES = ("/v1/", "/oauth/", "/dashboard", "/dci/")
ALWAYS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))
NO_STORE = (b"cache-control", b"no-store")


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
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in {b"server", b"x-content-type-options", b"referrer-policy"}
                           and not (no_store and k.lower() == b"cache-control")]
                headers.extend(ALWAYS)
                if no_store:
                    headers.append(NO_STORE)
                message = {**message, "headers": headers}
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
