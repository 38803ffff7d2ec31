"""Starts, supervises and stops the whole system: broker, relay and the three services as child processes.

Supervision: a child that dies (any of broker, relay, registry, benefits, audit) is restarted with
exponential backoff (0.5 s doubling to 10 s, back to 0.5 s once a run stayed up 30 s); every exit and
restart is said in the log stream as the ``launcher`` source. The system stops only when asked
(ordered shutdown) or when a child cannot start at all: it exited ``max_start_failures`` times in a
row without ever becoming healthy (services: ``/healthz`` answered 200; relay and broker: stayed up
``healthy_after_s``). Whether a broker is fresh, and what to replay into it, the relay finds out by
itself (broker epoch); the launcher only recreates the topics with the configured partition count.

Shutdown is ordered so the in-memory development broker never takes messages with it:
stop taking writes → drain the outboxes → wait until consumers caught up → stop the rest
→ stop the broker. Supervision keeps running during the drain for the children not stopped yet, so a
consumer that dies while the others wait for it is restarted and the drain can finish.

``launcher.json`` (``LaunchConfig.state_file``) lists each child's pid, restarts and start time,
rewritten on every (re)start, so tools (the chaos suite) can find and kill children.

Children's output (one JSON line per request at INFO) is read in chunks, not line by line. With
``LaunchConfig.child_stream`` set (``jingzhun run``: the terminal) it is passed through as it comes, each line
prefixed with the child's name, control characters dropped, no per-line Python call; otherwise each line goes
to ``log_sink`` (tests). Either way the last lines are kept to quote when a child cannot start.
"""
from __future__ import annotations

import asyncio
import codecs
import collections
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from unittest import mock

import httpx

from shared import signin_dev
from shared.broker import broker_command, prepare_topics, wait_until_answers
from shared.config import (DEFAULT_PORTS, SERVICES, TOPIC_REGISTRY, TOPICS, CommonSettings, production_refusals,
                           service_settings)
from shared.db import make_engine
from shared.migrate import upgrade_to_head

LogSink = Callable[[str, str], None]
OUTPUT_LINES_KEPT = 20  # a child's last output lines, quoted when it cannot start
READ_CHUNK = 256 * 1024  # a child's output is read in chunks of up to this many bytes
#: ANSI colours of the children's name prefixes on a terminal (as ``jingzhun run`` colours its own lines).
PREFIX_COLOURS = {"registry": "36", "benefits": "32", "audit": "35", "relay": "33", "broker": "34", "signin": "37"}
#: What a passed-through line may not carry to a terminal: control characters but tab (escape sequences).
_CONTROL = {code: None for code in (*range(0, 9), *range(11, 32), 127)}


class LaunchError(RuntimeError):
    pass


