"""Production refuses to run on development trust, and JWKS fetching never freezes other requests.

* ``JZ_PROFILE=production`` without an external issuer, a partner signing key or a metrics token is a
  start-up error naming the setting; nothing is opened and no development key is created;
* the development issuer does not exist in production (``mint_token``, ``jingzhun token``, the verifier);
* a JWKS server that takes 2 s to answer delays only requests whose key is not cached yet; at most
  one fetch is in flight; a first fetch that times out answers 503 problem+json, not a hang.
"""
from __future__ import annotations

import asyncio
import socket
import time
import uuid
from datetime import date

import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from typer.testing import CliRunner

from services.audit.app import create_app as create_audit
from services.registry.app import create_app as create_registry
from shared.auth import DevIssuerRefused, TokenVerifier, mint_token, public_jwk
from shared.config import (AuditSettings, BenefitsSettings, InsecureConfiguration, RegistrySettings,
                           production_refusals)
from shared.launcher import LaunchConfig, LaunchError, SystemLauncher
from shared.problems import Problem
from tests.helpers import running_app

ISSUER = "https://sso.example.test/realms/jingzhun"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- refusal -------------------------------------------------------------------------------------------

def test_production_refusals_name_the_settings(tmp_path):
    bare = production_refusals(BenefitsSettings(profile="production", var_dir=tmp_path))
    text = " ".join(bare)
    for setting in ("JZ_JWT_JWKS_URL", "JZ_BENEFITS_PARTNER_SIGNING_KEY_FILE", "JZ_METRICS_TOKEN", "JZ_IDENTITY_KEY"):
        assert setting in text
    registry = " ".join(production_refusals(RegistrySettings(profile="production", var_dir=tmp_path)))
    assert "JZ_JWT_JWKS_URL" in registry and "PARTNER_SIGNING_KEY" not in registry  # only benefits signs
    assert "JZ_IDENTITY_KEY" in registry
    audit = " ".join(production_refusals(AuditSettings(profile="production", var_dir=tmp_path)))
    assert "JZ_IDENTITY_KEY" not in audit  # the ledger gets hashes in the events, never the key
    from shared.signing import init_deployment_keys  # events are signed too: give benefits its event keys
    init_deployment_keys(tmp_path / "event-keys", tmp_path / "keyring.json", ["benefits"])
    event_keys = {"event_signing_key_file": tmp_path / "event-keys" / "benefits" / "events.pem",
                  "event_trusted_keys_file": tmp_path / "keyring.json", "identity_key": "k" * 64}
    missing_key = production_refusals(BenefitsSettings(profile="production", jwt_jwks_url="https://x/jwks",
                                                       metrics_token="m", partner_signing_key_file=tmp_path / "no.pem",
                                                       **event_keys))
    assert missing_key == [f"JZ_BENEFITS_PARTNER_SIGNING_KEY_FILE={tmp_path / 'no.pem'} does not exist"]
    key_file = tmp_path / "partner.pem"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\n")
    assert production_refusals(BenefitsSettings(profile="production", jwt_jwks_url="https://x/jwks", metrics_token="m",
                                                partner_signing_key_file=key_file, **event_keys)) == []
    assert production_refusals(RegistrySettings(var_dir=tmp_path)) == []  # embedded: development trust is fine


async def test_production_app_refuses_to_start_before_opening_anything(tmp_path):
    settings = AuditSettings(profile="production", var_dir=tmp_path, kafka_bootstrap="127.0.0.1:1",
                             run_consumer=False, log_json=False,
                             database_url=f"sqlite+aiosqlite:///{tmp_path}/audit.db")
    app = create_audit(settings, id_hash_key="k", checkpoint_schedule=False)
    with pytest.raises(InsecureConfiguration) as refused:
        async with running_app(app):
            pass
    assert "JZ_JWT_JWKS_URL" in str(refused.value) and "JZ_METRICS_TOKEN" in str(refused.value)
    assert not (tmp_path / "audit.db").exists()
    assert not settings.dev_key_file.exists()


def test_no_development_issuer_in_production(tmp_path, monkeypatch):
    production = RegistrySettings(profile="production", var_dir=tmp_path)
    with pytest.raises(DevIssuerRefused):
        mint_token(production, "admin")
    # A token signed with a development key from elsewhere is not trusted either.
    embedded_token = mint_token(RegistrySettings(var_dir=tmp_path / "elsewhere"), "admin")
    with pytest.raises(Problem) as refused:
        TokenVerifier(production).verify(embedded_token)
    assert refused.value.status == 401
    assert not production.dev_key_file.exists()
    # The CLI says so plainly and exits non-zero.
    from jingzhun_cli.main import app as cli
    monkeypatch.setenv("JZ_PROFILE", "production")
    monkeypatch.setenv("JZ_VAR_DIR", str(tmp_path))
    result = CliRunner().invoke(cli, ["token", "--scopes", "admin"])
    assert result.exit_code == 2
    assert "production" in result.output and "JZ_JWT_JWKS_URL" in result.output and "eyJ" not in result.output
    assert not production.dev_key_file.exists()


