"""What every service's FastAPI app shares: auth, problems, health, metrics, logs, lifecycle."""
from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator

from shared.auth import PartnerSigner, TokenVerifier
from shared.body_limit import BodyLimitMiddleware
from shared.bus import broker_reachable
from shared.clock import describe_evaluation_date
from shared.config import InsecureConfiguration, ServiceSettings, refuse_insecure
from shared.db import make_engine, make_sessionmaker, ping
from shared.http_headers import ServiceEdge
from shared.idempotency import install_idempotency
from shared.logs import configure_logging
from shared.metrics import RequestMetrics
from shared.migrate import upgrade_to_head
from shared.openapi_docs import install_openapi_docs
from shared.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers
from shared.signing import SigningConfigError, bind_signer, check_event_keys

log = logging.getLogger("app")

BackgroundTask = Callable[[FastAPI], Awaitable[None]]
# Things an operator should know that do not make the service unready (e.g. a region evaluated
# without its local policy pack): listed in `/readyz` under `warnings`, status stays 200.
ReadinessWarnings = Callable[[FastAPI], Awaitable[list[str]]]


@dataclass
class ServiceSpec:
    name: str
    title: str
    description: str
    routers: list = field(default_factory=list)
    background: list[BackgroundTask] = field(default_factory=list)
    on_startup: list[Callable[[FastAPI], Awaitable[None]]] = field(default_factory=list)
    on_shutdown: list[Callable[[FastAPI], Awaitable[None]]] = field(default_factory=list)
    openapi_tags: list[dict] = field(default_factory=list)
    # POST path templates (as in the OpenAPI document) that honour the Idempotency-Key header
    idempotent_posts: tuple[str, ...] = ()
    readiness_warnings: ReadinessWarnings | None = None


