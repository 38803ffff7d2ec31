"""What the audit service derives from its settings (``shared.config.AuditSettings``)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from shared.config import AuditSettings
from shared.personal_data import IdHasher, identity_hasher, keyed_id_hasher


@dataclass
class AuditExtras:
    id_hasher: IdHasher | None
    service_role: str | None = None
    checkpoint_schedule: bool = True
    checkpoint_interval_s: float = 86400.0
    lookup_grace_days: int = 30
    cookie_secure: bool | None = None  # None: Secure outside the embedded profile (dashboard views)
    # The dashboard's village-exit section asks benefits (dashboard/village_exit.py); tests inject a transport.
    benefits_url: str = "http://127.0.0.1:8002"
    benefits_timeout_s: float = 2.0
    benefits_transport: Any = None
    # Checkpoints at start-up and shutdown (besides the daily one); None: whenever the daily one runs.
    checkpoint_lifecycle: bool | None = None
    # The registry as a supervisor's browser reaches it: the household page links the case file
    # ``{registry_public_url}/v1/households/{id}/file`` (JZ_AUDIT_REGISTRY_PUBLIC_URL).
    registry_public_url: str = "http://127.0.0.1:8001"
    # Monitoring (docs/monitoring.md): a lead still open after this many days is flagged
    # (JZ_AUDIT_MONITORING_LEAD_DAYS), and an identified object gets this many days to have its first
    # assistance measure recorded before it counts as "without measures" (JZ_AUDIT_MONITORING_MEASURE_GRACE_DAYS).
    monitoring_lead_days: int = 15
    monitoring_measure_grace_days: int = 15


def _env_days(name: str, default: int) -> int:
    """A day count from the environment (read here until shared.config.AuditSettings carries it)."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    days = int(value)
    if days < 0:
        raise ValueError(f"{name} must be a number of days (0 or more)")
    return days


def load_extras(settings, **overrides) -> AuditExtras:
    defaults = AuditSettings()

    def pick(name):
        if name in overrides:
            return overrides[name]
        return getattr(settings, name, getattr(defaults, name))

    def days(name: str, default: int) -> int:
        if name in overrides:
            return overrides[name]
        configured = getattr(settings, name, None)  # once shared.config.AuditSettings declares it
        return configured if configured is not None else _env_days(f"JZ_AUDIT_{name.upper()}", default)

    # Registry events already carry the keyed hash (id_number_hash), so the ledger needs no key; the
    # identity key, where this process has it, only hashes a clear number that arrives by mistake.
    key = overrides.get("identity_key") or overrides.get("id_hash_key")  # tests name a key directly
    if key:
        id_hasher = keyed_id_hasher(key.encode())
    elif settings.identity_key or settings.profile != "production":
        id_hasher = identity_hasher(settings)
    else:
        id_hasher = None
    return AuditExtras(id_hasher=id_hasher, service_role=pick("service_role"),
                       checkpoint_schedule=pick("checkpoint_schedule"),
                       checkpoint_interval_s=pick("checkpoint_interval_s"),
                       lookup_grace_days=pick("lookup_grace_days"), cookie_secure=pick("cookie_secure"),
                       benefits_url=pick("benefits_url"), benefits_timeout_s=overrides.get("benefits_timeout_s", 2.0),
                       benefits_transport=overrides.get("benefits_transport"),
                       checkpoint_lifecycle=overrides.get("checkpoint_lifecycle"),
                       registry_public_url=pick("registry_public_url").rstrip("/"),
                       monitoring_lead_days=days("monitoring_lead_days", 15),
                       monitoring_measure_grace_days=days("monitoring_measure_grace_days", 15))
