"""The hash chain, pure: canonical JSON and record hashes.

``hash = H(prev_hash || canonical_record)`` where canonical JSON has sorted keys, UTF-8
and no spaces, and ``prev_hash`` is the previous record's hex digest (64 zeros first).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any, Callable, Literal

from shared.idcard import mask_id_number

GENESIS_HASH = "0" * 64
HASHED_FIELDS = ("chain_id", "seq", "event_id", "source", "type", "subject", "time", "actor", "data")

Algorithm = Literal["sha256", "sm3"]


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _digest(payload: bytes, algorithm: Algorithm) -> str:
    if algorithm == "sm3":
        from gmssl import func, sm3  # national cryptography (GM/T 0004-2012), when a deployment requires it
        return sm3.sm3_hash(func.bytes_to_list(payload))
    return hashlib.sha256(payload).hexdigest()


def hashed_content(record: dict) -> dict:
    return {field: record.get(field) for field in HASHED_FIELDS}


def record_hash(prev_hash: str, record: dict, algorithm: Algorithm = "sha256") -> str:
    return _digest(prev_hash.encode("ascii") + canonical_json(hashed_content(record)), algorithm)


IdHasher = Callable[[str], str]
_CLEAR_ID = re.compile(r"^\d{17}[\dXx]$")
ID_HASH_FIELD = "id_number_hash"


def keyed_id_hasher(key: bytes) -> IdHasher:
    """HMAC-SHA256 of a normalised ID number: equal numbers compare equal, the number never shows."""
    def hasher(id_number: str) -> str:
        return hmac.new(key, id_number.strip().upper().encode("ascii"), hashlib.sha256).hexdigest()
    return hasher


def mask_personal_data(value: Any, id_hasher: IdHasher | None = None) -> Any:
    """ID numbers never enter the ledger in clear.

    With ``id_hasher`` a clear number also leaves a keyed hash beside its masked form
    (``id_number_hash``), so supervisors can find one person in two households without
    anyone reading the number.
    """
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k == "id_number" and isinstance(v, str):
                out[k] = mask_id_number(v)
                if id_hasher is not None and _CLEAR_ID.match(v.strip()) and ID_HASH_FIELD not in value:
                    out[ID_HASH_FIELD] = id_hasher(v)
            else:
                out[k] = mask_personal_data(v, id_hasher)
        return out
    if isinstance(value, list):
        return [mask_personal_data(v, id_hasher) for v in value]
    return value


def digest(payload: bytes, algorithm: Algorithm = "sha256") -> str:
    return _digest(payload, algorithm)


def merkle_root(leaves: list[str], algorithm: Algorithm = "sha256") -> str:
    """Merkle root over hex leaves (already hashed), pairing left to right; an odd last node
    is carried up unchanged. Leaf and node hashes are domain-separated (0x00 / 0x01)."""
    if not leaves:
        return GENESIS_HASH
    level = [_digest(b"\x00" + leaf.encode("ascii"), algorithm) for leaf in leaves]
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level), 2):
            if i + 1 < len(level):
                nxt.append(_digest(b"\x01" + level[i].encode("ascii") + level[i + 1].encode("ascii"), algorithm))
            else:
                nxt.append(level[i])
        level = nxt
    return level[0]


def chain_head_leaf(chain_id: str, seq: int, head_hash: str, algorithm: Algorithm = "sha256") -> str:
    return _digest(f"{chain_id}|{seq}|{head_hash}".encode("utf-8"), algorithm)


def heads_merkle_root(heads: dict[str, dict], algorithm: Algorithm = "sha256") -> str:
    """``heads``: chain_id -> {seq, hash}; leaves in chain_id order."""
    return merkle_root([chain_head_leaf(c, h["seq"], h["hash"], algorithm) for c, h in sorted(heads.items())],
                       algorithm)


class ChainVerifier:
    """Feeds records of one chain in seq order; remembers the first one that does not fit."""

    def __init__(self, chain_id: str, algorithm: Algorithm = "sha256") -> None:
        self.chain_id, self.algorithm = chain_id, algorithm
        self.expected_seq, self.prev_hash = 1, GENESIS_HASH
        self.checked = 0
        self.first_bad: dict | None = None

    def feed(self, record: dict) -> bool:
        if self.first_bad is not None:
            return False
        self.checked += 1
        problem = None
        if record["seq"] != self.expected_seq:
            problem = f"expected seq {self.expected_seq}, found {record['seq']} (a record is missing or moved)"
        elif record["prev_hash"] != self.prev_hash:
            problem = "prev_hash does not match the previous record's hash (records reordered or replaced)"
        elif record_hash(record["prev_hash"], record, self.algorithm) != record["hash"]:
            problem = "content does not match its hash (record altered)"
        if problem:
            self.first_bad = {"id": record.get("id"), "chain_id": self.chain_id, "seq": record["seq"],
                              "event_id": record.get("event_id"), "reason": problem}
            return False
        self.expected_seq += 1
        self.prev_hash = record["hash"]
        return True
