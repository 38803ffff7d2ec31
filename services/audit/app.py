"""Audit service: the append-only, hash-chained ledger supervisors and evaluators trust,
its read models, anomaly rules, evaluation samples, progress and the dashboard."""
from __future__ import annotations

from fastapi import FastAPI

from services.audit.consumer import run_audit_consumer, run_checkpoint_scheduler
from services.audit.dashboard.views import router as dashboard_router
from services.audit.dead_letters.views import router as dead_letters_router
from services.audit.ledger.views import router as ledger_router
from services.audit.settings import load_extras
from services.audit.supervision.views import router as supervision_router
from shared.app import ServiceSpec, create_service_app
from shared.config import AuditSettings, service_settings


def create_app(settings: AuditSettings | None = None, **extra_settings) -> FastAPI:
    """``extra_settings`` override the audit extras (see ``services.audit.settings``)."""
    settings = settings or service_settings("audit")
    spec = ServiceSpec(
        name="audit", title="Jingzhun audit (精准 · 审计台账)",
        description="Every registry event, benefits decision and partner access, appended to hash chains "
                    f"({settings.hash_algorithm}, one per topic partition) with daily checkpoints over every chain "
                    "head. Nothing in the ledger is ever updated or deleted. Supervision: anomalies with evidence, "
                    "evaluation samples, progress against targets, and the /dashboard page.",
        routers=[ledger_router, supervision_router, dashboard_router, dead_letters_router],
        background=[run_audit_consumer, run_checkpoint_scheduler],
    )
    app = create_service_app(spec, settings)
    app.state.audit = load_extras(settings, **extra_settings)
    return app
