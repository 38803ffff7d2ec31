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
_CLEAR_ID = re.compile(r"^\d{17}[\dXx]$")


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
