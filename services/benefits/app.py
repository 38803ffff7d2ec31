"""Benefits service: policy packs and rules turned into exact, explained entitlements."""
from __future__ import annotations

import logging

from fastapi import FastAPI

from services.benefits.consumer import run_registry_consumer
from services.benefits.dead_letters.views import router as dead_letters_router
from services.benefits.entitlements.views import router as entitlements_router
from services.benefits.monitoring.views import router as monitoring_router
from services.benefits.partners.views import router as partners_router
from services.benefits.credit.views import router as credit_router
from services.benefits.settlement.views import router as settlement_router
from services.benefits.villages.views import router as villages_router
from shared.policy import POLICIES_DIR, PackRegistry, PolicyPackError, default_registry
from services.benefits.policy.service import load_publications_or_refuse, watch_publications
from services.benefits.policy.views import router as policy_router
from services.benefits.readiness import CoverageWarnings
from services.benefits.recompute.service import JobRunner
from services.benefits.recompute.views import router as recompute_router
from services.benefits.simulation.views import router as simulation_router
from shared.app import ServiceSpec, create_service_app
from shared.config import BenefitsSettings, service_settings
from shared.personal_data import identity_key
from shared.query_params import strict_query_parameters

log = logging.getLogger("benefits")


def load_policy_packs(settings: BenefitsSettings) -> PackRegistry:
    """Every pack validated together; a broken pack raises PolicyPackError (file, key, problem)."""
    folder = settings.policies_dir
    if folder is None or folder.resolve() == POLICIES_DIR.resolve():
        return default_registry()
    return PackRegistry.from_folder(folder)


async def load_packs_or_refuse(app: FastAPI) -> None:
    try:
        app.state.packs = load_policy_packs(app.state.settings)
    except PolicyPackError as exc:
        log.critical("refusing to start: invalid policy pack: %s", exc)
        raise
    log.info("policy packs loaded: %s", ", ".join(app.state.packs.names()))


async def start_recompute_jobs(app: FastAPI) -> None:
    """Jobs left unfinished by the previous run continue where they stopped."""
    app.state.jobs = JobRunner(app.state.sessionmaker, app.state.packs)
    await app.state.jobs.resume_unfinished()


async def stop_recompute_jobs(app: FastAPI) -> None:
    jobs = getattr(app.state, "jobs", None)
    if jobs is not None:
        await jobs.stop()


# The creating POSTs, where a retry after a lost answer must not create twice (Idempotency-Key).
# Not the partner-client admin calls: their answer carries a secret that is stored only as a hash,
# and a kept response would hold it in clear for a day.
IDEMPOTENT_POSTS = (
    "/v1/credit/loans", "/v1/credit/interest-claims", "/v1/settlements/one-stop", "/v1/credit/eligibility",
    "/v1/recompute", "/v1/policies:publish",
)


def create_app(settings: BenefitsSettings | None = None) -> FastAPI:
    settings = settings or service_settings("benefits")
    identity_key(settings)  # production without JZ_IDENTITY_KEY refuses to start, naming it
    spec = ServiceSpec(
        name="benefits", title="Jingzhun benefits (精准 · 政策计算)",
        description="Policy packs as data; every programme and assessment with its explanation and "
                    "citation. Consumes `jz.registry.v1`, publishes decisions to `jz.benefits.v1`. "
                    "Bulk recompute jobs and read-only policy simulation for policy changes.",
        # Unknown query parameters on any GET are a 422 (shared/query_params.py).
        routers=[strict_query_parameters(entitlements_router, policy_router, recompute_router, simulation_router,
                                         partners_router, credit_router, settlement_router, villages_router,
                                         dead_letters_router, monitoring_router)],
        background=[run_registry_consumer, watch_publications],
        # Publications after the files and before the jobs: a resumed job computes with them.
        on_startup=[load_packs_or_refuse, load_publications_or_refuse, start_recompute_jobs],
        on_shutdown=[stop_recompute_jobs],
        idempotent_posts=IDEMPOTENT_POSTS,
        readiness_warnings=CoverageWarnings(),  # regions evaluated without their local pack
    )
    return create_service_app(spec, settings)
