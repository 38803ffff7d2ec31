"""The request body limit: declared and streamed bytes, per route, 413 problem+json, the app never runs."""
from __future__ import annotations

import httpx
from fastapi import FastAPI, Request

from shared.body_limit import BodyLimitMiddleware

LIMIT, UPLOAD_LIMIT = 1_000, 10_000


def _app() -> tuple[FastAPI, list]:
    app = FastAPI()
    seen: list[int] = []

    @app.post("/v1/things")
    async def things(request: Request) -> dict:
        body = await request.body()
        seen.append(len(body))
        return {"bytes": len(body)}

    @app.post("/v1/imports")
    async def imports(request: Request) -> dict:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        seen.append(size)
        return {"bytes": size}

    @app.post("/v1/households/{household_id}/members")
    async def members(request: Request, household_id: str) -> dict:
        return {"bytes": len(await request.body())}

    app.add_middleware(BodyLimitMiddleware, default_limit=LIMIT,
                       route_limits={"/v1/imports": UPLOAD_LIMIT, "/v1/households/{household_id}/members": 50})
    return app, seen


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def _assert_413(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 413 and body["title"] == "Request body too large"
    assert body["limit"] == limit and str(limit) in body["detail"]


async def test_a_declared_content_length_over_the_limit_is_refused_before_the_app_runs():
    app, seen = _app()
    async with _client(app) as client:
        _assert_413(await client.post("/v1/things", content=b"x" * (LIMIT + 1)), LIMIT)
        ok = await client.post("/v1/things", content=b"x" * LIMIT)
    assert ok.status_code == 200 and ok.json() == {"bytes": LIMIT}
    assert seen == [LIMIT]  # the refused request never reached the route


async def test_streamed_bytes_are_counted_without_a_content_length():
    app, seen = _app()

    async def chunks(count: int, size: int = 400):
        for _ in range(count):
            yield b"y" * size

    async with _client(app) as client:
        # a generator body goes out chunked: no Content-Length for the middleware to trust
        refused = await client.post("/v1/things", content=chunks(3))  # 1,200 bytes > 1,000
        _assert_413(refused, LIMIT)
        streamed = await client.post("/v1/imports", content=chunks(26))  # 10,400 > 10,000
        _assert_413(streamed, UPLOAD_LIMIT)
        fits = await client.post("/v1/imports", content=chunks(25))
    assert fits.status_code == 200 and fits.json() == {"bytes": 10_000}
    assert seen == [10_000]


async def test_routes_get_their_own_limits_and_templates_match_one_segment():
    app, _ = _app()
    async with _client(app) as client:
        assert (await client.post("/v1/imports", content=b"z" * 5_000)).status_code == 200  # over the default
        _assert_413(await client.post("/v1/households/hh-1/members", content=b"z" * 51), 50)
        assert (await client.post("/v1/households/hh-1/members", content=b"z" * 50)).status_code == 200
        # one more segment is not the template: the default limit applies (and the path is unknown)
        assert (await client.post("/v1/households/hh-1/members/x", content=b"z" * 51)).status_code == 404


def test_the_service_apps_install_the_limit_from_settings():
    from services.registry.app import create_app
    from shared.config import RegistrySettings
    settings = RegistrySettings(body_limit_bytes=123, body_limit_routes={"/v1/imports": 456})
    app = create_app(settings)
    from shared.http_headers import ServiceEdge
    found = [m for m in app.user_middleware if m.cls is ServiceEdge]  # the limit is one of the edge's layers
    assert len(found) == 1
    limits = found[0].kwargs["body_limits"]
    assert (limits.default_limit, limits.exact, limits.templates) == (123, {"/v1/imports": 456}, [])