def create_service_app(spec: ServiceSpec, settings: ServiceSettings, *, configure_logs: bool = True) -> FastAPI:
    if configure_logs:
        configure_logging(spec.name, settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:  # before anything is opened or served: production must not run on development trust
            refuse_insecure(settings)
        except InsecureConfiguration as exc:
            log.error("%s", exc)
            raise
        if "partner_signing_key_file" in type(settings).model_fields:  # the service that issues partner tokens
            app.state.partner_signer = PartnerSigner.from_settings(settings)
            app.state.token_verifier.partner_signer = app.state.partner_signer
        try:  # events are signed at the source: the service's key (and a consumer's keyring) must load
            event_signer = check_event_keys(settings)
        except SigningConfigError as exc:
            log.error("%s", exc)
            raise
        engine = make_engine(settings.resolved_database_url())
        bind_signer(engine, event_signer)  # whatever stages events in this database signs with this key
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        if settings.should_auto_migrate():
            await upgrade_to_head(spec.name, engine)
        for hook in spec.on_startup:
            await hook(app)
        tasks = [asyncio.create_task(task(app), name=f"{spec.name}:{task.__name__}") for task in spec.background]
        app.state.background_tasks = tasks
        log.info("%s ready on %s:%s", spec.name, settings.host, settings.port)
        # What startup built (modules, routes, schemas, policy packs: ~160,000 objects) lives as long as the
        # process: out of the collector's reach, a full collection no longer walks it (~90 ms or more each,
        # a stall of every request in flight). Given back at shutdown (tests start many apps in one process).
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            for hook in spec.on_shutdown:
                await hook(app)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await engine.dispose()

    app = FastAPI(title=spec.title, description=spec.description, version="0.1.0", lifespan=lifespan,
                  openapi_tags=spec.openapi_tags or None, docs_url=None, redoc_url=None)
    install_offline_docs(app)
    install_openapi_docs(app, spec.name)  # summaries, examples, problems and labels from shared/openapi_docs
    app.state.settings = settings
    app.state.token_verifier = TokenVerifier(settings)
    app.state.readiness_warnings = spec.readiness_warnings
    if spec.idempotent_posts:
        install_idempotency(app, spec.idempotent_posts)  # inside the edge: its log lines carry the request id
    install_problem_handlers(app, language_layer=False)  # the edge puts problems into the caller's language

    @app.get("/healthz", tags=["operations"], summary="Liveness: the process is serving")
    async def healthz() -> dict:
        return {"status": "ok", "service": spec.name}

    @app.get("/readyz", tags=["operations"], summary="Readiness: database, broker and the event consumer",
             description="200 with `warnings` (things to look at that do not make the service unready) and, "
                         "for services that judge on a policy date, `evaluation_date`; 503 when a "
                         "dependency is unreachable.\n\n"
                         "A service that consumes events (benefits, audit) also reports `consumer`: `state` "
                         "(`starting` | `running` | `behind` | `restarting`), `lag` (records fetched but not "
                         "yet applied), `processed`, `dead_lettered`, `started_at`, `first_event_at`, "
                         "`last_event_at` (epoch seconds), `last_error` and `state_for_s`. `running` and "
                         "`behind` answer 200: the API still serves, only its read models may be stale "
                         "(`status` is `behind` then, with the lag). `starting` and `restarting` answer 200 "
                         "during a grace period (`JZ_CONSUMER_READY_GRACE_S`, default 30 s; `status` names "
                         "the state) so a rolling restart or a short broker blip does not take every "
                         "replica out of the load balancer; after it, 503: the consumer is not getting "
                         "anywhere and someone should look.")
    async def readyz():
        import time
        checks = {"database": "ok", "broker": "ok"}
        try:
            await ping(app.state.engine)
        except Exception as exc:  # noqa: BLE001
            checks["database"] = f"error: {type(exc).__name__}"
        if not await broker_reachable(settings.kafka_bootstrap):
            checks["broker"] = "unreachable"
        status, consumer = "ok", None
        if getattr(app.state, "consumer", None) is not None:
            try:
                consumer = dict(await asyncio.wait_for(app.state.consumer.status(), 2.0))
            except Exception as exc:  # noqa: BLE001 - readiness reports, it does not crash
                consumer = {"state": getattr(app.state.consumer, "state", "restarting"), "lag": None,
                            "last_error": f"status unavailable: {type(exc).__name__}"}
            # How long it has been in this state: the consumer keeps when its state last changed.
            now, state = time.time(), consumer["state"]
            since = consumer.get("state_since") or getattr(app.state.consumer, "state_since", None) or now
            consumer["state_for_s"] = round(max(0.0, now - since), 1)
            grace = settings.consumer_ready_grace_s
            if state in ("starting", "restarting") and consumer["state_for_s"] > grace:
                checks["consumer"] = f"{state} for {consumer['state_for_s']:.0f} s (grace {grace:.0f} s)"
            if state != "running":
                status = state
        if all(v == "ok" for v in checks.values()):
            answer = {"status": status, "checks": checks, "warnings": await _readiness_warnings(app)}
            if consumer is not None:
                answer["consumer"] = consumer
            evaluation = describe_evaluation_date(settings)
            if evaluation is not None:
                answer["evaluation_date"] = evaluation
            return answer
        unreachable = any(v != "ok" for k, v in checks.items() if k != "consumer")
        body = {"type": "about:blank", "title": "Not ready", "status": 503,
                "detail": "A dependency is unreachable." if unreachable else
                "The event consumer has not been running for longer than the grace period.", "checks": checks}
        if consumer is not None:
            body["consumer"] = consumer
        return JSONResponse(body, status_code=503, media_type=PROBLEM_MEDIA_TYPE)

    for router in spec.routers:
        app.include_router(router)
    flatten_routes(app)
    # Each app its own registry: with the process-global one, the first app built in a process owned the
    # request counters and later apps' /metrics (tests build hundreds of apps per process) missed their own.
    metrics_registry = CollectorRegistry()
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=metrics_registry)
    # One layer outside the routes (and outside idempotency): request metrics (the instrumentator's default
    # series at a fraction of its per-request cost; the instrumentator only serves /metrics), problems in the
    # caller's language, security headers and the /metrics guard, the request id and access line, the body
    # limit (shared.http_headers.ServiceEdge: what five stacked layers did, issue 15).
    app.add_middleware(ServiceEdge, metrics=RequestMetrics(registry=metrics_registry, excluded_handlers=("/metrics",)),
                       body_limits=BodyLimitMiddleware(None, default_limit=settings.body_limit_bytes,
                                                       route_limits=settings.body_limit_routes),
                       metrics_token=settings.metrics_token)
    Instrumentator(registry=metrics_registry).expose(app, include_in_schema=True, tags=["operations"])
    return app


