"""HTTP throughput of the real services next to a bare FastAPI route, under wrk, in one run.

    .venv/bin/python -m bench.bench_http            # 10 s per path (about 3 minutes with the demo load)
    .venv/bin/python -m bench.bench_http --quick    # 2 s per path (CI smoke, about a minute and a half)

Needs ``wrk`` (Debian/Ubuntu: ``apt-get install -y wrk``; macOS: ``brew install wrk``); without it the
benchmark says so and exits 0 without measuring.

What runs, each as its own process on free ports (``shared.broker.free_port``):

* the baseline: a bare FastAPI app with one JSON route, under uvicorn with exactly the options the
  launcher gives the services (``shared.launcher.service_command``);
* the system as ``jingzhun run`` starts it (embedded profile: broker, relay, registry, benefits, audit, the
  launcher re-printing their output), on SQLite in a temporary directory, or on three fresh PostgreSQL
  databases when ``JZ_BENCH_POSTGRES_URL`` (e.g. ``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``)
  is set. The demo district (``jingzhun demo-data``) is loaded first; the benchmark waits until benefits
  and audit have consumed all of it. The partner rate limit is switched off (it would answer 429 to wrk), and the ``JZ_*``
  variables of the calling shell are not passed on.

Then wrk (50 connections, 2 threads by default) drives each path after a 1 s warm-up, and one table says
req/s, p50, p99, non-2xx answers and the ratio of req/s to the bare route:

* ``GET /bare`` on the bare app;
* registry ``GET /v1/cadres?limit=1`` (staff token: the cheapest authenticated registry read);
* benefits ``GET /v1/partners/whoami`` (partner token: token check, client status, nothing else);
* registry ``GET /v1/households/hh-demo-0002``;
* benefits ``GET /v1/households/hh-demo-0002/entitlements``;
* benefits ``POST /v1/credit/eligibility`` (bank token) and ``POST /v1/settlements/one-stop`` (insurer token):
  the partner decisions, each a transaction writing its decision row and its access event to the outbox.
  A wrk Lua script sends the bodies, cycling over the demo's people (``jingzhun_cli.demo.demo_households``),
  each one-stop claim with a claim id of its own.

The machine running wrk is the machine running the services: compare ratios measured in the same run,
not req/s across runs. ``--json FILE`` also writes the rows as JSON (the CI smoke test reads it).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from bench.bench_pipeline import drop_databases, postgres_urls

ROOT = Path(__file__).resolve().parents[1]
HOUSEHOLD = "hh-demo-0002"
WRK_INSTALL = "wrk is not installed: install it with `apt-get install -y wrk` (Debian/Ubuntu) or `brew install wrk`"


def create_bare_app():
    """The baseline: one JSON route, nothing else (no middleware, no auth, no database)."""
    from fastapi import FastAPI

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/bare")
    async def bare() -> dict:
        return {"status": "ok", "service": "bare"}

    return app


def bare_command(port: int) -> list[str]:
    """The services' own uvicorn command line with the bare app in place of the service."""
    from shared.launcher import service_command
    command = service_command("registry", port)
    command[command.index("services.registry.app:create_app")] = "bench.bench_http:create_bare_app"
    return command


# -- wrk ------------------------------------------------------------------------------------------

@dataclass
class Row:
    name: str
    path: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    ratio: float = 0.0


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict:
    """Requests/s, p50 and p99 (ms), request count, non-2xx/3xx answers and socket errors from ``wrk --latency``."""
    def number(pattern: str, default: float | None = None) -> float:
        match = re.search(pattern, output)
        if match is None:
            if default is None:
                raise ValueError(f"wrk output lacks {pattern!r}:\n{output}")
            return default
        return float(match.group(1))

    percentiles = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)\s*$", output, re.M))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {"rps": number(r"Requests/sec:\s+([\d.]+)"), "p50_ms": _ms(percentiles["50"]) if "50" in percentiles
            else float("nan"), "p99_ms": _ms(percentiles["99"]) if "99" in percentiles else float("nan"),
            "requests": int(number(r"(\d+) requests in")), "non_2xx": int(number(r"Non-2xx or 3xx responses: (\d+)", 0)),
            "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0}


