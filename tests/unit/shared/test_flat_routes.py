"""The services' routes are flattened onto the app (shared.app.flatten_routes, issue 15): the router tries each
route once instead of matching every included router again per request. The apps must answer and document
exactly as they did with the routers included."""
from __future__ import annotations

import json

import pytest
from fastapi.routing import APIRoute, _IncludedRouter

import shared.app
from services.audit.app import create_app as create_audit
from services.benefits.app import create_app as create_benefits
from services.registry.app import create_app as create_registry
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings

FACTORIES = {"registry": (create_registry, RegistrySettings), "benefits": (create_benefits, BenefitsSettings),
             "audit": (create_audit, AuditSettings)}


@pytest.mark.parametrize("service", sorted(FACTORIES))
def test_flat_routes_document_the_same_api(service, tmp_path, monkeypatch):
    create, settings_class = FACTORIES[service]
    settings = settings_class(var_dir=tmp_path)
    flat = create(settings)
    monkeypatch.setattr(shared.app, "flatten_routes", lambda app: None)
    included = create(settings)

    assert any(isinstance(route, _IncludedRouter) for route in included.router.routes)
    assert not any(isinstance(route, _IncludedRouter) for route in flat.router.routes)
    # the same document, byte for byte (paths and operations in the same order)
    assert json.dumps(flat.openapi(), sort_keys=False) == json.dumps(included.openapi(), sort_keys=False)
    # every route kept its dependencies: the included routers' (strict query parameters) before its own
    strict = [route for route in flat.router.routes if isinstance(route, APIRoute) and route.path.startswith("/v1/")]
    assert strict and all(route.dependencies and route.dependencies[0].dependency.__name__ ==
                          "reject_unknown_query_parameters" for route in strict)
