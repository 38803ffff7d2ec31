"""Audit service: the append-only, hash-chained ledger supervisors and evaluators trust,
its read models, anomaly rules, evaluation samples, progress and the dashboard."""
from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from services.audit.consumer import run_audit_consumer, run_checkpoint_scheduler
from services.audit.dashboard.views import router as dashboard_router
from services.audit.dead_letters.views import router as dead_letters_router
from services.audit.ledger.service import checkpoint_if_changed
from services.audit.ledger.views import router as ledger_router
from services.audit.settings import load_extras
from services.audit.supervision.views import router as supervision_router
from shared.app import ServiceSpec, create_service_app
from shared.config import AuditSettings, service_settings
from shared.query_params import strict_query_parameters
from shared.db import transaction

log = logging.getLogger("audit.checkpoints")


def lifecycle_checkpoints_on(app: FastAPI) -> bool:
    extras = app.state.audit
    if extras.checkpoint_lifecycle is not None:
        return extras.checkpoint_lifecycle
    return app.state.settings.run_consumer and extras.checkpoint_schedule


async def lifecycle_checkpoint(app: FastAPI, trigger: str) -> dict | None:
    """A checkpoint over every chain head as the service starts or stops (skipped when it would repeat
    the latest one or the ledger is empty); a failure is logged, never stops the service."""
    if not lifecycle_checkpoints_on(app):
        return None
    try:
        async with transaction(app.state.sessionmaker) as session:
            written = await checkpoint_if_changed(session, app.state.settings.hash_algorithm, trigger=trigger)
    except Exception:  # noqa: BLE001 - the ledger is untouched; the daily checkpoint follows
        log.warning("%s checkpoint failed", trigger, exc_info=True)
        return None
    if written:
        log.info("%s checkpoint %s: merkle root %s over %d records", trigger, written["id"],
                 written["data"]["merkle_root"], written["data"]["records"])
    return written


async def checkpoint_at_startup(app: FastAPI) -> None:
    await lifecycle_checkpoint(app, "startup")


async def checkpoint_at_shutdown(app: FastAPI) -> None:
    # Stop the consumer first, so the checkpoint commits to everything it appended.
    consumer = getattr(app.state, "consumer", None)
    if consumer is not None:
        consumer.stop()
        running = [t for t in getattr(app.state, "background_tasks", []) if t.get_name().endswith("run_audit_consumer")]
        if running:
            await asyncio.wait(running, timeout=10)
    await lifecycle_checkpoint(app, "shutdown")


def create_app(settings: AuditSettings | None = None, **extra_settings) -> FastAPI:
    """``extra_settings`` override the audit extras (see ``services.audit.settings``)."""
    settings = settings or service_settings("audit")
    spec = ServiceSpec(
        name="audit", title="Jingzhun audit (精准 · 审计台账)",
        description="Every registry event, benefits decision and partner access, appended to hash chains "
                    f"({settings.hash_algorithm}, one per topic partition) with checkpoints over every chain "
                    "head (daily, at start-up and at shutdown). Nothing in the ledger is ever updated or deleted. "
                    "Supervision: anomalies with evidence, "
                    "evaluation samples, progress against targets, and the /dashboard page.",
        # Unknown query parameters on any API GET are a 422 (shared/query_params.py). Not the dashboard page:
        # a browser opens it once with ?token=, which it moves into a cookie before anything is shown.
        routers=[strict_query_parameters(ledger_router, supervision_router, dead_letters_router), dashboard_router],
        background=[run_audit_consumer, run_checkpoint_scheduler],
        on_startup=[checkpoint_at_startup], on_shutdown=[checkpoint_at_shutdown],
    )
    app = create_service_app(spec, settings)
    app.state.audit = load_extras(settings, **extra_settings)
    return app
