"""The dashboard rendered by headless Chromium against a real HTTP server with data in it.

Skips when Chromium is absent, unless CI is set (then it fails: CI installs the Debian
``chromium`` package). The screenshot is kept as test-artifacts/dashboard.png.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path

import pytest
import uvicorn

from services.audit.app import create_app
from shared.auth import mint_token
from shared.config import AuditSettings
from tests.integration.audit.support import (assessment_event, entitlement_event, feed, person, registry_event,
                                             snapshot, village_event)

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"


def chromium_binary() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium); set CI=true to make this fail")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def chromium(binary: str, tmp_path: Path, url: str, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,2000", *args, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return stdout.decode()


async def populate(app) -> None:
    await feed(app, village_event({"code": "360703105201", "name": "新村村", "township_code": "360703105",
                                   "township_name": "隆木乡", "population": 40}, 1))
    for i in range(1, 7):
        hid = f"hh-dash-{i}"
        exited = i <= 3
        snap = snapshot(hid, village="A" if i % 2 else "B", seq=i, status="exited" if exited else "registered",
                        exit_date="2018-05-01" if exited else None,
                        members=[person(f"{hid}-1", i), person(f"{hid}-2", 100 + i, relation="spouse")])
        await feed(app, registry_event("household.status_changed" if exited else "household.registered", snap,
                                       step={"action": "approve_exit", "override": i == 1, "reason": "test"}
                                       if exited else None))
        await feed(app, entitlement_event(hid, "industry.machinery" if i % 2 else "education.boarding", "granted",
                                          amount=f"{1000 * i}.00"), partition=1)
    await feed(app, assessment_event("hh-dash-5", False, ["income"]), partition=1)


async def test_dashboard_renders_with_data_in_chromium(databases, tmp_path):
    binary = chromium_binary()
    port = free_port()
    settings = AuditSettings(var_dir=tmp_path, database_url=await databases.url("audit"), host="127.0.0.1",
                             port=port, kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False)
    app = create_app(settings, id_hash_key="k", checkpoint_schedule=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        await populate(app)
        token = mint_token(settings, "audit:read")
        url = f"http://127.0.0.1:{port}/dashboard?token={token}&as_of=2020-06-30"
        dom = await chromium(binary, tmp_path, url, "--dump-dom")
        assert "精准扶贫督查看板" in dom and "Jingzhun supervision dashboard" in dom
        assert "脱贫进度与目标" in dom and "ganzhou-2016" in dom and "202400" in dom  # target from the pack
        assert "新村村" in dom and "industry.machinery" in dom
        assert "未达标强制退出" in dom  # the overridden exit shows as an open anomaly
        assert dom.count("<svg") >= 4 and "<script" not in dom and "http://" not in dom.split("<body", 1)[1].replace(
            "http://www.w3.org/2000/svg", "")
        ARTIFACTS.mkdir(exist_ok=True)
        name = "dashboard.png" if databases.backend == "sqlite" else f"dashboard-{databases.backend}.png"
        shot = ARTIFACTS / name
        shot.unlink(missing_ok=True)
        await chromium(binary, tmp_path, url, f"--screenshot={shot}")
        assert shot.exists() and shot.stat().st_size > 10_000
    finally:
        server.should_exit = True
        await serving


async def test_dashboard_auth(databases, tmp_path):
    from tests.helpers import running_app
    settings = AuditSettings(var_dir=tmp_path, database_url=await databases.url("audit"), kafka_bootstrap="127.0.0.1:1",
                             log_json=False, run_consumer=False)
    app = create_app(settings, id_hash_key="k", checkpoint_schedule=False)
    async with running_app(app) as client:
        assert (await client.get("/dashboard")).status_code == 401
        wrong = mint_token(settings, "registry:read")
        assert (await client.get("/dashboard", params={"token": wrong})).status_code == 403
        token = mint_token(settings, "audit:read")
        redirect = await client.get("/dashboard", params={"token": token, "area": "360703"})
        assert redirect.status_code == 303 and redirect.headers["location"] == "/dashboard?area=360703"
        assert "httponly" in redirect.headers["set-cookie"].lower()
        page = await client.get("/dashboard", cookies={"jz_dashboard_token": token})
        assert page.status_code == 200 and "精准扶贫督查看板" in page.text
        bearer = await client.get("/dashboard", headers={"Authorization": f"Bearer {token}"})
        assert bearer.status_code == 200
