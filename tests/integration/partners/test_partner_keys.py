"""Partner tokens: signed with the partner key (kid, JWKS), accepted elsewhere through that JWKS,
cut off when a rotation's grace ends, and /oauth/token failures throttled per client and address."""
from __future__ import annotations

import asyncio
import stat
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from services.benefits.partners.throttle import FailureThrottle
from shared.auth import PartnerSigner, TokenVerifier
from shared.config import RegistrySettings
from shared.problems import Problem
from tests.integration.partners.conftest import base_households, make_partners, settings_for, token_for


async def test_partner_tokens_carry_the_published_kid_and_verify_with_the_jwks_alone(partners, tmp_path):
    jwks = await partners.admin.get("/.well-known/jwks.json")
    assert jwks.status_code == 200
    [key] = jwks.json()["keys"]
    assert key["kty"] == "EC" and key["alg"] == "ES256" and key["use"] == "sig" and "d" not in key
    token = await token_for(partners.admin, partners.bank_id, partners.bank_secret)
    header = jwt.get_unverified_header(token)
    assert header["kid"] == key["kid"] and header["alg"] == "ES256"
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES256"], audience="jingzhun",
                        issuer="jingzhun-benefits")
    assert claims["client_id"] == partners.bank_id and claims["scope"] == "credit"
    # Embedded profile: the key lives under var/keys/, owner-only.
    key_file = partners.settings.var_dir / "keys" / "partner-signing.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_other_services_accept_partner_tokens_through_benefits_jwks_only_for_partner_scopes(partners, tmp_path):
    token = await token_for(partners.admin, partners.bank_id, partners.bank_secret)
    registry = RegistrySettings(var_dir=tmp_path / "registry", partner_jwks_url="http://benefits/.well-known/jwks.json",
                                jwks_refresh_min_interval_s=0.5)
    verifier = TokenVerifier(registry, transport=httpx.ASGITransport(app=partners.app))
    principal = await verifier.averify(token)
    assert principal.client_id == partners.bank_id and principal.scopes == frozenset({"credit"})
    assert verifier.partner_jwks.fetches == 1
    await verifier.averify(token)
    assert verifier.partner_jwks.fetches == 1  # cached
    # The partner key can never make a staff token: a partner-issuer token asking for admin is refused.
    signer = partners.app.state.partner_signer
    forged = jwt.encode({"iss": signer.issuer, "aud": signer.audience, "sub": "x", "client_id": "x", "scope": "admin",
                         "iat": int(time.time()), "exp": int(time.time()) + 60}, signer.private_key,
                        algorithm="ES256", headers={"kid": signer.kid})
    with pytest.raises(Problem) as refused:
        await verifier.averify(forged)
    assert refused.value.status == 401
    # A partner-issuer token signed by some other key: unknown kid, 401 (after at most one refetch).
    other = PartnerSigner(ec.generate_private_key(ec.SECP256R1()), signer.issuer, signer.audience)
    stranger, _ = other.mint(["credit"], subject="x", ttl_s=60, extra={"client_id": "x"})
    with pytest.raises(Problem) as unknown:
        await verifier.averify(stranger)
    assert unknown.value.status == 401 and verifier.partner_jwks.fetches == 1  # just fetched: no refetch yet
    await asyncio.sleep(0.6)
    with pytest.raises(Problem) as unknown:
        await verifier.averify(stranger)
    assert unknown.value.status == 401 and verifier.partner_jwks.fetches == 2  # unknown kid: one refetch
    with pytest.raises(Problem):
        await verifier.averify(stranger)
    assert verifier.partner_jwks.fetches == 2  # unknown kids refresh at most once per interval