def run_wrk(url: str, *, duration_s: int, connections: int, threads: int, headers: dict[str, str],
            script: Path | None = None, script_args: tuple[str, ...] = ()) -> dict:
    command = ["wrk", "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{duration_s}s",
               "--timeout", "10s"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    result = subprocess.run([*command, url, *(["--", *script_args] if script and script_args else [])], capture_output=True,
                            text=True, timeout=duration_s + 60)
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr or result.stdout}")
    return parse_wrk(result.stdout)


# -- partner decisions: POST bodies from a wrk Lua script ---------------------------------------------

DECISION_BODIES = {
    # <ID> is the person, <CLAIM> a claim id no other request of the run uses
    "eligibility": '{"id_number":"<ID>","amount":"20000.00","term_months":36,"purpose":"livestock"}',
    "one-stop": '{"id_number":"<ID>","admission_date":"2020-05-01","discharge_date":"2020-05-08",'
                '"hospital_level":2,"in_district":true,"total_cost":"20000.00","in_policy_cost":"18000.00",'
                '"claim_id":"<CLAIM>"}',
}


def demo_id_numbers(households: int = 60) -> list[str]:
    """ID numbers of the demo's people (deterministic: the district ``jingzhun demo-data`` loads)."""
    from jingzhun_cli.demo import demo_households
    return [member["id_number"] for _, body in demo_households()[:households] for member in body["members"]]


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def decision_script(kind: str, id_numbers: list[str]) -> str:
    """A wrk script POSTing ``kind``'s JSON body, one person after another (each thread from its own start);
    a one-stop claim id is the run's nonce (the script's argument), the thread and a counter."""
    parts = re.split(r"(<ID>|<CLAIM>)", DECISION_BODIES[kind])
    lua = {"<ID>": "id", "<CLAIM>": "nonce .. '-' .. tid .. '-' .. n"}
    body = " .. ".join(lua.get(part) or _lua_string(part) for part in parts if part)
    ids = ", ".join(_lua_string(number) for number in id_numbers)
    return f"""-- bench_http: {kind} decisions
local ids = {{{ids}}}
local threads = 0
n, tid, nonce = 0, 0, "0"
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  nonce = args[1] or "0"
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end
function request()
  n = n + 1
  local id = ids[(n + tid * 17) % #ids + 1]
  return wrk.format(nil, nil, nil, {body})
end
"""


# -- processes ----------------------------------------------------------------------------------

