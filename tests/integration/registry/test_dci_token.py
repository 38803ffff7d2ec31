"""The DCI token API on the registry (`POST /oauth2/client/token`) over benefits' partner clients, with the real
benefits and registry apps in-process (the registry reaches benefits over HTTP only), on SQLite and PostgreSQL.

A client registered in benefits with scope dci and area 360703 gets its token through the registry as DCI JSON,
as an RFC 6749 form and with HTTP Basic; the token is a partner token the registry verifies through benefits'
JWKS (scope dci, area 360703). Benefits' refusals come back as benefits gave them, a malformed request is a 400
invalid_request, benefits down a 503 problem, and the secret is in no log line and no answer.
"""
from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

import httpx
import pytest

from services.benefits.app import create_app as create_benefits
from services.registry.app import create_app as create_registry
from shared.auth import mint_token
from shared.config import BenefitsSettings, RegistrySettings
from tests.helpers import running_app

TOKEN = "/oauth2/client/token"
GRANT = "client_credentials"


class BenefitsLink(httpx.AsyncBaseTransport):
    """The registry's HTTP link to benefits: the real app in-process, the paths asked for, and a switch to cut it."""

    def __init__(self, app) -> None:
        self.inner, self.paths, self.down = httpx.ASGITransport(app=app), [], False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("benefits is down", request=request)
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)


@dataclass
class Apps:
    registry_app: object
    registry: httpx.AsyncClient
    benefits_admin: httpx.AsyncClient
    link: BenefitsLink
    client_id: str
    secret: str

    def basic(self, secret: str | None = None) -> dict:
        raw = f"{self.client_id}:{secret or self.secret}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    def json_body(self, **changes) -> dict:
        return {"grant_type": GRANT, "client_id": self.client_id, "client_secret": self.secret, **changes}