async def test_a_configured_signing_key_is_used_and_published(databases, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "partner.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    settings = settings_for(await databases.url("benefits"), tmp_path, partner_signing_key_file=key_file)
    async for partners in make_partners(settings, base_households()):
        [published] = (await partners.admin.get("/.well-known/jwks.json")).json()["keys"]
        assert published["kid"] == PartnerSigner(key, "i", "a").kid
        token = await token_for(partners.admin, partners.insurer_id, partners.insurer_secret)
        jwt.decode(token, key.public_key(), algorithms=["ES256"], audience="jingzhun")
        assert not (tmp_path / "keys" / "partner-signing.pem").exists()


async def test_tokens_from_before_a_rotation_stop_when_the_grace_period_ends(databases, tmp_path):
    settings = settings_for(await databases.url("benefits"), tmp_path, partner_status_cache_s=0.0)
    async for partners in make_partners(settings, base_households()):
        before = await token_for(partners.admin, partners.bank_id, partners.bank_secret)
        await asyncio.sleep(1.05)  # iat has whole seconds: rotate in a later second than the token's
        rotated = await partners.admin.post(f"/v1/partners/clients/{partners.bank_id}:rotate",
                                            json={"grace_seconds": 2})
        assert rotated.status_code == 200
        async with partners.client(before) as old:
            assert (await old.get("/v1/partners/whoami")).status_code == 200  # still in the grace period
            # A token from the old secret during the grace period does not outlive the grace period.
            graced = await partners.admin.post("/oauth/token", data={
                "grant_type": "client_credentials", "client_id": partners.bank_id,
                "client_secret": partners.bank_secret})
            assert graced.status_code == 200 and graced.json()["expires_in"] <= 2
            new = await token_for(partners.admin, partners.bank_id, rotated.json()["client_secret"])
            await asyncio.sleep(2.1)
            after = await old.get("/v1/partners/whoami")
            assert after.status_code == 401 and "rotated" in after.json()["detail"]
            assert after.headers["content-type"] == "application/problem+json"
        async with partners.client(new) as current:
            assert (await current.get("/v1/partners/whoami")).status_code == 200
        # Without a grace period the old tokens stop at once.
        await asyncio.sleep(1.05)
        again = await partners.admin.post(f"/v1/partners/clients/{partners.bank_id}:rotate", json={})
        async with partners.client(new) as current:
            assert (await current.get("/v1/partners/whoami")).status_code == 401
        fresh = await token_for(partners.admin, partners.bank_id, again.json()["client_secret"])
        async with partners.client(fresh) as current:
            assert (await current.get("/v1/partners/whoami")).status_code == 200


async def _attempt(client, client_id: str, secret: str):
    return await client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id,
                                                    "client_secret": secret})


async def test_failed_logins_are_throttled_per_client_without_slowing_other_clients(databases, tmp_path):
    settings = settings_for(await databases.url("benefits"), tmp_path, oauth_failures_per_client=3,
                            oauth_failures_per_address=100)
    async for partners in make_partners(settings, base_households()):
        statuses = [(await _attempt(partners.admin, partners.bank_id, "wrong")).status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        limited = await _attempt(partners.admin, partners.bank_id, partners.bank_secret)  # even the right one
        assert limited.status_code == 429 and limited.headers["content-type"] == "application/problem+json"
        assert 1 <= int(limited.headers["retry-after"]) <= settings.oauth_failure_window_s
        started = time.perf_counter()
        other = await _attempt(partners.admin, partners.insurer_id, partners.insurer_secret)
        assert other.status_code == 200 and time.perf_counter() - started < 2.0


async def test_failed_logins_are_throttled_per_address_and_parallel_guesses_cannot_overshoot(databases, tmp_path):
    settings = settings_for(await databases.url("benefits"), tmp_path, oauth_failures_per_client=4,
                            oauth_failures_per_address=6)
    async for partners in make_partners(settings, base_households()):
        guesses = await asyncio.gather(*(_attempt(partners.admin, partners.bank_id, f"guess-{i}") for i in range(12)))
        codes = sorted(r.status_code for r in guesses)
        assert codes.count(401) == 4 and codes.count(429) == 8  # no more hashing than the limit allows
        more = [await _attempt(partners.admin, f"jzc_{i:016x}", "x") for i in range(3)]
        assert [r.status_code for r in more] == [401, 401, 429]  # the address reached 6 failures
        from_elsewhere = httpx.AsyncClient(transport=httpx.ASGITransport(app=partners.app, client=("10.9.8.7", 5000)),
                                           base_url="http://test")
        async with from_elsewhere:
            ok = await _attempt(from_elsewhere, partners.insurer_id, partners.insurer_secret)
            assert ok.status_code == 200


def test_failure_throttle_window():
    now = [0.0]
    throttle = FailureThrottle(limit=2, window_s=10, clock=lambda: now[0])
    for _ in range(2):
        throttle.begin("c")
        throttle.end("c", failed=True)
    assert throttle.wait_s("c") == pytest.approx(10)
    assert throttle.wait_s("other") == 0.0
    now[0] = 4.0
    assert throttle.wait_s("c") == pytest.approx(6)
    now[0] = 10.0
    assert throttle.wait_s("c") == 0.0  # the failures left the window
    throttle.begin("c")
    throttle.end("c", failed=False)
    assert throttle.wait_s("c") == 0.0 and FailureThrottle.retry_after_header(0.2) == "1"
