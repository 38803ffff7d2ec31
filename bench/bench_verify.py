"""Audit verify throughput against its floor: sha256 over the same stored bytes, fetch included.

    .venv/bin/python -m bench.bench_verify                      # 50,000 records, SQLite (+ PostgreSQL if set)
    .venv/bin/python -m bench.bench_verify --quick              # 2,000 records (the CI smoke run)
    .venv/bin/python -m bench.bench_verify --n 20000 --backend postgres --postgres-url postgresql+asyncpg://...

For each backend: a fresh audit database migrated to head, seeded with N signed registry-sized records
(~800 bytes of canonical JSON each, 6 chains, appended with ``append_records`` like the consumer's
batches), then, in rounds on the same records (best round reported):

* baseline - fetch every record's stored columns (data as stored text) page by page, chain by chain, in
  seq order, exactly as verify pages, and sha256 each record's stored bytes: the floor for anything that
  reads and hashes the ledger;
* attest   - a checkpoint (daily, manual or CLI) checks every hash, link and Ed25519 signature since the previous
  attestation and attests how far it checked: paid once per record, at checkpoint time;
* verify   - ``verify_ledger`` (``GET /v1/audit/verify``, ``jingzhun audit verify``) after that checkpoint: every
  hash and link from the first record, every signer still trusted, the Ed25519 signatures of records after the
  attestation (here: none);
* verify --full - ``verify_ledger(full=True)`` (``?full=true``, ``--full``): every record's Ed25519 signature too;
* hash chain only - ``verify_ledger`` with the signature check answering "fine" at once: what is left of
  verify without the Ed25519 verifications (for reading the numbers, not a mode of the product).

Prints records/s for each and the ratios to the baseline (target for verify: 0.5 or more). Ed25519 is
what bounds a full verify: the rate of the signature checks alone (on a sample, in memory) is printed too.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from sqlalchemy import Text, cast, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.backends import on_backends  # noqa: E402
from bench.bench_ledger import CHAINS, SIGNER, bench_trusted_keys, chain_of, make_record  # noqa: E402
from services.audit.ledger.service import append_records, create_checkpoint, verify_ledger  # noqa: E402
from services.audit.tables import ledger_records  # noqa: E402
from shared.db import make_engine, make_sessionmaker, transaction  # noqa: E402
from shared.migrate import upgrade_to_head  # noqa: E402
from shared.signing import EventSigner, b64url_decode, bind_signer, ledger_signed_bytes  # noqa: E402

PAGE = 5000  # verify_ledger's page size
TARGET = 0.5


class SignaturesNotChecked:
    """Stands in for the trusted keys: every signature "fine" without any work (hash chain only)."""

    def refresh(self, force: bool = False) -> bool:
        return False

    def problem(self, source, signer, payload, signature) -> None:
        return None


async def seed(sessionmaker, n: int, batch: int = 2000) -> float:
    start = time.perf_counter()
    for first in range(0, n, batch):
        by_chain: dict[str, list[dict]] = {}
        for i in range(first, min(first + batch, n)):
            by_chain.setdefault(chain_of(i), []).append(make_record(i))
        async with transaction(sessionmaker) as session:
            for chain_id, records in by_chain.items():
                await append_records(session, records, chain_id, "sha256")
    return time.perf_counter() - start


STORED = [ledger_records.c.prev_hash, ledger_records.c.chain_id, ledger_records.c.seq, ledger_records.c.event_id,
          ledger_records.c.source, ledger_records.c.type, ledger_records.c.subject, ledger_records.c.time,
          ledger_records.c.actor, ledger_records.c.signer, ledger_records.c.signature,
          cast(ledger_records.c.data, Text)]


async def stored_sha256(sessionmaker) -> int:
    """The baseline: verify's fetch (same pages, same order), one sha256 per record over its stored bytes."""
    async with sessionmaker() as session:
        chain_ids = (await session.execute(select(ledger_records.c.chain_id).distinct()
                                           .order_by(ledger_records.c.chain_id))).scalars().all()
    count = 0
    for chain_id in chain_ids:
        last_seq = 0
        while True:
            async with sessionmaker() as session:
                rows = (await session.execute(select(*STORED).where(
                    ledger_records.c.chain_id == chain_id, ledger_records.c.seq > last_seq)
                    .order_by(ledger_records.c.seq).limit(PAGE))).all()
            if not rows:
                break
            for row in rows:
                hashlib.sha256("\x1f".join(str(value) for value in row).encode("utf-8")).hexdigest()
            count += len(rows)
            last_seq = rows[-1].seq
    return count


def signature_rate(sample: int) -> float:
    """Ed25519 verifications/s over ``sample`` records' signed bytes, in memory (no database, no JSON)."""
    public_key = SIGNER.public_key
    pairs = [(b64url_decode(r["signature"]), ledger_signed_bytes(r)) for r in map(make_record, range(sample))]
    start = time.perf_counter()
    for signature, payload in pairs:
        public_key.verify(signature, payload)
    return sample / (time.perf_counter() - start)


