"""``python -m shared.launcher serve`` runs N uvicorn workers on one port, each with its share of the partitions,
and takes them all down on SIGTERM (issue 15, both cores)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from shared.broker import free_port

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads worker processes from Linux /proc")
def test_serve_starts_workers_with_disjoint_consumer_shares_and_stops_them(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JZ_")}
    env.update({"JZ_VAR_DIR": str(tmp_path), "JZ_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
                "JZ_REGISTRY_MONITORING_CONSUMER": "false", "JZ_REGISTRY_DCI_CONSUMER": "false",
                "JZ_REGISTRY_DCI_WORKER": "false", "JZ_REGISTRY_CONSUMER_MEMBER": "1/3",
                "JZ_LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)})
    serve = subprocess.Popen([sys.executable, "-m", "shared.launcher", "serve", "registry", "--port", str(port),
                              "--workers", "2"], env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and len(workers) < 2:
            assert serve.poll() is None, "serve exited"
            workers = _children(serve.pid)
            time.sleep(0.2)
        assert len(workers) == 2
        shares = sorted(_environ(pid)["JZ_REGISTRY_CONSUMER_MEMBER"] for pid in workers)
        assert shares == ["1/6", "4/6"]  # partitions p % 3 == 1, split between the two
        schedules = sorted(_environ(pid).get("JZ_AUDIT_CHECKPOINT_SCHEDULE", "") for pid in workers)
        assert schedules == ["", "false"]  # one worker keeps the once-per-process duties
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(40) == 0
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
