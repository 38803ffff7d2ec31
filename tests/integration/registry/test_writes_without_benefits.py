"""The registry keeps taking writes while benefits is down (issue 10): only an exit decision, which needs
benefits' exit-readiness assessment, waits for it (503, nothing changed); every other write goes through
and stages its events for the relay, so benefits and audit catch up when they are back."""
from __future__ import annotations

import uuid

from services.registry.app import create_app
from services.registry.tables import outbox, procedure_steps
from shared.auth import mint_token
from shared.broker import free_port
from shared.config import RegistrySettings
from tests.helpers import household_body, running_app
from tests.integration.registry.conftest import count, state_counts


async def test_writes_succeed_with_benefits_unreachable(databases, tmp_path):
    # The real client over the network (no stub transport) to a port nobody listens on.
    settings = RegistrySettings(var_dir=tmp_path, database_url=await databases.url("registry"),
                                kafka_bootstrap="127.0.0.1:1", log_json=False,
                                benefits_url=f"http://127.0.0.1:{free_port()}")
    app = create_app(settings)
    admin = mint_token(settings, "admin", subject="admin-1")
    async with running_app(app, admin) as client:
        created = await client.post("/v1/households", json=household_body(status="registered"))
        assert created.status_code == 201, created.text
        hid = created.json()["id"]
        patched = await client.patch(f"/v1/households/{hid}", json={"income": {"per_capita_net": "5000"}},
                                     headers={"If-Match": '"1"', "Content-Type": "application/merge-patch+json"})
        assert patched.status_code == 200 and patched.json()["version"] == 2, patched.text
        cadre = await client.post("/v1/cadres", json={"id": "cadre-down", "name": "钟干部", "unit": "南康区财政局",
                                                      "area_code": "360703"})
        assert cadre.status_code == 201, cadre.text
        assert (await client.post(f"/v1/households/{hid}/pairings", json={"cadre_id": "cadre-down"})).status_code == 201
        visit = await client.post("/v1/visits", headers={"Authorization": "Bearer " + mint_token(
            settings, "visits:write", subject="cadre-down")}, json={
            "client_visit_id": str(uuid.uuid4()), "household_id": hid, "visited_at": "2020-06-01T10:00:00+08:00",
            "location": {"lat": 25.66, "lon": 114.76}})
        assert visit.status_code == 201, visit.text
        staged = await count(app, outbox)
        assert staged >= 4  # registered, updated, pairing, visit: waiting for the relay, not for benefits

        # The one write that needs benefits' judgement refuses plainly and changes nothing.
        before = await state_counts(app, procedure_steps)
        exit_ = await client.post(f"/v1/households/{hid}/transitions", json={"action": "propose_exit"})
        assert exit_.status_code == 503 and exit_.headers["content-type"] == "application/problem+json"
        assert exit_.json()["type"].endswith("/benefits-unavailable") and "nothing was changed" in exit_.json()["detail"]
        assert await state_counts(app, procedure_steps) == before

        # ... and the registry is still taking writes and answering reads afterwards.
        again = await client.post("/v1/households", json=household_body("nankang-dibao-elderly"))
        assert again.status_code == 201, again.text
        read = await client.get(f"/v1/households/{hid}")
        assert read.status_code == 200 and read.json()["version"] == 2
