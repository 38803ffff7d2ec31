"""The launcher supervises its children (issue 10, item 3): kill -9 of benefits, audit, the relay and the
broker — each comes back (the log stream says so), the registry takes writes throughout, and after
quiescence every written household reached benefits and audit. A child that cannot start at all stops
the system: `jingzhun run` exits 1 naming it, after N attempts."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from shared.auth import mint_token
from shared.broker import free_port
from shared.config import CommonSettings
from shared.launcher import LaunchConfig, SystemLauncher
from jingzhun_cli.demo import demo_households
from tests.helpers import eventually

pytestmark = pytest.mark.e2e


def children(launcher: SystemLauncher) -> dict[str, dict]:
    """What a tool sees: launcher.json, not the launcher's objects."""
    state = json.loads(launcher.config.launcher_file.read_text(encoding="utf-8"))
    return {child["name"]: child for child in state["children"]}


@pytest.fixture
async def system(tmp_path):
    logs: list[str] = []
    config = LaunchConfig(var_dir=tmp_path, ports={"registry": free_port(), "benefits": free_port(),
                                                   "audit": free_port()},
                          broker_port=free_port(), log_sink=lambda name, line: logs.append(f"{name}: {line}"))
    launcher = SystemLauncher(config)
    await launcher.start()
    launcher.logs = logs
    yield launcher
    await launcher.kill_all()  # only after a failed test: the test itself shuts down in order


class Writer:
    """Creates households every ``interval`` s until stopped; every answer is kept."""

    def __init__(self, client: httpx.AsyncClient, url: str, interval: float = 0.25) -> None:
        self.client, self.url, self.interval = client, url, interval
        self.created: list[str] = []
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._bodies = iter(body for _, body in demo_households(600, seed=11))  # distinct people

    async def run(self) -> None:
        while not self._stop.is_set():
            body = {**next(self._bodies), "status": "registered"}
            try:
                response = await self.client.post(self.url + "/v1/households", json=body)
                if response.status_code == 201:
                    self.created.append(response.json()["id"])
                else:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
            except httpx.HTTPError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(self.interval)

    def stop(self) -> None:
        self._stop.set()


