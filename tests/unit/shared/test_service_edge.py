"""The services' one edge layer (shared.http_headers.ServiceEdge, issue 15) answers exactly as the five layers it
replaced, stacked as they were: the same status, the same headers in the same order, the same body, the same
access line and the same request series, for plain answers, problems in both languages, the body limit (declared
and streamed), an unhandled error, and /metrics guarded and open."""
from __future__ import annotations

import logging

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, generate_latest

from shared.body_limit import BodyLimitMiddleware
from shared.http_headers import SecurityHeadersMiddleware, ServiceEdge
from shared.logs import RequestIdMiddleware, request_id_var
from shared.metrics import RequestMetrics
from shared.problems import Problem, install_problem_handlers

LIMITS = {"default_limit": 100, "route_limits": {"/v1/upload": 1_000}}


def _routes(app: FastAPI) -> None:
    @app.get("/v1/things/{thing}")
    async def thing(thing: str):
        return JSONResponse({"thing": thing, "request_id": request_id_var.get()},
                            headers={"Cache-Control": "max-age=60", "Server": "leaky", "Vary": "Origin"})

    @app.get("/plain")
    async def plain():
        return PlainTextResponse("ok", headers={"Cache-Control": "max-age=60"})

    @app.get("/v1/problem")
    async def problem():
        raise Problem(404, "Household not found", "No household hh-9 in the registry.")

    @app.post("/v1/upload")
    async def upload(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    @app.post("/v1/small")
    async def small(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    @app.get("/v1/boom")
    async def boom():
        raise RuntimeError("unexpected")

    @app.get("/metrics")
    async def metrics():
        return PlainTextResponse("# metrics\n")


def stacked(registry) -> FastAPI:
    """The layers as shared/app.py stacked them before the edge (outermost added last)."""
    app = FastAPI()
    _routes(app)
    app.add_middleware(BodyLimitMiddleware, **LIMITS)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, metrics_token="metrics-secret")
    install_problem_handlers(app)
    app.add_middleware(RequestMetrics, registry=registry, excluded_handlers=("/metrics",))
    return app


def edge(registry) -> FastAPI:
    app = FastAPI()
    _routes(app)
    install_problem_handlers(app, language_layer=False)
    app.add_middleware(ServiceEdge, metrics=RequestMetrics(registry=registry, excluded_handlers=("/metrics",)),
                       body_limits=BodyLimitMiddleware(None, **LIMITS), metrics_token="metrics-secret")
    return app


async def _chunks(data: bytes, size: int = 40):
    for start in range(0, len(data), size):
        yield data[start:start + size]


REQUESTS = [
    ("GET", "/v1/things/a", {}, None),
    ("GET", "/plain", {}, None),
    ("GET", "/v1/problem", {"Accept-Language": "zh-CN,zh;q=0.9"}, None),
    ("GET", "/v1/problem", {"Accept-Language": "en"}, None),
    ("GET", "/v1/nowhere", {"Accept-Language": "zh"}, None),
    ("POST", "/v1/small", {"Content-Type": "application/json"}, b"x" * 50),
    ("POST", "/v1/small", {"Accept-Language": "zh"}, b"x" * 101),  # declared over the limit
    ("POST", "/v1/small", {}, "stream:150"),  # streamed over the limit, no Content-Length
    ("POST", "/v1/upload", {}, b"y" * 900),
    ("GET", "/v1/boom", {}, None),
    ("GET", "/metrics", {}, None),  # without the token: 401, no request id, no access line
    ("GET", "/metrics", {"Authorization": "Bearer metrics-secret"}, None),
]


async def _answers(app: FastAPI) -> list[tuple]:
    answers = []
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for index, (method, path, headers, body) in enumerate(REQUESTS):
            headers = {**headers, "X-Request-ID": f"req-{index}"}
            if isinstance(body, str):
                body = _chunks(b"z" * int(body.split(":")[1]))
            response = await client.request(method, path, headers=headers, content=body)
            answers.append((method, path, response.status_code, response.headers.raw, response.content))
    return answers


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.getMessage(), dict(record.fields), request_id_var.get()))


def _series(registry) -> list[str]:
    """The request series without the timings (which differ from run to run)."""
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line and
            line.startswith(("http_requests_total{", "http_request_size_bytes_", "http_response_size_bytes_",
                                "http_request_duration_highr_seconds_count", "http_request_duration_seconds_count"))]


@pytest.fixture
def access_lines():
    http = logging.getLogger("http")
    handler, level = _Lines(), http.level
    http.addHandler(handler)
    http.setLevel(logging.INFO)
    yield handler
    http.removeHandler(handler)
    http.setLevel(level)


async def test_the_edge_answers_logs_and_counts_as_the_stacked_layers(access_lines):
    results = []
    for build in (stacked, edge):
        registry = CollectorRegistry()
        access_lines.lines.clear()
        answers = await _answers(build(registry))
        lines = [(message, {k: v for k, v in fields.items() if k != "ms"}, request_id)
                 for message, fields, request_id in access_lines.lines]
        results.append((answers, lines, _series(registry)))
    (old_answers, old_lines, old_series), (new_answers, new_lines, new_series) = results
    for old, new in zip(old_answers, new_answers, strict=True):
        assert new == old
    assert new_lines == old_lines
    assert new_series == old_series
    # what the comparison covered (so that it cannot pass on empty answers)
    statuses = [answer[2] for answer in new_answers]
    assert statuses == [200, 200, 404, 404, 404, 200, 413, 413, 200, 500, 401, 200]
    headers = dict(new_answers[0][3])
    assert headers[b"x-request-id"] == b"req-0" and headers[b"cache-control"] == b"no-store"
    assert b"server" not in headers and headers[b"referrer-policy"] == b"no-referrer"
    assert dict(new_answers[2][3])[b"content-language"] == b"zh"
    assert b"x-request-id" not in dict(new_answers[10][3])  # the refused /metrics is answered before the id
    assert [fields["status"] for _, fields, _ in new_lines] == [200, 200, 404, 404, 404, 200, 413, 413, 200, 500, 200]
    assert any('status="4xx"' in line and 'handler="/v1/small"' in line for line in new_series)
