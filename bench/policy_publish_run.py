"""One publish → recompute run, printed: the output pasted in the issue's closing note.

Benefits runs in-process on a throw-away SQLite database with N generated households of Nankang
(360703) stored and evaluated on 2021-06-30, when every local pack has lapsed. The worked example of
docs/policy.md (nankang-2021, extends nankang-2020, one amount changed) is validated, diffed,
simulated and published effective 2021-01-01; the recompute job is followed to its end.

    .venv/bin/python -m bench.policy_publish_run [--households 200]
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

from bench.datagen import generate_households
from services.benefits.app import create_app
from services.benefits.consumer import store_snapshot
from services.benefits.recompute.scope import Scope
from services.benefits.recompute.service import create_job, run_job
from shared.auth import mint_token
from shared.config import BenefitsSettings
from shared.db import transaction
from tests.helpers import running_app

TODAY = dt.date(2021, 6, 30)
PACK = (Path(__file__).resolve().parents[1] / "docs" / "examples" / "nankang-2021.yaml")


def show(title: str, value) -> None:
    print(f"--- {title}")
    print(json.dumps(value, ensure_ascii=False, indent=1))


async def main(households: int) -> None:
    var = Path(tempfile.mkdtemp(prefix="jz-policy-run-"))
    settings = BenefitsSettings(var_dir=var, database_url=f"sqlite+aiosqlite:///{var}/benefits.db",
                                kafka_bootstrap="127.0.0.1:1", log_json=False, log_level="WARNING",
                                run_consumer=False, evaluation_date=TODAY)
    app = create_app(settings)
    text = PACK.read_text(encoding="utf-8")
    async with running_app(app, mint_token(settings, "admin benefits:read", subject="office-admin")) as client:
        async with transaction(app.state.sessionmaker) as session:
            for snapshot in generate_households(households, seed=2021):
                await store_snapshot(session, snapshot)
            job = await create_job(session, Scope(kind="all"), TODAY, requested_by="bench")
        await run_job(app.state.sessionmaker, job["id"], app.state.packs)  # the entitlements before publishing
        print(f"{households} households of 360703 stored and evaluated on {TODAY} (before: national pack only)")
        body = {"pack": text, "effective_from": "2021-01-01"}
        show("POST /v1/policies:validate", (await client.post("/v1/policies:validate", json=body)).json())
        show("POST /v1/policies:diff", (await client.post("/v1/policies:diff", json=body)).json()["parameters"])
        simulated = (await client.post("/v1/policies:simulate", json={**body, "as_of": TODAY.isoformat()})).json()
        show("POST /v1/policies:simulate (totals)", {k: simulated[k] for k in (
            "as_of", "households_evaluated", "households_under_pack", "households_affected", "total")})
        started = time.perf_counter()
        published = (await client.post("/v1/policies:publish", json=body)).json()
        publication, job = published["publication"], published["job"]
        show("POST /v1/policies:publish", {k: v for k, v in publication.items() if k not in ("text", "spec", "diff")})
        while job["status"] in ("pending", "running"):
            await asyncio.sleep(0.05)
            job = (await client.get(f"/v1/jobs/{job['id']}")).json()
        seconds = time.perf_counter() - started
        show(f"GET /v1/jobs/{job['id']} ({seconds:.1f} s from publish to done)",
             {k: job[k] for k in ("status", "scope", "as_of", "total", "processed", "households_changed",
                                  "decisions", "requested_by")})
        assert job["households_changed"] == simulated["households_affected"], "the recompute did what was simulated"
        print(f"recompute changed {job['households_changed']} households, as simulated")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=200)
    asyncio.run(main(parser.parse_args().households))
