"""Audit ledger benchmark: append rate and verify rate for N records, with memory use.

    .venv/bin/python bench/bench_ledger.py                 # 1,000,000 records on SQLite
    .venv/bin/python bench/bench_ledger.py --n 100000 --algorithm sm3
    JZ_TEST_POSTGRES_URL=postgresql+asyncpg://postgres@127.0.0.1/postgres .venv/bin/python bench/bench_ledger.py

Phases, in one run and on the same records:
* baseline: canonical JSON + chained hash of every record in memory, no database (the floor);
* per-event append (``append_event``, what the consumer does per message) on a sample;
* batched append (``append_records``: one head read and one multi-row insert per batch, same chain);
* verify (``verify_ledger``: streams every chain page by page and recomputes every hash).
Records are spread over 6 chains (topic partitions) like the consumer's. Peak RSS is
reported after each phase (``resource.getrusage``; it only grows).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.audit.ledger.chain import GENESIS_HASH, keyed_id_hasher, mask_personal_data, record_hash  # noqa: E402
from services.audit.ledger.service import append_event, append_records, verify_ledger  # noqa: E402
from shared.db import make_engine, make_sessionmaker, transaction  # noqa: E402
from shared.events import Envelope  # noqa: E402
from shared.migrate import upgrade_to_head  # noqa: E402
from shared.signing import EventSigner, TrustedKey, TrustedKeys, ledger_signed_bytes, sign_envelope  # noqa: E402

CHAINS = 6
HASHER = keyed_id_hasher(b"bench")
# Records are signed as the registry signs them (verify checks every signature); the signing is the
# source's cost, verifying it is audit's.
SIGNER = EventSigner.from_private_key(
    "registry", __import__("cryptography.hazmat.primitives.asymmetric.ed25519",
                           fromlist=["Ed25519PrivateKey"]).Ed25519PrivateKey.from_private_bytes(b"\x07" * 32))


def bench_trusted_keys() -> TrustedKeys:
    import tempfile

    from shared.config import AuditSettings
    trusted = TrustedKeys(AuditSettings(var_dir=Path(tempfile.mkdtemp(prefix="jz-bench-"))))
    trusted.add(TrustedKey(SIGNER.signer, "registry", SIGNER.public_key))
    return trusted


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_record(i: int) -> dict:
    """A registry-event-sized record (~700 bytes of canonical JSON) in ledger form."""
    household = {"id": f"hh-{i:08d}", "version": 1 + i % 5, "region_code": "360703", "status": "registered",
                 "village": {"code": f"360703{105 + i % 9}{200 + i % 30}", "township_code": f"360703{105 + i % 9}"},
                 "income": {"year": 2019, "per_capita_net": f"{2500 + i % 3000}.00"}, "categories": [],
                 "relocation": {"relocated": False, "moved_in": False},
                 "members": [{"id": f"p-{i}-{k}", "id_number": f"3607821978031{(i * 7 + k) % 10000:04d}{k}",
                              "relation": "head" if k == 0 else "child", "deceased": False} for k in range(3)]}
    record = {"event_id": str(uuid.UUID(int=i + 1)), "source": "registry", "type": "household.updated",
              "subject": f"household/{household['id']}", "time": "2020-06-30T08:00:00Z", "actor": "office-1",
              "data": mask_personal_data({"household": household, "version": household["version"]}, HASHER),
              "signer": SIGNER.signer}
    record["signature"] = SIGNER.sign(ledger_signed_bytes(record))
    return record


def chain_of(i: int) -> str:
    return f"jz.registry.v1:{i % CHAINS}"


def baseline(n: int, algorithm: str) -> float:
    heads = {c: GENESIS_HASH for c in (chain_of(k) for k in range(CHAINS))}
    seqs = dict.fromkeys(heads, 0)
    start = time.perf_counter()
    for i in range(n):
        record = make_record(i)
        chain = chain_of(i)
        seqs[chain] += 1
        record.update(chain_id=chain, seq=seqs[chain])
        heads[chain] = record_hash(heads[chain], record, algorithm)
    return time.perf_counter() - start


def record_build_time(n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        make_record(i)
    return time.perf_counter() - start


async def run_backend(name: str, url: str, n: int, batch: int, per_event: int, algorithm: str) -> dict:
    engine = make_engine(url)
    await upgrade_to_head("audit", engine)
    sessionmaker = make_sessionmaker(engine)
    result: dict = {"backend": name}

    # per-event path, on its own chain so it does not disturb the batched chains
    start = time.perf_counter()
    for i in range(per_event):
        envelope = sign_envelope(Envelope(id=str(uuid.uuid4()), source="registry", type="household.updated",
                                          subject=f"household/x{i}", data=make_record(i)["data"]), SIGNER)
        async with transaction(sessionmaker) as session:
            await append_event(session, envelope, "per-event:0", algorithm)
    result["per_event_rate"] = per_event / (time.perf_counter() - start)

    start = time.perf_counter()
    done = 0
    while done < n:
        size = min(batch, n - done)
        by_chain: dict[str, list] = {}
        for i in range(done, done + size):
            by_chain.setdefault(chain_of(i), []).append(make_record(i))
        async with transaction(sessionmaker) as session:
            for chain, records in by_chain.items():
                await append_records(session, records, chain, algorithm)
        done += size
        if done % (batch * 40) == 0:
            print(f"  {name}: appended {done:,} ({done / (time.perf_counter() - start):,.0f}/s)", flush=True)
    result["append_s"] = time.perf_counter() - start
    result["append_rate"] = n / result["append_s"]
    result["rss_after_append_mb"] = peak_rss_mb()

    start = time.perf_counter()
    verdict = await verify_ledger(sessionmaker, algorithm, bench_trusted_keys())
    result["verify_s"] = time.perf_counter() - start
    result["verify_rate"] = verdict["records_checked"] / result["verify_s"]
    result["verified"] = verdict["ok"] and verdict["records_checked"] == n + per_event
    result["rss_after_verify_mb"] = peak_rss_mb()
    await engine.dispose()
    return result


async def drop_pg(url: str, name: str | None) -> str:
    import asyncpg
    from sqlalchemy.engine import make_url
    admin = make_url(url).set(drivername="postgresql")
    conn = await asyncpg.connect(admin.render_as_string(hide_password=False))
    try:
        if name is None:
            name = f"jz_bench_ledger_{uuid.uuid4().hex[:8]}"
            await conn.execute(f'CREATE DATABASE "{name}"')
        else:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
    return name


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000, help="records per append transaction")
    parser.add_argument("--per-event", type=int, default=5000, help="records appended one by one (sample)")
    parser.add_argument("--algorithm", choices=["sha256", "sm3"], default="sha256")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    print(f"ledger bench: n={args.n:,} batch={args.batch} algorithm={args.algorithm} chains={CHAINS} "
          f"python={sys.version.split()[0]} cpus={os.cpu_count()}")

    build = record_build_time(min(args.n, 100_000)) * args.n / min(args.n, 100_000)
    base = baseline(args.n, args.algorithm)
    print(f"baseline (build + canonical JSON + chained {args.algorithm}, no DB): {args.n / base:,.0f} records/s "
          f"({base:.1f} s; building the test records alone ≈ {build:.1f} s); peak RSS {peak_rss_mb():.0f} MB")

    results = []
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{tmp}/bench-audit.db"
            results.append(await run_backend("sqlite", url, args.n, args.batch, args.per_event, args.algorithm))
            size = sum(p.stat().st_size for p in Path(tmp).iterdir())
            results[-1]["db_mb"] = size / 1e6
    pg = os.environ.get("JZ_TEST_POSTGRES_URL")
    if pg:
        from sqlalchemy.engine import make_url
        name = await drop_pg(pg, None)
        try:
            results.append(await run_backend("postgresql", make_url(pg).set(database=name).render_as_string(
                hide_password=False), args.n, args.batch, args.per_event, args.algorithm))
        finally:
            await drop_pg(pg, name)
    for r in results:
        print(f"\n[{r['backend']}]")
        print(f"  per-event append (append_event, 1 tx each): {r['per_event_rate']:,.0f} records/s")
        print(f"  batched append ({args.batch}/tx):           {r['append_rate']:,.0f} records/s ({r['append_s']:.1f} s)")
        print(f"  verify (streamed, all chains):             {r['verify_rate']:,.0f} records/s ({r['verify_s']:.1f} s) "
              f"ok={r['verified']}")
        print(f"  peak RSS after append / verify:            {r['rss_after_append_mb']:.0f} MB / "
              f"{r['rss_after_verify_mb']:.0f} MB" + (f"; database {r['db_mb']:.0f} MB" if "db_mb" in r else ""))


if __name__ == "__main__":
    asyncio.run(main())
