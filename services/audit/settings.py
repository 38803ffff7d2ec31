"""Audit settings beyond ``shared.config.AuditSettings`` (same ``JZ_AUDIT_`` prefix).

They live here until they are folded into ``AuditSettings``; every field is read with
``getattr(settings, name)`` first, so moving one there later changes nothing else.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from services.audit.ledger.chain import IdHasher, keyed_id_hasher


class AuditExtraSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JZ_AUDIT_", extra="ignore")

    #: secret for the keyed hash of ID numbers (hex or text); unset = a key file under var/
    id_hash_key: str | None = None
    #: PostgreSQL role the audit service connects as; migration 0002 grants it SELECT/INSERT only
    service_role: str | None = None
    #: daily checkpoint scheduler (runs where the consumer runs)
    checkpoint_schedule: bool = True
    checkpoint_interval_s: float = 86400.0
    #: a partner look-up is "followed by nothing" if no delivery came within this many days
    lookup_grace_days: int = 30
    #: dashboard cookie gets the Secure flag (set true behind HTTPS)
    cookie_secure: bool = False


@dataclass
class AuditExtras:
    id_hasher: IdHasher
    service_role: str | None = None
    checkpoint_schedule: bool = True
    checkpoint_interval_s: float = 86400.0
    lookup_grace_days: int = 30
    cookie_secure: bool = False


def _load_or_create_key(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(secrets.token_hex(32).encode())
    tmp.chmod(0o600)
    if not path.exists():
        tmp.replace(path)
    else:
        tmp.unlink()
    return path.read_bytes().strip()


def load_extras(settings, **overrides) -> AuditExtras:
    env = AuditExtraSettings()

    def pick(name):
        if name in overrides:
            return overrides[name]
        return getattr(settings, name, getattr(env, name))

    key = pick("id_hash_key")
    key_bytes = key.encode() if key else _load_or_create_key(Path(settings.var_dir) / "audit-id-hash.key")
    return AuditExtras(id_hasher=keyed_id_hasher(key_bytes), service_role=pick("service_role"),
                       checkpoint_schedule=pick("checkpoint_schedule"),
                       checkpoint_interval_s=pick("checkpoint_interval_s"),
                       lookup_grace_days=pick("lookup_grace_days"), cookie_secure=pick("cookie_secure"))
