"""Schema-driven fuzzing (schemathesis) of all three services: whatever a caller sends, never a 5xx."""
from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from services.audit.app import create_app as create_audit
from services.benefits.app import create_app as create_benefits
from services.registry.app import create_app as create_registry
from shared.auth import mint_token
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings

_VAR = Path(tempfile.mkdtemp(prefix="jz-fuzz-"))
_COMMON = {"var_dir": _VAR, "kafka_bootstrap": "127.0.0.1:1", "log_json": False, "log_level": "WARNING",
           "run_consumer": False}
_REGISTRY = create_registry(RegistrySettings(database_url=f"sqlite+aiosqlite:///{_VAR}/registry.db", **_COMMON))
_BENEFITS = create_benefits(BenefitsSettings(database_url=f"sqlite+aiosqlite:///{_VAR}/benefits.db", **_COMMON))
_AUDIT = create_audit(AuditSettings(database_url=f"sqlite+aiosqlite:///{_VAR}/audit.db", **_COMMON))
_TOKEN = mint_token(RegistrySettings(**_COMMON), "admin")

registry_schema = schemathesis.openapi.from_asgi("/openapi.json", _REGISTRY)
benefits_schema = schemathesis.openapi.from_asgi("/openapi.json", _BENEFITS)
audit_schema = schemathesis.openapi.from_asgi("/openapi.json", _AUDIT)
_FUZZ = settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


@registry_schema.exclude(path_regex="^/(metrics|readyz)").parametrize()
@_FUZZ
def test_registry_answers_any_input_without_a_server_error(case):
    response = case.call(headers={"Authorization": f"Bearer {_TOKEN}"})
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert "application/problem+json" in str(response.headers.get("content-type"))


@benefits_schema.exclude(path_regex="^/(metrics|readyz)").parametrize()
@_FUZZ
def test_benefits_answers_any_input_without_a_server_error(case):
    response = case.call(headers={"Authorization": f"Bearer {_TOKEN}"})
    assert response.status_code < 500, response.text


@audit_schema.exclude(path_regex="^/(metrics|readyz|dashboard)").parametrize()
@_FUZZ
def test_audit_answers_any_input_without_a_server_error(case):
    response = case.call(headers={"Authorization": f"Bearer {_TOKEN}"})
    assert response.status_code < 500, response.text
