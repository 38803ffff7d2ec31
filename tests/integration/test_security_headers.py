"""Headers on every service, /metrics behind a setting, the dashboard's CSP and cookie, no server banner."""
from __future__ import annotations

import asyncio
import re
import socket
import subprocess

import httpx
import pytest

from services.audit.app import create_app as create_audit
from services.benefits.app import create_app as create_benefits
from services.registry.app import create_app as create_registry
from shared.auth import mint_token
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings
from shared.launcher import LaunchConfig, service_command
from tests.helpers import running_app


def common(tmp_path, name: str, **overrides) -> dict:
    return dict(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/{name}.db",
                kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False, **overrides)


def apps(tmp_path, **overrides):
    return {"registry": create_registry(RegistrySettings(**common(tmp_path, "registry", **overrides))),
            "benefits": create_benefits(BenefitsSettings(**common(tmp_path, "benefits", **overrides))),
            "audit": create_audit(AuditSettings(**common(tmp_path, "audit", **overrides)), id_hash_key="k",
                                  checkpoint_schedule=False)}


PERSONAL = {"registry": "/v1/households/hh-none", "benefits": "/v1/partners/clients", "audit": "/v1/audit/records"}


@pytest.mark.parametrize("service", ["registry", "benefits", "audit"])
async def test_every_response_carries_the_headers_and_personal_data_is_not_stored(tmp_path, service):
    app = apps(tmp_path)[service]
    token = mint_token(app.state.settings, "admin")
    async with running_app(app, token) as client:
        health = await client.get("/healthz")
        for response in (health, await client.get(PERSONAL[service]),
                         await client.get(PERSONAL[service], headers={"Authorization": "Bearer nope"})):
            assert response.headers["x-content-type-options"] == "nosniff", response.url
            assert response.headers["referrer-policy"] == "no-referrer"
            assert "server" not in response.headers
        assert "no-store" not in health.headers.get("cache-control", "")
        for response in (await client.get(PERSONAL[service]),
                         await client.get(PERSONAL[service], headers={"Authorization": "Bearer nope"})):
            assert response.headers["cache-control"] == "no-store", response.text
        if service == "benefits":
            oauth = await client.post("/oauth/token", data={"grant_type": "client_credentials"})
            assert oauth.status_code == 401 and oauth.headers["cache-control"] == "no-store"


async def test_metrics_open_to_loopback_only_without_a_token_and_behind_the_token_with_one(tmp_path):
    app = apps(tmp_path)["audit"]
    async with running_app(app) as local:
        assert (await local.get("/metrics")).status_code == 200  # the embedded default: loopback callers
        remote = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("192.0.2.7", 4000)),
                                   base_url="http://test")
        async with remote:
            refused = await remote.get("/metrics")
            assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
            assert (await remote.get("/healthz")).status_code == 200
    guarded = apps(tmp_path / "guarded", metrics_token="s3cret-metrics")["registry"]
    async with running_app(guarded) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        ok = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
        assert ok.status_code == 200 and "http_requests_total" in ok.text


async def test_dashboard_csp_allows_only_its_own_nonced_stylesheet(tmp_path):
    app = apps(tmp_path)["audit"]
    token = mint_token(app.state.settings, "audit:read")
    async with running_app(app, token) as client:
        pages = [await client.get("/dashboard", params={"as_of": "2020-06-30"}) for _ in range(2)]
    nonces = []
    for page in pages:
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
        nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
        assert f'<style nonce="{nonce}">' in page.text
        # Nothing else the policy would block: no scripts, no inline style attributes, no outside resources.
        assert "<script" not in page.text and " style=" not in page.text and "<link" not in page.text
        assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


@pytest.mark.parametrize("profile, configured, secure", [("embedded", None, False), ("production", None, True),
                                                         ("production", False, False), ("embedded", True, True)])
async def test_dashboard_cookie_is_secure_outside_development(tmp_path, profile, configured, secure):
    settings = AuditSettings(**common(tmp_path, "audit"))
    token = mint_token(settings, "audit:read")
    app = create_audit(settings, id_hash_key="k", checkpoint_schedule=False, cookie_secure=configured)
    # The profile decides only the default; the app runs embedded so the test can use a development token.
    async with running_app(app) as client:
        app.state.settings = settings.model_copy(update={"profile": profile})
        redirect = await client.get("/dashboard", params={"token": token})
    assert redirect.status_code == 303
    cookie = redirect.headers["set-cookie"].lower()
    assert ("; secure" in cookie) is secure and "httponly" in cookie and "samesite=strict" in cookie


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_services_started_by_the_launcher_send_no_server_banner(tmp_path):
    port = free_port()
    command = service_command("audit", port)
    assert "--no-server-header" in command
    env = {**LaunchConfig(var_dir=tmp_path).child_env(), "JZ_AUDIT_PORT": str(port), "JZ_AUDIT_RUN_CONSUMER": "false",
           "JZ_AUDIT_CHECKPOINT_SCHEDULE": "false", "JZ_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(150):
                try:
                    response = await client.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("audit did not start")
        assert response.status_code == 200 and "server" not in response.headers
        assert response.headers["x-content-type-options"] == "nosniff"
    finally:
        process.terminate()
        process.wait(timeout=15)
