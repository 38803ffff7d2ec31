"""Fault injection on the real system: a bounded write load while components are SIGKILLed at random.

What a user runs is what is tested: ``jingzhun run`` (the launcher, supervising broker, relay, registry,
benefits and audit as child processes) on free ports, with SQLite files in a temporary var dir
(``--profile embedded``) or fresh PostgreSQL databases (``--profile postgres``, dropped afterwards).
A seeded load of household creates, merge patches (entitlement changes and revocations), removals,
visits, village changes that fan out to the village's households, and a bank's credit-eligibility calls
goes in through the APIs like phones do: every write carries an ``Idempotency-Key`` and is retried
with the same key until it is accepted. Meanwhile every component is killed (SIGKILL) at least once;
the launcher restarts it. When the system is quiet again the databases are read directly (read-only)
and the APIs asked:

* lost: an accepted write whose version never reached benefits, an outbox event missing from audit;
* duplicated: an event id recorded twice in the ledger, an entitlement decision made twice;
* order inversions: per ledger chain in seq order, a household's event ``sequence`` going down;
* ``GET /v1/audit/verify``; resume times per component; time to quiescence; rows replayed per broker
  restart (from the relay's ``replay <topic>: <n> rows`` log lines).

    .venv/bin/python -m bench.chaos --profile embedded --writes 300 --kills 6 --seed 1
    .venv/bin/python -m bench.chaos --profile postgres            # the full version: 5000 writes, 20 kills

Exit code 1 when anything was lost, duplicated or reordered, or verify fails.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
COMPONENTS = ("broker", "relay", "registry", "benefits", "audit")
SERVICES = ("registry", "benefits", "audit")
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
REPLAY_LINE = re.compile(r"replay (\S+): (\d+) rows")
# The share of each kind of write in the load (seeded choice per write).
KINDS = {"create": 30, "patch": 30, "revoke": 6, "visit": 15, "village": 3, "partner": 16}
RETRYABLE = {429, 500, 502, 503, 504}


@dataclass
class ChaosConfig:
    profile: str = "embedded"
    writes: int = 5000
    kills: int = 20
    seed: int = 20201231
    concurrency: int = 6
    postgres_url: str = DEFAULT_POSTGRES
    quiesce_timeout_s: float = 240.0
    start_timeout_s: float = 120.0
    keep_var_dir: bool = False
    log: Any = None  # callable(str) for progress lines, or None


@dataclass
class Kill:
    component: str
    pid: int
    at: float
    restarted_at: float | None = None
    new_pid: int | None = None
    resume_s: float | None = None
    how: str = ""


@dataclass
class State:
    accepted: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    unknown: Counter = field(default_factory=Counter)  # in flight when the service died: outcome unknown
    conflicts: int = 0  # 412 "changed while this request ran", retried
    removed: set = field(default_factory=set)  # households taken out (剔除): not removed twice
    refused: int = 0  # attempts refused (connection refused / 5xx / 503) and retried with the same key
    versions: list = field(default_factory=list)  # (household id, version) of each accepted household write
    households: dict = field(default_factory=dict)  # id -> list of raw ID numbers
    successes: dict = field(default_factory=lambda: defaultdict(list))  # service -> accept times
    kills: list = field(default_factory=list)
    rejections: list = field(default_factory=list)  # first few bodies, for the report
    done: int = 0
    log_lines: list = field(default_factory=list)  # (time, line)


# ---------------------------------------------------------------- processes


def _proc_env(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def component_of(cmdline: str) -> str | None:
    if " broker --listener-url" in cmdline:
        return "broker"
    if "jingzhun_cli.main relay" in cmdline:
        return "relay"
    for service in SERVICES:
        if f"services.{service}.app:create_app" in cmdline:
            return service
    return None


def our_processes(var_dir: Path, exclude: int | None = None) -> dict[int, str]:
    """Every live process started for this run (they all carry JZ_VAR_DIR = our var dir), by component;
    found through /proc, so it works with or without the launcher's own bookkeeping."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == exclude:
            continue
        pid = int(entry.name)
        if _proc_env(pid).get("JZ_VAR_DIR") != str(var_dir):
            continue
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie is dead already
        except OSError:
            continue
        found[pid] = component_of(_proc_cmdline(pid)) or "other"
    return found


