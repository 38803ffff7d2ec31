"""Each dashboard view (overview, village, household, anomaly list) rendered by headless Chromium at a desktop
(1366×900) and a phone (390×844) width against a real HTTP server with data in it.

PNGs go to test-artifacts/screenshots/<view>-<width>.png; each must be non-trivial (a blank page compresses
to a few kilobytes of one colour) and the DOM Chromium built must hold the figures the view is about.
Skips when Chromium is absent unless CI is set (see test_dashboard_browser.chromium_binary).
"""
from __future__ import annotations

import asyncio
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

import uvicorn

from services.audit.app import create_app
from shared.auth import mint_token
from shared.config import AuditSettings
from tests.integration.audit.test_dashboard_browser import ARTIFACTS, chromium_binary, free_port
from tests.integration.audit.test_dashboard_truthful import VILLAGE_A, populate
from tests.integration.audit.test_monitoring_loop import seed_district

SHOTS = ARTIFACTS / "screenshots"
WIDTHS = {"desktop": (1366, 900), "phone": (390, 844)}


async def chromium(binary: str, profile: Path, url: str, size: tuple[int, int], *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
        f"--window-size={size[0]},{size[1]}", *args, url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return stdout.decode()


def png_facts(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values in the decompressed image data): a one-colour page has a handful."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


VIEWS = {
    # view: (path, figures the DOM must hold)
    "overview": ("/dashboard?as_of=2020-06-30",
                 ["截至", "评估日期", "2020-06-30", "最低生活保障（低保）", "470.00 元/月", "20,000.00 元",
                  "扶贫小额信贷", "100,000.00 元", "5.00%", "无贫困人口 / no poor people", "ganzhou-2016", "202400",
                  "防止返贫动态监测", "/dashboard/monitoring"]),
    "village": (f"/dashboard/villages/{VILLAGE_A}?as_of=2020-06-30",
                ["新村村", ">40<", ">5.00%<", "hh-1", "hh-2", "hh-3", "已脱贫 (exited)", "********"]),
    "household": ("/dashboard/households/hh-1?as_of=2020-06-30",
                  ["扶贫小额信贷", "50,000.00", "最低生活保障（低保）", "每月 (per month)", "household.registered",
                   "完好 (intact)", "/v1/households/hh-1/file"]),
    "anomalies": ("/dashboard/anomalies?as_of=2020-06-30",
                  ["待处理异常清单", "未达标强制退出", "hh-3", "长期未入户走访"]),
    # the overview's monitoring section (issue 13) on its own page, on a date the loop has run (headless
    # Chromium's --screenshot ignores a #fragment: the page it would scroll to comes out blank)
    "monitoring": ("/dashboard/monitoring?as_of=2021-06-30&area=360703105",
                   ["防止返贫动态监测", 'id="monitoring-objects">5<', "边缘易致贫户 (marginal, at risk)",
                    "录入系统 (data_entry)", "线索逾期未核实 (lead not verified)", "<code>ld-old</code>", "<code>mo-c</code>",
                    "/dashboard/households/hh-f", "P90 20 · n = 3", "未落实帮扶措施 (no assistance measure)"]),
}


async def test_every_view_at_desktop_and_phone_width(tmp_path):
    binary = chromium_binary()
    port = free_port()
    settings = AuditSettings(var_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}",
                             host="127.0.0.1", port=port, kafka_bootstrap="127.0.0.1:1", log_json=False,
                             run_consumer=False)
    app = create_app(settings, id_hash_key="k", checkpoint_schedule=False)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        await populate(app)
        await seed_district(SimpleNamespace(app=app))  # monitoring leads and objects (test_monitoring_loop)
        token = mint_token(settings, "audit:read")
        for view, (path, figures) in VIEWS.items():
            url = f"http://127.0.0.1:{port}{path}&token={token}"  # the page moves the token into a cookie
            dom = await chromium(binary, tmp_path / "profile", url, WIDTHS["desktop"], "--dump-dom")
            missing = [f for f in figures if f not in dom]
            assert not missing, (view, missing)
            assert "<script" not in dom and "Jingzhun supervision dashboard" in dom
            for width, size in WIDTHS.items():
                shot = SHOTS / f"{view}-{width}.png"
                shot.unlink(missing_ok=True)
                await chromium(binary, tmp_path / "profile", url, size, f"--screenshot={shot}")
                w, h, distinct = png_facts(shot)
                assert (w, h) == size, (view, width, w, h)
                assert shot.stat().st_size > 15_000 and distinct > 60, (view, width, shot.stat().st_size, distinct)
    finally:
        server.should_exit = True
        await serving
