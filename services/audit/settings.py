"""What the audit service derives from its settings (``shared.config.AuditSettings``)."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path


from services.audit.ledger.chain import IdHasher, keyed_id_hasher
from shared.config import AuditSettings


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
    defaults = AuditSettings()

    def pick(name):
        if name in overrides:
            return overrides[name]
        return getattr(settings, name, getattr(defaults, name))

    key = pick("id_hash_key")
    key_bytes = key.encode() if key else _load_or_create_key(Path(settings.var_dir) / "audit-id-hash.key")
    return AuditExtras(id_hasher=keyed_id_hasher(key_bytes), service_role=pick("service_role"),
                       checkpoint_schedule=pick("checkpoint_schedule"),
                       checkpoint_interval_s=pick("checkpoint_interval_s"),
                       lookup_grace_days=pick("lookup_grace_days"), cookie_secure=pick("cookie_secure"))
