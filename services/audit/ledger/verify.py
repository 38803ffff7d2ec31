"""Verifying the ledger, and checkpoints that attest how far every signature was checked.

``verify_ledger`` recomputes every chain's hashes and links from its first record, checks every record's
origin (its source's signature, by a key trusted for that source) and every checkpoint's commitments.

**Signatures are checked once, not on every run.** Recomputing the hash chain costs microseconds per record;
an Ed25519 verification costs 100-180 µs (80 % of a full run). So a checkpoint taken daily, by an
administrator or the CLI also *attests* (``signatures_checked``: chain -> {seq, hash}) that audit checked every
hash, link and signature of each chain up to that seq, continuing from the previous attestation. A later
verify still recomputes every hash from the first record, and still checks for every record that its signer is
a key trusted for its source (a key removed from the keyring fails its records as before), but checks the
Ed25519 signature itself only for records after the attested seq, provided that:

* the attesting checkpoint is in the checkpoint chain, whose own hashes, links and audit signatures were
  all checked in full in this run, before any other chain;
* the chain's recomputed hash at the attested seq is the attested hash. The hash chain binds every byte of
  every earlier record, so those records are the very bytes whose signatures audit checked (SHA-256 / SM3
  collision resistance). Where it is not (a rewritten or truncated chain), that chain is verified again in
  full, so the verdict and the first bad record are exactly those of a full run.

``full=True`` (``GET /v1/audit/verify?full=true``, ``jingzhun audit verify --full``) checks every signature
again. What an attestation adds to trust: audit's own checkpoint key now vouches for signatures it checked,
as it already vouches for chain heads. Whoever holds that private key could forge either.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.audit.ledger.chain import Algorithm, AttestationBroken, ChainVerifier, GENESIS_HASH, heads_merkle_root
from services.audit.tables import ledger_records
from shared.signing import TrustedKeys, ledger_signed_bytes

log = logging.getLogger("audit.verify")

CHECKPOINT_CHAIN = "checkpoints"
ATTESTATION = "signatures_checked"
#: Signature checks per page when a checkpoint attests: the event loop gets control back between pages.
ATTEST_PAGE = 1000

#: What verify reads of a record: every column, with ``data`` as the stored text (not decoded).
VERIFY_COLUMNS = [*(column for column in ledger_records.c if column.name not in ("data", "recorded_at")),
                  cast(ledger_records.c.data, Text).label("data_json")]


def signature_check(trusted: TrustedKeys):
    """Every record must carry its source's signature over its ledger content (this is a fresh
    product: nothing was ever written unsigned), by a key trusted for that source."""
    def check(record: dict) -> str | None:
        payload = record.get("signed_bytes") or ledger_signed_bytes(record)  # set by ChainVerifier, or rebuilt
        return trusted.problem(record["source"], record.get("signer"), payload, record.get("signature"))
    return check


def signer_check(trusted: TrustedKeys):
    """Within an attested prefix: the record's signer must still be a key trusted for its source."""
    def check(record: dict) -> str | None:
        return trusted.refusal(record["source"], record.get("signer"), record.get("signature"))
    return check


def attestation_of(data_json: str | None) -> dict[str, dict] | None:
    """The ``signatures_checked`` of a checkpoint's stored data, if it carries a well-formed one."""
    try:
        data = json.loads(data_json or "null")
    except ValueError:
        return None
    attested = data.get(ATTESTATION) if isinstance(data, dict) else None
    if not isinstance(attested, dict):
        return None
    return {chain: {"seq": head["seq"], "hash": head["hash"]} for chain, head in attested.items()
            if isinstance(head, dict) and isinstance(head.get("seq"), int) and isinstance(head.get("hash"), str)}


async def _feed_chain(session_for, chain_id: str, verifier: ChainVerifier, upto: int | None, page_size: int,
                      yield_between_pages: bool = False) -> None:
    last_seq = verifier.expected_seq - 1
    while verifier.first_bad is None:
        query = (select(*VERIFY_COLUMNS).where(ledger_records.c.chain_id == chain_id, ledger_records.c.seq > last_seq)
                 .order_by(ledger_records.c.seq).limit(page_size))
        if upto is not None:
            query = query.where(ledger_records.c.seq <= upto)
        async with session_for() as session:
            rows = (await session.execute(query)).mappings().all()
        if not rows:
            return
        for row in rows:
            if not verifier.feed(dict(row)):  # data as stored: hashed as it is when canonical
                return
        last_seq = rows[-1]["seq"]
        if yield_between_pages:
            await asyncio.sleep(0)


