"""The demo district's monitoring cases (all three categories, at different steps, stable ids) and
``jingzhun monitoring import-leads``."""
from __future__ import annotations

import os
import subprocess
import sys

from services.registry.app import create_app
from shared.auth import mint_token
from shared.config import RegistrySettings
from jingzhun_cli.demo import load_demo_district
from tests.helpers import running_app

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


async def test_demo_cases_and_the_cli_push(databases, tmp_path):
    url = await databases.url("registry")
    settings = RegistrySettings(var_dir=tmp_path, database_url=url, kafka_bootstrap="127.0.0.1:1", log_json=False,
                                monitoring_consumer=False)
    app = create_app(settings)
    async with running_app(app, mint_token(settings, "registry:read", area="360703")) as client:
        await load_demo_district(app.state.sessionmaker, settings)
        objects = {o["id"]: o for o in (await client.get("/v1/monitoring/objects", params={"limit": 50})).json()["items"]}
        assert {(o["category"], o["status"], o["step"]) for o in objects.values()} == {
            ("marginal_at_risk", "identifying", "democratic_appraisal"), ("unstable_exited", "monitored", None),
            ("sudden_hardship", "eliminated", None)}
        monitored = objects["mo-demo-0014"]
        assert [m["type"] for m in monitored["measures"]] == ["medical", "employment"]
        eliminated = objects["mo-demo-0010"]
        evidence = eliminated["steps"][-1]["evidence"]["benefits_assessment"]
        assert eliminated["steps"][-1]["step"] == "county_confirmation" and evidence["months_above_range"] >= 6
        assert len({s["actor"] for s in eliminated["steps"]}) == 2
        leads = (await client.get("/v1/monitoring/leads", params={"status": "open"})).json()["items"]
        assert [(lead["id"], lead["channel"]) for lead in leads] == [("ml-demo-0008", "department")]

        push = tmp_path / "医保局预警名单.csv"
        push.write_text("户编号,风险类型,上报日期（年月日）,上报部门\nhh-demo-0020,因病,2020-06-01,区医保局\n",
                        encoding="utf-8-sig")
        env = {**os.environ, "JZ_VAR_DIR": str(tmp_path), "JZ_REGISTRY_DATABASE_URL": url}
        cli = [sys.executable, "-m", "jingzhun_cli.main", "monitoring", "import-leads", str(push)]
        dry = subprocess.run([*cli, "--dry-run"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert dry.returncode == 0 and "would record 1 new lead" in dry.stdout, dry.stdout + dry.stderr
        done = subprocess.run(cli, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and "recorded 1 new lead" in done.stdout, done.stdout + done.stderr
        found = (await client.get("/v1/monitoring/leads", params={"household_id": "hh-demo-0020"})).json()["items"]
        assert [(lead["channel"], lead["risk_causes"], lead["notes"]) for lead in found] == [
            ("department", ["illness"], "[区医保局]")]
        assert (await load_demo_district(app.state.sessionmaker, settings)).monitoring_cases == 0
