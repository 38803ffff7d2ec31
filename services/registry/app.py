"""Registry service: the source of truth for households, persons, villages and procedures."""
from __future__ import annotations

import httpx
from fastapi import FastAPI

from services.registry.benefits_client import BenefitsClient
from services.registry.cadres.views import router as cadres_router
from services.registry.case_file.views import router as case_file_router
from services.registry.dci.consumer import run_dci_consumer
from services.registry.dci.token import router as dci_token_router
from services.registry.dci.views import router as dci_router
from services.registry.dci.worker import dci_signer, run_dci_worker
from services.registry.common import china_now
from services.registry.households.member_views import router as members_router
from services.registry.households.views import router as households_router
from services.registry.imports.jobs import shutdown_import_jobs
from services.registry.imports.views import router as imports_router
from services.registry.monitoring.consumer import run_monitoring_consumer
from services.registry.monitoring.views import router as monitoring_router
from services.registry.peers import Peers
from services.registry.villages.views import router as villages_router
from services.registry.visits.views import router as visits_router
from services.registry.workflows.views import router as workflows_router
from shared.app import ServiceSpec, create_service_app
from shared.config import RegistrySettings, service_settings
from shared.personal_data import identity_key
from shared.query_params import strict_query_parameters


# The creating POSTs, where a retry after a lost answer must not create twice (Idempotency-Key).
# Visits are idempotent by client_visit_id already; the header is honoured there too.
IDEMPOTENT_POSTS = (
    "/v1/households", "/v1/households/{household_id}/members", "/v1/households/{household_id}/transitions",
    "/v1/households/{household_id}/members/{person_id}/deceased",
    "/v1/households/{household_id}/members/{person_id}/move",
    "/v1/cadres", "/v1/households/{household_id}/pairings", "/v1/imports", "/v1/areas:bulk",
    "/v1/visits", "/v1/visits:batch",
    # monitoring (services/registry/monitoring/): leads are idempotent by client_lead_id as well
    "/v1/monitoring/leads", "/v1/monitoring/leads:batch", "/v1/monitoring/leads:import",
    "/v1/monitoring/leads/{lead_id}/dismiss", "/v1/monitoring/objects",
    "/v1/monitoring/objects/{object_id}/transitions", "/v1/monitoring/objects/{object_id}/measures",
)


def create_app(settings: RegistrySettings | None = None, *,
               benefits_transport: httpx.AsyncBaseTransport | None = None,
               audit_transport: httpx.AsyncBaseTransport | None = None,
               dci_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or service_settings("registry")
    identity_key(settings)  # production without JZ_IDENTITY_KEY refuses to start, naming it
    spec = ServiceSpec(
        name="registry", title="Jingzhun registry (精准 · 建档立卡)",
        description="Households, persons, villages, cadres, visits and procedures. Every committed "
                    "change is published to `jz.registry.v1` through the transactional outbox.",
        # Unknown query parameters on any GET are a 422 (shared/query_params.py).
        routers=[strict_query_parameters(households_router, members_router, workflows_router, visits_router,
                                         cadres_router, villages_router, imports_router, case_file_router,
                                         monitoring_router, dci_router, dci_token_router)],
        idempotent_posts=IDEMPOTENT_POSTS,
        on_shutdown=[shutdown_import_jobs],  # queued imports are dropped and say so; none is left "running"
        # monitoring.risk_detected from benefits → platform leads (JZ_REGISTRY_MONITORING_CONSUMER)
        background=[run_monitoring_consumer,
                    # DCI (docs/dci.md): callbacks and notifications out; household changes → notifications
                    run_dci_worker, run_dci_consumer],
    )
    app = create_service_app(spec, settings)
    app.state.clock = china_now
    app.state.benefits = BenefitsClient(settings, transport=benefits_transport)
    app.state.dci_signer = dci_signer(settings)  # None in production without its key file: DCI answers 503
    app.state.dci_transport = dci_transport  # tests: the senders' callback receivers, in process
    app.state.peers = Peers(settings, benefits_transport=benefits_transport, audit_transport=audit_transport)
    return app
