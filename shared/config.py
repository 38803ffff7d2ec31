"""Settings for every process, read from the environment (prefix ``JZ_``).

Common settings apply to all processes; each service adds its own class with its
own prefix (``JZ_REGISTRY_``, ``JZ_BENEFITS_``, ``JZ_AUDIT_``) so one environment
can configure the whole system without name clashes.
"""
from __future__ import annotations

import os
from functools import lru_cache
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("registry", "benefits", "audit")
DEFAULT_PORTS = {"registry": 8001, "benefits": 8002, "audit": 8003}

TOPIC_REGISTRY = "jz.registry.v1"
TOPIC_BENEFITS = "jz.benefits.v1"
TOPIC_ACCESS = "jz.access.v1"
TOPICS = (TOPIC_REGISTRY, TOPIC_BENEFITS, TOPIC_ACCESS)
#: Which service's outbox publishes which topics (one writer per topic keeps per-key order in one relay).
OUTBOX_TOPICS = {"registry": (TOPIC_REGISTRY, TOPIC_ACCESS), "benefits": (TOPIC_BENEFITS, TOPIC_ACCESS)}


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JZ_", extra="ignore")

    profile: Literal["embedded", "production"] = "embedded"
    var_dir: Path = Path("var")
    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_partitions: int = 6
    log_level: str = "INFO"
    log_json: bool = True

    # Auth: the development issuer signs with a key generated once under var/;
    # production trusts an external OIDC issuer through its JWKS URL.
    jwt_issuer: str = "jingzhun-dev"
    jwt_audience: str = "jingzhun"
    jwt_jwks_url: str | None = None
    jwt_public_key_file: Path | None = None
    # Partner tokens (banks, insurers) are issued by benefits' /oauth/token with its own signing key,
    # under their own issuer name; every service verifies them through benefits' JWKS. Unset URL:
    # benefits on its default local port (the embedded launcher sets the real one).
    partner_token_issuer: str = "jingzhun-benefits"
    partner_jwks_url: str | None = None
    # JWKS fetching: keys are cached this long, a kid not in the cache triggers at most one refresh per
    # interval, and a fetch gives up after the timeout (requests then get 503 instead of hanging).
    jwks_cache_ttl_s: float = Field(300.0, gt=0)
    jwks_refresh_min_interval_s: float = Field(10.0, ge=0)
    jwks_fetch_timeout_s: float = Field(5.0, gt=0)
    # Staff sign-in through OpenID Connect (shared/oidc.py). A person's token carries roles and an area, not
    # scopes: oidc_role_scopes maps each role to scopes (unknown roles give none; an explicit `scope` claim
    # still counts), oidc_roles_claims say where roles are (dotted paths: Keycloak puts realm roles under
    # realm_access.roles) and oidc_area_claim where the area is. This applies to every staff token.
    oidc_role_scopes: dict[str, list[str]] = Field(default_factory=lambda: {
        "office": ["registry:read", "registry:write", "visits:write", "benefits:read"],
        "cadre": ["visits:write", "registry:read"],
        "auditor": ["audit:read", "benefits:read", "registry:read"],
        "admin": ["admin"]})
    oidc_roles_claims: list[str] = Field(default_factory=lambda: ["roles", "realm_access.roles"])
    oidc_area_claim: str = "area"
    # A second staff issuer trusted beside jwt_issuer, through its own JWKS: the embedded launcher points it
    # at the development provider (deploy/oidc-dev) so signed-in people and `jingzhun token` tokens both work.
    # Production names Keycloak as jwt_issuer / jwt_jwks_url instead and may leave these unset.
    oidc_issuer: str | None = None
    oidc_jwks_url: str | None = None
    # What the docs' Authorize button uses (authorization code + PKCE, public client); unset URLs: no
    # sign-in offered in the docs, only the bearer field.
    oidc_authorization_url: str | None = None
    oidc_token_url: str | None = None
    oidc_client_id: str = "jingzhun-docs"
    oidc_docs_scopes: str = "openid profile"

    @field_validator("oidc_role_scopes")
    @classmethod
    def _known_scopes(cls, table: dict[str, list[str]]) -> dict[str, list[str]]:
        # A typo in the table would silently give nobody that scope. (Imported late: auth imports config.)
        from shared.auth import ALL_SCOPES
        unknown = sorted({s for scopes in table.values() for s in scopes} - set(ALL_SCOPES))
        if unknown:
            raise ValueError(f"JZ_OIDC_ROLE_SCOPES names unknown scopes: {', '.join(unknown)} "
                             f"(known: {' '.join(ALL_SCOPES)})")
        return table
    # Bearer token for /metrics. Required in production; unset in the embedded profile = open to
    # loopback callers only.
    metrics_token: str | None = None

    # Kafka client security (every producer, consumer and admin client: shared/bus.py). Production runs
    # SASL/SCRAM with per-topic ACLs; each process logs in as its own principal.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_cafile: Path | None = None  # CA bundle for SSL / SASL_SSL; unset = system trust store

    # Trusted event-signing public keys (JSON keyring, shared/signing.py); required in production by the
    # services that consume events. Embedded: the public halves of var/keys/*-events.pem are trusted too.
    event_trusted_keys_file: Path | None = None

    # Outbox relay and consumers.
    outbox_poll_interval_s: float = 0.05
    outbox_batch_size: int = 500
    outbox_retention_days: int = 7
    consumer_max_retries: int = 5
    consumer_retry_backoff_s: float = 0.2
    # How long the broker may hold an empty fetch; it bounds the idle delivery latency per hop.
    consumer_fetch_max_wait_ms: int = 100
    # A relay batch not acknowledged within this time fails (and stays pending). It must stay below the
    # launcher's broker restart delay: then no send from before a restart can land in the fresh broker.
    relay_send_timeout_ms: int = Field(1500, ge=200)
    # Touched by the relay's loop every 5 s (the Kubernetes liveness probe checks its age); unset = none.
    relay_heartbeat_file: Path | None = None
    # How often the relay asks the consumer groups what they have applied (committed offsets).
    relay_sweep_interval_s: float = Field(1.0, gt=0)
    # Who must have applied a row before a fresh broker may do without it (shared/outbox_relay.py).
    topic_consumer_groups: dict[str, list[str]] = Field(default_factory=lambda: {
        TOPIC_REGISTRY: ["benefits", "audit", "registry-dci"], TOPIC_BENEFITS: ["audit", "registry"], TOPIC_ACCESS: ["audit"]})
    # A consumer's offset commit that takes longer fails (the consumer reconnects and takes its positions
    # anew); below the launcher's broker restart delay, so no commit of an old log lands in a fresh broker.
    consumer_commit_timeout_s: float = Field(1.0, gt=0)
    # How long a consumer may be "starting" or "restarting" before /readyz answers 503 (a broker restart or
    # a fresh start is normal for a few seconds and must not take the API out of the Service).
    consumer_ready_grace_s: float = Field(30.0, ge=0)
    # This process's share of a consumer group's partitions, "index/count" (a StatefulSet's ordinal):
    # a consumer is assigned partitions p with p % count == index, no group rebalance on restart.
    consumer_member: str = Field("0/1", pattern=r"^\d+/[1-9]\d*$")

    # How long an Idempotency-Key is remembered (the draft suggests at least a day; phones may stay
    # offline that long before retrying). Fractions are allowed.
    idempotency_ttl_hours: float = Field(24.0, gt=0)

    # Request body limits in bytes (shared/body_limit.py, 413 beyond): every route gets the default (JSON
    # bodies); the upload routes get their own (path → bytes, ``{name}`` matches a path segment).
    body_limit_bytes: int = Field(1 << 20, gt=0)
    body_limit_routes: dict[str, int] = Field(default_factory=lambda: {
        "/v1/imports": 64 << 20, "/v1/areas:bulk": 8 << 20, "/v1/visits:batch": 8 << 20})

    # The identity key: HMAC key of ``id_number_hash``, the only form of an ID number outside the
    # registry (registry events, benefits' look-ups, the audit ledger). One secret shared by registry
    # and benefits; required in production; embedded default var/keys/identity.key (0600).
    identity_key: str | None = None

    # The relay's longest wait between passes while its outbox stays empty (shared/outbox_relay.py): a commit
    # wakes it at once (PostgreSQL NOTIFY; SQLite: the database file changed), this is the safety net.
    outbox_idle_poll_max_s: float = Field(2.0, gt=0)

    @property
    def dev_key_file(self) -> Path:
        return self.var_dir / "dev-jwt-key.pem"

    def resolved_partner_jwks_url(self) -> str:
        return self.partner_jwks_url or f"http://127.0.0.1:{DEFAULT_PORTS['benefits']}/.well-known/jwks.json"