def child_env(var_dir: Path, database_urls: dict[str, str], workers: int = 1) -> dict[str, str]:
    """The system's environment: none of the caller's ``JZ_*``; ``workers`` uvicorn processes per service
    (``JZ_<SERVICE>_WORKERS``; the launcher keeps 1 on SQLite)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JZ_")}
    env.update({"JZ_VAR_DIR": str(var_dir), "JZ_BENEFITS_PARTNER_RATE_LIMIT_ENABLED": "false",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    for service, url in database_urls.items():
        env[f"JZ_{service.upper()}_DATABASE_URL"] = url
        env[f"JZ_{service.upper()}_WORKERS"] = str(workers)
    return env


def stop(process: subprocess.Popen | None, timeout: float) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def kill_leftovers(var_dir: Path) -> None:
    """Children of a launcher that did not stop in order (each runs in its own session)."""
    state = var_dir / "launcher.json"
    if not state.exists():
        return
    for child in json.loads(state.read_text(encoding="utf-8")).get("children", []):
        if child.get("pid"):
            try:
                os.kill(child["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


async def wait_for(what: str, probe, timeout: float, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited ({process.returncode}) while waiting for {what}; last output:\n"
                               + tail(log))
        try:
            if await probe():
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{what}: not within {timeout:.0f} s; last output:\n{tail(log)}")


async def wait_quiet(bootstrap: str, timeout: float, process: subprocess.Popen, log: Path) -> None:
    """Until benefits and audit have consumed everything (three checks in a row, a second apart): a consumer
    still working through the demo would take CPU from the paths measured."""
    from shared.bus import consumer_lag
    from shared.config import TOPIC_REGISTRY, TOPICS
    groups = {"benefits": [TOPIC_REGISTRY], "audit": list(TOPICS)}
    quiet, deadline = 0, time.monotonic() + timeout
    while quiet < 3:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the consumers did not catch up within {timeout:.0f} s; last output:\n{tail(log)}")
        lags = [await consumer_lag(bootstrap, group, topics) for group, topics in groups.items()]
        quiet = quiet + 1 if not any(lags) else 0
        await asyncio.sleep(1.0)


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


# -- the run ------------------------------------------------------------------------------------

async def measure(args, var_dir: Path, database_urls: dict[str, str]) -> list[Row]:
    from shared.auth import mint_token
    from shared.broker import free_port
    from shared.config import CommonSettings

    env = child_env(var_dir, database_urls, args.workers)
    log = var_dir / "system.log"
    ports = {name: free_port() for name in ("bare", "registry", "benefits", "audit", "broker")}
    print("loading the demo district (jingzhun demo-data) ...", flush=True)
    started = time.perf_counter()
    loaded = subprocess.run([sys.executable, "-m", "jingzhun_cli.main", "demo-data"], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    if loaded.returncode != 0:
        raise RuntimeError(f"jingzhun demo-data failed ({loaded.returncode}):\n{loaded.stdout[-3000:]}{loaded.stderr[-3000:]}")
    print(f"  loaded in {time.perf_counter() - started:.0f} s; starting the bare app and `jingzhun run`", flush=True)
    bare = system = None
    with open(log, "wb") as output:
        try:
            bare = subprocess.Popen(bare_command(ports["bare"]), env=env, cwd=ROOT, stdout=output,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            system = subprocess.Popen(
                [sys.executable, "-m", "jingzhun_cli.main", "run", "--registry-port", str(ports["registry"]),
                 "--benefits-port", str(ports["benefits"]), "--audit-port", str(ports["audit"]),
                 "--broker-port", str(ports["broker"]), "--var-dir", str(var_dir), "--signin-port", "0"],
                env={**env, "COLUMNS": "200"}, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True)
            return await drive(args, var_dir, ports, bare, system, log, mint_token, CommonSettings)
        finally:
            stop(system, 120)
            stop(bare, 10)
            kill_leftovers(var_dir)


async def drive(args, var_dir, ports, bare, system, log, mint_token, CommonSettings) -> list[Row]:
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    staff = mint_token(CommonSettings(var_dir=var_dir), "registry:read benefits:read", subject="bench-http")
    admin = {"Authorization": f"Bearer {mint_token(CommonSettings(var_dir=var_dir), 'admin', subject='bench-http')}"}
    async with httpx.AsyncClient(timeout=10) as client:
        async def answers(address: str, headers: dict | None = None) -> bool:
            return (await client.get(address, headers=headers)).status_code == 200

        await wait_for("the bare app", lambda: answers(url["bare"] + "/bare"), 60, bare, log)
        for service in ("registry", "benefits", "audit"):
            await wait_for(f"{service} /healthz", lambda s=service: answers(url[s] + "/healthz"), 120, system, log)
        started = time.perf_counter()
        await wait_for(f"benefits to hold {HOUSEHOLD}'s entitlements (the demo's events consumed)",
                       lambda: answers(f"{url['benefits']}/v1/households/{HOUSEHOLD}/entitlements", admin),
                       args.consume_timeout, system, log)
        await wait_quiet(f"127.0.0.1:{ports['broker']}", args.consume_timeout, system, log)
        print(f"  system up; benefits and audit caught up on the demo in {time.perf_counter() - started:.0f} s",
              flush=True)
        async def partner_token(name: str, scope: str) -> str:
            created = await client.post(url["benefits"] + "/v1/partners/clients", headers=admin,
                                        json={"name": name, "scopes": [scope]})
            created.raise_for_status()
            credentials = created.json()
            issued = await client.post(url["benefits"] + "/oauth/token", data={
                "grant_type": "client_credentials", "client_id": credentials["client_id"],
                "client_secret": credentials["client_secret"]})
            issued.raise_for_status()
            return issued.json()["access_token"]

        partner = await partner_token("bench-http bank", "credit")
        insurer = await partner_token("bench-http insurer", "settlement")

    id_numbers = demo_id_numbers()
    scripts = {}
    for kind in DECISION_BODIES:
        scripts[kind] = var_dir / f"{kind}.lua"
        scripts[kind].write_text(decision_script(kind, id_numbers), encoding="utf-8")
    targets = [  # key, URL, token, wrk script
        ("cheapest", url["registry"] + "/v1/cadres?limit=1", staff, None),
        ("whoami", url["benefits"] + "/v1/partners/whoami", partner, None),
        ("household", f"{url['registry']}/v1/households/{HOUSEHOLD}", staff, None),
        ("entitlements", f"{url['benefits']}/v1/households/{HOUSEHOLD}/entitlements", staff, None),
        ("eligibility", url["benefits"] + "/v1/credit/eligibility", partner, scripts["eligibility"]),
        ("one-stop", url["benefits"] + "/v1/settlements/one-stop", insurer, scripts["one-stop"]),
    ]
    targets = [t for t in targets if not args.only or t[0] in args.only]
    bare_url = url["bare"] + "/bare"
    # The bare route before and after the others: its mean is the baseline (the machine is shared and noisy).
    plan = [("bare", bare_url, None, None), *targets, ("bare", bare_url, None, None)]
    rows: list[Row] = []
    for name, address, token, script in plan:
        if name == "bare" and rows and any(t[3] for t in targets):
            # The decisions' events keep the relay and audit busy for a while: the bare route is measured again
            # once they have caught up, as it was the first time.
            await wait_quiet(f"127.0.0.1:{ports['broker']}", args.consume_timeout, system, log)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        run_wrk(address, duration_s=1, connections=args.connections, threads=args.threads, headers=headers,
                script=script, script_args=("warm-up",))
        result = run_wrk(address, duration_s=args.duration, connections=args.connections, threads=args.threads,
                         headers=headers, script=script, script_args=("run",))
        rows.append(Row(name=name, path=("POST /" if script else "/") + address.split("/", 3)[3], **result))
        print(f"  {name:<13} {rows[-1].rps:>8.0f} req/s", flush=True)
    first, last = rows[0], rows.pop()
    bare = Row(name="bare", path=first.path, rps=(first.rps + last.rps) / 2, p50_ms=(first.p50_ms + last.p50_ms) / 2,
               p99_ms=(first.p99_ms + last.p99_ms) / 2, requests=first.requests + last.requests,
               non_2xx=first.non_2xx + last.non_2xx, socket_errors=first.socket_errors + last.socket_errors)
    rows[0] = bare
    for row in rows:
        row.ratio = row.rps / bare.rps if bare.rps else 0.0
    return rows


def table(rows: list[Row], *, backend: str, args) -> str:
    workers = "one uvicorn worker" if backend == "SQLite" or args.workers == 1 else f"{args.workers} uvicorn workers"
    lines = [f"{args.duration} s per path, wrk -c {args.connections} -t {args.threads}, {workers} per service, "
             f"{backend}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
             f"Python {platform.python_version()}",
             f"{'path':<48} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'vs bare':>8}"]
    for row in rows:
        lines.append(f"{row.path:<48} {row.rps:>8.0f} {row.p50_ms:>8.1f} {row.p99_ms:>8.1f} "
                     f"{row.non_2xx + row.socket_errors:>8} {row.ratio:>8.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per path (CI smoke)")
    parser.add_argument("--duration", type=int, help="seconds per path (default 10, --quick 2)")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--consume-timeout", type=float, default=300.0,
                        help="seconds to wait for benefits to consume the demo")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn processes per service (PostgreSQL only; the bare route stays one)")
    parser.add_argument("--only", type=lambda text: set(text.split(",")),
                        help="measure only these (comma-separated: cheapest, whoami, household, entitlements, "
                             "eligibility, one-stop)")
    args = parser.parse_args(argv)
    args.duration = args.duration or (2 if args.quick else 10)
    if shutil.which("wrk") is None:
        print(f"bench_http skipped: {WRK_INSTALL}.")
        return 0
    base = os.environ.get("JZ_BENCH_POSTGRES_URL")

    async def run() -> list[Row]:
        urls = await postgres_urls(base) if base else {}
        try:
            with tempfile.TemporaryDirectory(prefix="jz-bench-http-") as tmp:
                return await measure(args, Path(tmp), urls)
        finally:
            if urls:
                await drop_databases(base, urls)

    rows = asyncio.run(run())
    print()
    print(table(rows, backend="PostgreSQL" if base else "SQLite", args=args))
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