@dataclass
class LaunchConfig:
    var_dir: Path = Path("var")
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    broker_port: int = 9092
    external_bootstrap: str | None = None  # use a running Kafka instead of starting Tansu
    database_urls: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    evaluation_date: str | None = "2020-06-30"
    log_sink: LogSink | None = None
    # Children's output passed straight through here (prefixed, no per-line parsing): ``jingzhun run`` gives its
    # stdout. None: each child line goes to ``log_sink``.
    child_stream: TextIO | None = None
    start_timeout_s: float = 60.0
    # -- supervision
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    backoff_reset_after_s: float = 30.0  # a run that stayed up this long starts the backoff over
    max_start_failures: int = 5  # exits in a row without becoming healthy → the child cannot start: stop all
    healthy_after_s: float = 10.0  # relay and broker have no /healthz: healthy once they stayed up this long
    broker_restart_delay_s: float = 2.0  # see SystemLauncher._restart_delay
    drain_timeout_s: float = 60.0  # per step of the ordered shutdown (a consumer may be restarting meanwhile)
    state_file: Path | None = None  # default <var_dir>/launcher.json
    # The development sign-in provider (shared/signin_dev.py) on this port; None: not started (tests).
    signin_port: int | None = None

    @property
    def bootstrap(self) -> str:
        return self.external_bootstrap or f"127.0.0.1:{self.broker_port}"

    @property
    def launcher_file(self) -> Path:
        return self.state_file or self.var_dir / "launcher.json"

    def database_url(self, service: str) -> str:
        return self.database_urls.get(service) or f"sqlite+aiosqlite:///{self.var_dir / (service + '.db')}"

    def child_env(self) -> dict[str, str]:
        env = {**os.environ, "JZ_VAR_DIR": str(self.var_dir), "JZ_KAFKA_BOOTSTRAP": self.bootstrap,
               "PYTHONUNBUFFERED": "1"}
        for service in SERVICES:
            prefix = f"JZ_{service.upper()}_"
            env[prefix + "PORT"] = str(self.ports[service])
            env[prefix + "DATABASE_URL"] = self.database_url(service)
        env["JZ_REGISTRY_BENEFITS_URL"] = f"http://127.0.0.1:{self.ports['benefits']}"
        env["JZ_AUDIT_BENEFITS_URL"] = env["JZ_REGISTRY_BENEFITS_URL"]  # the dashboard's village exit section
        env["JZ_REGISTRY_AUDIT_URL"] = f"http://127.0.0.1:{self.ports['audit']}"  # the case file's decisions
        # the dashboard links a household to its case file; a proxy in front may give its own public URL
        env.setdefault("JZ_AUDIT_REGISTRY_PUBLIC_URL", f"http://127.0.0.1:{self.ports['registry']}")
        if "JZ_PARTNER_JWKS_URL" not in os.environ:  # registry and audit verify partner tokens with benefits' keys
            env["JZ_PARTNER_JWKS_URL"] = f"http://127.0.0.1:{self.ports['benefits']}/.well-known/jwks.json"
        for variable in ("JZ_BENEFITS_EVALUATION_DATE", "JZ_AUDIT_EVALUATION_DATE"):
            if self.evaluation_date and variable not in os.environ:
                env[variable] = self.evaluation_date
        if self.signin_port:
            env.update(signin_dev.child_env(self.signin_port, self.ports, self.var_dir, CommonSettings().jwt_audience))
        env.update(self.extra_env)
        return env

    def workers(self, service: str) -> int:
        """``JZ_<SERVICE>_WORKERS`` as the children see it, but 1 on SQLite: its writers take turns on one file lock,
        so more processes only wait for each other (and the embedded default stays one process per service)."""
        count = configured_workers(service, self.child_env())
        return 1 if count > 1 and self.database_url(service).startswith("sqlite") else count

    def evaluation_date_lines(self) -> list[str]:
        """What the startup banner says about the policy date benefits and audit judge on, and who set it:
        the demo's fixed date must be visible, not discovered from a 2020 answer."""
        env = self.child_env()
        said = {}
        for service in ("benefits", "audit"):
            variable = f"JZ_{service.upper()}_EVALUATION_DATE"
            value = env.get(variable)
            if not value:
                said[service] = f"evaluation date: today in China ({variable} unset)"
            elif variable in os.environ or variable in self.extra_env:
                said[service] = f"evaluation date {value} (set by {variable})"
            else:
                said[service] = f"evaluation date {value} (demo profile: {variable})"
        if said["benefits"].replace("BENEFITS", "AUDIT") == said["audit"]:  # the usual case: one line for both
            return [f"{said['benefits']}, for benefits and audit; credit decisions expire counted from today"]
        return [f"{line}, for {service}" for service, line in said.items()]


def uvicorn_options() -> list[str]:
    return ["--no-access-log", "--no-server-header", "--log-level", "warning"]


