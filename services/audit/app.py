"""Audit service: the append-only, hash-chained ledger supervisors and evaluators trust."""
from __future__ import annotations

from fastapi import FastAPI

from services.audit.consumer import run_audit_consumer
from services.audit.ledger.views import router as ledger_router
from shared.app import ServiceSpec, create_service_app
from shared.config import AuditSettings, service_settings


def create_app(settings: AuditSettings | None = None) -> FastAPI:
    settings = settings or service_settings("audit")
    spec = ServiceSpec(
        name="audit", title="Jingzhun audit (精准 · 审计台账)",
        description="Every registry event, benefits decision and partner access, appended to SHA-256 "
                    "hash chains (one per topic partition). Nothing is ever updated or deleted.",
        routers=[ledger_router],
        background=[run_audit_consumer],
    )
    return create_service_app(spec, settings)
