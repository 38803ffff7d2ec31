"""Registry service: the source of truth for households, persons, villages and procedures."""
from __future__ import annotations

from fastapi import FastAPI

from services.registry.households.views import router as households_router
from shared.app import ServiceSpec, create_service_app
from shared.config import RegistrySettings, service_settings


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or service_settings("registry")
    spec = ServiceSpec(
        name="registry", title="Jingzhun registry (精准 · 建档立卡)",
        description="Households, persons, villages, cadres, visits and procedures. Every committed "
                    "change is published to `jz.registry.v1` through the transactional outbox.",
        routers=[households_router],
    )
    return create_service_app(spec, settings)
