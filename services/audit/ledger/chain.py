"""The hash chain, pure: canonical JSON and record hashes.

``hash = H(prev_hash || canonical_record)`` where canonical JSON has sorted keys, UTF-8
and no spaces, and ``prev_hash`` is the previous record's hex digest (64 zeros first).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

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


def mask_personal_data(value: Any) -> Any:
    """ID numbers never enter the ledger in clear."""
    if isinstance(value, dict):
        return {k: (mask_id_number(v) if k == "id_number" and isinstance(v, str) else mask_personal_data(v))
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask_personal_data(v) for v in value]
    return value


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