@pytest.fixture
async def apps(databases, tmp_path):
    common = dict(var_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", log_json=False)
    benefits_settings = BenefitsSettings(database_url=await databases.url("benefits"), run_consumer=False,
                                         oauth_failures_per_client=3, **common)
    benefits = create_benefits(benefits_settings)
    link = BenefitsLink(benefits)
    settings = RegistrySettings(database_url=await databases.url("registry"), benefits_url="http://benefits",
                                partner_jwks_url="http://benefits/.well-known/jwks.json", **common)
    registry = create_registry(settings, benefits_transport=link)
    # the registry's verifier fetches benefits' JWKS over HTTP, as it would in production
    registry.state.token_verifier.partner_jwks.transport = httpx.ASGITransport(app=benefits)
    async with running_app(benefits, mint_token(benefits_settings, "admin", subject="ops-admin")) as admin, \
            running_app(registry) as registry_client:
        created = await admin.post("/v1/partners/clients", json={"name": "赣州市民政局 DCI", "scopes": ["dci"],
                                                                  "area": "360703"})
        assert created.status_code == 201, created.text
        client = created.json()
        assert client["area"] == "360703" and client["scopes"] == ["dci"]
        yield Apps(registry, registry_client, admin, link, client["client_id"], client["client_secret"])


async def _granted(apps: Apps, answer: httpx.Response) -> None:
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "bearer" and body["scope"] == "dci"
    assert isinstance(body["expires_in"], str) and body["expires_in"].isdigit() and int(body["expires_in"]) > 0
    principal = await apps.registry_app.state.token_verifier.averify(body["access_token"])
    assert principal.scopes == frozenset({"dci"}) and principal.area == "360703"
    assert principal.client_id == apps.client_id and principal.subject == apps.client_id


async def test_a_dci_client_gets_its_token_as_json_as_a_form_and_with_basic(apps):
    await _granted(apps, await apps.registry.post(TOKEN, json=apps.json_body()))
    await _granted(apps, await apps.registry.post(TOKEN, json=apps.json_body(scope="dci", unknown="ignored")))
    await _granted(apps, await apps.registry.post(TOKEN, data=apps.json_body()))
    await _granted(apps, await apps.registry.post(TOKEN, data={"grant_type": GRANT}, headers=apps.basic()))
    await _granted(apps, await apps.registry.post(TOKEN, json={"grant_type": GRANT}, headers=apps.basic()))
    charset = await apps.registry.post(TOKEN, content=httpx.Request("POST", "/", json=apps.json_body()).content,
                                       headers={"Content-Type": "application/json; charset=utf-8"})
    await _granted(apps, charset)
    assert apps.link.paths == ["/oauth/token"] * 6  # the registry asked benefits, nothing else


async def test_benefits_refusals_come_back_as_benefits_gave_them(apps):
    wrong = await apps.registry.post(TOKEN, json=apps.json_body(client_secret="not-the-secret"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["content-type"] == "application/problem+json"
    assert wrong.headers["www-authenticate"].startswith("Basic") and wrong.headers["cache-control"] == "no-store"
    assert wrong.json()["type"] == "https://jingzhun.dev/problems/oauth/invalid_client"
    wrong_basic = await apps.registry.post(TOKEN, data={"grant_type": GRANT}, headers=apps.basic("nope"))
    assert wrong_basic.status_code == 401 and wrong_basic.json()["error"] == "invalid_client"

    grant = await apps.registry.post(TOKEN, json=apps.json_body(grant_type="password"))
    assert grant.status_code == 400 and grant.json()["error"] == "unsupported_grant_type"
    scope = await apps.registry.post(TOKEN, json=apps.json_body(scope="dci credit"))
    assert scope.status_code == 400 and scope.json()["error"] == "invalid_scope"
    assert scope.json()["error_description"] == "This client may request: dci."
    # in the caller's language, like every problem of the registry
    chinese = await apps.registry.post(TOKEN, json=apps.json_body(client_secret="x"),
                                       headers={"Accept-Language": "zh-CN"})
    assert chinese.status_code == 401 and chinese.json()["title"] == "客户端无效"
    assert chinese.json()["error"] == "invalid_client"

    # benefits' throttle (3 failures per client here): 429 with its Retry-After, passed on
    throttled = await apps.registry.post(TOKEN, json=apps.json_body())
    assert throttled.status_code == 429, throttled.text
    assert int(throttled.headers["retry-after"]) > 0 and throttled.headers["cache-control"] == "no-store"
    assert throttled.json()["type"] == "https://jingzhun.dev/problems/rate-limited"


@pytest.mark.parametrize("request_kw, names", [
    ({"json": {"grant_type": GRANT, "client_id": "jzc_0000000000000000"}}, "client_secret"),
    ({"json": {"client_id": "jzc_0000000000000000", "client_secret": "s"}}, "grant_type"),
    ({"data": {"client_id": "jzc_0000000000000000"}}, "grant_type, client_secret"),
    ({"json": {"grant_type": GRANT, "client_id": "", "client_secret": "s"}}, "client_id"),
    ({}, "grant_type, client_id, client_secret"),
])
async def test_a_missing_field_is_invalid_request(apps, request_kw, names):
    answer = await apps.registry.post(TOKEN, **request_kw)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["error"] == "invalid_request" and body["type"] == "https://jingzhun.dev/problems/oauth/invalid_request"
    assert body["error_description"].startswith(f"Missing: {names} ")
    assert answer.headers["cache-control"] == "no-store"
    assert apps.link.paths == []  # refused before benefits is asked


@pytest.mark.parametrize("request_kw", [
    {"json": ["client_credentials"]},
    {"json": "client_credentials"},
    {"content": b"null", "headers": {"Content-Type": "application/json"}},
    {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
    {"json": {"grant_type": GRANT, "client_id": 17, "client_secret": "s"}},
    {"json": {"grant_type": GRANT, "client_id": "c", "client_secret": "s", "scope": ["dci"]}},
    {"content": b"grant_type=client_credentials&grant_type=password&client_id=c&client_secret=s",
     "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    {"content": b"grant_type: client_credentials", "headers": {"Content-Type": "text/plain"}},
])
async def test_a_body_that_is_not_a_token_request_is_invalid_request(apps, request_kw):
    answer = await apps.registry.post(TOKEN, **request_kw)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request" and answer.json()["error_description"]
    assert apps.link.paths == []


async def test_benefits_down_is_a_503_problem(apps):
    apps.link.down = True
    answer = await apps.registry.post(TOKEN, json=apps.json_body())
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["cache-control"] == "no-store"
    problem = answer.json()
    assert problem["type"] == "https://jingzhun.dev/problems/benefits-unavailable"
    assert "ConnectError" in problem["detail"] and apps.secret not in answer.text


async def test_the_secret_is_in_no_log_line_and_no_answer(apps, caplog):
    caplog.set_level(logging.DEBUG)
    answers = [await apps.registry.post(TOKEN, json=apps.json_body()),
               await apps.registry.post(TOKEN, data=apps.json_body()),
               await apps.registry.post(TOKEN, data={"grant_type": GRANT}, headers=apps.basic()),
               await apps.registry.post(TOKEN, json=apps.json_body(scope="credit")),
               await apps.registry.post(TOKEN, json=apps.json_body(grant_type="password")),
               await apps.registry.post(TOKEN, json={"grant_type": GRANT, "client_secret": apps.secret}),
               await apps.registry.post(TOKEN, json={"grant_type": GRANT, "client_id": 1, "client_secret": apps.secret})]
    apps.link.down = True
    answers.append(await apps.registry.post(TOKEN, json=apps.json_body()))
    assert [a.status_code for a in answers] == [200, 200, 200, 400, 400, 400, 400, 503]
    logged = "\n".join(f"{r.getMessage()} {getattr(r, 'fields', '')} {r.exc_text or ''}" for r in caplog.records)
    assert "/oauth/token" in logged  # the registry's call to benefits is logged, so the check below means something
    encoded = base64.b64encode(f"{apps.client_id}:{apps.secret}".encode()).decode()
    for text in [logged, caplog.text] + [a.text for a in answers]:
        assert apps.secret not in text and encoded not in text


async def test_wrong_secrets_from_one_address_do_not_lock_out_other_dci_partners(databases, tmp_path):
    """Every DCI token request reaches benefits from the registry's address: the registry names the partner's
    address and vouches for it with its service token, so benefits counts failures per partner address. An
    address header without that token (a partner talking to benefits directly) changes nothing."""
    common = dict(var_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", log_json=False)
    benefits_settings = BenefitsSettings(database_url=await databases.url("benefits"), run_consumer=False,
                                         oauth_failures_per_address=3, oauth_failures_per_client=100, **common)
    benefits = create_benefits(benefits_settings)
    settings = RegistrySettings(database_url=await databases.url("registry"), benefits_url="http://benefits",
                                partner_jwks_url="http://benefits/.well-known/jwks.json", **common)
    registry = create_registry(settings, benefits_transport=httpx.ASGITransport(app=benefits))
    async with running_app(benefits, mint_token(benefits_settings, "admin", subject="ops-admin")) as admin, \
            running_app(registry):
        client = (await admin.post("/v1/partners/clients", json={"name": "南康区民政局", "scopes": ["dci"],
                                                                  "area": "360703"})).json()
        good = {"grant_type": GRANT, "client_id": client["client_id"], "client_secret": client["client_secret"]}

        def from_address(address: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(transport=httpx.ASGITransport(app=registry, client=(address, 40000)),
                                     base_url="http://registry")
        async with from_address("10.0.0.66") as attacker, from_address("10.0.0.7") as partner:
            for guess in range(3):
                wrong = await attacker.post(TOKEN, json={**good, "client_id": f"jzc_guess{guess}"})
                assert wrong.status_code == 401, wrong.text
            assert (await attacker.post(TOKEN, json=good)).status_code == 429, "the guessing address is held back"
            assert (await partner.post(TOKEN, json=good)).status_code == 200, "another partner is not"
        direct = await admin.post("/oauth/token", data=good, headers={"X-Jingzhun-Client-Address": "10.9.9.9"})
        assert direct.status_code == 200  # admin's own (loopback) address: no failures counted there
        for guess in range(3):
            await admin.post("/oauth/token", data={**good, "client_id": f"jzc_x{guess}"},
                             headers={"X-Jingzhun-Client-Address": f"10.9.9.{guess}"})
        held = await admin.post("/oauth/token", data=good, headers={"X-Jingzhun-Client-Address": "10.1.1.1"})
        assert held.status_code == 429, "an address header nobody vouches for does not escape the throttle"
