"""The three real services, the relay and the broker as separate processes, end to end."""
from __future__ import annotations

import time

import httpx
import pytest

from shared.auth import mint_token
from shared.broker import free_port
from shared.config import CommonSettings
from shared.launcher import LaunchConfig, SystemLauncher
from tests.helpers import eventually, household_body

pytestmark = pytest.mark.e2e


@pytest.fixture
async def system(databases, tmp_path):
    logs: list[str] = []
    config = LaunchConfig(
        var_dir=tmp_path, ports={"registry": free_port(), "benefits": free_port(), "audit": free_port()},
        broker_port=free_port(), log_sink=lambda name, line: logs.append(f"{name}: {line}"),
        database_urls={s: await databases.url(s) for s in ("registry", "benefits", "audit")})
    launcher = SystemLauncher(config)
    await launcher.start()
    launcher.logs = logs
    yield launcher
    await launcher.shutdown()


async def test_household_write_reaches_benefits_and_a_verifying_audit_chain(system, tmp_path):
    token = mint_token(CommonSettings(var_dir=tmp_path), "admin")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=10) as client:
        started = time.perf_counter()
        created = await client.post(system.url("registry") + "/v1/households",
                                    json=household_body("nankang-dibao-elderly", status="registered"))
        assert created.status_code == 201, created.text
        household_id = created.json()["id"]

        async def entitlements_at_version_1():
            response = await client.get(f"{system.url('benefits')}/v1/households/{household_id}/entitlements")
            body = response.json() if response.status_code == 200 else {}
            return body if body.get("household_version") == 1 and body.get("entitlements") else None

        benefits_view = await eventually(entitlements_at_version_1, timeout=60)
        by_program = {e["program"]: e for e in benefits_view["entitlements"]}
        assert by_program["safety_net.dibao"]["amount"] == "940.00"
        assert by_program["housing.renovation"]["amount"] == "24000.00"

        async def audited():
            response = await client.get(system.url("audit") + "/v1/audit/records",
                                        params={"subject": f"household/{household_id}", "limit": 500})
            items = response.json()["items"]
            types = {item["type"] for item in items}
            programs = {e["program"] for item in items if item["type"] == "entitlements.decided"
                        for e in item["data"]["entitlements"] if e["change"] == "granted"}
            wanted = {"safety_net.dibao", "housing.renovation"}
            return items if "household.registered" in types and wanted <= programs else None

        records = await eventually(audited, timeout=60)
        latency = time.perf_counter() - started
        print(f"\ncold start: registry write → audited decision {latency * 1000:.0f} ms")
        [decided] = [r for r in records if r["type"] == "entitlements.decided"]  # one event for version 1
        granted = {e["program"]: e for e in decided["data"]["entitlements"] if e["change"] == "granted"}
        assert set(granted) >= {"safety_net.dibao", "housing.renovation"}
        assert granted["safety_net.dibao"]["after"]["amount"] == "940.00" and decided["data"]["household_version"] == 1
        registered = next(r for r in records if r["type"] == "household.registered")
        assert "********" in registered["data"]["household"]["members"][0]["id_number"]

        verify = (await client.get(system.url("audit") + "/v1/audit/verify")).json()
        assert verify["ok"] is True and verify["first_bad_record"] is None
        assert verify["records_checked"] >= len(records)

        # A change: the household's house was rebuilt, so the renovation is revoked at version 2.
        started = time.perf_counter()
        patched = await client.patch(f"{system.url('registry')}/v1/households/{household_id}",
                                     json={"housing": {"renovated": True, "safety_grade": "A", "planned_work": None}},
                                     headers={"If-Match": "1"})
        assert patched.status_code == 200, patched.text

        async def revoked():
            response = await client.get(system.url("audit") + "/v1/audit/records",
                                        params={"subject": f"household/{household_id}",
                                                "type": "entitlements.decided"})
            return [r for r in response.json()["items"] if r["data"]["household_version"] == 2]

        [decided] = await eventually(revoked, timeout=60, interval=0.02)
        print(f"idle: registry write → audited decision {(time.perf_counter() - started) * 1000:.0f} ms")
        revocations = [e for e in decided["data"]["entitlements"] if e["change"] == "revoked"]
        assert [e["program"] for e in revocations] == ["housing.renovation"]
        assert revocations[0]["before"]["amount"] == "24000.00" and revocations[0]["after"] is None