def service_command(service: str, port: int, host: str = "127.0.0.1", workers: int | None = None) -> list[str]:
    """How a service runs: uvicorn without its ``server`` banner (no version hints for scanners).

    ``workers`` (default ``JZ_<SERVICE>_WORKERS``, else 1) above 1: ``python -m shared.launcher serve``, which runs
    that many uvicorn processes on one listening socket (``serve_workers``)."""
    workers = configured_workers(service) if workers is None else workers
    if workers > 1:
        return [sys.executable, "-m", "shared.launcher", "serve", service, "--host", host, "--port", str(port),
                "--workers", str(workers)]
    return [sys.executable, "-m", "uvicorn", "--factory", f"services.{service}.app:create_app",
            "--host", host, "--port", str(port), *uvicorn_options()]


def configured_workers(service: str, env: dict[str, str] | None = None) -> int:
    """``JZ_<SERVICE>_WORKERS`` from ``env`` (default: this process's environment), ≥ 1."""
    env = os.environ if env is None else env
    raw = env.get(f"JZ_{service.upper()}_WORKERS") or "1"
    try:
        return max(1, int(raw))
    except ValueError as exc:
        raise LaunchError(f"JZ_{service.upper()}_WORKERS must be a whole number, not {raw!r}") from exc


def worker_share(member: str, index: int, workers: int) -> str:
    """Worker ``index`` of ``workers``' part of the consumer member ``member`` ("a/b": partitions p % b == a):
    the partitions with p % b == a and (p // b) % workers == index, written as one member "a + b*index / b*workers".
    The workers' shares are disjoint and together exactly ``member``'s."""
    a, b = (int(part) for part in member.split("/"))
    return f"{a + b * index}/{b * workers}"


def listening_socket(host: str, port: int):
    """The socket ``serve_workers`` hands its uvicorn workers (inheritable, listening)."""
    import socket
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # uvicorn takes an inherited --fd as AF_UNIX, so asyncio does not set TCP_NODELAY on what it accepts: Nagle
    # then held each answer until the client's delayed ACK, ~40 ms per request (21 creates/s at one client).
    # Linux copies the option from the listening socket to every accepted one.
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.bind((host, port))
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


def serve_workers(service: str, host: str, port: int, workers: int) -> int:
    """Run ``workers`` uvicorn processes of ``service`` on one listening socket (the kernel spreads connections).

    Each worker runs the whole app, background tasks included; what must not run once per worker is arranged
    through its environment (docs/performance-writes.md, "Workers"):

    * its consumers take a disjoint share of this process's partitions (``worker_share`` of the configured
      ``consumer_member``): one consumer per partition set, offsets committed as before;
    * audit's checkpoint scheduler and its start/stop checkpoints run in worker 0 only;
    * worker 0 starts alone and the others once it answers ``/healthz``, so files it creates at first start (the
      embedded profile's keys under var/) exist before the others read them.

    When a worker exits, the others are stopped and its exit code returned (the supervisor above, the launcher
    or Kubernetes, restarts the whole set). SIGTERM / SIGINT are passed to every worker."""
    import subprocess

    member = service_settings(service).consumer_member
    listener = listening_socket(host, port)
    command = [sys.executable, "-m", "uvicorn", "--factory", f"services.{service}.app:create_app",
               "--fd", str(listener.fileno()), *uvicorn_options()]
    prefix = f"JZ_{service.upper()}_"
    children: list[subprocess.Popen] = []
    stopping = False

    def stop_all(*_args) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    try:
        for index in range(workers):
            env = {**os.environ, prefix + "CONSUMER_MEMBER": worker_share(member, index, workers),
                   prefix + "WORKERS": "1"}
            if index > 0:
                env["JZ_AUDIT_CHECKPOINT_SCHEDULE"] = "false"
            children.append(subprocess.Popen(command, env=env, pass_fds=(listener.fileno(),),
                                             preexec_fn=_die_with_parent))
            if index == 0 and not _answers_healthz(host, port, children[0]):
                break
            if stopping:
                break
        while True:
            for child in children:
                code = child.poll()
                if code is not None:
                    stop_all()
                    for other in children:
                        try:
                            other.wait(30)
                        except subprocess.TimeoutExpired:
                            other.kill()
                            other.wait()
                    return 0 if stopping and code in (0, -signal.SIGTERM) else (code or 1)
            time.sleep(0.2)
    finally:
        listener.close()


