"""Personal data outside the registry: keyed hashes of ID numbers and the ledger form of event data.

Clear ID numbers live only in the registry's person data (../shared/DESIGN.md, security model).
Everywhere else a person is found by ``id_number_hash`` = HMAC-SHA256(identity key, normalised
number), and a masked number (first 6 and last 4) never travels with the exact birth date, because
the mask hides exactly the eight birth-date digits. The identity key is one deployment secret shared
by the services that must compute the same hash (the registry when it publishes, benefits when a bank
or insurer sends a clear number); the audit ledger never needs it.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from datetime import date
from pathlib import Path
from typing import Any, Callable

from shared.idcard import mask_id_number

IdHasher = Callable[[str], str]
ID_HASH_FIELD = "id_number_hash"
CLEAR_ID_NUMBER = _CLEAR_ID = re.compile(r"^\d{17}[\dXx]$")


def normalise_id_number(id_number: str) -> str:
    return id_number.strip().upper()


def keyed_id_hasher(key: bytes) -> IdHasher:
    """HMAC-SHA256 of a normalised ID number: equal numbers compare equal, the number never shows."""
    def hasher(id_number: str) -> str:
        return hmac.new(key, normalise_id_number(id_number).encode("ascii"), hashlib.sha256).hexdigest()
    return hasher


def write_private_file(path: Path, content: bytes) -> None:
    """Create ``path`` readable by its owner only (0600), atomically: concurrent first starts agree."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, content)
    finally:
        os.close(fd)
    if path.exists():  # another process won the race: keep its key
        tmp.unlink(missing_ok=True)
        return
    tmp.replace(path)


def load_or_create_secret(path: Path, nbytes: int = 32) -> bytes:
    """A random secret kept in a 0600 file (embedded profile only; production sets the key)."""
    if not path.exists():
        write_private_file(path, secrets.token_hex(nbytes).encode("ascii"))
    return path.read_bytes().strip()


def birth_year(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value.year
    text = str(value)
    return int(text[:4]) if len(text) >= 4 and text[:4].isdigit() else None


def mask_with_hash(id_number: str, id_hasher: IdHasher | None) -> dict:
    """The two fields that stand for a clear number outside the registry."""
    out = {"id_number": mask_id_number(id_number)}
    if id_hasher is not None and _CLEAR_ID.match(id_number.strip()):
        out[ID_HASH_FIELD] = id_hasher(id_number)
    return out


def ledger_form(value: Any, id_hasher: IdHasher | None = None) -> Any:
    """What the audit ledger keeps of event data (pure, deterministic: sources sign it).

    * a clear ID number becomes its mask (and, with ``id_hasher``, its keyed hash beside it);
    * ``birth_date`` becomes ``birth_year``, so no record holds a mask next to the exact birth date.
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "id_number" and isinstance(item, str):
                masked = mask_with_hash(item, id_hasher)
                out["id_number"] = masked["id_number"]
                if ID_HASH_FIELD in masked and ID_HASH_FIELD not in value:
                    out[ID_HASH_FIELD] = masked[ID_HASH_FIELD]
            elif key == "birth_date":
                out["birth_year"] = birth_year(item)
            else:
                out[key] = ledger_form(item, id_hasher)
        return out
    if isinstance(value, list):
        return [ledger_form(item, id_hasher) for item in value]
    return value


# ---------------------------------------------------------------- the identity key

IDENTITY_KEY_ENV = "JZ_IDENTITY_KEY"
_hashers: dict[tuple, IdHasher] = {}


def identity_key_file(var_dir: Path | str) -> Path:
    return Path(var_dir) / "keys" / "identity.key"


def identity_key(settings: Any = None) -> bytes:
    """The deployment's identity key: ``JZ_IDENTITY_KEY``, or (embedded only) ``var/keys/identity.key``.

    Production without the setting is an error naming it: a key made up on one node would give
    hashes no other service can match, and a partner look-up would silently find nobody.
    """
    if settings is None:
        from shared.config import current_settings
        settings = current_settings()
    configured = getattr(settings, "identity_key", None)
    if configured:
        return configured.encode()
    if getattr(settings, "profile", "embedded") == "production":
        raise RuntimeError(f"{IDENTITY_KEY_ENV} must be set in the production profile: it keys the hash "
                           "that registry and benefits use to find persons without clear ID numbers")
    return load_or_create_secret(identity_key_file(getattr(settings, "var_dir", "var")))


def identity_hasher(settings: Any = None) -> IdHasher:
    """``keyed_id_hasher(identity_key(settings))``, built once per key source."""
    if settings is None:
        from shared.config import current_settings
        settings = current_settings()
    source = (getattr(settings, "identity_key", None), getattr(settings, "profile", "embedded"),
              str(Path(getattr(settings, "var_dir", "var")).resolve()))
    hasher = _hashers.get(source)
    if hasher is None:
        hasher = _hashers[source] = keyed_id_hasher(identity_key(settings))
    return hasher


# ---------------------------------------------------------------- shapes that leave the registry

def event_form(value: Any, id_hasher: IdHasher) -> Any:
    """Event data as the registry publishes it (pure): every ``id_number`` anywhere in it becomes its
    mask with the keyed hash beside it (``id_number_hash``); nothing else changes.

    The exact ``birth_date`` stays (benefits' age rules need it): events go to the services and the
    ledger, and the ledger keeps ``ledger_form`` of them (birth year only), never to a caller.
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "id_number" and isinstance(item, str) and item:
                masked = mask_with_hash(item, id_hasher)
                out["id_number"] = masked["id_number"]
                if ID_HASH_FIELD in masked:
                    out[ID_HASH_FIELD] = masked[ID_HASH_FIELD]
            elif key == ID_HASH_FIELD and ID_HASH_FIELD in out:
                continue  # computed above from the clear number
            else:
                out[key] = event_form(item, id_hasher)
        return out
    if isinstance(value, list):
        return [event_form(item, id_hasher) for item in value]
    return value


def age_on(born: Any, on: date) -> int | None:
    if born is None:
        return None
    if not isinstance(born, date):
        try:
            born = date.fromisoformat(str(born)[:10])
        except ValueError:
            return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def masked_member(member: dict) -> dict:
    """A member for a caller who may not see clear numbers: masked number, birth year, no birth date.

    The standard mask hides exactly the eight birth-date digits, so the exact date beside it would
    give the number back (the check digit settles the rest). The keyed hash is dropped too: it is an
    internal index, and a caller holding the key could test candidates against it.
    """
    out = {key: value for key, value in member.items() if key not in ("birth_date", ID_HASH_FIELD)}
    if member.get("id_number"):
        out["id_number"] = mask_id_number(member["id_number"])
    if "birth_date" in member:
        out["birth_year"] = birth_year(member.get("birth_date"))
    return out


def masked_snapshot(snapshot: dict) -> dict:
    """A household for a non-admin caller (registry responses, cadre views, exports)."""
    return {**snapshot, "members": [masked_member(m) for m in snapshot.get("members") or []]}


def private_output_file(path: Path) -> Path:
    """Create (or truncate) ``path`` 0600 before a writer opens it: files the CLI writes with personal
    data (exports, samples, import reports) are readable by their owner only. Writers that open the
    path again with "w"/"wb" keep the mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    return path
