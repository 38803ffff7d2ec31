"""Roles and area of a signed-in person's token mapped to scopes (shared/oidc.py), and the verifier trusting
the sign-in provider beside the development issuer."""
from __future__ import annotations

import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from shared.auth import TokenVerifier, mint_token, public_jwk
from shared.config import CommonSettings
from shared.oidc import ClaimError, token_area, token_scopes
from shared.problems import Problem

ISSUER = "http://127.0.0.1:8009"
JWKS_URL = f"{ISSUER}/jwks"


@pytest.fixture
def settings(tmp_path):
    return CommonSettings(var_dir=tmp_path, oidc_issuer=ISSUER, oidc_jwks_url=JWKS_URL)


@pytest.mark.parametrize("roles, scopes", [
    (["office"], {"registry:read", "registry:write", "visits:write", "benefits:read"}),
    (["cadre"], {"visits:write", "registry:read"}),
    (["auditor"], {"audit:read", "benefits:read", "registry:read"}),
    (["admin"], {"admin"}),
    (["cadre", "auditor"], {"visits:write", "registry:read", "audit:read", "benefits:read"}),
    (["uma_authorization", "offline_access"], set()),  # other applications' roles give nothing here
    ([], set()),
])
def test_default_table_maps_roles_to_scopes(settings, roles, scopes):
    assert token_scopes({"roles": roles}, settings) == scopes


def test_keycloak_realm_roles_and_an_explicit_scope_claim_both_count(settings):
    claims = {"realm_access": {"roles": ["default-roles-jingzhun", "cadre"]}, "scope": "openid profile credit"}
    assert token_scopes(claims, settings) == {"openid", "profile", "credit", "visits:write", "registry:read"}


def test_the_table_and_the_claims_are_configurable(monkeypatch, tmp_path):
    monkeypatch.setenv("JZ_OIDC_ROLE_SCOPES", '{"township_officer": ["registry:read"]}')
    monkeypatch.setenv("JZ_OIDC_ROLES_CLAIMS", '["groups"]')
    monkeypatch.setenv("JZ_OIDC_AREA_CLAIM", "jingzhun.area")
    settings = CommonSettings(var_dir=tmp_path)
    claims = {"groups": ["township_officer", "office"], "roles": ["admin"], "jingzhun": {"area": "360703102"}}
    assert token_scopes(claims, settings) == {"registry:read"}  # office is not in this table; roles not read
    assert token_area(claims, settings) == "360703102"


def test_a_table_naming_an_unknown_scope_refuses_to_load(monkeypatch, tmp_path):
    monkeypatch.setenv("JZ_OIDC_ROLE_SCOPES", '{"office": ["registry:raed"]}')
    with pytest.raises(ValidationError, match="unknown scopes: registry:raed"):
        CommonSettings(var_dir=tmp_path)


@pytest.mark.parametrize("value, area", [("360703102", "360703102"), (["360703"], "360703"), (360703, "360703"),
                                         (None, None), ("", None), ([], None)])
def test_area_claim_forms(settings, value, area):
    assert token_area({} if value is None else {"area": value}, settings) == area


@pytest.mark.parametrize("value", [["360703102", "360703105"], "南康区", "36 07", True, {"code": "3607"}])
def test_an_area_that_cannot_be_read_is_an_error_not_no_limit(settings, value):
    with pytest.raises(ClaimError):
        token_area({"area": value}, settings)


def test_roles_that_are_not_names_are_an_error(settings):
    with pytest.raises(ClaimError, match="list of role names"):
        token_scopes({"roles": {"office": True}}, settings)


# -- the verifier: the sign-in provider beside the development issuer ------------------------------------

class Provider:
    """The provider's signing key and its JWKS endpoint (httpx.MockTransport)."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.fetches = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.fetches += 1
        return httpx.Response(200, json={"keys": [{**public_jwk(self.key.public_key()), "kid": "k1", "use": "sig",
                                                   "alg": "RS256"}]})

    def token(self, key=None, **claims) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": "jingzhun", "sub": "township-office", "iat": now, "exp": now + 600,
                "client_id": "jingzhun-docs", "roles": ["office"], "area": "360703102", **claims}
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": "k1", "typ": "at+jwt"})


async def test_signin_tokens_and_development_tokens_are_both_trusted(settings):
    provider = Provider()
    verifier = TokenVerifier(settings, transport=httpx.MockTransport(provider.handler))
    person = await verifier.averify(provider.token())
    assert person.subject == "township-office" and person.area == "360703102"
    assert person.scopes == {"registry:read", "registry:write", "visits:write", "benefits:read"}
    assert person.has("registry:write") and not person.has("audit:read") and not person.sees_area("360703105201")
    developer = await verifier.averify(mint_token(settings, "audit:read", subject="dev-1"))
    assert developer.subject == "dev-1" and developer.scopes == {"audit:read"}
    assert provider.fetches == 1  # the development token did not touch the provider's keys


@pytest.mark.parametrize("tamper", ["other_key", "audience", "issuer_as_dev", "two_areas", "expired"])
async def test_bad_signin_tokens_are_401(settings, tamper):
    provider = Provider()
    verifier = TokenVerifier(settings, transport=httpx.MockTransport(provider.handler))
    token = {
        "other_key": lambda: provider.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "audience": lambda: provider.token(aud="someone-else"),
        # the provider's key under the development issuer's name: checked against the development key, refused
        "issuer_as_dev": lambda: provider.token(iss=settings.jwt_issuer),
        "two_areas": lambda: provider.token(area=["360703102", "360703105"]),
        "expired": lambda: provider.token(exp=int(time.time()) - 60),
    }[tamper]()
    with pytest.raises(Problem) as raised:
        await verifier.averify(token)
    assert raised.value.status == 401


async def test_without_the_signin_settings_the_provider_is_not_trusted(tmp_path):
    provider = Provider()
    verifier = TokenVerifier(CommonSettings(var_dir=tmp_path), transport=httpx.MockTransport(provider.handler))
    with pytest.raises(Problem) as raised:
        await verifier.averify(provider.token())
    assert raised.value.status == 401 and provider.fetches == 0