async def kill_and_see_it_back(launcher: SystemLauncher, name: str, writer: Writer) -> None:
    before = children(launcher)[name]
    written = len(writer.created)
    os.kill(before["pid"], signal.SIGKILL)
    exited = re.compile(rf"^launcher: {name} exited \(code -9, signal SIGKILL\) after [\d.]+ s; "
                        rf"restarting in ([\d.]+) s \(restart {before['restarts'] + 1}\)$")

    def said(pattern):
        return next((m for line in launcher.logs if (m := pattern.match(line))), None)
    exit_line = await eventually(lambda: asyncio.sleep(0, said(exited)), timeout=10)
    if name == "broker":  # the relay's in-flight sends must time out before a new broker listens
        assert float(exit_line.group(1)) >= launcher.config.broker_restart_delay_s
    restarted = re.compile(rf"^launcher: {name} restarted \(pid (\d+)\)$")
    back = await eventually(lambda: asyncio.sleep(0, said(restarted)), timeout=30)
    now = children(launcher)[name]
    assert now["pid"] == int(back.group(1)) != before["pid"] and now["restarts"] == before["restarts"] + 1
    assert now["started_at"] > before["started_at"]
    if name in ("benefits", "audit"):
        async with httpx.AsyncClient(timeout=2) as client:
            async def healthy():
                try:
                    return (await client.get(launcher.url(name) + "/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False
            await eventually(healthy, timeout=30)
    try:
        await eventually(lambda: asyncio.sleep(0, len(writer.created) >= written + 3), timeout=15)  # writes go on
    except AssertionError:
        print("\n".join(launcher.logs[-60:]), writer.failures[-5:])
        raise


async def test_killed_children_come_back_and_nothing_written_meanwhile_is_lost(system, tmp_path):
    from jingzhun_cli.main import _watch
    token = mint_token(CommonSettings(var_dir=tmp_path), "admin")
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
        writer = Writer(client, system.url("registry"))
        writing = asyncio.create_task(writer.run())
        try:
            for name in ("benefits", "audit", "relay", "broker"):
                await kill_and_see_it_back(system, name, writer)
        finally:
            writer.stop()
            await writing
        assert writer.failures == [] and len(writer.created) >= 12

        async def reached_everyone():
            missing = []
            for household_id in writer.created:
                seen = await client.get(f"{system.url('benefits')}/v1/households/{household_id}/entitlements")
                if seen.status_code != 200 or seen.json().get("household_version") != 1:
                    missing.append(("benefits", household_id))
                    continue
                records = await client.get(system.url("audit") + "/v1/audit/records",
                                           params={"subject": f"household/{household_id}",
                                                   "type": "household.registered"})
                if records.status_code != 200 or not records.json()["items"]:
                    missing.append(("audit", household_id))
            return not missing or print(f"not there yet: {len(missing)}, e.g. {missing[:3]}")
        await eventually(reached_everyone, timeout=60, interval=1.0)
        verify = (await client.get(system.url("audit") + "/v1/audit/verify")).json()
        assert verify["ok"] is True, verify

    assert {name: child["restarts"] for name, child in children(system).items()} == {
        "broker": 1, "relay": 1, "registry": 0, "benefits": 1, "audit": 1}
    # Now a child that cannot start any more: audit comes back with a bad key setting and exits at once.
    system.supervised["audit"].command = [sys.executable, "-c",
                                          "import sys; print('audit: JZ_AUDIT_EVENT_SIGNING_KEY_FILE missing'); "
                                          "sys.exit(3)"]
    system.config.max_start_failures = 2
    os.kill(children(system)["audit"]["pid"], signal.SIGKILL)
    stop = asyncio.Event()
    await asyncio.wait_for(_watch(system, stop), 30)  # returns on the failure, not on a stop request
    assert not stop.is_set() and system.exit_code == 1
    giving_up = [line for line in system.logs if "cannot start" in line]
    assert len(giving_up) == 1 and giving_up[0].startswith("launcher: audit exited 2 times in a row")
    assert "JZ_AUDIT_EVENT_SIGNING_KEY_FILE missing" in giving_up[0]
    await system.shutdown()  # the rest stops in order, without waiting for the audit that cannot run
    assert not any("gave up waiting" in line for line in system.logs), system.logs[-20:]
    assert all(process.returncode is not None for process in system.children.values())
    assert not system.config.launcher_file.exists()
    print("\n" + "\n".join(line for line in system.logs if line.startswith("launcher:")))
    print(f"{len(writer.created)} households written during the kills, all in benefits and audit")


def test_run_exits_1_naming_a_child_that_cannot_start(tmp_path):
    ports = [free_port() for _ in range(4)]
    env = {**os.environ, "JZ_AUDIT_EVENT_SIGNING_KEY_FILE": str(tmp_path / "missing" / "events.pem"),
           "COLUMNS": "400"}
    for service in ("REGISTRY", "BENEFITS", "AUDIT"):
        env.pop(f"JZ_{service}_DATABASE_URL", None)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "jingzhun_cli.main", "run", "--registry-port", str(ports[0]),
                             "--benefits-port", str(ports[1]), "--audit-port", str(ports[2]),
                             "--broker-port", str(ports[3]), "--var-dir", str(tmp_path / "var"),
                             "--max-start-failures", "2"],
                            env=env, capture_output=True, text=True, timeout=90)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "audit exited 2 times in a row without becoming healthy" in output, output[-3000:]
    assert "JZ_AUDIT_EVENT_SIGNING_KEY_FILE" in output  # its last output lines say why
    assert output.count("audit exited (code 3") == 1  # one restart, then it gave up
    assert not (tmp_path / "var" / "launcher.json").exists()
    print(f"run gave up after {time.monotonic() - started:.1f} s")