def launcher_children(var_dir: Path) -> dict[str, dict] | None:
    """``<var_dir>/launcher.json`` children (pid, restarts, started_at), when the launcher writes it."""
    try:
        children = json.loads((var_dir / "launcher.json").read_text())["children"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(children, list):  # [{"name", "pid", "restarts", "started_at"}, …]
        return {child.get("name"): child for child in children if isinstance(child, dict)}
    return children if isinstance(children, dict) else None


def component_pid(var_dir: Path, component: str, launcher_pid: int) -> int | None:
    children = launcher_children(var_dir)
    if children and component in children:
        pid = children[component].get("pid")
        if pid and component_of(_proc_cmdline(pid)) == component:
            return pid
    pids = [pid for pid, name in our_processes(var_dir, launcher_pid).items() if name == component]
    return min(pids) if pids else None


# ---------------------------------------------------------------- databases


async def create_postgres(admin_url: str) -> dict[str, str]:
    import asyncpg
    from sqlalchemy.engine import make_url
    base = make_url(admin_url)
    conn = await asyncpg.connect(base.set(drivername="postgresql").render_as_string(hide_password=False))
    urls = {}
    try:
        for service in SERVICES:
            name = f"jz_chaos_{service}_{uuid.uuid4().hex[:8]}"
            await conn.execute(f'CREATE DATABASE "{name}"')
            urls[service] = base.set(drivername="postgresql+asyncpg", database=name).render_as_string(
                hide_password=False)
    finally:
        await conn.close()
    return urls


async def drop_postgres(admin_url: str, urls: dict[str, str]) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url
    conn = await asyncpg.connect(make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        for url in urls.values():
            await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await conn.close()


def _epoch(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)  # the services store UTC
    return value.timestamp()


class Databases:
    """Read-only SQL against the three services' databases (a test tool may look inside)."""

    def __init__(self, urls: dict[str, str]) -> None:
        from shared.db import make_engine
        self.engines = {service: make_engine(url) for service, url in urls.items()}

    async def rows(self, service: str, sql: str, **params) -> list:
        from sqlalchemy import text
        async with self.engines[service].connect() as conn:
            return (await conn.execute(text(sql), params)).all()

    async def scalar(self, service: str, sql: str, **params):
        rows = await self.rows(service, sql, **params)
        return rows[0][0] if rows else None

    async def pending(self, service: str) -> int:
        return await self.scalar(service, "SELECT count(*) FROM outbox WHERE published_at IS NULL")

    async def first_after(self, service: str, table: str, column: str, after: float) -> float | None:
        stamp = datetime.fromtimestamp(after, timezone.utc)
        if self.engines[service].dialect.name == "sqlite":
            stamp = stamp.replace(tzinfo=None)
        value = await self.scalar(service, f"SELECT min({column}) FROM {table} WHERE {column} > :after", after=stamp)
        return _epoch(value)

    async def version_gaps(self) -> int:
        """Households whose benefits read model is not at the registry's version (or missing)."""
        registry = dict(await self.rows("registry", "SELECT id, version FROM households"))
        benefits = dict(await self.rows("benefits", "SELECT household_id, version FROM household_snapshots"))
        return sum(1 for hid, version in registry.items() if benefits.get(hid, 0) < version)

    async def dispose(self) -> None:
        for engine in self.engines.values():
            await engine.dispose()


# ---------------------------------------------------------------- the load


EXTRA_VILLAGES = [(f"360703105{n:03d}", f"试验{n}村") for n in range(210, 217)] + \
                 [(f"360703102{n:03d}", f"测试{n}村") for n in range(220, 227)]
TOWNSHIPS = {"360703105": "隆木乡", "360703102": "示例镇", "360703110": "麻双乡"}


class Load:
    def __init__(self, config: ChaosConfig, urls: dict[str, str], admin_token: str, state: State,
                 rng: random.Random) -> None:
        self.config, self.urls, self.state, self.rng = config, urls, state, rng
        self.client = httpx.AsyncClient(headers={"Authorization": f"Bearer {admin_token}"}, timeout=30.0)
        self.bank: dict[str, str] = {}
        self.villages: list[dict] = []
        self.create_index = 0
        self.aborted = False  # the launcher itself is gone: nothing will accept writes again
        from jingzhun_cli.demo import _templates
        self.templates = _templates()

    async def close(self) -> None:
        await self.client.aclose()

    # -- one write, phone-style ------------------------------------------------------
    def _restarted_since(self, service: str, since: float) -> bool:
        return any(k.component == service and k.at >= since for k in self.state.kills)

    async def send(self, kind: str, service: str, method: str, path: str, *, token: str | None = None,
                   timeout_s: float = 180.0, **kwargs) -> httpx.Response | None:
        """Send until accepted (2xx) with one Idempotency-Key; None if refused for good or unknown."""
        headers = dict(kwargs.pop("headers", {}))
        headers["Idempotency-Key"] = str(uuid.UUID(int=self.rng.getrandbits(128)))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        first = time.time()
        delay = 0.2
        while True:
            if self.aborted or time.time() - first > timeout_s:
                self.state.unknown[kind] += 1
                return None
            try:
                response = await self.client.request(method, self.urls[service] + path, headers=headers, **kwargs)
            except httpx.TransportError:
                self.state.refused += 1
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 2.0)
                continue
            if response.status_code in RETRYABLE:
                self.state.refused += 1
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 2.0)
                continue
            if response.status_code == 409 and "idempotency-key-in-flight" in response.text:
                # The first attempt's reservation outlived a killed process: its outcome is unknown
                # (the registry says so for ten minutes); a phone would look the object up instead.
                if self._restarted_since(service, first):
                    self.state.unknown[kind] += 1
                    return None
                await asyncio.sleep(0.5)
                continue
            if response.status_code == 412 and method == "PATCH":
                # "The household changed while this request ran; retry." (no If-Match was sent): a phone retries.
                self.state.conflicts += 1
                await asyncio.sleep(0.05)
                continue
            if response.status_code == 401 and kind == "partner":
                await self.partner_token()
                headers["Authorization"] = f"Bearer {self.bank['token']}"
                continue
            if 200 <= response.status_code < 300:
                self.state.accepted[kind] += 1
                self.state.successes[service].append(time.time())
                return response
            self.state.rejected[kind] += 1
            if len(self.state.rejections) < 10:
                self.state.rejections.append(f"{kind} {method} {path}: {response.status_code} {response.text[:300]}")
            return None

    def record(self, response: httpx.Response | None) -> None:
        if response is None:
            return
        body = response.json()
        if isinstance(body, dict) and body.get("id") and isinstance(body.get("version"), int):
            self.state.versions.append((body["id"], body["version"]))

    # -- set-up ----------------------------------------------------------------------
    async def setup(self) -> None:
        from jingzhun_cli.demo import VILLAGES, areas_csv
        response = await self.send("setup", "registry", "POST", "/v1/areas:bulk",
                                   files={"file": ("areas.csv", areas_csv(), "text/csv")})
        if response is None:
            raise RuntimeError(f"area load refused: {self.state.rejections}")
        self.villages = [dict(v) for v in VILLAGES]
        for code, name in EXTRA_VILLAGES:
            body = {"code": code, "name": name, "flags": {"is_poor": False, "population": 1000}}
            if await self.send("setup", "registry", "PUT", f"/v1/areas/{code}", json=body) is None:
                raise RuntimeError(f"village {code} refused: {self.state.rejections}")
            township = code[:9]
            self.villages.append({"code": code, "name": name, "township_code": township,
                                  "township_name": TOWNSHIPS[township], "is_poor_village": False,
                                  "is_deep_poverty_village": False})
        client = await self.client.post(self.urls["benefits"] + "/v1/partners/clients",
                                        json={"name": "Chaos RCB", "scopes": ["credit"]})
        client.raise_for_status()
        self.bank = {"client_id": client.json()["client_id"], "secret": client.json()["client_secret"]}
        await self.partner_token()
        self.state.accepted.clear()

    async def partner_token(self) -> None:
        while not self.aborted:
            try:
                async with httpx.AsyncClient(timeout=30.0) as anonymous:
                    response = await anonymous.post(self.urls["benefits"] + "/oauth/token", data={
                        "grant_type": "client_credentials",
                                                          "client_id": self.bank["client_id"],
                                                          "client_secret": self.bank["secret"]})
                if response.status_code == 200:
                    self.bank["token"] = response.json()["access_token"]
                    return
            except httpx.TransportError:
                pass
            self.state.refused += 1
            await asyncio.sleep(0.5)

    # -- the kinds of write ----------------------------------------------------------
    def household_body(self) -> tuple[dict, list[str]]:
        from shared.idcard import make_id_number
        index = self.create_index
        self.create_index += 1
        body = copy.deepcopy(self.templates[index % len(self.templates)])
        body.pop("id", None), body.pop("version", None)
        body["village"] = dict(self.rng.choice(self.villages))
        body["status"] = "registered" if self.rng.random() < 0.85 else "candidate"
        body["exit_date"] = None
        body["income"] = {"year": 2019, "per_capita_net": f"{self.rng.randint(1800, 6500)}.00"}
        numbers = []
        # Distinct people across the run: birth dates shifted within a year, the sequence number per block.
        shift, block = index % 360, index // 360
        for member_index, member in enumerate(body["members"]):
            member.pop("id", None)
            born = date.fromisoformat(member["birth_date"]) + timedelta(days=shift)
            member["birth_date"] = born.isoformat()
            seq = ((block * 12 + member_index) * 2 + (1 if member["sex"] == "M" else 0)) % 1000
            member["id_number"] = make_id_number("360782", born, seq)
            numbers.append(member["id_number"])
        return body, numbers

    def some_household(self, removed_too: bool = False) -> str | None:
        """A household this run created (one not removed, unless ``removed_too``: a bank may ask about anyone)."""
        choices = [h for h in self.state.households if removed_too or h not in self.state.removed]
        return self.rng.choice(choices or list(self.state.households))

    async def one(self, kind: str) -> None:
        if kind != "create" and not self.state.households:
            kind = "create"
        if kind == "create":
            body, numbers = self.household_body()
            response = await self.send(kind, "registry", "POST", "/v1/households", json=body)
            if response is not None:
                self.state.households[response.json()["id"]] = numbers
            self.record(response)
        elif kind == "patch":
            hid = self.some_household()
            patch = self.rng.choice([
                {"income": {"year": 2019, "per_capita_net": f"{self.rng.randint(1500, 3000)}.00"}},  # under the line
                {"income": {"year": 2019, "per_capita_net": f"{self.rng.randint(9000, 20000)}.00"}},  # above: revokes
                {"housing": {"safety_grade": self.rng.choice(["A", "B", "C", "D"])}},
                {"production": {"pigs_sheep": self.rng.randint(0, 8), "beef_cattle": self.rng.randint(0, 6)}},
                {"guarantees": {"housing_safety": self.rng.random() < 0.5, "drinking_water": self.rng.random() < 0.8}},
            ])
            self.record(await self.send(kind, "registry", "PATCH", f"/v1/households/{hid}",
                                        content=json.dumps(patch),
                                        headers={"Content-Type": "application/merge-patch+json"}))
        elif kind == "revoke":  # removal (剔除) revokes everything the household had
            candidates = [h for h in self.state.households if h not in self.state.removed]
            if not candidates:
                return await self.one("create")
            hid = self.rng.choice(candidates)
            self.state.removed.add(hid)
            response = await self.send(kind, "registry", "POST", f"/v1/households/{hid}/transitions",
                                       json={"action": "remove", "reason": "chaos: 核查不符 (not eligible)"})
            self.record(response)
        elif kind == "visit":
            hid = self.some_household()
            at = datetime(2020, 6, 1, 9, tzinfo=timezone(timedelta(hours=8))) + timedelta(
                minutes=self.rng.randint(0, 40000))
            body = {"client_visit_id": str(uuid.UUID(int=self.rng.getrandbits(128))), "household_id": hid,
                    "visited_at": at.isoformat(), "notes": "chaos 入户走访"}
            if self.rng.random() < 0.3:
                body["observations"] = {"income": {"year": 2019,
                                                   "per_capita_net": f"{self.rng.randint(1500, 12000)}.00"}}
            self.record(await self.send(kind, "registry", "POST", "/v1/visits", json=body))
        elif kind == "village":  # flips a flag every household of the village carries: fans out
            village = self.rng.choice(self.villages)
            village["is_poor_village"] = not village["is_poor_village"]
            patch = {"flags": {"is_poor": village["is_poor_village"]}}
            await self.send(kind, "registry", "PATCH", f"/v1/areas/{village['code']}", content=json.dumps(patch),
                            headers={"Content-Type": "application/merge-patch+json"})
        elif kind == "partner":
            numbers = self.state.households[self.some_household(removed_too=True)]
            await self.send(kind, "benefits", "POST", "/v1/credit/eligibility", token=self.bank["token"],
                            json={"id_number": self.rng.choice(numbers), "amount": "30000.00", "term_months": 24,
                                  "purpose": "livestock"})