async def test_launcher_refuses_production_without_keys_before_spawning(tmp_path, monkeypatch):
    monkeypatch.setenv("JZ_PROFILE", "production")
    for name in ("JZ_JWT_JWKS_URL", "JZ_JWT_PUBLIC_KEY_FILE", "JZ_METRICS_TOKEN", "JZ_BENEFITS_PARTNER_SIGNING_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    launcher = SystemLauncher(LaunchConfig(var_dir=tmp_path, broker_port=free_port()))
    with pytest.raises(LaunchError) as refused:
        await launcher.start()
    message = str(refused.value)
    assert "registry: JZ_JWT_JWKS_URL" in message and "benefits: JZ_BENEFITS_PARTNER_SIGNING_KEY_FILE" in message
    assert launcher.children == {} and not list(tmp_path.glob("*.db"))


# -- JWKS: asynchronous, cached, one fetch in flight -----------------------------------------------------

class SlowJwks:
    """An external issuer: a JWKS endpoint whose answer takes ``delay_s``, and tokens signed by its keys."""

    def __init__(self) -> None:
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.published: set[str] = set()
        self.delay_s = 0.0
        self.fetches = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/jwks"

    def add_key(self, publish: bool = True) -> str:
        kid = uuid.uuid4().hex[:8]
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if publish:
            self.published.add(kid)
        return kid

    def token(self, kid: str, scope: str = "registry:read") -> str:
        now = int(time.time())
        return jwt.encode({"iss": ISSUER, "aud": "jingzhun", "sub": "office-1", "scope": scope, "iat": now,
                           "exp": now + 600}, self.keys[kid], algorithm="RS256", headers={"kid": kid})

    async def endpoint(self, request):
        self.fetches += 1
        await asyncio.sleep(self.delay_s)
        return JSONResponse({"keys": [{**public_jwk(self.keys[kid].public_key()), "kid": kid, "use": "sig",
                                       "alg": "RS256"} for kid in sorted(self.published)]})


@pytest.fixture
async def slow_jwks():
    issuer = SlowJwks()
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=[Route("/jwks", issuer.endpoint)]), host="127.0.0.1",
                                           port=issuer.port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    yield issuer
    server.should_exit = True
    await serving


def registry_with_jwks(tmp_path, url: str, **overrides):
    settings = RegistrySettings(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/registry.db",
                                kafka_bootstrap="127.0.0.1:1", log_json=False, jwt_jwks_url=url, jwt_issuer=ISSUER,
                                **overrides)
    return create_registry(settings)


async def timed_get(client, token: str) -> tuple[int, float]:
    started = time.perf_counter()
    response = await client.get("/v1/households/hh-none", headers={"Authorization": f"Bearer {token}"})
    return response.status_code, time.perf_counter() - started


async def test_a_slow_jwks_server_delays_only_requests_whose_key_is_not_cached(tmp_path, slow_jwks):
    cached_kid = slow_jwks.add_key()
    app = registry_with_jwks(tmp_path, slow_jwks.url, jwks_cache_ttl_s=0.5, jwks_refresh_min_interval_s=0.0)
    async with running_app(app) as client:
        assert (await timed_get(client, slow_jwks.token(cached_kid)))[0] == 404  # authenticated; no such household
        assert slow_jwks.fetches == 1
        new_kid = slow_jwks.add_key()  # the issuer rotates: a kid the service has not seen
        slow_jwks.delay_s = 2.0
        await asyncio.sleep(0.6)  # the cached set is now stale as well
        waiting = [asyncio.create_task(timed_get(client, slow_jwks.token(new_kid))) for _ in range(5)]
        await asyncio.sleep(0.05)
        quick = await asyncio.gather(*(timed_get(client, slow_jwks.token(cached_kid)) for _ in range(20)))
        assert all(status == 404 for status, _ in quick)
        slowest = max(seconds for _, seconds in quick)
        slow = await asyncio.gather(*waiting)
        print(f"\ncached-key requests during a 2 s JWKS fetch: 20, slowest {slowest * 1000:.0f} ms; "
              f"new-key requests: {[f'{s:.2f}s' for _, s in slow]}; JWKS fetches: {slow_jwks.fetches}")
        assert slowest < 0.5
        assert all(status == 404 for status, _ in slow) and all(seconds >= 1.5 for _, seconds in slow)
        assert slow_jwks.fetches == 2  # the stale refresh and five unknown-kid requests shared one fetch
        slow_jwks.delay_s = 0.0
        stranger = slow_jwks.add_key(publish=False)
        assert (await timed_get(client, slow_jwks.token(stranger)))[0] == 401
        garbage = await client.get("/v1/households/hh-none", headers={"Authorization": "Bearer not.a.jwt"})
        assert garbage.status_code == 401 and garbage.headers["content-type"] == "application/problem+json"


