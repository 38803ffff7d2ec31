"""Staff sign-in through a real OpenID Connect provider (issue 12, item 4).

The development provider (``deploy/oidc-dev``, panva's oidc-provider on Node) runs on a free port; a test
drives the same authorization code + PKCE exchange the docs' Authorize button does (authorize → login form →
consent → redirect with a code → token endpoint with the code_verifier) and calls the three services with
the access token. The services trust the provider through its JWKS beside the development issuer, and map
the token's roles and area to scopes (shared/oidc.py).

Without Node or the provider's packages (npm could not install them) the tests skip saying so; under
``CI=true`` they fail instead: CI must run the sign-in.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import jwt
import pytest

from services.audit.app import create_app as create_audit
from services.benefits.app import create_app as create_benefits
from services.registry.app import create_app as create_registry
from shared.auth import mint_token
from shared.broker import free_port
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings
from tests.helpers import household_body, running_app

PROVIDER_DIR = Path(__file__).resolve().parents[2] / "deploy" / "oidc-dev"
ACCOUNTS = json.loads((PROVIDER_DIR / "accounts.json").read_text(encoding="utf-8"))
PASSWORD = ACCOUNTS["password"]
CLIENT_ID = "jingzhun-docs"
AREA_A, AREA_B = "360703102", "360703105"  # the township officer's township, and another one
VILLAGE_A = "360703102201"


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the OIDC sign-in: {reason}")
    pytest.skip(reason)


def install_provider() -> None:
    """deploy/oidc-dev's packages, installed once (skip outside CI, fail under CI when they cannot be had)."""
    if shutil.which("node") is None:
        _unavailable("Node.js is not installed: the development OIDC provider cannot run")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        install = subprocess.run([str(PROVIDER_DIR / "install.sh")], capture_output=True, text=True, timeout=300)
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            _unavailable(f"npm could not install deploy/oidc-dev: {install.stdout.strip()} {install.stderr.strip()}")


