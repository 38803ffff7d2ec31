"""Verified tokens are cached until they expire (issue 15): a hit skips the signature check, and nothing else.

Never cached: a refused token. Never served: an entry at or past the token's exp, or one whose key is no longer
the key in use. Bounded: the least recently used entries go first. Partner checks after verification (a
disabled client, a rotated secret) still run on every request.
"""
from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from services.benefits.app import create_app as create_benefits
from shared.auth import TokenVerifier, VerifiedTokens, mint_token
from shared.config import BenefitsSettings, CommonSettings
from shared.problems import Problem
from tests.helpers import running_app


@pytest.fixture
def settings(tmp_path):
    return CommonSettings(var_dir=tmp_path)


class Counting(TokenVerifier):
    """A verifier that counts the signature-and-claims checks it really does."""
    checks = 0

    def _check(self, token, kind, key):
        self.checks += 1
        return super()._check(token, kind, key)


def test_a_token_seen_again_is_not_checked_again(settings):
    verifier = Counting(settings)
    token = mint_token(settings, "registry:read", subject="cadre-1", area="360703")
    first, second = verifier.verify(token), verifier.verify(token)
    assert verifier.checks == 1 and verifier.verified.hits == 1
    assert second == first and second.subject == "cadre-1" and second.area == "360703"


async def test_the_async_path_uses_the_same_cache(settings):
    verifier = Counting(settings)
    token = mint_token(settings, "admin")
    verifier.verify(token)
    assert (await verifier.averify(token)).is_admin and verifier.checks == 1


def test_an_entry_is_never_served_at_or_past_the_tokens_exp(settings):
    verifier = Counting(settings)
    token = mint_token(settings, "admin", ttl_s=60)
    exp = verifier.verify(token).claims["exp"]
    verifier.verified.clock = lambda: exp  # the cache's clock reaches exp (PyJWT's has not: it re-verifies)
    verifier.verify(token)
    assert verifier.checks == 2 and len(verifier.verified) == 0  # checked again, and not put back expired


def test_an_expired_token_is_refused_although_it_was_cached(settings):
    verifier = TokenVerifier(settings)
    token = mint_token(settings, "admin", ttl_s=3)  # long enough that the first check still passes on a loaded machine (CI flake)
    exp = verifier.verify(token).claims["exp"]
    time.sleep(max(0.0, exp - time.time()) + 0.05)
    with pytest.raises(Problem) as refused:
        verifier.verify(token)
    assert refused.value.status == 401 and "expired" in refused.value.detail


@pytest.mark.parametrize("tamper", ["expired", "wrong_key", "wrong_audience", "garbage"])
def test_a_refused_token_is_never_cached(settings, tmp_path, tamper):
    verifier = Counting(settings)
    token = {"expired": lambda: mint_token(settings, "admin", ttl_s=-10),
             "wrong_key": lambda: mint_token(CommonSettings(var_dir=tmp_path / "other"), "admin"),
             "wrong_audience": lambda: mint_token(settings.model_copy(update={"jwt_audience": "elsewhere"}), "admin"),
             "garbage": lambda: "not.a.jwt"}[tamper]()
    for _ in range(2):
        with pytest.raises(Problem) as refused:
            verifier.verify(token)
        assert refused.value.status == 401
    assert len(verifier.verified) == 0 and verifier.verified.hits == 0


def test_the_cache_is_bounded_and_drops_the_least_recently_used(settings):
    verifier = Counting(settings, cache_size=3)
    tokens = [mint_token(settings, "registry:read", subject=f"cadre-{i}") for i in range(4)]
    for token in tokens[:3]:
        verifier.verify(token)
    verifier.verify(tokens[0])  # used again: now the most recent
    verifier.verify(tokens[3])  # a fourth: the least recently used (tokens[1]) goes
    assert len(verifier.verified) == 3 and verifier.checks == 4
    verifier.verify(tokens[0]), verifier.verify(tokens[2]), verifier.verify(tokens[3])
    assert verifier.checks == 4  # all three still cached
    verifier.verify(tokens[1])
    assert verifier.checks == 5  # it had been dropped


def test_no_bearer_token_is_kept_in_memory(settings):
    verifier = TokenVerifier(settings)
    token = mint_token(settings, "admin")
    verifier.verify(token)
    assert list(verifier.verified._entries) == [VerifiedTokens.key(token)] and token not in repr(
        list(verifier.verified._entries))


def test_a_cached_token_whose_key_is_no_longer_trusted_is_checked_again_and_refused(settings):
    verifier = Counting(settings)
    token = mint_token(settings, "admin")
    verifier.verify(token)
    verifier._public_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with pytest.raises(Problem) as refused:
        verifier.verify(token)
    assert refused.value.status == 401 and verifier.checks == 2 and len(verifier.verified) == 0


def test_a_zero_sized_cache_caches_nothing(settings):
    verifier = Counting(settings, cache_size=0)
    token = mint_token(settings, "admin")
    verifier.verify(token), verifier.verify(token)
    assert verifier.checks == 2 and len(verifier.verified) == 0


# -- partner tokens: what benefits checks after verification still runs on every request ------------------

def benefits_settings(tmp_path) -> BenefitsSettings:
    return BenefitsSettings(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/benefits.db",
                            kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False,
                            partner_rate_limit_enabled=False)


async def partner_token(admin, client_id: str, secret: str) -> str:
    issued = await admin.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id,
                                                    "client_secret": secret})
    assert issued.status_code == 200, issued.text
    return issued.json()["access_token"]


@contextlib.asynccontextmanager
async def bank_with_a_cached_token(tmp_path):
    """Benefits with a bank client whose token has been used twice (so it is in the verifier's cache)."""
    settings = benefits_settings(tmp_path)
    app = create_benefits(settings)
    async with running_app(app, mint_token(settings, "admin", subject="ops")) as admin:
        bank = (await admin.post("/v1/partners/clients", json={"name": "Bank", "scopes": ["credit"]})).json()
        bearer = {"Authorization": f"Bearer {await partner_token(admin, bank['client_id'], bank['client_secret'])}"}
        for _ in range(2):
            assert (await admin.get("/v1/partners/whoami", headers=bearer)).status_code == 200
        assert app.state.token_verifier.verified.hits >= 1  # the token is in the cache
        yield admin, bank, bearer


async def test_a_disabled_partner_clients_cached_token_is_refused(tmp_path):
    async with bank_with_a_cached_token(tmp_path) as (admin, bank, bearer):
        assert (await admin.post(f"/v1/partners/clients/{bank['client_id']}:disable")).status_code == 200
        refused = await admin.get("/v1/partners/whoami", headers=bearer)
        assert refused.status_code == 401 and "disabled" in refused.json()["detail"]


async def test_a_cached_token_from_before_a_secret_rotation_is_refused(tmp_path):
    async with bank_with_a_cached_token(tmp_path) as (admin, bank, bearer):
        await asyncio.sleep(1.05)  # iat has whole seconds: rotate in a later second than the token's
        rotated = await admin.post(f"/v1/partners/clients/{bank['client_id']}:rotate", json={})
        assert rotated.status_code == 200
        refused = await admin.get("/v1/partners/whoami", headers=bearer)
        assert refused.status_code == 401 and "rotated" in refused.json()["detail"]
        fresh = await partner_token(admin, bank["client_id"], rotated.json()["client_secret"])
        assert (await admin.get("/v1/partners/whoami", headers={"Authorization": f"Bearer {fresh}"})).status_code == 200
