"""Starts and stops the whole system: broker, relay and the three services as child processes.

Shutdown is ordered so the in-memory development broker never takes messages with it:
stop taking writes → drain the outboxes → wait until consumers caught up → stop the rest
→ stop the broker. On start with a fresh broker the relay replays the retained outbox tail.
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import httpx

from shared.broker import broker_command, free_port, prepare_topics, wait_until_answers
from shared.config import (DEFAULT_PORTS, SERVICES, TOPIC_REGISTRY, TOPICS, CommonSettings, production_refusals,
                           service_settings)
from shared.db import make_engine
from shared.migrate import upgrade_to_head

LogSink = Callable[[str, str], None]


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
    start_timeout_s: float = 60.0

    @property
    def bootstrap(self) -> str:
        return self.external_bootstrap or f"127.0.0.1:{self.broker_port}"

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
        if "JZ_PARTNER_JWKS_URL" not in os.environ:  # registry and audit verify partner tokens with benefits' keys
            env["JZ_PARTNER_JWKS_URL"] = f"http://127.0.0.1:{self.ports['benefits']}/.well-known/jwks.json"
        for variable in ("JZ_BENEFITS_EVALUATION_DATE", "JZ_AUDIT_EVALUATION_DATE"):
            if self.evaluation_date and variable not in os.environ:
                env[variable] = self.evaluation_date
        env.update(self.extra_env)
        return env

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


def service_command(service: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """How a service runs: uvicorn without its ``server`` banner (no version hints for scanners)."""
    return [sys.executable, "-m", "uvicorn", "--factory", f"services.{service}.app:create_app",
            "--host", host, "--port", str(port), "--no-access-log", "--no-server-header", "--log-level", "warning"]


class SystemLauncher:
    def __init__(self, config: LaunchConfig) -> None:
        self.config = config
        self.children: dict[str, asyncio.subprocess.Process] = {}
        self._pumps: list[asyncio.Task] = []
        self.fresh_broker = False

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
                await self._spawn("broker", broker_command(self.config.broker_port))
            await wait_until_answers(self.config.bootstrap)
            created = await prepare_topics(self.config.bootstrap, CommonSettings().topic_partitions)
            self.fresh_broker = TOPIC_REGISTRY in created
            relay_cmd = [sys.executable, "-m", "jingzhun_cli.main", "relay"]
            if self.fresh_broker:
                relay_cmd.append("--replay")  # a new in-memory broker: resend the retained tail
            await self._spawn("relay", relay_cmd)
            for service in SERVICES:
                await self._spawn(service, service_command(service, self.config.ports[service]))
            await self._wait_healthy()
        except BaseException:
            await self.kill_all()
            raise

    async def _migrate(self) -> None:
        self.config.var_dir.mkdir(parents=True, exist_ok=True)
        for service in SERVICES:
            engine = make_engine(self.config.database_url(service))
            try:
                await upgrade_to_head(service, engine)
            finally:
                await engine.dispose()

    async def _spawn(self, name: str, cmd: list[str]) -> None:
        process = await asyncio.create_subprocess_exec(
            *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=self.config.child_env(), start_new_session=True)
        self.children[name] = process
        self._pumps.append(asyncio.create_task(self._pump(name, process)))

    async def _pump(self, name: str, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            if self.config.log_sink:
                self.config.log_sink(name, raw.decode(errors="replace").rstrip())

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.config.ports[service]}"

    async def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        pending = set(SERVICES)
        async with httpx.AsyncClient(timeout=1.0) as client:
            while pending:
                self.check_alive()
                if time.monotonic() > deadline:
                    raise LaunchError(f"not healthy within {self.config.start_timeout_s}s: {', '.join(sorted(pending))}")
                for service in list(pending):
                    try:
                        if (await client.get(self.url(service) + "/healthz")).status_code == 200:
                            pending.discard(service)
                    except httpx.HTTPError:
                        pass
                await asyncio.sleep(0.2)

    def check_alive(self) -> None:
        for name, process in self.children.items():
            if process.returncode is not None:
                raise LaunchError(f"{name} exited with code {process.returncode}")

    # -- stop ----------------------------------------------------------------------
    async def _terminate(self, name: str, timeout: float = 15.0) -> None:
        process = self.children.get(name)
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()

    async def _wait_until(self, what: str, probe, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if await probe():
                    return True
            except Exception:  # noqa: BLE001 - keep trying until the deadline
                pass
            await asyncio.sleep(0.2)
        if self.config.log_sink:
            self.config.log_sink("launcher", f"gave up waiting for {what}")
        return False

    async def _outbox_empty(self, service: str) -> bool:
        from shared.outbox_relay import OutboxRelay
        engine = make_engine(self.config.database_url(service))
        try:
            return await OutboxRelay(engine, CommonSettings()).pending() == 0
        finally:
            await engine.dispose()

    async def shutdown(self) -> None:
        from shared.bus import consumer_lag
        bootstrap = self.config.bootstrap
        broker_up = "broker" not in self.children or self.children["broker"].returncode is None
        await self._terminate("registry")  # 1. stop taking writes
        if broker_up and self.children.get("relay") and self.children["relay"].returncode is None:
            await self._wait_until("registry outbox drained", lambda: self._outbox_empty("registry"))
            await self._wait_until("benefits caught up",
                                   lambda: _zero(consumer_lag(bootstrap, "benefits", [TOPIC_REGISTRY])))
            await self._wait_until("benefits outbox drained", lambda: self._outbox_empty("benefits"))
            await self._wait_until("audit caught up", lambda: _zero(consumer_lag(bootstrap, "audit", list(TOPICS))))
        for name in ("benefits", "audit", "relay"):
            await self._terminate(name)
        await self._terminate("broker", timeout=5)
        for pump in self._pumps:
            pump.cancel()

    async def kill_all(self) -> None:
        for process in self.children.values():
            if process.returncode is None:
                process.kill()
                await process.wait()
        for pump in self._pumps:
            pump.cancel()


async def _zero(lag_coro) -> bool:
    return await lag_coro == 0
