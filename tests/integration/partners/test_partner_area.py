"""Partner clients with an area and the `dci` scope, on SQLite and PostgreSQL: the area is validated, stored,
shown, and carried by the client's tokens as their `area` claim; clients without one (banks, insurers) get
tokens exactly as before."""
from __future__ import annotations

import jwt
import pytest

from tests.integration.partners.conftest import FARMER_ID, token_for

ELIGIBILITY = {"id_number": FARMER_ID, "amount": "1000", "term_months": 12, "purpose": "livestock"}


def claims_of(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


async def test_a_dci_client_with_an_area_gets_tokens_with_the_area_claim(partners):
    created = await partners.admin.post("/v1/partners/clients", json={
        "name": "Ganzhou civil affairs (DCI)", "scopes": ["dci"], "area": "360703"})
    assert created.status_code == 201, created.text
    client = created.json()
    assert client["scopes"] == ["dci"] and client["area"] == "360703" and client["client_secret"]
    listed = {c["client_id"]: c for c in (await partners.admin.get("/v1/partners/clients")).json()["items"]}
    assert listed[client["client_id"]]["area"] == "360703" and "client_secret" not in listed[client["client_id"]]
    assert listed[partners.bank_id]["area"] is None and listed[partners.insurer_id]["area"] is None

    token = await token_for(partners.admin, client["client_id"], client["client_secret"])
    assert claims_of(token)["area"] == "360703" and claims_of(token)["scope"] == "dci"
    principal = await partners.app.state.token_verifier.averify(token)
    assert principal.scopes == frozenset({"dci"}) and principal.area == "360703"
    assert principal.client_id == client["client_id"]
    assert not principal.sees_area("360782") and principal.sees_area("360703105")

    # a DCI token is no bank's or insurer's token
    async with partners.client(token) as dci:
        assert (await dci.post("/v1/credit/eligibility", json=ELIGIBILITY)).status_code == 403
        assert (await dci.get("/v1/settlements/roster")).status_code == 403
        assert (await dci.get("/v1/partners/whoami")).json()["scopes"] == ["dci"]
    # rotation keeps the area
    rotated = (await partners.admin.post(f"/v1/partners/clients/{client['client_id']}:rotate")).json()
    assert rotated["area"] == "360703"
    assert claims_of(await token_for(partners.admin, client["client_id"], rotated["client_secret"]))["area"] == "360703"


async def test_clients_without_an_area_get_no_area_claim_and_work_as_before(partners):
    bank_token = await token_for(partners.admin, partners.bank_id, partners.bank_secret)
    insurer_token = await token_for(partners.admin, partners.insurer_id, partners.insurer_secret)
    for token, scope in ((bank_token, "credit"), (insurer_token, "settlement")):
        claims = claims_of(token)
        assert "area" not in claims and claims["scope"] == scope
        principal = await partners.app.state.token_verifier.averify(token)
        assert principal.area is None and principal.scopes == frozenset({scope})
    eligibility = await partners.bank.post("/v1/credit/eligibility", json=ELIGIBILITY)
    assert eligibility.status_code == 200 and eligibility.json()["eligible"] is True
    assert (await partners.insurer.get("/v1/settlements/roster")).status_code == 200
    # a bank may hold dci too; a scope nobody knows is still refused
    both = await partners.admin.post("/v1/partners/clients", json={"name": "Bank + DCI", "scopes": ["credit", "dci"]})
    assert both.status_code == 201 and both.json()["scopes"] == ["credit", "dci"] and both.json()["area"] is None
    unknown = await partners.admin.post("/v1/partners/clients", json={"name": "x", "scopes": ["dci", "admin"]})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["loc"] == ["body", "scopes"]
    assert "credit, dci, settlement" in unknown.json()["detail"]


@pytest.mark.parametrize("area", ["3", "3607031050001", "36O703", "３６０７０３", "", "360703\n", 360703])
async def test_a_bad_area_is_a_422_problem(partners, area):
    before = len((await partners.admin.get("/v1/partners/clients")).json()["items"])
    answer = await partners.admin.post("/v1/partners/clients", json={"name": "x", "scopes": ["dci"], "area": area})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "https://jingzhun.dev/problems/validation"
    assert [e["loc"] for e in problem["errors"]] == [["body", "area"]]
    assert len((await partners.admin.get("/v1/partners/clients")).json()["items"]) == before


async def test_the_service_refuses_a_bad_area_too(partners):
    """The CLI creates clients through the service function, not the API: it checks the area itself."""
    from services.benefits.partners.service import create_client
    from shared.db import transaction
    from shared.problems import Problem

    with pytest.raises(Problem) as refused:
        async with transaction(partners.app.state.sessionmaker) as session:
            await create_client(session, "x", ["dci"], "36-07")
    assert refused.value.status == 422 and refused.value.extra["errors"][0]["loc"] == ["body", "area"]
    async with transaction(partners.app.state.sessionmaker) as session:
        created = await create_client(session, "Longmu township (DCI)", ["dci"], "360703105")
    assert created["area"] == "360703105"
