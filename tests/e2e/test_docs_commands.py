"""Docs that cannot go stale: every shell block of README.md and docs/*.md runs against the demo system.

The system is started the way the README tells a new user to (``jingzhun migrate``, ``jingzhun
demo-data``, ``jingzhun run``), on free ports and in a throwaway ``var/``; each document's blocks then
run in one bash process from a scratch directory that holds ``.venv`` (the commands say
``.venv/bin/jingzhun``). The answers are checked by the ``# expect:`` comments in the blocks.
"""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shared.broker import free_port
from tests.docs_blocks import blocks_of, problems, script_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCUMENTED_PORTS = (8001, 8002, 8003)


@pytest.fixture(scope="module")
def demo_system(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("docs")
    # The commands run from the repository root (`.venv/bin/jingzhun`, `jingzhun_cli/examples/…`), but
    # what they write (ledgers, reports, var/) must land in a scratch copy: link every top-level entry.
    (workdir / ".venv").symlink_to(Path(sys.executable).resolve().parents[1]
                                   if not (ROOT / ".venv").exists() else ROOT / ".venv")
    for entry in ROOT.iterdir():
        if entry.name not in {".venv", ".git", "var"} and not (workdir / entry.name).exists():
            (workdir / entry.name).symlink_to(entry)
    ports = {documented: free_port() for documented in DOCUMENTED_PORTS}
    env = {**os.environ, "JZ_VAR_DIR": str(workdir / "var"), "NO_COLOR": "1", "COLUMNS": "200"}
    for name in [k for k in env if k.endswith("_DATABASE_URL") or k == "JZ_BENEFITS_EVALUATION_DATE"]:
        env.pop(name)  # the embedded defaults, exactly as `make run` has them
    jingzhun = str(workdir / ".venv" / "bin" / "jingzhun")
    for command in ([jingzhun, "migrate"], [jingzhun, "demo-data"]):
        done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}: {done.stdout}\n{done.stderr}"
    broker_port = free_port()
    log = open(workdir / "run.log", "w")
    process = subprocess.Popen(
        [jingzhun, "run", "--registry-port", str(ports[8001]), "--benefits-port", str(ports[8002]),
         "--audit-port", str(ports[8003]), "--broker-port", str(broker_port)],
        cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, (workdir / "run.log").read_text()
            try:
                if all(httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
                       for port in ports.values()):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("the demo system did not become ready:\n" + (workdir / "run.log").read_text()[-4000:])
        _wait_for_demo_pipeline(ports, f"127.0.0.1:{broker_port}", workdir, env)
        yield {"workdir": workdir, "ports": ports, "env": env}
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def _wait_for_demo_pipeline(ports, bootstrap, workdir, env) -> None:
    """The README reads benefits and audit views of demo households: wait until both consumers are idle
    (no lag three polls running) and the last demo household has reached benefits."""
    from shared.bus import consumer_lag
    from shared.config import TOPIC_REGISTRY, TOPICS

    token = subprocess.run([str(workdir / ".venv" / "bin" / "jingzhun"), "token", "--scopes", "admin"],
                           cwd=workdir, env=env, capture_output=True, text=True, check=True).stdout.strip()
    last = f"http://127.0.0.1:{ports[8002]}/v1/households/hh-demo-0200/entitlements"

    async def idle() -> bool:
        return (await consumer_lag(bootstrap, "benefits", [TOPIC_REGISTRY]) == 0
                and await consumer_lag(bootstrap, "audit", list(TOPICS)) == 0)

    quiet, deadline = 0, time.monotonic() + 240
    while time.monotonic() < deadline:
        reached = httpx.get(last, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 200
        quiet = quiet + 1 if reached and asyncio.run(idle()) else 0
        if quiet >= 3:
            return
        time.sleep(1)
    pytest.fail("the consumers did not catch up with the demo data")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shell_block_of_the_document_works_on_the_demo(demo_system, document):
    blocks, skipped = blocks_of(document, ROOT)
    for name in skipped:
        print(f"skipped {name}")
    if not blocks:
        pytest.skip(f"{document.name} has no runnable shell blocks")
    workdir = demo_system["workdir"]
    status_log = workdir / f"statuses-{document.stem}.log"
    status_log.write_text("")
    script = script_for(blocks, demo_system["ports"], status_log)
    (workdir / f"{document.stem}.sh").write_text(script)
    done = subprocess.run(["bash", f"{document.stem}.sh"], cwd=workdir, env=demo_system["env"],
                          capture_output=True, text=True, timeout=600)
    found = problems(blocks, done.stdout, status_log.read_text().splitlines())
    print(f"{document.name}: {len(blocks)} blocks run, {len(skipped)} skipped, "
          f"{sum(len(b.expects) for b in blocks)} answers checked, {len(found)} problems")
    assert not found, "\n".join(found) + f"\n--- stdout ---\n{done.stdout[-6000:]}\n--- stderr ---\n{done.stderr[-3000:]}"
