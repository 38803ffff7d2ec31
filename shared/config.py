"""Settings for every process, read from the environment (prefix ``JZ_``).

Common settings apply to all processes; each service adds its own class with its
own prefix (``JZ_REGISTRY_``, ``JZ_BENEFITS_``, ``JZ_AUDIT_``) so one environment
can configure the whole system without name clashes.
"""
from __future__ import annotations

from functools import lru_cache
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("registry", "benefits", "audit")
DEFAULT_PORTS = {"registry": 8001, "benefits": 8002, "audit": 8003}

TOPIC_REGISTRY = "jz.registry.v1"
TOPIC_BENEFITS = "jz.benefits.v1"
TOPIC_ACCESS = "jz.access.v1"
TOPICS = (TOPIC_REGISTRY, TOPIC_BENEFITS, TOPIC_ACCESS)


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

    # Outbox relay and consumers.
    outbox_poll_interval_s: float = 0.05
    outbox_batch_size: int = 500
    outbox_retention_days: int = 7
    consumer_max_retries: int = 5
    consumer_retry_backoff_s: float = 0.2
    # How long the broker may hold an empty fetch; it bounds the idle delivery latency per hop.
    consumer_fetch_max_wait_ms: int = 100

    # How long an Idempotency-Key is remembered (the draft suggests at least a day; phones may stay
    # offline that long before retrying). Fractions are allowed.
    idempotency_ttl_hours: float = Field(24.0, gt=0)

    # The identity key: HMAC key of ``id_number_hash``, the only form of an ID number outside the
    # registry (registry events, benefits' look-ups, the audit ledger). One secret shared by registry
    # and benefits; required in production; embedded default var/keys/identity.key (0600).
    identity_key: str | None = None

    @property
    def dev_key_file(self) -> Path:
        return self.var_dir / "dev-jwt-key.pem"


class ServiceSettings(CommonSettings):
    """Fields every service has; subclasses set the env prefix and defaults."""

    service_name: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    database_url: str | None = None
    auto_migrate: bool | None = None  # default: on in the embedded profile
    run_consumer: bool = True

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
    cookie_secure: bool = False  # dashboard cookie gets the Secure flag (behind HTTPS)
    # Default ``as_of`` of the supervision queries and the dashboard; unset means today (China). The
    # embedded launcher sets the demo district's 2020-06-30, like JZ_BENEFITS_EVALUATION_DATE.
    evaluation_date: date | None = None


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


def all_env_names() -> set[str]:
    """Every environment variable name any settings class reads (compose file check)."""
    names = {f"JZ_{f.upper()}" for f in CommonSettings.model_fields}
    for cls in SETTINGS_CLASSES.values():
        prefix = cls.model_config["env_prefix"]
        names |= {f"{prefix}{f.upper()}" for f in cls.model_fields}
    return names