def flatten_routes(app: FastAPI) -> None:
    """Every route of the included routers as a route of the app itself, in the same order.

    FastAPI (0.16x) keeps an included router as one entry that matches its routes again on every request, one
    level per inclusion (a service's routers sit inside ``strict_query_parameters``' router): for whoami that
    was about 40 % of the time a request spent in Python (issue 15). Each route is rebuilt here from what its
    inclusion made of it (``_EffectiveRouteContext``: the path, tags, responses and dependencies of every
    enclosing router merged in), so it answers, validates and documents exactly as before; the router then
    tries each route once, as for a route declared on the app. Anything that is not an API route stays
    included as it was. The OpenAPI document is unchanged (tests/unit/test_flat_routes.py).
    """
    from fastapi.routing import APIRoute, _IncludedRouter, _iter_routes_with_context

    flat: list = []
    for entry in app.router.routes:
        if not isinstance(entry, _IncludedRouter):
            flat.append(entry)
            continue
        contexts = list(_iter_routes_with_context([entry]))
        if not all(isinstance(route, APIRoute) and context is not None and context.starlette_route is None
                   for route, context in contexts):
            flat.append(entry)  # a mount, a websocket or a plain route inside: left as FastAPI includes it
            continue
        for route, context in contexts:
            flat.append(APIRoute(
                context.path, context.endpoint, response_model=context.response_model,
                status_code=context.status_code, tags=list(context.tags), dependencies=list(context.dependencies),
                summary=context.summary, description=context.description,
                response_description=context.response_description, responses=dict(context.responses),
                deprecated=context.deprecated, name=context.name, methods=set(context.methods),
                operation_id=context.operation_id, response_model_include=context.response_model_include,
                response_model_exclude=context.response_model_exclude,
                response_model_by_alias=context.response_model_by_alias,
                response_model_exclude_unset=context.response_model_exclude_unset,
                response_model_exclude_defaults=context.response_model_exclude_defaults,
                response_model_exclude_none=context.response_model_exclude_none,
                include_in_schema=context.include_in_schema, response_class=context.response_class,
                dependency_overrides_provider=context.dependency_overrides_provider, callbacks=context.callbacks,
                openapi_extra=context.openapi_extra, generate_unique_id_function=context.generate_unique_id_function,
                strict_content_type=context.strict_content_type, max_body_size=context.max_body_size,
                form_limits=getattr(route, "form_limits", None)))
    app.router.routes[:] = flat
    app.router._mark_routes_changed()


async def _readiness_warnings(app: FastAPI) -> list[str]:
    """A service's warnings; one that cannot be worked out is itself a warning, never a 503."""
    collect = getattr(app.state, "readiness_warnings", None)
    if collect is None:
        return []
    try:
        return list(await collect(app))
    except Exception as exc:  # noqa: BLE001 - readiness must not fail on an advisory check
        log.warning("readiness warnings failed: %s", exc, exc_info=True)
        return [f"readiness warnings unavailable: {type(exc).__name__}"]


#: Swagger UI and ReDoc assets from the fastapi-offline package (the same swagger-ui-dist 5 and redoc 2 that
#: FastAPI would load from a CDN), served by every service: a government intranet has no CDN.
DOCS_ASSETS = "/docs-assets"


def install_offline_docs(app: FastAPI) -> None:
    """/docs, /redoc and their assets; the docs' Authorize button signs staff in (OIDC, code + PKCE).

    The settings are read from ``app.state.settings`` when a page or the schema is first asked for
    (they are attached after this runs).
    """
    from pathlib import Path

    import fastapi_offline
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.staticfiles import StaticFiles

    from shared.oidc import add_signin_scheme, swagger_init_oauth

    app.mount(DOCS_ASSETS, StaticFiles(directory=Path(fastapi_offline.__file__).parent / "static"),
              name="docs-assets")
    redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} · API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png", oauth2_redirect_url=redirect,
                                   init_oauth=swagger_init_oauth(app.state.settings))

    generate_openapi = app.openapi

    def openapi_with_signin() -> dict:
        if app.openapi_schema is None:  # FastAPI caches the document: add the sign-in scheme to it once
            add_signin_scheme(generate_openapi(), app.state.settings)
        return app.openapi_schema

    app.openapi = openapi_with_signin

    @app.get(redirect, include_in_schema=False)
    async def swagger_ui_redirect():
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc():
        return get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} · ReDoc",
                              redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png", with_google_fonts=False)
