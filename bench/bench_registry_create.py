"""Registry create (POST /v1/households) next to asyncpg inserting the same JSON + an outbox row, in one run.

    .venv/bin/python -m bench.bench_registry_create                  # 10 s per concurrency, 1 / 8 / 32 clients
    .venv/bin/python -m bench.bench_registry_create --quick          # 1 s per concurrency (CI smoke)
    .venv/bin/python -m bench.bench_registry_create --workers 2      # the registry with two uvicorn workers
    .venv/bin/python -m bench.bench_registry_create --read-clients 32  # also a household GET at 32 clients
    .venv/bin/python -m bench.bench_registry_create --relay-idle 30  # instead: an idle relay's CPU over 30 s

PostgreSQL only (the issue's target is the production profile): the admin URL comes from ``--postgres-url``,
``JZ_BENCH_POSTGRES_URL`` or ``JZ_TEST_POSTGRES_URL``; without one the benchmark says so and exits 0.

What runs:

* **the registry** alone, as the launcher starts it (``shared.launcher.service_command``: uvicorn, the worker
  count of ``JZ_REGISTRY_WORKERS`` or ``--workers``), on a fresh PostgreSQL database it migrates itself, with no
  broker (its consumers off, nothing relays the outbox: the rows stay, as the baseline's do). The load is
  ``wrk`` with a Lua script when wrk is installed (``--client httpx`` forces the Python client), each request
  a generated household (bench/datagen.py, status candidate) whose members get ID numbers never used before,
  sent with a ``registry:write`` staff token;
* **the baseline**, in this process on another fresh database: asyncpg, per request one transaction inserting
  the same JSON into a table and an outbox-shaped row (as the issue measured it), with as many connections as
  clients.

It prints req/s, p50 and p99 per concurrency for both, the ratio registry / baseline and the CPU the registry's
processes used per request (from /proc: the figure that the machine's other load disturbs least), and checks that the
households and outbox rows the registry answered 201 for are in its database. ``--json FILE`` writes the rows.
Compare ratios measured in one run; the machine is shared.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = 64  # distinct household bodies; every request gets fresh ID numbers
# A member's ID number in a template: birth date and sequence (11 digits) between markers; the region part
# (6 digits) is a counter, so every number sent is new (GB 11643 lets any 6 digits not starting with 0).
_MARK = re.compile(r"@@(\d{11})@@")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# Each (concurrency, wrk thread) draws its region counters from its own block of this many.
_BLOCK = 100_000

LUA = r"""
local weights = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
local checks = "10X98765432"
local templates, counter, token, base, step = {}, 0, nil, 0, 0
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  base = tonumber(args[1]) + tid * tonumber(args[2])
  token = args[4]
  for line in io.lines(args[3]) do templates[#templates + 1] = line end
end

local function number(rest)
  counter = counter + 1
  local first = tostring(base + counter) .. rest
  local sum = 0
  for i = 1, 17 do sum = sum + tonumber(first:sub(i, i)) * weights[i] end
  local m = sum % 11 + 1
  return first .. checks:sub(m, m)
end

function request()
  local body = templates[(counter % #templates) + 1]:gsub("@@(%d+)@@", number)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
                                  ["Authorization"] = "Bearer " .. token}, body)
end
"""


def check_digit(first17: str) -> str:
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, _WEIGHTS)) % 11]


def templates(count: int = TEMPLATES, seed: int = 15) -> list[str]:
    """Household bodies as the API takes them (candidate, no id or version), ID numbers as markers."""
    from bench.datagen import generate_household
    rng = random.Random(seed)
    bodies = []
    for index in range(count):
        household = generate_household(rng, index)
        body = {k: v for k, v in household.items() if k not in ("id", "version")}
        # 特困 households need a member flagged as such (derive_person_categories): keep the generator's simple form
        body.update(status="candidate", exit_date=None,
                    categories=[c for c in body["categories"] if c != "tekun_dispersed"])
        for member in body["members"]:
            member.pop("id", None)
            member["id_number"] = f"@@{member['id_number'][6:17]}@@"
        bodies.append(json.dumps(body, ensure_ascii=False, separators=(",", ":")))
    return bodies


class Numbers:
    """Fresh ID numbers for the Python clients (the same scheme as the Lua script)."""

    def __init__(self, base: int) -> None:
        self.counter = base

    def fill(self, template: str) -> str:
        def number(match: re.Match) -> str:
            self.counter += 1
            first = f"{self.counter}{match.group(1)}"
            return first + check_digit(first)
        return _MARK.sub(number, template)


@dataclass
class Row:
    path: str
    clients: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    ratio: float = 0.0
    cpu_ms: float = 0.0  # the registry's processes' CPU per request (Linux /proc; 0: not measured)


def percentile(latencies: list[float], q: float) -> float:
    if not latencies:
        return float("nan")
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def drive_clients(clients: int, duration: float, call) -> tuple[int, int, list[float], float]:
    """``clients`` loops calling ``call(i)`` for ``duration`` s: (ok, errors, latencies, elapsed)."""
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0}
    stop_at = time.perf_counter() + duration

    async def loop(index: int) -> None:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            ok = await call(index)
            latencies.append(time.perf_counter() - began)
            counts["ok" if ok else "errors"] += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(clients)))
    return counts["ok"], counts["errors"], latencies, time.perf_counter() - started


# -- the baseline ----------------------------------------------------------------------------------

BASELINE_DDL = """
CREATE TABLE bench_households (id text PRIMARY KEY, snapshot jsonb NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE bench_outbox (id bigserial PRIMARY KEY, event_id text NOT NULL UNIQUE, topic text NOT NULL,
                           key text NOT NULL, payload text NOT NULL, created_at timestamptz NOT NULL);
"""


async def baseline(dsn: str, clients: int, duration: float, bodies: list[str], numbers: Numbers) -> Row:
    import asyncpg
    pool = await asyncpg.create_pool(dsn, min_size=clients, max_size=clients)
    try:
        async def one(index: int) -> bool:
            body = numbers.fill(bodies[numbers.counter % len(bodies)])
            household_id = f"hh-{uuid.uuid4().hex[:16]}"
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("INSERT INTO bench_households (id, snapshot, created_at) VALUES ($1, $2::jsonb, now())",
                                   household_id, body)
                await conn.execute("INSERT INTO bench_outbox (event_id, topic, key, payload, created_at) "
                                   "VALUES ($1, 'jz.registry.v1', $2, $3, now())", uuid.uuid4().hex, household_id, body)
            return True

        ok, errors, latencies, elapsed = await drive_clients(clients, duration, one)
    finally:
        await pool.close()
    return Row("asyncpg baseline", clients, ok / elapsed, percentile(latencies, 0.5), percentile(latencies, 0.99),
               ok + errors, errors)


async def baseline_read(dsn: str, clients: int, duration: float, household_id: str) -> Row:
    import asyncpg
    pool = await asyncpg.create_pool(dsn, min_size=clients, max_size=clients)
    try:
        async def one(index: int) -> bool:
            async with pool.acquire() as conn:
                return await conn.fetchval("SELECT snapshot::text FROM bench_households WHERE id = $1",
                                           household_id) is not None

        ok, errors, latencies, elapsed = await drive_clients(clients, duration, one)
    finally:
        await pool.close()
    return Row("asyncpg baseline (read)", clients, ok / elapsed, percentile(latencies, 0.5),
               percentile(latencies, 0.99), ok + errors, errors)


async def read_rows(args, base: str, token: str, baseline_dsn: str, use_wrk: bool, workers: int,
                    pid: int) -> list[Row]:
    """GET of one created household at ``--read-clients`` next to asyncpg reading one stored snapshot."""
    import asyncpg
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=10) as client:
        listed = await client.get(base + "/v1/households?limit=1&view=summary", headers=headers)
        household_id = listed.json()["items"][0]["id"]
    conn = await asyncpg.connect(baseline_dsn)
    try:
        stored_id = await conn.fetchval("SELECT id FROM bench_households LIMIT 1")
    finally:
        await conn.close()
    url = f"{base}/v1/households/{household_id}"
    clients = args.read_clients
    cpu_before = tree_cpu_seconds(pid)
    if use_wrk:
        from bench.bench_http import run_wrk as run_get
        result = run_get(url, duration_s=max(1, round(args.duration)), connections=clients,
                         threads=min(clients, 2), headers=headers)
    else:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=clients)) as client:
            async def one(index: int) -> bool:
                return (await client.get(url, headers=headers)).status_code == 200

            ok, errors, latencies, elapsed = await drive_clients(clients, args.duration, one)
        result = {"rps": ok / elapsed, "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
                  "requests": ok + errors, "non_2xx": errors, "socket_errors": 0}
    read = Row(f"GET /v1/households/{{id}} ({workers} worker{'s' if workers > 1 else ''})", clients, result["rps"],
               result["p50_ms"], result["p99_ms"], result["requests"], result["non_2xx"] + result["socket_errors"],
               cpu_ms=1000 * (tree_cpu_seconds(pid) - cpu_before) / max(result["requests"], 1))
    base_row = await baseline_read(baseline_dsn, clients, args.duration, stored_id)
    read.ratio = read.rps / base_row.rps if base_row.rps else 0.0
    print(f"  {clients:>3} clients: read {read.rps:7.1f} req/s, baseline {base_row.rps:7.1f} req/s, "
          f"ratio {read.ratio:.2f}", flush=True)
    return [base_row, read]


# -- the registry ----------------------------------------------------------------------------------

def registry_env(var_dir: Path, database_url: str, workers: int | None, tree: Path = ROOT) -> dict[str, str]:
    from shared.broker import free_port
    env = {k: v for k, v in os.environ.items() if not k.startswith("JZ_")}
    env.update({"JZ_VAR_DIR": str(var_dir), "JZ_REGISTRY_DATABASE_URL": database_url,
                "JZ_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",  # nobody listens: no broker in this benchmark
                "JZ_REGISTRY_MONITORING_CONSUMER": "false", "JZ_REGISTRY_DCI_CONSUMER": "false",
                "JZ_LOG_LEVEL": "WARNING",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))})
    if workers:
        env["JZ_REGISTRY_WORKERS"] = str(workers)
    elif os.environ.get("JZ_REGISTRY_WORKERS"):
        env["JZ_REGISTRY_WORKERS"] = os.environ["JZ_REGISTRY_WORKERS"]
    return env


def registry_command(port: int, env: dict[str, str]) -> list[str]:
    from unittest import mock

    from shared.launcher import service_command
    with mock.patch.dict(os.environ, env, clear=True):  # the worker count as the launcher would read it
        return service_command("registry", port)


def run_wrk(url: str, *, clients: int, duration: float, script: Path, args: list[str]) -> dict:
    from bench.bench_http import parse_wrk
    threads = min(clients, 2)
    command = ["wrk", "--latency", "-t", str(threads), "-c", str(clients), "-d", f"{max(1, round(duration))}s",
               "--timeout", "10s", "-s", str(script), url, "--", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    return parse_wrk(result.stdout)


async def registry_httpx(url: str, token: str, clients: int, duration: float, bodies: list[str],
                         numbers: Numbers) -> dict:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=clients)) as client:
        async def one(index: int) -> bool:
            body = numbers.fill(bodies[numbers.counter % len(bodies)])
            answer = await client.post(url, content=body.encode(), headers=headers)
            return answer.status_code == 201

        ok, errors, latencies, elapsed = await drive_clients(clients, duration, one)
    return {"rps": ok / elapsed, "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99),
            "requests": ok + errors, "non_2xx": errors, "socket_errors": 0}


async def wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the registry exited ({process.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if (await client.get(url + "/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError(f"the registry did not answer /healthz within {timeout:.0f} s")


async def stored_counts(dsn: str) -> tuple[int, int]:
    import asyncpg
    conn = await asyncpg.connect(dsn)
    try:
        return (await conn.fetchval("SELECT count(*) FROM households"),
                await conn.fetchval("SELECT count(*) FROM outbox WHERE topic = 'jz.registry.v1'"))
    finally:
        await conn.close()


async def measure(args, admin_url: str) -> tuple[list[Row], tuple[int, int], int]:
    """The rows, the registry's (households, outbox rows) after the run, and how many creates it answered 201."""
    from sqlalchemy.engine import make_url

    from bench.backends import admin_sql
    from bench.bench_http import stop
    from shared.auth import mint_token
    from shared.broker import free_port
    from shared.config import CommonSettings

    names = {part: f"jz_bench_create_{part}_{uuid.uuid4().hex[:8]}" for part in ("registry", "baseline")}
    for name in names.values():
        await admin_sql(admin_url, f'CREATE DATABASE "{name}"')
    urls = {part: make_url(admin_url).set(database=name).render_as_string(hide_password=False)
            for part, name in names.items()}
    dsns = {part: make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
            for part, url in urls.items()}
    bodies = templates()
    process = None
    try:
        import asyncpg
        conn = await asyncpg.connect(dsns["baseline"])
        await conn.execute(BASELINE_DDL)
        await conn.close()
        with tempfile.TemporaryDirectory(prefix="jz-bench-create-") as tmp:
            var_dir = Path(tmp)
            env = registry_env(var_dir, urls["registry"], args.workers, args.tree)
            port = free_port()
            command = registry_command(port, env)
            workers = int(command[command.index("--workers") + 1]) if "--workers" in command else 1
            log = var_dir / "registry.log"
            base = f"http://127.0.0.1:{port}"
            with open(log, "wb") as output:
                process = subprocess.Popen(command, env=env, cwd=args.tree, stdout=output, stderr=subprocess.STDOUT,
                                           start_new_session=True)
                await wait_healthy(base, process, log)
                token = mint_token(CommonSettings(var_dir=var_dir), "registry:read registry:write",
                                   subject="bench-create")
                template_file = var_dir / "bodies.jsonl"
                template_file.write_text("\n".join(bodies) + "\n", encoding="utf-8")
                script = var_dir / "create.lua"
                script.write_text(LUA, encoding="utf-8")
                use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
                # Warm-up (connections, prepared statements, token cache), not counted.
                warm = Numbers(900_000)
                warmed = await registry_httpx(base + "/v1/households", token, 2, 0.5, bodies, warm)
                answered_201 = warmed["requests"] - warmed["non_2xx"]
                rows: list[Row] = []
                for phase, clients in enumerate(args.clients):
                    block = 100_000 + phase * 2 * _BLOCK
                    cpu_before = tree_cpu_seconds(process.pid)
                    if use_wrk:
                        result = run_wrk(base + "/v1/households", clients=clients, duration=args.duration,
                                         script=script, args=[str(block), str(_BLOCK), str(template_file), token])
                    else:
                        result = await registry_httpx(base + "/v1/households", token, clients, args.duration,
                                                      bodies, Numbers(block))
                    cpu_used = tree_cpu_seconds(process.pid) - cpu_before
                    registry = Row(f"POST /v1/households ({workers} worker{'s' if workers > 1 else ''})", clients,
                                   result["rps"], result["p50_ms"], result["p99_ms"], result["requests"],
                                   result["non_2xx"] + result["socket_errors"])
                    base_row = await baseline(dsns["baseline"], clients, args.duration, bodies, Numbers(block))
                    registry.ratio = registry.rps / base_row.rps if base_row.rps else 0.0
                    registry.cpu_ms = 1000 * cpu_used / registry.requests if registry.requests else 0.0
                    answered_201 += registry.requests - registry.errors
                    rows += [base_row, registry]
                    print(f"  {clients:>3} clients: registry {registry.rps:7.1f} req/s, "
                          f"baseline {base_row.rps:7.1f} req/s, ratio {registry.ratio:.2f}", flush=True)
                if args.read_clients:
                    rows += await read_rows(args, base, token, dsns["baseline"], use_wrk, workers, process.pid)
                stop(process, 30)
                counts = await stored_counts(dsns["registry"])
                return rows, counts, answered_201
    finally:
        if process is not None:
            stop(process, 10)
        for name in names.values():
            await admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- the relay while idle ---------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and its live descendants (the registry's workers); 0.0 where /proc is not there."""
    try:
        total = cpu_seconds(pid)
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    return total + sum(tree_cpu_seconds(int(child)) for child in children)


async def relay_idle(args, admin_url: str | None) -> list[str]:
    """CPU of ``jingzhun relay`` (registry and benefits outboxes, both empty, no broker) over ``--relay-idle`` s,
    on SQLite and, given an admin URL, PostgreSQL."""
    from sqlalchemy.engine import make_url

    from bench.backends import admin_sql
    from bench.bench_http import stop
    from shared.broker import free_port
    from shared.db import make_engine
    from shared.migrate import upgrade_to_head

    lines = []
    for backend in ("SQLite", "PostgreSQL") if admin_url else ("SQLite",):
        with tempfile.TemporaryDirectory(prefix="jz-bench-relay-") as tmp:
            names = {service: f"jz_bench_relay_{service}_{uuid.uuid4().hex[:8]}" for service in ("registry", "benefits")}
            if backend == "SQLite":
                urls = {service: f"sqlite+aiosqlite:///{Path(tmp) / (service + '.db')}" for service in names}
            else:
                for name in names.values():
                    await admin_sql(admin_url, f'CREATE DATABASE "{name}"')
                urls = {service: make_url(admin_url).set(database=name).render_as_string(hide_password=False)
                        for service, name in names.items()}
            process = None
            try:
                for service, url in urls.items():
                    engine = make_engine(url)
                    await upgrade_to_head(service, engine)
                    await engine.dispose()
                env = {k: v for k, v in os.environ.items() if not k.startswith("JZ_")}
                env.update({"JZ_VAR_DIR": tmp, "JZ_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
                            "JZ_REGISTRY_DATABASE_URL": urls["registry"], "JZ_BENEFITS_DATABASE_URL": urls["benefits"],
                            "PYTHONPATH": str(args.tree)})
                process = subprocess.Popen([sys.executable, "-m", "jingzhun_cli.main", "relay"], env=env, cwd=args.tree,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                await asyncio.sleep(5)  # imports, first passes
                before, started = cpu_seconds(process.pid), time.monotonic()
                await asyncio.sleep(args.relay_idle)
                used = (cpu_seconds(process.pid) - before) / (time.monotonic() - started)
                lines.append(f"relay idle, {backend}: {used * 100:.1f} % of a core over {args.relay_idle:g} s "
                             f"(registry and benefits outboxes empty)")
                print("  " + lines[-1], flush=True)
            finally:
                stop(process, 10)
                if backend == "PostgreSQL":
                    for name in names.values():
                        await admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return lines


def table(rows: list[Row], args, counts: tuple[int, int]) -> str:
    lines = [f"{args.duration:g} s per concurrency, PostgreSQL, client {args.client}; "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
             f"{'path':<36} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'ratio':>6} "
             f"{'CPU ms/req':>10}"]
    for row in rows:
        ratio = f"{row.ratio:6.2f}" if row.ratio else f"{'':>6}"
        cpu = f"{row.cpu_ms:10.1f}" if row.cpu_ms else f"{'':>10}"
        lines.append(f"{row.path:<36} {row.clients:>7} {row.rps:>8.1f} {row.p50_ms:>8.1f} {row.p99_ms:>8.1f} "
                     f"{row.errors:>7} {ratio} {cpu}")
    lines.append(f"registry database after the run: {counts[0]} households, {counts[1]} outbox rows")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s per concurrency, 1 and 4 clients (CI smoke)")
    parser.add_argument("--duration", type=float, help="seconds per concurrency (default 10, --quick 1)")
    parser.add_argument("--clients", type=lambda text: [int(n) for n in text.split(",")],
                        help="concurrencies (default 1,8,32; --quick 1,4)")
    parser.add_argument("--read-clients", type=int, default=0, metavar="N",
                        help="also GET one created household with N clients, next to asyncpg reading one row")
    parser.add_argument("--workers", type=int, help="registry uvicorn workers (default: JZ_REGISTRY_WORKERS or 1)")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--postgres-url", default=os.environ.get("JZ_BENCH_POSTGRES_URL")
                        or os.environ.get("JZ_TEST_POSTGRES_URL"))
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--tree", type=Path, default=ROOT,
                        help="run the registry from this copy of the source (before/after comparisons)")
    parser.add_argument("--relay-idle", type=float, metavar="SECONDS",
                        help="instead: the CPU `jingzhun relay` uses over SECONDS with empty outboxes")
    args = parser.parse_args(argv)
    if args.relay_idle:
        asyncio.run(relay_idle(args, args.postgres_url))
        return 0
    args.duration = args.duration or (1.0 if args.quick else 10.0)
    args.clients = args.clients or ([1, 4] if args.quick else [1, 8, 32])
    if not args.postgres_url:
        print("bench_registry_create skipped: set JZ_BENCH_POSTGRES_URL or pass --postgres-url (PostgreSQL only)")
        return 0
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "httpx"
    rows, counts, answered_201 = asyncio.run(measure(args, args.postgres_url))
    print()
    print(table(rows, args, counts))
    if args.json:
        args.json.write_text(json.dumps({"rows": [asdict(row) for row in rows], "households": counts[0],
                                         "outbox_rows": counts[1], "answered_201": answered_201}, indent=1),
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
