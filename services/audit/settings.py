"""What the audit service derives from its settings (``shared.config.AuditSettings``)."""
from __future__ import annotations

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


def load_extras(settings, **overrides) -> AuditExtras:
    defaults = AuditSettings()

    def pick(name):
        if name in overrides:
            return overrides[name]
        return getattr(settings, name, getattr(defaults, name))

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
                       registry_public_url=pick("registry_public_url").rstrip("/"))