# ---------------------------------------------------------------- attesting (when a checkpoint is taken)


async def latest_attestation(session: AsyncSession, trusted: TrustedKeys) -> dict[str, dict]:
    """The newest checkpoint's attestation whose audit signature still verifies (else none: start over)."""
    rows = (await session.execute(select(*VERIFY_COLUMNS).where(ledger_records.c.chain_id == CHECKPOINT_CHAIN)
                                  .order_by(ledger_records.c.seq.desc()).limit(50))).mappings().all()
    check = signature_check(trusted)
    for row in rows:
        attested = attestation_of(row["data_json"])
        if attested is None:
            continue
        record = {**row, "data": json.loads(row["data_json"])}
        problem = check(record)
        if problem is None:
            return attested
        log.error("checkpoint %s attests signatures but its own signature fails (%s): checking every "
                  "signature again", row["id"], problem)
        return {}
    return {}


async def attest_signatures(session: AsyncSession, algorithm: Algorithm, heads: dict[str, dict],
                            trusted: TrustedKeys) -> dict[str, dict]:
    """chain -> {seq, hash}: how far each chain's hashes, links and signatures check now, continuing from the
    previous attestation where the chain still has the hash it attested (else from the first record).
    A bad record stops its chain's attestation before it (logged; ``verify`` reports it)."""
    previous = await latest_attestation(session, trusted)
    check = signature_check(trusted)
    attested: dict[str, dict] = {}

    class _Session:  # pages read in the caller's transaction (the heads it commits to)
        async def __aenter__(self):
            return session

        async def __aexit__(self, *exc):
            return False

    for chain_id, head in sorted(heads.items()):
        start = previous.get(chain_id)
        verifier = ChainVerifier(chain_id, algorithm, check)
        if start and start["seq"] <= head["seq"] and await session.scalar(select(ledger_records.c.hash).where(
                ledger_records.c.chain_id == chain_id, ledger_records.c.seq == start["seq"])) == start["hash"]:
            verifier.expected_seq, verifier.prev_hash = start["seq"] + 1, start["hash"]
        await _feed_chain(_Session, chain_id, verifier, head["seq"], ATTEST_PAGE, yield_between_pages=True)
        if verifier.first_bad is not None:
            log.error("chain %s: not attesting past seq %d: %s", chain_id, verifier.expected_seq - 1,
                      verifier.first_bad["reason"])
        if verifier.expected_seq > 1:
            attested[chain_id] = {"seq": verifier.expected_seq - 1, "hash": verifier.prev_hash}
    return attested


# ---------------------------------------------------------------- verifying


async def verify_ledger(sessionmaker: async_sessionmaker[AsyncSession], algorithm: Algorithm,
                        trusted: TrustedKeys | None = None, page_size: int = 5000,
                        full: bool = False) -> dict[str, Any]:
    """Recompute every chain and check every record's origin, streaming page by page (never the whole
    table in memory), then check every checkpoint's commitments: a chain shorter than a checkpoint says,
    or whose record at the committed seq has another hash, has lost or rewritten its tail.

    The checkpoint chain goes first, in full; its newest attestation then spares the Ed25519 checks of the
    attested prefixes (see the module's docstring) unless ``full``. ``trusted``: the verification keys
    (default: those the audit settings configure)."""
    if trusted is None:
        from shared.config import service_settings
        from shared.signing import trusted_keys
        trusted = trusted_keys(service_settings("audit"))
    trusted.refresh()  # a verification run uses the keys configured now (a removed key no longer counts)
    check, admit = signature_check(trusted), signer_check(trusted)
    async with sessionmaker() as session:
        chain_ids = (await session.execute(select(ledger_records.c.chain_id).distinct()
                                           .order_by(ledger_records.c.chain_id))).scalars().all()
    ordered = sorted(chain_ids, key=lambda chain: (chain != CHECKPOINT_CHAIN, chain))
    checked, heads, first_bad = 0, {}, None
    attested: dict[str, dict] = {}
    attesting: dict[str, Any] | None = None
    skipped = 0
    for chain_id in ordered:
        verifier = None
        through = None if full else attested.get(chain_id)
        if through is not None:
            verifier = ChainVerifier(chain_id, algorithm, check, attested=(through["seq"], through["hash"]),
                                     admit=admit)
            try:
                await _feed_chain(sessionmaker, chain_id, verifier, None, page_size)
                if verifier.first_bad is None and verifier.expected_seq - 1 < through["seq"]:
                    raise AttestationBroken(f"{chain_id} ends before the attested seq {through['seq']}")
                skipped += verifier.attested_checked
            except AttestationBroken as broken:
                log.warning("verify: %s; checking that chain's signatures in full", broken)
                verifier = None
        if verifier is None:
            verifier = ChainVerifier(chain_id, algorithm, check, on_checkpoint=chain_id == CHECKPOINT_CHAIN)
            await _feed_chain(sessionmaker, chain_id, verifier, None, page_size)
        checked += verifier.checked
        heads[chain_id] = {"seq": verifier.expected_seq - 1, "hash": verifier.prev_hash}
        if verifier.first_bad and first_bad is None:
            first_bad = verifier.first_bad
        if chain_id == CHECKPOINT_CHAIN and verifier.first_bad is None and not full and verifier.attestation:
            attesting, attested = verifier.attestation
    checkpoints_checked, latest = 0, None
    if CHECKPOINT_CHAIN in heads:
        checkpoints_checked, latest, problem = await _check_checkpoints(sessionmaker, heads, algorithm, page_size)
        if problem and first_bad is None:
            first_bad = problem
    return {"ok": first_bad is None, "records_checked": checked,
            "head_hash": heads_merkle_root(heads, algorithm),
            "chain_heads": heads, "first_bad_record": first_bad, "algorithm": algorithm,
            "checkpoints_checked": checkpoints_checked, "latest_checkpoint": latest,
            "signatures": {"full": full, "checked": checked - skipped, "attested": skipped,
                           "attesting_checkpoint": attesting}}


