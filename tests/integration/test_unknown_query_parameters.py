"""Unknown query parameters are a 422 naming them, on every GET route of the three services (issue 12, item 6).

Before, ``GET /v1/households?q=张三`` answered the whole unfiltered list. The check lives in
shared/query_params.py and wraps each service's routers once; this test walks the route table (the
OpenAPI document), so a route added later without the check fails here."""
from __future__ import annotations

import httpx
import pytest

from services.audit.app import create_app as create_audit
from services.benefits.app import create_app as create_benefits
from services.registry.app import create_app as create_registry
from shared.auth import mint_token
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings
from tests.helpers import running_app

# Not API routes: the HTML dashboard takes ?token= once and moves it into a cookie; the probes, /metrics and
# the docs pages belong to the platform's tooling (shared/app.py), not to the services' routers.
EXEMPT = {"/dashboard", "/metrics", "/healthz", "/readyz"}

FACTORIES = {"registry": (create_registry, RegistrySettings), "benefits": (create_benefits, BenefitsSettings),
             "audit": (create_audit, AuditSettings)}


def _path_value(parameter: dict) -> str:
    schema = parameter.get("schema") or {}
    kinds = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
    return "1" if "integer" in kinds else "x1"


def get_operations(app) -> list[tuple[str, str, set[str]]]:
    """(template, concrete path, declared query parameter names) of every GET in the OpenAPI document."""
    found = []
    for template, item in app.openapi()["paths"].items():
        operation = item.get("get")
        if operation is None or template in EXEMPT:
            continue
        parameters = operation.get("parameters", [])
        path = template
        for p in parameters:
            if p["in"] == "path":
                path = path.replace("{" + p["name"] + "}", _path_value(p))
        found.append((template, path, {p["name"] for p in parameters if p["in"] == "query"}))
    return found


@pytest.mark.parametrize("service", list(FACTORIES))
async def test_every_get_route_refuses_an_unknown_query_parameter(service, tmp_path):
    create, settings_class = FACTORIES[service]
    # Not started: the check answers before any handler (or database) is reached.
    settings = settings_class(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}",
                              kafka_bootstrap="127.0.0.1:1", log_json=False)
    app = create(settings)
    operations = get_operations(app)
    assert len(operations) >= {"registry": 12, "benefits": 12, "audit": 10}[service], operations
    headers = {"Authorization": f"Bearer {mint_token(settings, 'admin')}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                 headers=headers) as client:
        for template, path, declared in operations:
            response = await client.get(path, params={"zz_unknown": "1"})
            assert response.status_code == 422, (template, response.status_code, response.text)
            assert response.headers["content-type"] == "application/problem+json", template
            problem = response.json()
            assert problem["errors"] == [{"loc": ["query", "zz_unknown"], "msg": "unknown query parameter",
                                          "type": "unknown_query_parameter"}], template
            assert "zz_unknown" in problem["detail"], template
            # the accepted ones are exactly what the route documents
            assert set(problem["accepted"]) == declared, (template, problem["accepted"], declared)


async def test_known_parameters_still_work_and_q_is_refused(databases, tmp_path):
    settings = RegistrySettings(var_dir=tmp_path, database_url=await databases.url("registry"),
                                kafka_bootstrap="127.0.0.1:1", log_json=False)
    app = create_registry(settings)
    async with running_app(app, mint_token(settings, "registry:read")) as client:
        ok = await client.get("/v1/households", params={"limit": 5, "status": "registered", "view": "summary"})
        assert ok.status_code == 200 and ok.json() == {"items": [], "next_cursor": None}
        refused = await client.get("/v1/households", params={"q": "张三", "limit": 5, "village_cod": "1"})
        assert refused.status_code == 422
        problem = refused.json()
        assert [e["loc"] for e in problem["errors"]] == [["query", "q"], ["query", "village_cod"]]
        assert "village_code" in problem["accepted"] and "village_code" in problem["detail"]
        # writes are not checked here (their query strings are not filters)
        health = await client.get("/healthz", params={"zz": "1"})
        assert health.status_code == 200


async def test_a_nul_character_in_the_query_or_path_is_422_in_every_service(databases, tmp_path):
    """Found by fuzzing on PostgreSQL: ``GET /v1/audit/records?subject=%00`` reached the database, whose text
    refuses NUL (a 500); SQLite would have stored it. Refused at the edge of every service."""
    from services.audit.app import create_app as create_audit
    from services.benefits.app import create_app as create_benefits
    from services.registry.app import create_app as create_registry
    from shared.auth import mint_token
    from shared.config import AuditSettings, BenefitsSettings, RegistrySettings
    from tests.helpers import running_app

    cases = [(create_audit, AuditSettings, "audit", "audit:read", "/v1/audit/records?subject=household%2F%00x"),
             (create_audit, AuditSettings, "audit", "audit:read", "/v1/supervision/partner-access?client_id=%00"),
             (create_registry, RegistrySettings, "registry", "registry:read", "/v1/households?village_code=36%00"),
             (create_benefits, BenefitsSettings, "benefits", "benefits:read", "/v1/households/hh%00x/entitlements")]
    for create, settings_class, service, scope, url in cases:
        settings = settings_class(var_dir=tmp_path / service, database_url=await databases.url(service),
                                  kafka_bootstrap="127.0.0.1:1", log_json=False)
        async with running_app(create(settings), mint_token(settings, scope)) as client:
            response = await client.get(url, headers={"Accept-Language": "en"})
        assert response.status_code == 422, (url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["type"] for e in response.json()["errors"]] == ["nul_character"], url