class ServiceSettings(CommonSettings):
    """Fields every service has; subclasses set the env prefix and defaults."""

    service_name: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    database_url: str | None = None
    auto_migrate: bool | None = None  # default: on in the embedded profile
    # This service's Ed25519 event signing key (PEM, PKCS#8), e.g. JZ_REGISTRY_EVENT_SIGNING_KEY_FILE.
    # Required in production; embedded default var/keys/<service>-events.pem, created 0600.
    event_signing_key_file: Path | None = None
    run_consumer: bool = True
    # Worker processes of this service behind one port (JZ_REGISTRY_WORKERS, …; shared/launcher.py
    # service_command): each runs the app and a consumer over its own share of the partitions. PostgreSQL only:
    # with SQLite the launcher keeps 1 (its writers take turns on one file lock).
    workers: int = Field(1, ge=1, le=64)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.var_dir / (self.service_name + '.db')}"

    def should_auto_migrate(self) -> bool:
        return self.profile == "embedded" if self.auto_migrate is None else self.auto_migrate


class RegistrySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="JZ_REGISTRY_", extra="ignore")
    service_name: str = "registry"
    port: int = DEFAULT_PORTS["registry"]
    notice_period_days: int = 7
    benefits_url: str = "http://127.0.0.1:8002"
    # The case file (GET /v1/households/{id}/file) reads decision history here with the caller's token.
    audit_url: str = "http://127.0.0.1:8003"
    # How long the case file waits for benefits or audit before giving that part as null with a note.
    peer_timeout_s: float = Field(3.0, gt=0)
    # Production: the registry's own client at the external issuer (OAuth2 client credentials, scope
    # benefits:evaluate) for its one call to benefits; the embedded profile mints a development token.
    service_token_url: str | None = None
    service_client_id: str | None = None
    service_client_secret: str | None = None
    # Ledger uploads (services/registry/imports/jobs.py, limits.py): every upload is a job run in a worker
    # thread; one no larger than import_sync_max_bytes, sent without `Prefer: respond-async`, is answered
    # when it is done (the report), a larger one at once with 202 and the job to poll.
    import_sync_max_bytes: int = Field(16 << 20, ge=0)
    import_workers: int = Field(1, ge=1)
    import_worker: Literal["process", "thread"] = "process"  # process: the import shares not even the GIL
    import_max_rows: int = Field(200_000, gt=0)
    # An unfinished import job with no heartbeat for this long was interrupted (its process died).
    import_stale_after_s: float = Field(300.0, gt=0)
    import_max_unpacked_bytes: int = Field(1 << 30, gt=0)  # XLSX, all archive members inflated
    import_max_compression_ratio: float = Field(50.0, gt=1)  # XLSX, per member (real ledgers: 5–15)
    # Monitoring against a return to poverty (services/registry/monitoring/, docs/monitoring.md): the village
    # notice period (村级公示) of identification and risk elimination, in days; and the consumer of benefits'
    # monitoring.risk_detected on jz.benefits.v1 that records platform leads (off: no automatic leads).
    monitoring_notice_days: int = Field(5, ge=0)
    monitoring_consumer: bool = True
    # The DCI Social Registry API v1.0.0 (services/registry/dci/, docs/dci.md): this registry's receiver_id,
    # the background worker that calls senders back (on-search, on-subscribe, …, notify) with retries, and the
    # consumer of jz.registry.v1 that turns household changes into notifications for subscribers.
    dci_receiver_id: str = "registry.jingzhun.local"
    dci_signing_key_file: Path | None = None  # Ed25519 PEM; embedded: var/keys/registry-dci.pem
    dci_worker: bool = True
    dci_consumer: bool = True
    dci_callback_timeout_s: float = Field(10.0, gt=0)
    dci_callback_max_attempts: int = Field(8, ge=1)
    dci_callback_backoff_s: float = Field(1.0, gt=0)  # doubled per attempt, at most dci_callback_backoff_max_s
    dci_callback_backoff_max_s: float = Field(300.0, gt=0)
    dci_worker_poll_s: float = Field(0.5, gt=0)
    dci_max_page_size: int = Field(1000, ge=1)
    dci_message_ts_skew_s: float = Field(300.0, ge=0)  # how far in the future a message_ts may be


class BenefitsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="JZ_BENEFITS_", extra="ignore")
    service_name: str = "benefits"
    port: int = DEFAULT_PORTS["benefits"]
    policies_dir: Path | None = None
    # The policy date event-driven recomputes use; unset means today. The demo district
    # runs on the 2020 packs, so the embedded launcher sets 2020-06-30 unless told otherwise.
    evaluation_date: date | None = None
    # Partner APIs (banks, insurers): OAuth2 client credentials, rate limit, person look-up.
    partner_token_ttl_s: int = 3600
    partner_rate_limit_enabled: bool = True
    partner_rate_per_s: float = 10.0  # sustained requests per second per client
    partner_burst: int = 20  # bucket size: requests a client may send at once
    partner_status_cache_s: float = 5.0  # how long a disabled client's old tokens may still work
    # Key that signs partner tokens (PEM, EC P-256 or RSA). Required in production; embedded default:
    # var/keys/partner-signing.pem, created 0600 on first start. Published at /.well-known/jwks.json.
    partner_signing_key_file: Path | None = None
    # /oauth/token failure throttle: this many failed attempts per client id, or per remote address,
    # within the window answer 429 (with Retry-After) until the oldest failure leaves the window.
    oauth_failures_per_client: int = Field(10, ge=1)
    oauth_failures_per_address: int = Field(50, ge=1)
    oauth_failure_window_s: float = Field(300.0, gt=0)
    credit_decision_valid_days: int = 30


class AuditSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="JZ_AUDIT_", extra="ignore")
    service_name: str = "audit"
    port: int = DEFAULT_PORTS["audit"]
    hash_algorithm: Literal["sha256", "sm3"] = "sha256"
    no_visit_days: int = 90
    # PostgreSQL role the service connects as; migration 0002 grants it SELECT/INSERT only.
    service_role: str | None = None
    checkpoint_schedule: bool = True
    checkpoint_interval_s: float = 86400.0
    # A partner look-up counts as "followed by nothing" if no delivery came within these days.
    lookup_grace_days: int = 30
    # Dashboard cookie gets the Secure flag (behind HTTPS); unset = on outside the embedded profile.
    cookie_secure: bool | None = None
    # The dashboard's village-exit section reads benefits here (JZ_AUDIT_BENEFITS_URL).
    benefits_url: str = "http://127.0.0.1:8002"
    # The registry's public URL for the dashboard's links to a household's case file (JZ_AUDIT_REGISTRY_PUBLIC_URL).
    registry_public_url: str = "http://127.0.0.1:8001"
    # Default ``as_of`` of the supervision queries and the dashboard; unset means today (China). The
    # embedded launcher sets the demo district's 2020-06-30, like JZ_BENEFITS_EVALUATION_DATE.
    evaluation_date: date | None = None


class InsecureConfiguration(RuntimeError):
    """The production profile is missing a setting it cannot run safely without."""