async def test_a_first_jwks_fetch_that_times_out_answers_503_not_a_hang(tmp_path, slow_jwks):
    kid = slow_jwks.add_key()
    slow_jwks.delay_s = 3.0
    app = registry_with_jwks(tmp_path, slow_jwks.url, jwks_fetch_timeout_s=0.5)
    async with running_app(app) as client:
        started = time.perf_counter()
        response = await client.get("/v1/households/hh-none", headers={"Authorization": f"Bearer {slow_jwks.token(kid)}"})
        elapsed = time.perf_counter() - started
        assert response.status_code == 503 and elapsed < 1.5
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "https://jingzhun.dev/problems/token-keys-unavailable"
        assert int(response.headers["retry-after"]) >= 1
        assert (await client.get("/healthz")).status_code == 200


# -- deployment files give production what it refuses to start without ------------------------------------

def _no_server_header(command: list[str], service: str) -> bool:
    """uvicorn run without its ``server`` header: directly, or through ``shared.launcher serve`` (the workers),
    which starts uvicorn with ``uvicorn_options()``."""
    from shared.launcher import uvicorn_options
    if command[:4] == ["python", "-m", "shared.launcher", "serve"]:
        return command[4] == service and "--no-server-header" in uvicorn_options()
    return "--no-server-header" in command


def test_compose_and_k8s_provide_the_production_settings():
    from pathlib import Path

    import yaml
    root = Path(__file__).resolve().parents[2]
    compose = yaml.safe_load((root / "docker-compose.yml").read_text(encoding="utf-8"))["services"]
    for name in ("registry", "benefits", "audit"):
        env = compose[name]["environment"]
        assert env["JZ_PROFILE"] == "production" and env["JZ_JWT_JWKS_URL"]
        assert str(env["JZ_METRICS_TOKEN"]).startswith("${JZ_METRICS_TOKEN"), name  # from outside, no default
        assert env["JZ_PARTNER_JWKS_URL"] == "http://benefits:8002/.well-known/jwks.json"
        assert _no_server_header(compose[name]["command"], name), compose[name]["command"]
    benefits = compose["benefits"]
    assert benefits["environment"]["JZ_BENEFITS_PARTNER_SIGNING_KEY_FILE"] == "/run/secrets/partner_signing_key"
    assert "partner_signing_key" in benefits["secrets"]
    k8s = {}
    for path in (root / "deploy" / "k8s").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "Deployment":
                k8s[doc["metadata"]["name"]] = doc["spec"]["template"]["spec"]
    for name in ("registry", "benefits", "audit"):
        [container] = k8s[name]["containers"]
        env = {e["name"]: e for e in container.get("env", [])}
        assert env["JZ_METRICS_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "jingzhun-metrics", name
        assert _no_server_header(container["command"], name), container["command"]
    [container] = k8s["benefits"]["containers"]
    key_file = {e["name"]: e for e in container["env"]}["JZ_BENEFITS_PARTNER_SIGNING_KEY_FILE"]["value"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert key_file.startswith(mounts["partner-signing"] + "/")
    volumes = {v["name"]: v for v in k8s["benefits"]["volumes"]}
    assert volumes["partner-signing"]["secret"]["secretName"] == "jingzhun-partner-signing"


async def test_registry_calls_benefits_with_a_token_from_the_external_issuer_in_production(tmp_path):
    import base64

    import httpx

    from services.registry.benefits_client import BenefitsClient
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "issuer-token", "expires_in": 300})
        return httpx.Response(200, json={"assessments": []})

    settings = RegistrySettings(profile="production", var_dir=tmp_path, service_token_url="https://sso.test/token",
                                service_client_id="jingzhun-registry", service_client_secret="s e/cret")
    client = BenefitsClient(settings, transport=httpx.MockTransport(handler))
    await client.evaluate({"id": "hh-1"}, date(2020, 6, 30))
    await client.evaluate({"id": "hh-1"}, date(2020, 6, 30))
    token_calls = [r for r in seen if r.url.path == "/token"]
    assert len(token_calls) == 1  # cached until shortly before it expires
    assert b"grant_type=client_credentials" in token_calls[0].content and b"scope=benefits%3Aevaluate" in token_calls[0].content
    basic = base64.b64decode(token_calls[0].headers["authorization"].removeprefix("Basic ")).decode()
    assert basic == "jingzhun-registry:s e/cret"
    assert all(r.headers["authorization"] == "Bearer issuer-token" for r in seen if r.url.path == "/v1/evaluate")
    assert not settings.dev_key_file.exists()
    unconfigured = BenefitsClient(RegistrySettings(profile="production", var_dir=tmp_path),
                                  transport=httpx.MockTransport(handler))
    with pytest.raises(Problem) as refused:
        await unconfigured.evaluate({"id": "hh-1"}, date(2020, 6, 30))
    assert refused.value.status == 503 and "JZ_REGISTRY_SERVICE_TOKEN_URL" in refused.value.detail