@pytest.fixture(scope="session")
def provider():
    """The development provider on a free port: ``{"issuer", "redirect_uri", "log"}``."""
    install_provider()
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    redirect_uri = f"http://127.0.0.1:{free_port()}/docs/oauth2-redirect"  # the code is read off the redirect
    env = {**os.environ, "OIDC_DEV_PORT": str(port), "OIDC_DEV_ISSUER": issuer, "OIDC_DEV_AUDIENCE": "jingzhun",
           "OIDC_DEV_REDIRECT_URIS": redirect_uri}
    process = subprocess.Popen(["node", str(PROVIDER_DIR / "server.js")], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the OIDC provider did not start: {process.stdout.read()}")
            time.sleep(0.1)
        yield {"issuer": issuer, "redirect_uri": redirect_uri}
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _form_action(html: str, ending: str) -> str:
    match = re.search(rf'action="([^"]*{ending})"', html)
    assert match, html
    return match.group(1)


async def authorize(provider, login: str, password: str = PASSWORD, *, steps: list | None = None) -> tuple[str, str]:
    """Authorization request → login form → consent → the redirect's code. Returns (code, code_verifier)."""
    steps = [] if steps is None else steps
    verifier = secrets.token_urlsafe(48)
    state = secrets.token_urlsafe(8)
    async with httpx.AsyncClient(base_url=provider["issuer"], timeout=10) as browser:  # keeps the cookies
        answer = await browser.get("/auth", params={
            "client_id": CLIENT_ID, "response_type": "code", "redirect_uri": provider["redirect_uri"],
            "scope": "openid profile", "state": state, "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256"})
        steps.append(f"GET /auth (code_challenge S256) → {answer.status_code} {answer.headers['location']}")
        answer = await browser.get(answer.headers["location"])
        assert answer.status_code == 200 and 'name="password"' in answer.text, answer.text
        steps.append(f"GET login form → {answer.status_code}")
        answer = await browser.post(_form_action(answer.text, "/login"), data={"login": login, "password": password})
        steps.append(f"POST login {login} → {answer.status_code}")
        while answer.status_code in (302, 303) and not answer.headers["location"].startswith(provider["redirect_uri"]):
            answer = await browser.get(answer.headers["location"])
            if answer.status_code == 200 and "/confirm" in answer.text:
                steps.append("GET consent page → 200")
                answer = await browser.post(_form_action(answer.text, "/confirm"))
                steps.append(f"POST consent → {answer.status_code}")
        assert answer.status_code in (302, 303), answer.text
        location = answer.headers["location"]
        query = parse_qs(urlparse(location).query)
        steps.append(f"redirect → {location.split('?')[0]}?code=…&state=…&iss={query.get('iss', ['?'])[0]}")
        assert query["state"] == [state] and query["iss"] == [provider["issuer"]], location
        return query["code"][0], verifier


async def redeem(provider, code: str, verifier: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=provider["issuer"], timeout=10) as client:
        return await client.post("/token", data={"grant_type": "authorization_code", "code": code,
                                                 "redirect_uri": provider["redirect_uri"], "client_id": CLIENT_ID,
                                                 "code_verifier": verifier})


async def sign_in(provider, login: str, steps: list | None = None) -> str:
    steps = [] if steps is None else steps
    code, verifier = await authorize(provider, login, steps=steps)
    answer = await redeem(provider, code, verifier)
    assert answer.status_code == 200, answer.text
    steps.append(f"POST /token (code_verifier) → {answer.status_code} token_type={answer.json()['token_type']}")
    return answer.json()["access_token"]


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# -- the sign-in, and the services answering the signed-in people -------------------------------------------

async def test_signed_in_staff_get_their_roles_scopes_and_area_at_each_service(provider, databases, tmp_path,
                                                                               capsys):
    steps: list[str] = []
    office = await sign_in(provider, "township-office", steps)
    claims = jwt.decode(office, options={"verify_signature": False})
    assert jwt.get_unverified_header(office)["typ"] == "at+jwt"  # an RFC 9068 access token, not the id token
    assert claims["iss"] == provider["issuer"] and claims["aud"] == "jingzhun" and claims["sub"] == "township-office"
    assert claims["roles"] == ["office"] and claims["area"] == AREA_A and claims["client_id"] == CLIENT_ID
    supervisor = await sign_in(provider, "supervisor")
    cadre = await sign_in(provider, "cadre-zhong")
    county = await sign_in(provider, "county-office")

    common = dict(var_dir=tmp_path, kafka_bootstrap="127.0.0.1:1", log_json=False,
                  oidc_issuer=provider["issuer"], oidc_jwks_url=f"{provider['issuer']}/jwks")
    registry = create_registry(RegistrySettings(database_url=await databases.url("registry"), **common),
                               benefits_transport=httpx.MockTransport(lambda request: httpx.Response(503)))
    benefits = create_benefits(BenefitsSettings(database_url=await databases.url("benefits"), run_consumer=False,
                                                **common))
    audit = create_audit(AuditSettings(database_url=await databases.url("audit"), run_consumer=False, **common),
                         id_hash_key="test-key", checkpoint_schedule=False)
    # The development issuer keeps working beside the provider: the setup is done with a `jingzhun token` one.
    admin = _bearer(mint_token(registry.state.settings, "admin", subject="admin-1"))
    answers: dict[str, object] = {}
    async with running_app(registry) as r, running_app(benefits) as b, running_app(audit) as a:
        hh_b = await r.post("/v1/households", json=household_body(), headers=admin)
        assert hh_b.status_code == 201, hh_b.text
        body_a = household_body("nankang-dibao-elderly")
        body_a["village"] = {**body_a["village"], "code": VILLAGE_A, "township_code": AREA_A}
        hh_a = await r.post("/v1/households", json=body_a, headers=admin)
        assert hh_a.status_code == 201, hh_a.text
        hh_a, hh_b = hh_a.json(), hh_b.json()
        assert hh_b["village"]["code"].startswith(AREA_B)

        # registry: the township officer (office → registry:read …, area 360703102) sees its own township only
        own = await r.get(f"/v1/households/{hh_a['id']}", headers=_bearer(office))
        assert own.status_code == 200 and own.json()["id"] == hh_a["id"], own.text
        assert "*" in own.json()["members"][0]["id_number"]  # not admin: masked
        other = await r.get(f"/v1/households/{hh_b['id']}", headers=_bearer(office))
        assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json", other.text
        listed = await r.get("/v1/households", headers=_bearer(county))  # the county office sees both
        assert {hh_a["id"], hh_b["id"]} <= {item["id"] for item in listed.json()["items"]}, listed.text
        # the supervisor (auditor) reads but may not write
        read = await r.get(f"/v1/households/{hh_b['id']}", headers=_bearer(supervisor))
        assert read.status_code == 200, read.text
        write = await r.post("/v1/households", json=household_body(), headers=_bearer(supervisor))
        assert write.status_code == 403 and write.json()["required_scopes"] == ["registry:write"], write.text
        answers["registry"] = {"township-office GET own": own.status_code, "township-office GET other area":
                               other.status_code, "supervisor POST /v1/households": write.json()["detail"]}

        # benefits: office and auditor hold benefits:read; the township officer stays inside its area
        entitlements = await b.get("/v1/entitlements", headers=_bearer(office))
        assert entitlements.status_code == 200 and "items" in entitlements.json(), entitlements.text
        outside = await b.get("/v1/entitlements", params={"area": AREA_B}, headers=_bearer(office))
        assert outside.status_code == 403 and AREA_A in outside.json()["detail"], outside.text
        no_scope = await b.get("/v1/entitlements", headers=_bearer(cadre))  # cadre: visits:write registry:read
        assert no_scope.status_code == 403 and no_scope.json()["required_scopes"] == ["benefits:read"], no_scope.text
        answers["benefits"] = {"township-office GET /v1/entitlements": entitlements.status_code,
                               "… ?area=360703105": outside.json()["detail"], "cadre-zhong": no_scope.json()["detail"]}

        # audit: only the supervisor holds audit:read
        verify = await a.get("/v1/audit/verify", headers=_bearer(supervisor))
        assert verify.status_code == 200 and verify.json()["ok"] is True, verify.text
        refused = await a.get("/v1/audit/verify", headers=_bearer(office))
        assert refused.status_code == 403 and refused.json()["required_scopes"] == ["audit:read"], refused.text
        answers["audit"] = {"supervisor GET /v1/audit/verify": verify.json(), "township-office": refused.status_code}

        # a token of the provider for another audience is refused (the issuer is trusted, not every token it signs)
        forged = dict(claims, aud="someone-else")
        unsigned = jwt.encode(forged, "not-the-provider-key-" + "x" * 32, algorithm="HS256")
        assert (await r.get("/v1/households", headers=_bearer(unsigned))).status_code == 401

    with capsys.disabled():  # the closing note's sign-in run (pytest -s shows it)
        if os.environ.get("JZ_SHOW_SIGNIN"):
            print("\n".join(["", *steps, "access token claims: " + json.dumps(claims, ensure_ascii=False),
                             *(f"{service}: {json.dumps(said, ensure_ascii=False)}" for service, said in answers.items())]))


async def test_a_wrong_pkce_verifier_is_refused_by_the_provider(provider):
    code, verifier = await authorize(provider, "admin")
    wrong = await redeem(provider, code, secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant", wrong.text
    # The code itself was fine: the right verifier gets the token (so the refusal was the verifier's), once.
    right = await redeem(provider, code, verifier)
    assert right.status_code == 200 and right.json()["access_token"].count(".") == 2, right.text
    again = await redeem(provider, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant", again.text


async def test_the_provider_requires_pkce_and_a_password(provider):
    async with httpx.AsyncClient(base_url=provider["issuer"], timeout=10) as browser:
        answer = await browser.get("/auth", params={"client_id": CLIENT_ID, "response_type": "code",
                                                    "redirect_uri": provider["redirect_uri"], "scope": "openid"})
        refused = parse_qs(urlparse(answer.headers["location"]).query)
        assert refused["error"] == ["invalid_request"] and "PKCE" in refused["error_description"][0]
    with pytest.raises(AssertionError, match="错误|Wrong account or password"):
        await authorize(provider, "admin", password="guess")


async def test_signin_tokens_are_refused_by_services_that_do_not_trust_the_provider(provider, tmp_path):
    token = await sign_in(provider, "admin")
    settings = AuditSettings(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/audit.db",
                             kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False)
    audit = create_audit(settings, id_hash_key="test-key", checkpoint_schedule=False)
    async with running_app(audit) as a:
        answer = await a.get("/v1/audit/verify", headers=_bearer(token))
    assert answer.status_code == 401 and answer.json()["title"], answer.text


# -- the docs' Authorize button --------------------------------------------------------------------------------

@pytest.mark.parametrize("service", ["registry", "benefits", "audit"])
async def test_docs_offer_the_signin_with_pkce(service, tmp_path):
    factory, settings_class = {"registry": (create_registry, RegistrySettings),
                               "benefits": (create_benefits, BenefitsSettings),
                               "audit": (create_audit, AuditSettings)}[service]
    settings = settings_class(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/{service}.db",
                              kafka_bootstrap="127.0.0.1:1", run_consumer=False, log_json=False,
                              oidc_authorization_url="http://127.0.0.1:8009/auth",
                              oidc_token_url="http://127.0.0.1:8009/token")
    app = factory(settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        document = (await client.get("/openapi.json")).json()
        html = (await client.get("/docs")).text
    scheme = document["components"]["securitySchemes"]["staffSignIn"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["authorizationCode"] == {"authorizationUrl": "http://127.0.0.1:8009/auth",
                                                    "tokenUrl": "http://127.0.0.1:8009/token",
                                                    "scopes": {"openid": "OpenID Connect",
                                                               "profile": "profile (sign-in)"}}
    guarded = [op for path in document["paths"].values() for op in path.values()
               if isinstance(op, dict) and {"HTTPBearer": []} in op.get("security", [])]
    assert guarded and all({"staffSignIn": []} in op["security"] for op in guarded)
    assert '"usePkceWithAuthorizationCodeGrant": true' in html and '"clientId": "jingzhun-docs"' in html, html
    assert "ui.initOAuth(" in html


async def test_docs_without_a_signin_provider_keep_only_the_bearer_field(tmp_path):
    settings = AuditSettings(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/audit.db",
                             kafka_bootstrap="127.0.0.1:1", run_consumer=False, log_json=False)
    app = create_audit(settings, id_hash_key="test-key", checkpoint_schedule=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        schemes = (await client.get("/openapi.json")).json()["components"]["securitySchemes"]
    assert "staffSignIn" not in schemes and "HTTPBearer" in schemes