def production_refusals(settings: CommonSettings) -> list[str]:
    """Why these settings must not serve in the production profile (empty: fine, or not production).

    The development issuer (a key under var/) exists only in the embedded profile; production
    trusts an external issuer, signs partner tokens with a configured key and guards /metrics.
    """
    if settings.profile != "production":
        return []
    reasons = []
    if not settings.jwt_jwks_url and not settings.jwt_public_key_file:
        reasons.append("JZ_JWT_JWKS_URL (or JZ_JWT_PUBLIC_KEY_FILE) must name the external token issuer; "
                       "the development key under var/ is not trusted in production")
    elif settings.jwt_public_key_file and not settings.jwt_jwks_url and not Path(settings.jwt_public_key_file).is_file():
        reasons.append(f"JZ_JWT_PUBLIC_KEY_FILE={settings.jwt_public_key_file} does not exist")
    if getattr(settings, "service_name", None) == "benefits":
        key_file = getattr(settings, "partner_signing_key_file", None)
        if not key_file:
            reasons.append("JZ_BENEFITS_PARTNER_SIGNING_KEY_FILE must name the partner-token signing key "
                           "(PEM private key, readable by the service only)")
        elif not Path(key_file).is_file():
            reasons.append(f"JZ_BENEFITS_PARTNER_SIGNING_KEY_FILE={key_file} does not exist")
    if not settings.metrics_token:
        reasons.append("JZ_METRICS_TOKEN must be set: /metrics needs a bearer token in production")
    if getattr(settings, "service_name", None) in ("registry", "benefits") and not settings.identity_key:
        reasons.append("JZ_IDENTITY_KEY must be set: the keyed hash of ID numbers (the same secret for "
                       "registry and benefits)")
    from shared.signing import event_key_refusals  # events are signed at the source (shared/signing.py)
    reasons += event_key_refusals(settings)
    return reasons


def refuse_insecure(settings: CommonSettings) -> None:
    reasons = production_refusals(settings)
    if reasons:
        name = getattr(settings, "service_name", "") or "jingzhun"
        raise InsecureConfiguration(f"{name} refuses to start in the production profile: " + "; ".join(reasons))


SETTINGS_CLASSES: dict[str, type[ServiceSettings]] = {
    "registry": RegistrySettings,
    "benefits": BenefitsSettings,
    "audit": AuditSettings,
}


def _merged(cls: type[ServiceSettings]) -> ServiceSettings:
    """Service settings fall back to the common ``JZ_`` values for shared fields."""
    common = CommonSettings()
    specific = cls()
    overrides = {name: getattr(common, name) for name in CommonSettings.model_fields
                 if name not in specific.model_fields_set}
    return specific.model_copy(update=overrides)


def service_settings(service: str) -> ServiceSettings:
    return _merged(SETTINGS_CLASSES[service])


@lru_cache
def common_settings() -> CommonSettings:
    return CommonSettings()


#: Settings built from one environment, for hot paths that have no settings object at hand.
_by_environment: dict[tuple, BaseSettings] = {}


def _environment_key(which: str) -> tuple:
    # Settings read only JZ_* variables (no .env file); var_dir may be relative, so the directory counts.
    return (which, os.getcwd(), tuple(sorted(item for item in os.environ.items() if item[0].startswith("JZ_"))))


def current_settings(service: str | None = None) -> BaseSettings:
    """What ``service_settings(service)`` (or ``CommonSettings()`` without a service) gives now, built once
    per environment: a pydantic settings object costs about 25 ms to build, and the registry's outbox and
    benefits' partner look-up needed one per event or per look-up. A changed ``JZ_*`` variable or working
    directory gives a new object. Treat it as read-only: it is shared."""
    key = _environment_key(service or "")
    found = _by_environment.get(key)
    if found is None:
        if len(_by_environment) >= 64:  # tests change the environment often; keep a few
            _by_environment.clear()
        found = _by_environment[key] = service_settings(service) if service else CommonSettings()
    return found


def all_env_names() -> set[str]:
    """Every environment variable name any settings class reads (compose file check)."""
    names = {f"JZ_{f.upper()}" for f in CommonSettings.model_fields}
    for cls in SETTINGS_CLASSES.values():
        prefix = cls.model_config["env_prefix"]
        names |= {f"{prefix}{f.upper()}" for f in cls.model_fields}
    return names
