from __future__ import annotations

import time

import jwt
import pytest

from shared.auth import TokenVerifier, mint_token
from shared.config import CommonSettings, all_env_names, service_settings
from shared.problems import Problem


@pytest.fixture
def settings(tmp_path):
    return CommonSettings(var_dir=tmp_path)


def test_minted_token_carries_scopes_area_and_subject(settings):
    principal = TokenVerifier(settings).verify(mint_token(settings, "registry:read visits:write",
                                                          subject="cadre-17", area="360703105"))
    assert principal.subject == "cadre-17" and principal.area == "360703105"
    assert principal.has("visits:write") and not principal.has("registry:write")
    assert principal.sees_area("360703105201") and not principal.sees_area("360703102203")


def test_admin_holds_every_scope_and_every_area(settings):
    principal = TokenVerifier(settings).verify(mint_token(settings, "admin", area="3607"))
    assert principal.has("settlement") and principal.sees_area("440200")


def test_dev_key_is_generated_once_and_reused(settings):
    first = mint_token(settings, "admin")
    key_bytes = settings.dev_key_file.read_bytes()
    mint_token(settings, "admin")
    assert settings.dev_key_file.read_bytes() == key_bytes
    assert TokenVerifier(settings).verify(first).subject == "dev-user"


@pytest.mark.parametrize("tamper", ["expired", "wrong_key", "wrong_audience", "garbage"])
def test_bad_tokens_are_401(settings, tmp_path, tamper):
    if tamper == "expired":
        token = mint_token(settings, "admin", ttl_s=-10)
    elif tamper == "wrong_key":
        token = mint_token(CommonSettings(var_dir=tmp_path / "other"), "admin")
    elif tamper == "wrong_audience":
        token = mint_token(settings.model_copy(update={"jwt_audience": "elsewhere"}), "admin")
    else:
        token = "not.a.jwt"
    with pytest.raises(Problem) as raised:
        TokenVerifier(settings).verify(token)
    assert raised.value.status == 401


def test_unknown_scope_is_refused_when_minting(settings):
    with pytest.raises(ValueError, match="unknown scopes: root"):
        mint_token(settings, "root")


def test_service_settings_fall_back_to_common_env(monkeypatch):
    monkeypatch.setenv("JZ_KAFKA_BOOTSTRAP", "kafka:9092")
    monkeypatch.setenv("JZ_AUDIT_PORT", "9003")
    audit = service_settings("audit")
    assert audit.kafka_bootstrap == "kafka:9092" and audit.port == 9003
    assert audit.resolved_database_url().endswith("audit.db")


def test_env_names_cover_common_and_per_service_settings():
    names = all_env_names()
    assert {"JZ_KAFKA_BOOTSTRAP", "JZ_REGISTRY_DATABASE_URL", "JZ_BENEFITS_EVALUATION_DATE",
            "JZ_AUDIT_HASH_ALGORITHM"} <= names
    assert "JZ_REGISTRY_HASH_ALGORITHM" not in names