def show(label: str, count: int, seconds: float, extra: str = "") -> None:
    print(f"  {label:<40} {count:>8,} in {seconds:7.2f}s = {count / seconds:9,.0f} records/s {extra}", flush=True)


async def run_backend(name: str, url: str, n: int, rounds: int) -> dict:
    print(f"\n{name}: {make_url(url).render_as_string(hide_password=True)}", flush=True)
    engine = make_engine(url)
    try:
        await upgrade_to_head("audit", engine)
        sessionmaker = make_sessionmaker(engine)
        show("seed (append_records, signed records)", n, await seed(sessionmaker, n))
        best: dict[str, float] = {}
        keys = bench_trusted_keys()
        auditor = EventSigner.from_private_key("audit", Ed25519PrivateKey.from_private_bytes(b"\x0a" * 32))
        bind_signer(engine, auditor)  # the checkpoint is signed by audit, as the service does
        keys.trust_own(auditor)
        start = time.perf_counter()
        async with transaction(sessionmaker) as session:
            checkpoint = await create_checkpoint(session, "sha256", actor="bench", trusted=keys)
        attested = sum(head["seq"] for head in checkpoint["data"]["signatures_checked"].values())
        ok = attested == n
        show("attest (checkpoint, once per record)", attested, time.perf_counter() - start,
             "" if ok else f"NOT ALL ATTESTED: {attested}")
        for round_no in range(1, rounds + 1):
            print(f"  round {round_no}/{rounds}", flush=True)
            start = time.perf_counter()
            count = await stored_sha256(sessionmaker)
            seconds = time.perf_counter() - start
            assert count == n + 1, (count, n)  # + the checkpoint
            show("baseline: fetch + sha256 of stored bytes", count, seconds)
            best["baseline"] = max(best.get("baseline", 0), count / seconds)

            for label, key, full in (("verify_ledger (after the checkpoint)", "verify", False),
                                     ("verify_ledger --full (every signature)", "full", True)):
                start = time.perf_counter()
                verdict = await verify_ledger(sessionmaker, "sha256", keys, full=full)
                seconds = time.perf_counter() - start
                ok = ok and verdict["ok"] and verdict["records_checked"] == n + 1  # + the checkpoint
                show(label, verdict["records_checked"], seconds,
                     f"verified ok, {verdict['signatures']['checked']:,} signatures checked" if verdict["ok"]
                     else f"NOT OK: {verdict['first_bad_record']}")
                best[key] = max(best.get(key, 0), verdict["records_checked"] / seconds)

            start = time.perf_counter()
            verdict = await verify_ledger(sessionmaker, "sha256", SignaturesNotChecked(), full=True)
            seconds = time.perf_counter() - start
            ok = ok and verdict["ok"]
            show("verify_ledger, hash chain only", verdict["records_checked"], seconds)
            best["chain_only"] = max(best.get("chain_only", 0), verdict["records_checked"] / seconds)
        best["signatures"] = signature_rate(min(n, 2000))
        print(f"  {'Ed25519 signature checks alone (memory)':<40} {min(n, 2000):>8,} sample      = "
              f"{best['signatures']:9,.0f} records/s", flush=True)
        best["ok"] = ok
        return best
    finally:
        await engine.dispose()


async def main(n: int, backends: list[str], postgres_url: str | None, rounds: int,
               json_path: Path | None = None) -> bool:
    print(f"audit verify benchmark: {n:,} records, {CHAINS} chains, {rounds} round(s), "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs", flush=True)
    results = await on_backends(backends, postgres_url, "audit", lambda name, url: run_backend(name, url, n, rounds))
    print(f"\nsummary ({n:,} records; best of {rounds} round(s)):")
    for backend, r in results.items():
        print(f"  {backend:<10} baseline {r['baseline']:,.0f}/s  verify {r['verify']:,.0f}/s  "
              f"ratio verify/baseline {r['verify'] / r['baseline']:.2f} (target >= {TARGET})  "
              f"verify --full {r['full']:,.0f}/s (ratio {r['full'] / r['baseline']:.2f})  "
              f"hash chain only {r['chain_only']:,.0f}/s (ratio {r['chain_only'] / r['baseline']:.2f})  "
              f"Ed25519 alone {r['signatures']:,.0f}/s  {'verified ok' if r['ok'] else 'VERIFY FAILED'}")
    if json_path is not None:
        json_path.write_text(json.dumps({backend: r for backend, r in results.items()}, indent=1), encoding="utf-8")
    return all(r["ok"] for r in results.values())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=None, help="records (default 50000; --quick: 2000)")
    parser.add_argument("--quick", action="store_true", help="2,000 records, one round (CI smoke run)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds, best reported (default 2; --quick 1)")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--json", type=Path, help="also write the results (records/s per path, per backend) to this file")
    parser.add_argument("--postgres-url", default=os.environ.get("JZ_BENCH_POSTGRES_URL")
                        or os.environ.get("JZ_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    count = args.n or (2_000 if args.quick else 50_000)
    chosen = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    if not asyncio.run(main(count, chosen, args.postgres_url, args.rounds or (1 if args.quick else 2), args.json)):
        sys.exit(1)