def _die_with_parent() -> None:
    """Linux: a worker gets SIGTERM when the ``serve`` process dies (even by SIGKILL), so none is left holding
    the port."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _answers_healthz(host: str, port: int, first, timeout: float = 120.0) -> bool:
    """Until the first worker answers /healthz (True), exits, or the timeout passes (False)."""
    address = f"http://{'[' + host + ']' if ':' in host else host}:{port}/healthz"
    if host in ("0.0.0.0", "::"):
        address = f"http://127.0.0.1:{port}/healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and first.poll() is None:
        try:
            if httpx.get(address, timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def relay_command() -> list[str]:
    # No --replay: the relay itself detects a fresh broker (epoch check) and replays what it lacks.
    return [sys.executable, "-m", "jingzhun_cli.main", "relay"]


def describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"code {code}, signal {signal.Signals(-code).name}"
        except ValueError:
            return f"code {code}"
    return f"code {code}"


@dataclass
class Child:
    """One supervised child: its current process and what supervision knows about its runs."""
    name: str
    command: list[str]
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0  # wall clock of the current run (launcher.json)
    started_mono: float = 0.0
    restarts: int = 0
    failures: int = 0  # exits in a row without becoming healthy
    healthy: bool = False  # the current run became healthy
    ever_healthy: bool = False
    stopped: bool = False  # the shutdown reached it (or it cannot start): never restart it
    gave_up: bool = False
    output: collections.deque = field(default_factory=lambda: collections.deque(maxlen=OUTPUT_LINES_KEPT))
    pump: asyncio.Task | None = None
    supervisor: asyncio.Task | None = None
    health: asyncio.Task | None = None

    @property
    def is_service(self) -> bool:
        return self.name in SERVICES


class SystemLauncher:
    def __init__(self, config: LaunchConfig) -> None:
        self.config = config
        self.children: dict[str, asyncio.subprocess.Process] = {}  # name → current process
        self.supervised: dict[str, Child] = {}
        self.failure: LaunchError | None = None  # set when a child cannot start at all
        self.failed = asyncio.Event()
        self.exit_code = 0

    def say(self, line: str) -> None:
        if self.config.log_sink:
            self.config.log_sink("launcher", line)

    # -- start ---------------------------------------------------------------------
    def refusals(self) -> list[str]:
        """What stops the services from starting under these settings (production without its keys)."""
        with mock.patch.dict(os.environ, self.config.child_env()):  # the settings the children will read
            return [f"{service}: {reason}" for service in SERVICES
                    for reason in production_refusals(service_settings(service))]

    async def start(self) -> None:
        refusals = self.refusals()
        if refusals:  # say it once, plainly, instead of three children dying with tracebacks
            raise LaunchError("insecure configuration for the production profile:\n  " + "\n  ".join(refusals))
        try:
            await self._migrate()
            if self.config.external_bootstrap is None:
                await self._add("broker", broker_command(self.config.broker_port))
            await self._broker_ready(timeout=min(20.0, self.config.start_timeout_s))
            await self._add("relay", relay_command())
            await self._start_signin()
            for service in SERVICES:
                workers = self.config.workers(service)
                if workers != configured_workers(service, self.config.child_env()):
                    self.say(f"{service}: 1 worker (JZ_{service.upper()}_WORKERS applies on PostgreSQL only)")
                await self._add(service, service_command(service, self.config.ports[service], workers=workers))
            await self._wait_healthy()
        except BaseException:
            await self.kill_all()
            raise

    async def _start_signin(self) -> None:
        """The development sign-in provider: optional, so one that cannot run is said once and skipped."""
        if not self.config.signin_port:
            return
        reason = signin_dev.unavailable(self.config.signin_port)
        if reason:
            self.say(reason)
            self.config.signin_port = None  # the services then get no sign-in settings
            return
        await self._add("signin", signin_dev.command())

    async def _migrate(self) -> None:
        self.config.var_dir.mkdir(parents=True, exist_ok=True)
        for service in SERVICES:
            engine = make_engine(self.config.database_url(service))
            try:
                await upgrade_to_head(service, engine)
            finally:
                await engine.dispose()

    async def _broker_ready(self, timeout: float = 20.0) -> None:
        """The broker answers and has the design's topics with the configured partition count (a restarted
        in-memory broker has none; auto-created topics would get the broker's default count)."""
        await wait_until_answers(self.config.bootstrap, timeout=timeout)
        await prepare_topics(self.config.bootstrap, CommonSettings().topic_partitions)

    async def _add(self, name: str, cmd: list[str]) -> None:
        child = Child(name, cmd)
        self.supervised[name] = child
        await self._spawn(child)
        child.supervisor = asyncio.create_task(self._supervise(child), name=f"supervise:{name}")

    async def _spawn(self, child: Child) -> None:
        process = await asyncio.create_subprocess_exec(
            *child.command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=self.config.child_env(), start_new_session=True)
        child.process, child.healthy = process, False
        child.started_at, child.started_mono = time.time(), time.monotonic()
        child.output.clear()
        self.children[child.name] = process
        child.pump = asyncio.create_task(self._pump(child, process))
        if child.is_service:
            child.health = asyncio.create_task(self._probe_health(child, process))
        self._write_state()

    async def _pump(self, child: Child, process: asyncio.subprocess.Process) -> None:
        """A child's output, a chunk at a time: kept (last lines), and passed through or given to the sink."""
        assert process.stdout is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stream, sink = self.config.child_stream, self.config.log_sink
        prefix = self._prefix(child.name, stream) if stream is not None else ""
        partial = ""  # the last line of the chunks so far, until its newline comes
        while True:
            data = await process.stdout.read(READ_CHUNK)
            text = partial + decoder.decode(data, final=not data)
            cut = text.rfind("\n") + 1
            if not data or (not cut and len(text) >= READ_CHUNK):  # the end, or one overlong line: out as it is
                if text and not text.endswith("\n"):
                    text += "\n"
                cut = len(text)
            complete, partial = text[:cut], text[cut:]
            if complete:
                self._output(child, complete, stream, sink, prefix)
            if not data:
                return

    @staticmethod
    def _output(child: Child, complete: str, stream: TextIO | None, sink: LogSink | None, prefix: str) -> None:
        """Whole lines (``complete`` ends with a newline) of a child's output."""
        last = complete.rsplit("\n", OUTPUT_LINES_KEPT + 1)[-OUTPUT_LINES_KEPT - 1:-1]
        child.output.extend(line.rstrip() for line in last)
        if stream is not None:
            clean = complete.translate(_CONTROL)
            try:
                stream.write(prefix + clean[:-1].replace("\n", "\n" + prefix) + "\n")
                stream.flush()
            except (OSError, ValueError):  # the terminal went away: keep draining the pipe
                pass
        elif sink is not None:
            for line in complete[:-1].split("\n"):
                sink(child.name, line.rstrip())

    @staticmethod
    def _prefix(name: str, stream: TextIO) -> str:
        label = f"{name:<9}│ "
        try:
            coloured = stream.isatty() and "NO_COLOR" not in os.environ
        except (AttributeError, ValueError):
            coloured = False
        colour = PREFIX_COLOURS.get(name)
        return f"\x1b[{colour}m{label}\x1b[0m" if coloured and colour else label

    async def _probe_health(self, child: Child, process: asyncio.subprocess.Process) -> None:
        """A service's run is healthy once its /healthz answered 200."""
        async with httpx.AsyncClient(timeout=1.0) as client:
            while process.returncode is None:
                try:
                    if (await client.get(self.url(child.name) + "/healthz")).status_code == 200:
                        child.healthy = child.ever_healthy = True
                        child.failures = 0
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)

    def _restart_delay(self, child: Child, backoff: float) -> float:
        if child.name != "broker":
            return backoff
        # A fresh broker must not receive what the relay was sending to the dead one: those sends are in
        # flight in the relay's producer and would land in the new broker before the relay noticed the new
        # epoch and replayed the older rows first (per-key order). Waiting longer than the sends take to
        # time out (JZ_RELAY_SEND_TIMEOUT_MS, 1.5 s by default; keep the delay above it) makes them fail
        # instead; their rows stay pending and go out in order after the replay.
        return max(backoff, self.config.broker_restart_delay_s)

    async def _supervise(self, child: Child) -> None:
        cfg = self.config
        backoff = cfg.backoff_initial_s
        while True:
            process = child.process
            assert process is not None
            code = await process.wait()
            uptime = time.monotonic() - child.started_mono
            if child.stopped:
                return
            if child.health is not None:
                child.health.cancel()
            if not child.is_service and uptime >= cfg.healthy_after_s:
                child.healthy = child.ever_healthy = True
            child.failures = 0 if child.healthy else child.failures + 1
            if uptime >= cfg.backoff_reset_after_s:
                backoff = cfg.backoff_initial_s
            if child.failures >= cfg.max_start_failures:
                await self._give_up(child, code)
                return
            delay = self._restart_delay(child, backoff)
            backoff = min(backoff * 2, cfg.backoff_max_s)
            self.say(f"{child.name} exited ({describe_exit(code)}) after {uptime:.1f} s; "
                     f"restarting in {delay:.1f} s (restart {child.restarts + 1})")
            await asyncio.sleep(delay)
            if child.stopped:
                return
            child.restarts += 1
            await self._spawn(child)
            self.say(f"{child.name} restarted (pid {child.process.pid})")
            if child.name == "broker":
                try:
                    await self._broker_ready()
                except Exception as exc:  # noqa: BLE001 - it died again: the loop above sees the exit
                    self.say(f"broker did not become ready after restart: {type(exc).__name__}: {exc}")

    async def _give_up(self, child: Child, code: int | None) -> None:
        child.stopped = child.gave_up = True
        if child.pump is not None:  # its last lines may still be in the pipe
            try:
                await asyncio.wait_for(asyncio.shield(child.pump), 2.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
        tail = "\n  ".join(list(child.output)[-10:]) or "(no output)"
        message = (f"{child.name} exited {child.failures} times in a row without becoming healthy "
                   f"(last: {describe_exit(code)}); it cannot start. Its last output:\n  {tail}")
        self.say(message)
        self.failure = LaunchError(message)
        self.exit_code = 1
        self.failed.set()

    def _write_state(self) -> None:
        """launcher.json: where each child is now (rewritten on every start and restart)."""
        state = {"launcher_pid": os.getpid(), "bootstrap": self.config.bootstrap,
                 "ports": {service: self.config.ports[service] for service in SERVICES},
                 "children": [{"name": c.name, "pid": c.process.pid if c.process else None, "restarts": c.restarts,
                               "started_at": c.started_at} for c in self.supervised.values()]}
        path = self.config.launcher_file
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(state, indent=1), encoding="utf-8")
        os.replace(temporary, path)  # readers never see half a file

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.config.ports[service]}"

    async def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        while True:
            self.check_alive()
            pending = [s for s in SERVICES if not self.supervised[s].healthy]
            if not pending:
                return
            if time.monotonic() > deadline:
                looping = [f"{c.name} exited {c.failures} times in a row (last output: "
                           f"{(list(c.output) or ['none'])[-1]})" for c in self.supervised.values() if c.failures]
                raise LaunchError(f"not healthy within {self.config.start_timeout_s}s: {', '.join(pending)}"
                                  + (f"; {'; '.join(looping)}" if looping else ""))
            await asyncio.sleep(0.2)

    def check_alive(self) -> None:
        """Raises once a child could not start at all (supervision restarts every other exit)."""
        if self.failure is not None:
            raise self.failure

    # -- stop ----------------------------------------------------------------------
    async def _terminate(self, name: str, timeout: float = 15.0) -> None:
        child = self.supervised.get(name)
        if child is None:
            return
        child.stopped = True  # first: supervision must not restart what the shutdown stops
        process = child.process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        if child.supervisor is not None:
            child.supervisor.cancel()  # it may be sleeping before a restart
            await asyncio.gather(child.supervisor, return_exceptions=True)
            if child.process is not process and child.process.returncode is None:  # spawned meanwhile
                child.process.kill()
                await child.process.wait()
        if child.health is not None:
            child.health.cancel()

    async def _wait_until(self, what: str, probe, timeout: float | None = None) -> bool:
        deadline = time.monotonic() + (timeout or self.config.drain_timeout_s)
        while time.monotonic() < deadline:
            try:
                if await probe():
                    return True
            except Exception:  # noqa: BLE001 - keep trying until the deadline
                pass
            await asyncio.sleep(0.2)
        self.say(f"gave up waiting for {what}")
        return False

    async def _outbox_empty(self, service: str) -> bool:
        from shared.outbox_relay import OutboxRelay
        engine = make_engine(self.config.database_url(service))
        try:
            return await OutboxRelay(engine, CommonSettings()).pending() == 0
        finally:
            await engine.dispose()

    def _can_run(self, name: str) -> bool:
        """Still there to wait for: running, or being restarted by supervision."""
        child = self.supervised.get(name)
        return child is not None and not child.gave_up

    async def shutdown(self) -> None:
        from shared.bus import consumer_lag
        bootstrap = self.config.bootstrap
        await self._terminate("registry")  # 1. stop taking writes
        broker_there = self.config.external_bootstrap is not None or self._can_run("broker")
        if broker_there and self._can_run("relay"):
            await self._wait_until("registry outbox drained", lambda: self._outbox_empty("registry"))
            if self._can_run("benefits"):
                await self._wait_until("benefits caught up",
                                       lambda: _zero(consumer_lag(bootstrap, "benefits", [TOPIC_REGISTRY])))
                await self._wait_until("benefits outbox drained", lambda: self._outbox_empty("benefits"))
            if self._can_run("audit"):
                await self._wait_until("audit caught up",
                                       lambda: _zero(consumer_lag(bootstrap, "audit", list(TOPICS))))
        for name in ("benefits", "audit", "relay", "signin"):
            await self._terminate(name)
        await self._terminate("broker", timeout=5)
        await self._finish()
        self.config.launcher_file.unlink(missing_ok=True)  # a clean stop: nothing left to find

    async def kill_all(self) -> None:
        for child in self.supervised.values():
            child.stopped = True
        for child in self.supervised.values():
            if child.supervisor is not None:
                child.supervisor.cancel()
                await asyncio.gather(child.supervisor, return_exceptions=True)
            if child.process is not None and child.process.returncode is None:
                child.process.kill()
                await child.process.wait()
        await self._finish()
        self.config.launcher_file.unlink(missing_ok=True)

    async def _finish(self) -> None:
        tasks = [t for c in self.supervised.values() for t in (c.pump, c.supervisor, c.health) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _zero(lag_coro) -> bool:
    return await lag_coro == 0


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.launcher serve SERVICE --host H --port P --workers N`` (what service_command gives)."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m shared.launcher")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run a service as several uvicorn workers on one socket")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--workers", type=int, help="default JZ_<SERVICE>_WORKERS, else 1")
    args = parser.parse_args(argv)
    workers = configured_workers(args.service) if args.workers is None else max(1, args.workers)
    if workers == 1:  # plain uvicorn, as service_command gives it
        command = service_command(args.service, args.port, args.host, workers=1)
        os.execv(command[0], command)
    return serve_workers(args.service, args.host, args.port, workers)


if __name__ == "__main__":
    sys.exit(main())
