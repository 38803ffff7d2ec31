"""Registry household API on SQLite and PostgreSQL: writes, versions, and bad input."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.registry.app import create_app
from services.registry.tables import households, outbox
from shared.auth import mint_token
from shared.config import RegistrySettings
from tests.helpers import household_body, running_app


@pytest.fixture
async def registry(databases, tmp_path):
    settings = RegistrySettings(var_dir=tmp_path, database_url=await databases.url("registry"),
                                kafka_bootstrap="127.0.0.1:1", log_json=False)
    app = create_app(settings)
    token = mint_token(settings, "registry:read registry:write")
    async with running_app(app, token) as client:
        client.app = app
        client.settings = settings
        yield client


async def counts(app) -> tuple[int, int]:
    async with app.state.sessionmaker() as session:
        return (await session.scalar(select(func.count()).select_from(households)),
                await session.scalar(select(func.count()).select_from(outbox)))


async def test_create_read_patch_bumps_version_and_writes_one_event_each(registry):
    created = await registry.post("/v1/households", json=household_body())
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["version"] == 1 and body["status"] == "candidate"
    assert created.headers["etag"] == '"1"'
    assert all(m["id"] for m in body["members"])
    assert body["members"][0]["id_number"] == "360782********0018"  # masked for non-admin callers

    patched = await registry.patch(f"/v1/households/{body['id']}", json={"income": {"per_capita_net": "5000"}},
                                   headers={"If-Match": '"1"', "Content-Type": "application/merge-patch+json"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == 2
    assert patched.json()["income"] == {"year": 2019, "per_capita_net": "5000.00"}

    read = await registry.get(f"/v1/households/{body['id']}")
    assert read.json()["version"] == 2 and read.headers["etag"] == '"2"'
    assert await counts(registry.app) == (1, 2)


async def test_stale_if_match_is_412_and_changes_nothing(registry):
    household_id = (await registry.post("/v1/households", json=household_body())).json()["id"]
    await registry.patch(f"/v1/households/{household_id}", json={"notes_ignored": None} | {"dibao_class": "B"},
                         headers={"If-Match": "1"})
    stale = await registry.patch(f"/v1/households/{household_id}", json={"dibao_class": "A1"},
                                 headers={"If-Match": "1"})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert stale.json()["current_version"] == 2
    assert (await registry.get(f"/v1/households/{household_id}")).json()["dibao_class"] == "B"


async def test_person_in_two_households_is_409_naming_the_other(registry):
    first = (await registry.post("/v1/households", json=household_body())).json()
    second = await registry.post("/v1/households", json=household_body())
    assert second.status_code == 409
    assert {c["household_id"] for c in second.json()["conflicts"]} == {first["id"]}
    assert await counts(registry.app) == (1, 1)


@pytest.mark.parametrize("content, content_type, expected_loc", [
    (b'{"region_code": "360703", "members": [', "application/json", ["body", 38]),
    (b'{"region_code": 360703, "members": "none"}', "application/json", ["body", "members"]),
    (b'{"members": []}', "application/json", ["body", "region_code"]),
    (b'{"region_code": "360703", "unknown_field": 1}', "application/json", ["body", "unknown_field"]),
    (b'{"region_code": "360703", "members": [{"name": "x", "id_number": "360782197803150019"}]}',
     "application/json", ["body", "members", 0, "id_number"]),
])
async def test_bad_input_is_422_problem_and_writes_nothing(registry, content, content_type, expected_loc):
    response = await registry.post("/v1/households", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["errors"]
    assert any(error["loc"][: len(expected_loc)] == expected_loc for error in problem["errors"]), problem
    assert await counts(registry.app) == (0, 0)


async def test_patch_of_status_is_refused(registry):
    household_id = (await registry.post("/v1/households", json=household_body())).json()["id"]
    response = await registry.patch(f"/v1/households/{household_id}", json={"status": "exited"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "status"]


async def test_non_admin_cannot_create_in_registered_status(registry):
    response = await registry.post("/v1/households", json=household_body(status="registered"))
    assert response.status_code == 403
    assert await counts(registry.app) == (0, 0)


async def test_missing_and_insufficient_tokens(registry):
    no_token = await registry.get("/v1/households", headers={"Authorization": ""})
    assert no_token.status_code == 401 and no_token.headers["content-type"] == "application/problem+json"
    read_only = mint_token(registry.settings, "registry:read")
    refused = await registry.post("/v1/households", json=household_body(),
                                  headers={"Authorization": f"Bearer {read_only}"})
    assert refused.status_code == 403 and refused.json()["required_scopes"] == ["registry:write"]


async def test_area_scoped_token_sees_only_its_area(registry):
    household_id = (await registry.post("/v1/households", json=household_body())).json()["id"]
    inside = mint_token(registry.settings, "registry:read", area="360703105")
    outside = mint_token(registry.settings, "registry:read", area="360703102")
    assert (await registry.get(f"/v1/households/{household_id}",
                               headers={"Authorization": f"Bearer {inside}"})).status_code == 200
    assert (await registry.get(f"/v1/households/{household_id}",
                               headers={"Authorization": f"Bearer {outside}"})).status_code == 404
    listed = await registry.get("/v1/households", headers={"Authorization": f"Bearer {outside}"})
    assert listed.json()["items"] == []


async def test_list_pages_with_cursor(registry):
    for index in range(5):
        body = household_body(members=[])
        body["village"]["code"] = f"36070310520{index}"
        assert (await registry.post("/v1/households", json=body)).status_code == 201
    seen, cursor = [], None
    while True:
        page = (await registry.get("/v1/households", params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 5 and len(set(seen)) == 5 and seen == sorted(seen)