# ---------------------------------------------------------------- the run


class ChaosRun:
    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.state = State()
        self.var_dir = Path(tempfile.mkdtemp(prefix=f"jz-chaos-{config.profile}-"))
        self.log_path = self.var_dir / "launcher.log"
        self.launcher: asyncio.subprocess.Process | None = None
        self.database_urls: dict[str, str] = {}
        self.seen_pids: set[int] = set()
        self.readyz: dict[str, list[dict]] = defaultdict(list)  # consumer status samples
        self.ports: dict[str, int] = {}
        self.current_load: Load | None = None

    def say(self, line: str) -> None:
        if self.config.log:
            self.config.log(line)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    # -- start / stop --------------------------------------------------------------
    async def start(self) -> None:
        from shared.broker import free_port
        if self.config.profile == "postgres":
            self.database_urls = await create_postgres(self.config.postgres_url)
        self.ports = {name: free_port() for name in (*SERVICES, "broker")}
        env = {k: v for k, v in os.environ.items() if not k.startswith("JZ_")}
        env.update({"JZ_VAR_DIR": str(self.var_dir), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"})
        for service, url in self.database_urls.items():
            env[f"JZ_{service.upper()}_DATABASE_URL"] = url
        command = [str(REPO / ".venv" / "bin" / "jingzhun"), "run", "--var-dir", str(self.var_dir),
                   "--registry-port", str(self.ports["registry"]), "--benefits-port", str(self.ports["benefits"]),
                   "--audit-port", str(self.ports["audit"]), "--broker-port", str(self.ports["broker"])]
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child writes to it until it stops
        self.launcher = await asyncio.create_subprocess_exec(*command, stdout=log, stderr=asyncio.subprocess.STDOUT,
                                                             env=env, cwd=str(REPO), start_new_session=True)
        log.close()
        self.say(f"launcher pid {self.launcher.pid}, var dir {self.var_dir}")
        deadline = time.monotonic() + self.config.start_timeout_s
        async with httpx.AsyncClient(timeout=2.0) as client:
            pending = set(SERVICES)
            while pending:
                if self.launcher.returncode is not None:
                    raise RuntimeError(f"launcher exited with {self.launcher.returncode}: {self.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not healthy within {self.config.start_timeout_s}s: {sorted(pending)}")
                for service in list(pending):
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(self.url(service) + "/healthz")).status_code == 200:
                            pending.discard(service)
                await asyncio.sleep(0.3)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def remember_pids(self) -> None:
        if self.launcher is not None:
            self.seen_pids.update(our_processes(self.var_dir, self.launcher.pid))

    async def stop(self) -> None:
        """SIGINT the launcher (its ordered shutdown), then kill whatever of ours is still alive."""
        self.remember_pids()
        if self.launcher is not None and self.launcher.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.launcher.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.launcher.wait(), 90)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.launcher.kill()
                await self.launcher.wait()
        stragglers = our_processes(self.var_dir)
        for pid in stragglers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if stragglers:
            self.say(f"killed stragglers: {stragglers}")
        if self.database_urls and self.config.keep_var_dir:
            self.say(f"kept the databases: {self.database_urls}")
        elif self.database_urls:
            with contextlib.suppress(Exception):
                await drop_postgres(self.config.postgres_url, self.database_urls)

    # -- watchers ------------------------------------------------------------------
    async def watch_log(self, stop: asyncio.Event) -> None:
        """Stamp the launcher's log lines as they arrive (the replay lines are attributed by time)."""
        offset = 0
        buffer = b""
        while True:
            with contextlib.suppress(OSError):
                with open(self.log_path, "rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
                    offset += len(chunk)
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    now = time.time()
                    self.state.log_lines.extend((now, line.decode(errors="replace")) for line in lines)
            if stop.is_set():
                return
            await asyncio.sleep(0.3)

    async def watch_consumers(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while not stop.is_set():
                for service in ("benefits", "audit"):
                    with contextlib.suppress(httpx.HTTPError, ValueError):
                        body = (await client.get(self.url(service) + "/readyz")).json()
                        if isinstance(body.get("consumer"), dict):
                            self.readyz[service].append({"at": time.time(), **body["consumer"]})
                self.remember_pids()
                if self.launcher.returncode is not None and self.current_load is not None:
                    self.current_load.aborted = True
                await asyncio.sleep(0.5)

    async def consumer_lag(self, service: str) -> int | None:
        async with httpx.AsyncClient(timeout=2.0) as client:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                consumer = (await client.get(self.url(service) + "/readyz")).json().get("consumer")
                if isinstance(consumer, dict):
                    return consumer.get("lag")
        return None

    # -- kills ---------------------------------------------------------------------
    def kill_plan(self) -> list[str]:
        kills = self.config.kills
        plan = list(COMPONENTS) if kills >= len(COMPONENTS) else []
        plan += [self.rng.choice(COMPONENTS) for _ in range(kills - len(plan))]
        self.rng.shuffle(plan)
        return plan

    async def kill_one(self, component: str) -> Kill | None:
        pid = component_pid(self.var_dir, component, self.launcher.pid)
        if pid is None:
            return None
        self.remember_pids()
        os.kill(pid, signal.SIGKILL)
        kill = Kill(component, pid, time.time())
        self.state.kills.append(kill)
        self.say(f"SIGKILL {component} (pid {pid}) after {self.state.done} writes")
        return kill

    async def wait_restart(self, kill: Kill, timeout: float = 60.0) -> None:
        """Until the launcher has started the component again (a new live pid)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            children = launcher_children(self.var_dir) or {}
            entry = children.get(kill.component) or {}
            pid = entry.get("pid")
            if pid and pid != kill.pid and component_of(_proc_cmdline(pid)) == kill.component:
                kill.new_pid, kill.how = pid, "launcher.json"
                kill.restarted_at = float(entry.get("started_at") or time.time())
                return
            if not children:
                pids = [p for p, name in our_processes(self.var_dir, self.launcher.pid).items()
                        if name == kill.component and p != kill.pid]
                if pids:
                    kill.new_pid, kill.restarted_at, kill.how = pids[0], time.time(), "/proc"
                    return
            if self.launcher.returncode is not None:
                return
            await asyncio.sleep(0.1)

    # -- load with kills -------------------------------------------------------------
    async def load(self, load: Load) -> None:
        total = self.config.writes
        plan = self.kill_plan()
        # Kill k happens once this many writes are done. Writers run on through the outage (refused, retried),
        # but never more than ``margin`` writes past a kill that has not happened yet: so every kill lands
        # during the load, with writes in flight, however fast the load goes.
        margin = 3 * self.config.concurrency
        thresholds = sorted(int(total * self.rng.uniform(0.08, 0.85)) for _ in plan)
        kinds = [self.rng.choices(list(KINDS), weights=list(KINDS.values()))[0] for _ in range(total)]
        next_index = 0
        kills_done = 0
        kill_event = asyncio.Event()

        async def writer() -> None:
            nonlocal next_index
            while next_index < total and not load.aborted:
                index = next_index
                next_index += 1
                while kills_done < len(thresholds) and index >= thresholds[kills_done] + margin:
                    kill_event.clear()
                    await kill_event.wait()
                await load.one(kinds[index])
                self.state.done += 1

        async def killer() -> None:
            nonlocal kills_done
            for k, component in enumerate(plan):
                while self.state.done < thresholds[k] and next_index < total and not load.aborted:
                    await asyncio.sleep(0.05)
                if load.aborted:
                    kills_done = len(thresholds)
                    kill_event.set()
                    return
                await asyncio.sleep(self.rng.uniform(0.2, 1.5))  # a random moment, writes in flight
                kill = await self.kill_one(component)
                kills_done += 1
                kill_event.set()
                if kill is not None:  # the next kill only once this one is back (restarts are what is measured)
                    await self.wait_restart(kill)
                    if kill.restarted_at is None:
                        self.say(f"{component} did not come back: {self.log_tail(10)}")
                    await asyncio.sleep(self.rng.uniform(0.5, 2.0))

        async def guarded_killer() -> None:
            nonlocal kills_done
            try:
                await killer()
            finally:  # whatever happened to the killer, the writers must not wait for it forever
                kills_done = len(thresholds)
                kill_event.set()

        async def stall_watch() -> None:  # nothing accepted for this long: the system is not coming back
            last, since = -1, time.time()
            while True:
                await asyncio.sleep(2)
                if self.state.done != last:
                    last, since = self.state.done, time.time()
                elif time.time() - since > 150:
                    self.say("no write finished for 150 s: aborting the load")
                    load.aborted = True
                    return

        killer_task = asyncio.create_task(guarded_killer())
        stall_task = asyncio.create_task(stall_watch())
        try:
            await asyncio.gather(*(writer() for _ in range(self.config.concurrency)))
            await killer_task
        finally:
            stall_task.cancel()
            killer_task.cancel()

    # -- quiescence and checks -----------------------------------------------------
    async def quiesce(self, db: Databases) -> tuple[float, dict]:
        started = time.time()
        stable_since, last_count = None, None
        status = {}
        while time.time() - started < self.config.quiesce_timeout_s:
            try:
                pending = {s: await db.pending(s) for s in ("registry", "benefits")}
                gaps = await db.version_gaps()
                count = await db.scalar("audit", "SELECT count(*) FROM ledger_records")
            except Exception as exc:  # noqa: BLE001 - a database restarting under us: ask again
                status = {"error": repr(exc)}
                await asyncio.sleep(1.0)
                continue
            lags = {s: await self.consumer_lag(s) for s in ("benefits", "audit")}
            if count != last_count:
                stable_since, last_count = time.time(), count
            status = {"pending": pending, "version_gaps": gaps, "ledger": count, "lag": lags}
            consumers_done = all(lag in (0, None) for lag in lags.values())
            if not any(pending.values()) and gaps == 0 and consumers_done and time.time() - stable_since >= 3.0:
                return time.time() - started - 3.0, status
            await asyncio.sleep(0.5)
        return float("nan"), status

    async def checks(self, db: Databases) -> dict:
        registry_box = await db.rows("registry", "SELECT event_id, payload, published_at, topic FROM outbox")
        benefits_box = await db.rows("benefits", "SELECT event_id, payload, published_at, topic FROM outbox")
        sequence = {}
        for row in [*registry_box, *benefits_box]:
            sequence[row.event_id] = json.loads(row.payload).get("sequence")
        ledger = await db.rows("audit", "SELECT chain_id, seq, event_id, source, subject, type FROM ledger_records "
                                        "ORDER BY chain_id, seq")
        in_ledger = Counter(row.event_id for row in ledger)
        snapshots = dict(await db.rows("benefits", "SELECT household_id, version FROM household_snapshots"))
        lost_versions = [(hid, v) for hid, v in self.state.versions if snapshots.get(hid, 0) < v]
        lost_registry = [row for row in registry_box if row.event_id not in in_ledger]
        lost_benefits = [row for row in benefits_box if row.event_id not in in_ledger]

        def described(row) -> str:  # when it was (last) published, in seconds of the run: compare with kill_log
            published = _epoch(row.published_at)
            when = "never published" if published is None else f"published at {published - self.started:.1f} s"
            return f"{row.topic} {row.event_id} {when}"
        duplicated_ledger = sum(n - 1 for n in in_ledger.values() if n > 1)
        duplicated_decisions = await db.scalar("benefits", """
            SELECT coalesce(sum(n - 1), 0) FROM (
              SELECT count(*) AS n FROM entitlement_history
              GROUP BY household_id, program, coalesce(person_id, ''), household_version, pack, pack_version, change
              HAVING count(*) > 1) AS d""")
        inversions = Counter()
        by_type = Counter()  # which event types arrived with an older version (says where to look)
        examples = []
        last: dict[tuple[str, str], tuple[int, str]] = {}
        for row in ledger:
            if not row.subject.startswith("household/"):
                continue
            seq = sequence.get(row.event_id)
            if seq is None:
                continue
            key = (row.chain_id, row.subject)
            if key in last and seq < last[key][0]:
                inversions[row.source] += 1
                by_type[row.type] += 1
                if len(examples) < 5:
                    examples.append(f"{row.chain_id} {row.subject}: {row.type} v{seq} after v{last[key][0]} "
                                    f"(seq {row.seq})")
            if key not in last or seq > last[key][0]:
                last[key] = (seq, row.event_id)
        return {
            "lost": {"versions": len(lost_versions), "registry_events": len(lost_registry),
                     "benefits_events": len(lost_benefits),
                     "examples": [*map(str, lost_versions[:3]), *map(described, lost_registry[:5]),
                                  *map(described, lost_benefits[:5])]},
            "duplicated": {"ledger_records": duplicated_ledger, "decisions": int(duplicated_decisions or 0)},
            "inversions": {"registry": inversions["registry"], "benefits": inversions["benefits"],
                           "by_type": dict(by_type), "examples": examples},
            "events": {"registry_outbox": len(registry_box), "benefits_outbox": len(benefits_box),
                       "ledger": len(ledger)},
        }

    async def verify(self, token: str) -> dict:
        async with httpx.AsyncClient(timeout=120.0, headers={"Authorization": f"Bearer {token}"}) as client:
            response = await client.get(self.url("audit") + "/v1/audit/verify")
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        return {"ok": response.status_code == 200 and body.get("ok") is True, "status": response.status_code,
                "detail": {k: v for k, v in body.items() if k in ("ok", "records", "chains", "problems", "errors")}}

    async def resume_times(self, db: Databases) -> dict:
        """Seconds from a component's restart until it works again, per component."""
        times: dict[str, list[float]] = defaultdict(list)
        for kill in self.state.kills:
            start = kill.restarted_at
            if start is None:
                continue
            value = None
            if kill.component in ("benefits", "audit"):
                samples = [s for s in self.readyz[kill.component]
                           if s.get("started_at") and s["started_at"] >= kill.at - 1 and s.get("first_event_at")]
                if samples:
                    value = samples[0]["first_event_at"] - samples[0]["started_at"]
                elif kill.component == "benefits":
                    first = await db.first_after("benefits", "processed_events", "processed_at", start)
                    value = None if first is None else first - start
                else:
                    first = await db.first_after("audit", "ledger_records", "recorded_at", start)
                    value = None if first is None else first - start
            elif kill.component == "registry":
                after = [t for t in self.state.successes["registry"] if t >= start]
                value = min(after) - start if after else None
            elif kill.component == "relay":
                firsts = [await db.first_after(s, "outbox", "published_at", start) for s in ("registry", "benefits")]
                firsts = [f for f in firsts if f is not None]
                value = min(firsts) - start if firsts else None
            elif kill.component == "broker":
                first = await db.first_after("benefits", "processed_events", "processed_at", start)
                value = None if first is None else first - start
            kill.resume_s = value
            if value is not None:
                times[kill.component].append(max(0.0, value))
        return {c: {"n": len(v), "p50": statistics.median(v), "max": max(v)} if v else {"n": 0}
                for c in COMPONENTS for v in [times.get(c, [])]}

    def replays(self) -> dict:
        """Rows replayed per broker start (initial and each restart), from the relay's log lines."""
        starts = [0.0] + sorted(k.at for k in self.state.kills if k.component == "broker")
        per_start = [0] * len(starts)
        lines = 0
        for at, line in self.state.log_lines:
            match = REPLAY_LINE.search(line)
            if not match:
                continue
            lines += 1
            index = max(i for i, s in enumerate(starts) if s <= at)
            per_start[index] += int(match.group(2))
        return {"initial": per_start[0], "per_restart": per_start[1:], "log_lines": lines}

    # -- everything ----------------------------------------------------------------
    async def run(self) -> dict:
        from shared.auth import mint_token
        from shared.config import CommonSettings
        started = self.started = time.time()
        stop = asyncio.Event()
        watchers: list[asyncio.Task] = []
        result: dict[str, Any] = {"profile": self.config.profile, "writes_planned": self.config.writes,
                                  "kills_planned": self.config.kills, "seed": self.config.seed}
        db = None
        try:
            await self.start()
            watchers = [asyncio.create_task(self.watch_log(stop)), asyncio.create_task(self.watch_consumers(stop))]
            token = mint_token(CommonSettings(var_dir=self.var_dir), "admin", subject="chaos", ttl_s=6 * 3600)
            urls = {s: self.url(s) for s in SERVICES}
            load = Load(self.config, urls, token, self.state, self.rng)
            self.current_load = load
            try:
                await load.setup()
                load_started = time.time()
                await self.load(load)
                result["load_s"] = round(time.time() - load_started, 1)
            finally:
                await load.close()
            db = Databases({s: self.database_urls.get(s) or f"sqlite+aiosqlite:///{self.var_dir / (s + '.db')}"
                            for s in SERVICES})
            quiet_s, quiet_status = await self.quiesce(db)
            result["quiescence_s"] = round(quiet_s, 1)
            result["quiescence_status"] = quiet_status
            result.update(await self.checks(db))
            result["verify"] = await self.verify(token)
            result["resume"] = await self.resume_times(db)
            result["replayed_rows"] = self.replays()
            result["launcher_alive"] = self.launcher.returncode is None
        except Exception as exc:
            result["error"] = f"{type(exc).__name__}: {exc}"
            result["launcher_log_tail"] = self.log_tail()
        finally:
            stop.set()
            for task in watchers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 5)
            if db is not None:
                await db.dispose()
            await self.stop()
        state = self.state
        result["writes"] = dict(state.accepted)
        result["rejected"] = dict(state.rejected)
        result["unknown_outcome"] = dict(state.unknown)
        result["rejection_examples"] = state.rejections
        result["refused_attempts"] = state.refused
        result["conflict_retries"] = state.conflicts
        result["kills"] = dict(Counter(k.component for k in state.kills))
        result["kill_log"] = [{"component": k.component, "pid": k.pid, "new_pid": k.new_pid,
                               "at_s": round(k.at - started, 1),
                               "restart_s": None if k.restarted_at is None else round(k.restarted_at - k.at, 2),
                               "resume_s": None if k.resume_s is None else round(k.resume_s, 2), "how": k.how}
                              for k in state.kills]
        result["came_back"] = {c: all(k.restarted_at is not None for k in state.kills if k.component == c)
                               for c in result["kills"]}
        result["var_dir"] = str(self.var_dir)
        result["elapsed_s"] = round(time.time() - started, 1)
        result["failed"] = failures(result)
        if not result["failed"] and not self.config.keep_var_dir:
            import shutil
            shutil.rmtree(self.var_dir, ignore_errors=True)
        return result


def failures(result: dict) -> list[str]:
    """What makes the run fail (exit code 1), in words."""
    problems = []
    if result.get("error"):
        problems.append(result["error"])
    lost = result.get("lost", {})
    if any(lost.get(k) for k in ("versions", "registry_events", "benefits_events")) or "lost" not in result:
        problems.append(f"lost: {lost}")
    duplicated = result.get("duplicated", {})
    if any(duplicated.values()) or "duplicated" not in result:
        problems.append(f"duplicated: {duplicated}")
    inversions = result.get("inversions", {})
    if inversions.get("registry") or inversions.get("benefits") or "inversions" not in result:
        problems.append(f"order inversions: {inversions}")
    if not result.get("verify", {}).get("ok"):
        problems.append(f"verify: {result.get('verify')}")
    missing = [c for c, back in result.get("came_back", {}).items() if not back]
    if missing:
        problems.append(f"not restarted: {missing}")
    return problems


async def run_chaos(config: ChaosConfig) -> dict:
    """One run; SIGTERM cancels it like Ctrl-C does, so the system is stopped either way."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await ChaosRun(config).run()
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)


# ---------------------------------------------------------------- output


def _fmt(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"chaos · {result['profile']} · seed {result['seed']} · {result.get('elapsed_s')} s",
                  show_header=True)
    table.add_column("measure")
    table.add_column("value")
    writes = result.get("writes", {})
    table.add_row("writes accepted",
                  f"{sum(writes.values())}  " + ", ".join(f"{k} {v}" for k, v in sorted(writes.items())))
    if result.get("rejected"):
        table.add_row("writes rejected (4xx)", ", ".join(f"{k} {v}" for k, v in sorted(result["rejected"].items())))
    if result.get("unknown_outcome"):
        table.add_row("outcome unknown (in flight at a kill)",
                      ", ".join(f"{k} {v}" for k, v in sorted(result["unknown_outcome"].items())))
    table.add_row("refused attempts (retried, same key)", f"{result.get('refused_attempts')}  "
                  f"(+{result.get('conflict_retries', 0)} retries after 412 'changed while this request ran')")
    kills = result.get("kills", {})
    table.add_row("kills", f"{sum(kills.values())}  " + ", ".join(f"{c} {kills.get(c, 0)}" for c in COMPONENTS))
    lost = result.get("lost", {})
    table.add_row("lost", f"{lost.get('versions')} versions, {lost.get('registry_events')} registry / "
                          f"{lost.get('benefits_events')} benefits events missing from the ledger")
    dup = result.get("duplicated", {})
    table.add_row("duplicated", f"{dup.get('ledger_records')} ledger records, {dup.get('decisions')} decisions")
    inv = result.get("inversions", {})
    table.add_row("order inversions", f"registry {inv.get('registry')}, benefits {inv.get('benefits')}"
                  + (f"  by type {inv['by_type']}" if inv.get("by_type") else ""))
    verify = result.get("verify", {})
    table.add_row("audit verify", "ok" if verify.get("ok") else f"FAILED {verify}")
    for component in COMPONENTS:
        resume = result.get("resume", {}).get(component, {})
        table.add_row(f"resume {component} (s)",
                      f"p50 {_fmt(resume.get('p50'), 2)}  max {_fmt(resume.get('max'), 2)}  (n={resume.get('n', 0)})")
    quiet = result.get("quiescence_s")
    table.add_row("time to quiescence (s)", _fmt(quiet) if quiet == quiet else  # NaN: never quiet
                  f"not quiet within the limit: {result.get('quiescence_status')}")
    replayed = result.get("replayed_rows", {})
    table.add_row("rows replayed per broker restart",
                  f"{replayed.get('per_restart')} (initial start {replayed.get('initial')}; "
                  f"{replayed.get('log_lines', 0)} replay lines)")
    table.add_row("events", str(result.get("events")))
    verdict = "[green]ok[/green]" if not result["failed"] else "[red]" + "; ".join(result["failed"]) + "[/red]"
    table.add_row("result", verdict)
    Console(width=160).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=("embedded", "postgres"), default="embedded")
    parser.add_argument("--writes", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20201231)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--postgres-url", default=os.environ.get("JZ_TEST_POSTGRES_URL") or DEFAULT_POSTGRES)
    parser.add_argument("--keep", action="store_true",
                        help="keep the var dir (with launcher.log) and the PostgreSQL databases afterwards")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    args = parser.parse_args(argv)
    config = ChaosConfig(profile=args.profile, writes=args.writes, kills=args.kills, seed=args.seed,
                         concurrency=args.concurrency, postgres_url=args.postgres_url, keep_var_dir=args.keep,
                         log=None if args.json else (lambda line: print(line, file=sys.stderr, flush=True)))
    result = asyncio.run(run_chaos(config))
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    else:
        render(result)
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
