"""Benefits service: policy packs and rules turned into exact, explained entitlements."""
from __future__ import annotations

from fastapi import FastAPI

from services.benefits.consumer import run_registry_consumer
from services.benefits.entitlements.views import router as entitlements_router
from shared.app import ServiceSpec, create_service_app
from shared.config import BenefitsSettings, service_settings


def create_app(settings: BenefitsSettings | None = None) -> FastAPI:
    settings = settings or service_settings("benefits")
    spec = ServiceSpec(
        name="benefits", title="Jingzhun benefits (精准 · 政策计算)",
        description="Policy packs as data; every programme and assessment with its explanation and "
                    "citation. Consumes `jz.registry.v1`, publishes decisions to `jz.benefits.v1`.",
        routers=[entitlements_router],
        background=[run_registry_consumer],
    )
    return create_service_app(spec, settings)
