"""Swagger UI and ReDoc work without internet (issue 12, item 1): each service serves the assets itself.

Headless Chromium opens /docs and /redoc of each service with every host but 127.0.0.1 unresolvable (a
government intranet), and must find the operations rendered. Skips without Chromium unless CI is set.
"""
from __future__ import annotations

import asyncio
import re

import pytest
import uvicorn

from services.audit.app import create_app as create_audit
from services.benefits.app import create_app as create_benefits
from services.registry.app import create_app as create_registry
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings
from tests.integration.audit.test_dashboard_browser import chromium, chromium_binary, free_port

SERVICES = {
    "registry": (create_registry, RegistrySettings, "/v1/households"),
    "benefits": (create_benefits, BenefitsSettings, "/v1/evaluate"),
    "audit": (create_audit, AuditSettings, "/v1/audit/verify"),
}
#: Only loopback resolves: a page that reaches for a CDN finds nothing, as on an intranet.
NO_NETWORK = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"


def app_for(service: str, tmp_path):
    factory, settings_class, _ = SERVICES[service]
    settings = settings_class(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/{service}.db",
                              kafka_bootstrap="127.0.0.1:1", run_consumer=False, log_json=False)
    return factory(settings)


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_docs_pages_name_no_host_but_their_own(service, tmp_path):
    import httpx
    app = app_for(service, tmp_path)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        for page in ("/docs", "/redoc"):
            html = (await client.get(page)).text
            assert re.findall(r'(?:src|href)="(https?:)?//', html) == [], (page, html)
            for asset in re.findall(r'(?:src|href)="(/docs-assets/[^"]+)"', html):
                answer = await client.get(asset)
                assert answer.status_code == 200 and len(answer.content) > 1000, asset
        assert (await client.get("/docs/oauth2-redirect")).status_code == 200  # the Authorize button's return


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_swagger_ui_and_redoc_render_the_operations_with_the_network_blocked(service, tmp_path):
    binary = chromium_binary()
    app = app_for(service, tmp_path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        path = SERVICES[service][2]
        swagger = await chromium(binary, tmp_path, f"http://127.0.0.1:{port}/docs", NO_NETWORK,
                                 "--virtual-time-budget=20000", "--dump-dom")
        assert "opblock-summary" in swagger and path in swagger, swagger[-3000:]
        assert swagger.count('class="opblock ') >= 3  # the operations, not an empty shell
        redoc = await chromium(binary, tmp_path, f"http://127.0.0.1:{port}/redoc", NO_NETWORK,
                               "--virtual-time-budget=20000", "--dump-dom")
        assert path in redoc and "operation/" in redoc, redoc[-3000:]
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 15)