async def _check_checkpoints(sessionmaker, heads: dict[str, dict], algorithm: Algorithm,
                             page_size: int) -> tuple[int, dict | None, dict | None]:
    verified_upto = heads[CHECKPOINT_CHAIN]["seq"]  # only trust checkpoints whose own chain verified
    last_seq, count, latest = 0, 0, None
    committed_cache: dict[tuple[str, int], str | None] = {}
    while True:
        async with sessionmaker() as session:
            rows = (await session.execute(select(ledger_records).where(
                ledger_records.c.chain_id == CHECKPOINT_CHAIN, ledger_records.c.seq > last_seq,
                ledger_records.c.seq <= verified_upto).order_by(ledger_records.c.seq).limit(page_size))).all()
            if not rows:
                return count, latest, None
            for row in rows:
                count += 1
                data = row.data or {}
                committed = data.get("chain_heads") or {}
                latest = {"id": row.id, "seq": row.seq, "time": row.time, "merkle_root": data.get("merkle_root"),
                          "hash": row.hash}
                if heads_merkle_root(committed, data.get("algorithm", algorithm)) != data.get("merkle_root"):
                    return count, latest, {"id": row.id, "chain_id": CHECKPOINT_CHAIN, "seq": row.seq,
                                           "event_id": row.event_id,
                                           "reason": "checkpoint's merkle_root does not match its chain heads"}
                for chain_id, head in sorted(committed.items()):
                    current = heads.get(chain_id, {"seq": 0})
                    if current["seq"] < head["seq"]:
                        return count, latest, {
                            "id": None, "chain_id": chain_id, "seq": current["seq"] + 1, "event_id": None,
                            "checkpoint_record_id": row.id,
                            "reason": f"chain truncated: checkpoint {row.id} committed to seq {head['seq']} "
                                      f"(hash {head['hash'][:16]}…) but the chain ends at seq {current['seq']}"}
                    key = (chain_id, head["seq"])
                    if key not in committed_cache:
                        committed_cache[key] = await session.scalar(select(ledger_records.c.hash).where(
                            ledger_records.c.chain_id == chain_id, ledger_records.c.seq == head["seq"]))
                    if committed_cache[key] != head["hash"]:
                        return count, latest, {
                            "id": None, "chain_id": chain_id, "seq": head["seq"], "event_id": None,
                            "checkpoint_record_id": row.id,
                            "reason": f"chain rewritten: record seq {head['seq']} no longer has the hash "
                                      f"checkpoint {row.id} committed to"}
            last_seq = rows[-1].seq


__all__ = ["ATTESTATION", "CHECKPOINT_CHAIN", "GENESIS_HASH", "VERIFY_COLUMNS", "attest_signatures",
           "signature_check", "verify_ledger"]
