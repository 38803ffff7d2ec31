"""The hash chain, pure: canonical JSON and record hashes.

``hash = H(prev_hash || canonical_record)`` where canonical JSON has sorted keys, UTF-8
and no spaces, and ``prev_hash`` is the previous record's hex digest (64 zeros first).
A signed record's ``signer`` and ``signature`` (the source's ``ledger_signature``) are part of the
hashed content; they are left out when absent, so hashes of records written before signing
are unchanged.

The ledger stores a record's ``data`` as its canonical JSON text (``canonical_order``), so ``verify`` can
hash the stored text as it is (``stored_hashed_bytes``) instead of decoding and re-encoding it; a record
stored before that (or whose text is not canonical) is decoded and hashed as before.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Literal

from shared.personal_data import IdHasher, keyed_id_hasher, ledger_form  # noqa: F401 - re-exported
from shared.signing import canonical_json  # noqa: F401 - re-exported

GENESIS_HASH = "0" * 64
HASHED_FIELDS = ("chain_id", "seq", "event_id", "source", "type", "subject", "time", "actor", "data")
RECORD_SIGNATURE_FIELDS = ("signer", "signature")  # hashed when present

Algorithm = Literal["sha256", "sm3"]
#: record -> why its signature does not establish its origin, or None when it does
SignatureCheck = Callable[[dict], "str | None"]


def _digest(payload: bytes, algorithm: Algorithm) -> str:
    if algorithm == "sm3":
        from gmssl import func, sm3  # national cryptography (GM/T 0004-2012), when a deployment requires it
        return sm3.sm3_hash(func.bytes_to_list(payload))
    return hashlib.sha256(payload).hexdigest()


def hashed_content(record: dict) -> dict:
    content = {field: record.get(field) for field in HASHED_FIELDS}
    content.update({field: record[field] for field in RECORD_SIGNATURE_FIELDS if record.get(field) is not None})
    return content


def record_hash(prev_hash: str, record: dict, algorithm: Algorithm = "sha256") -> str:
    return _digest(prev_hash.encode("ascii") + canonical_json(hashed_content(record)), algorithm)


# ---------------------------------------------------------------- hashing the stored text

def canonical_order(value: Any) -> Any:
    """``value`` with every object's keys in sorted order: the shared JSON serializer (compact, UTF-8,
    insertion order) then writes exactly ``canonical_json(value)``, which is what the ledger stores.
    (Decoding the canonical text: C code both ways, faster than sorting in Python.)"""
    return json.loads(canonical_json(value))


_string = json.encoder.encode_basestring  # a JSON string as canonical_json writes it (ensure_ascii=False)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return _string(value)
    if type(value) is int:  # seq: what json.dumps writes for an int, without its call
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def stored_hashed_bytes(record: dict, data_json: str) -> bytes:
    """``canonical_json(hashed_content(record))`` with ``data_json`` (the stored text) as the data, not
    decoded. Equal to it when ``data_json`` is canonical; a non-canonical text gives other bytes (and a
    hash mismatch the caller settles by decoding). Every other value is written as a JSON scalar, whose
    delimiters no stored text can imitate, so no change to any column can give the same bytes.
    """
    try:  # the usual record: every column a string (seq an int), signed; one format, no call per column
        return (f'{{"actor":{_string(record["actor"])},"chain_id":{_string(record["chain_id"])},"data":{data_json},'
                f'"event_id":{_string(record["event_id"])},"seq":{int(record["seq"])},'
                f'"signature":{_string(record["signature"])},"signer":{_string(record["signer"])},'
                f'"source":{_string(record["source"])},"subject":{_string(record["subject"])},'
                f'"time":{_string(record["time"])},"type":{_string(record["type"])}}}').encode("utf-8") \
            if type(record["seq"]) is int else _stored_hashed_bytes(record, data_json)
    except (TypeError, KeyError):  # a NULL actor or subject, an unsigned record
        return _stored_hashed_bytes(record, data_json)


def _stored_hashed_bytes(record: dict, data_json: str) -> bytes:
    signed = [(",\"signature\":", record["signature"])] if record.get("signature") is not None else []
    signed += [(",\"signer\":", record["signer"])] if record.get("signer") is not None else []
    return "".join((
        '{"actor":', _scalar(record.get("actor")), ',"chain_id":', _scalar(record["chain_id"]),
        ',"data":', data_json, ',"event_id":', _scalar(record["event_id"]), ',"seq":', _scalar(record["seq"]),
        *(part for key, value in signed for part in (key, _scalar(value))),
        ',"source":', _scalar(record["source"]), ',"subject":', _scalar(record["subject"]),
        ',"time":', _scalar(record["time"]), ',"type":', _scalar(record["type"]), "}")).encode("utf-8")


def stored_signed_bytes(record: dict, data_json: str) -> bytes:
    """``shared.signing.ledger_signed_bytes(record)`` with ``data_json`` (canonical, as stored) as the data."""
    return "".join((
        '{"actor":', _scalar(record.get("actor")), ',"data":', data_json,
        ',"event_id":', _scalar(record["event_id"]), ',"signer":', _scalar(record.get("signer")),
        ',"source":', _scalar(record["source"]), ',"subject":', _scalar(record["subject"]),
        ',"time":', _scalar(record["time"]), ',"type":', _scalar(record["type"]), "}")).encode("utf-8")


# The ledger form of event data lives in shared.personal_data (sources sign it); kept under the old
# name for callers of this module.
mask_personal_data = ledger_form


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


class AttestationBroken(Exception):
    """An attested prefix is not what the checkpoint attested: verify that chain again in full."""


class ChainVerifier:
    """Feeds records of one chain in seq order; remembers the first one that does not fit.

    ``attested=(seq, hash)``: a checkpoint attests that every signature up to ``seq`` was checked when the
    chain had ``hash`` there. Up to that seq only ``admit`` runs (is the signer still trusted for the
    source?), not the signature check; a record there that does not fit, or another hash at ``seq``, raises
    ``AttestationBroken`` (the caller verifies the chain in full, so the verdict is a full run's).
    ``on_checkpoint``: the checkpoint chain itself; ``attestation`` is then its newest attestation."""

    def __init__(self, chain_id: str, algorithm: Algorithm = "sha256",
                 check_signature: SignatureCheck | None = None, *, attested: tuple[int, str] | None = None,
                 admit: SignatureCheck | None = None, on_checkpoint: bool = False) -> None:
        self.chain_id, self.algorithm = chain_id, algorithm
        self.check_signature = check_signature
        self.expected_seq, self.prev_hash = 1, GENESIS_HASH
        self.checked = 0
        self.first_bad: dict | None = None
        self.attested, self.admit, self.attested_checked = attested, admit, 0
        self.on_checkpoint = on_checkpoint
        self.attestation: tuple[dict, dict[str, dict]] | None = None

    def feed(self, record: dict) -> bool:
        if self.first_bad is not None:
            return False
        self.checked += 1
        seq = record["seq"]
        in_attested = self.attested is not None and seq <= self.attested[0]
        signature_check = self.admit if in_attested else self.check_signature
        problem = None
        if seq != self.expected_seq:
            problem = f"expected seq {self.expected_seq}, found {seq} (a record is missing or moved)"
        elif record["prev_hash"] != self.prev_hash:
            problem = "prev_hash does not match the previous record's hash (records reordered or replaced)"
        elif not self._content_matches(record):
            problem = "content does not match its hash (record altered)"
            if signature_check is not None and (signature_problem := self._signature_problem(record, signature_check)):
                problem += f"; signature: {signature_problem}"
        elif signature_check is not None and (signature_problem := self._signature_problem(record, signature_check)):
            # Hash and links fit, so whoever changed the record rebuilt the chain: only the source's
            # signature shows the record is not what the source sent.
            problem = f"signature: {signature_problem}"
        if in_attested:
            if problem or (seq == self.attested[0] and record["hash"] != self.attested[1]):
                raise AttestationBroken(f"{self.chain_id} seq {seq}: {problem or 'not the attested hash'}")
            self.attested_checked += 1
        if problem:
            self.first_bad = {"id": record.get("id"), "chain_id": self.chain_id, "seq": seq,
                              "event_id": record.get("event_id"), "reason": problem}
            return False
        self.expected_seq += 1
        self.prev_hash = record["hash"]
        if self.on_checkpoint and '"signatures_checked"' in (record.get("data_json") or ""):
            self._note_attestation(record)
        return True

    def _signature_problem(self, record: dict, check: SignatureCheck) -> str | None:
        # The signed bytes from the same stored text, when a signature is checked (``admit`` needs none).
        if record.pop("_stored_text_hashed", False) and check is self.check_signature:
            record["signed_bytes"] = stored_signed_bytes(record, record["data_json"])
        return check(record)

    def _note_attestation(self, record: dict) -> None:
        try:
            data = json.loads(record["data_json"])
        except ValueError:
            return
        attested = data.get("signatures_checked") if isinstance(data, dict) else None
        if isinstance(attested, dict):
            self.attestation = (
                {"id": record.get("id"), "seq": record["seq"], "event_id": record.get("event_id")},
                {chain: {"seq": head["seq"], "hash": head["hash"]} for chain, head in attested.items()
                 if isinstance(head, dict) and isinstance(head.get("seq"), int) and isinstance(head.get("hash"), str)})

    def _content_matches(self, record: dict) -> bool:
        """Does the record's content give its hash? A record read with its data as stored (``data_json``,
        no ``data``) is hashed as stored when that text is canonical; otherwise (a record stored before
        the ledger kept canonical text, or altered) its data is decoded and hashed as ``record_hash``
        does, so the verdict is the same either way. On a match by the stored text, the bytes its
        signature covers are built from the same text when a signature is checked."""
        if "data" not in record:
            data_json = record["data_json"]
            if _digest(record["prev_hash"].encode("ascii") + stored_hashed_bytes(record, data_json),
                       self.algorithm) == record["hash"]:
                record["_stored_text_hashed"] = True
                return True
            try:
                record["data"] = json.loads(data_json)
            except (TypeError, ValueError):  # not JSON at all (SQLite does not check): altered
                record["data"] = None
                return False
        return record_hash(record["prev_hash"], record, self.algorithm) == record["hash"]
