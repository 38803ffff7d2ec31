"""Insurer endpoints on SQLite and PostgreSQL: one-stop settlement, idempotency, roster, records."""
from __future__ import annotations

import asyncio
from decimal import Decimal

from tests.integration.partners.conftest import ELDERLY_ID, FARMER_ID, UNKNOWN_ID, household, store

BILL = {"admission_date": "2020-05-01", "discharge_date": "2020-05-10", "hospital_level": 2, "in_district": True,
        "total_cost": "20000.00", "in_policy_cost": "18000.00"}


def layer_sum(result: dict) -> Decimal:
    return sum((Decimal(layer["amount"]) for layer in result["layers"]), Decimal(0))


async def settle(insurer, claim_id: str | None, **changes):
    body = {"id_number": FARMER_ID, **BILL, **changes}
    if claim_id:
        body["claim_id"] = claim_id
    response = await insurer.post("/v1/settlements/one-stop", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def test_one_stop_nankang_worked_example(partners):
    result = await settle(partners.insurer, "INS-1")
    assert result["eligible"] is True
    layers = {layer["name"]: layer["amount"] for layer in result["layers"]}
    assert layers["basic_medical_insurance"] == "14400.00"
    assert result["patient_pays"] == "2000.00" and result["effective_ratio"] == "0.9000"
    assert layer_sum(result) + Decimal(result["patient_pays"]) == Decimal("20000.00")
    assert result["year_to_date_out_of_pocket"] == "2000.00"
    assert result["id_number"] == "360782********0018"
    events = await partners.outbox_payloads()
    decided = [e for e in events if e["type"] == "settlement.decided"]
    assert len(decided) == 1 and decided[0]["topic"] == "jz.benefits.v1"
    assert decided[0]["data"]["settlement_id"] == result["settlement_id"]
    access = [e for e in events if e["type"] == "partner.access"]
    assert access[-1]["data"]["decision_id"] == result["settlement_id"]


async def test_resend_returns_the_same_result_and_counts_once(partners):
    first = await settle(partners.insurer, "INS-2", total_cost="100000", in_policy_cost="100000", hospital_level=3)
    again = await settle(partners.insurer, "INS-2", total_cost="100000", in_policy_cost="100000", hospital_level=3)
    assert {k: v for k, v in again.items() if k != "replayed"} == {k: v for k, v in first.items() if k != "replayed"}
    assert again["replayed"] is True
    # A second stay sees the first stay's out-of-pocket exactly once.
    second = await settle(partners.insurer, "INS-3", admission_date="2020-06-01", discharge_date="2020-06-05",
                          total_cost="100000", in_policy_cost="100000", hospital_level=3)
    assert Decimal(second["year_to_date_out_of_pocket"]) == (Decimal(first["year_to_date_out_of_pocket"])
                                                             + Decimal(second["patient_pays"]))
    records = (await partners.insurer.get("/v1/settlements")).json()
    assert [r["claim_id"] for r in records["items"]] == ["INS-2", "INS-3"]
    reused = await partners.insurer.post("/v1/settlements/one-stop",
                                         json={"id_number": FARMER_ID, **BILL, "claim_id": "INS-2"})
    assert reused.status_code == 409


async def test_identical_resend_without_claim_id_is_recognised(partners):
    first = await settle(partners.insurer, None)
    again = await settle(partners.insurer, None)
    assert again["settlement_id"] == first["settlement_id"] and again["replayed"]


async def test_concurrent_resends_settle_once(partners):
    results = await asyncio.gather(*(settle(partners.insurer, "INS-C", total_cost="50000", in_policy_cost="50000")
                                     for _ in range(5)), return_exceptions=True)
    ok = [r for r in results if isinstance(r, dict)]
    assert ok and len({r["settlement_id"] for r in ok}) == 1
    records = (await partners.insurer.get("/v1/settlements")).json()["items"]
    assert len(records) == 1


async def test_not_covered_people_get_only_basic_information(partners):
    unknown = await settle(partners.insurer, "INS-U", id_number=UNKNOWN_ID)
    assert unknown["eligible"] is False and unknown["layers"] == [] and unknown["reasons"] == ["not_covered"]
    assert unknown["year_to_date_out_of_pocket"] is None and unknown["patient_pays"] == "20000.00"
    outside = await settle(partners.insurer, "INS-O", in_district=False)
    assert outside["eligible"] is False and outside["layers"] == []


async def test_roster_lists_covered_people_and_changes_since_cursor(partners):
    first = (await partners.insurer.get("/v1/settlements/roster")).json()
    masked = {item["id_number"] for item in first["items"]}
    assert "360782********0018" in masked and "360782********0013" in masked
    assert all(item["covered"] and item["category"] == "registered" for item in first["items"])
    assert not any(ch.isdigit() for item in first["items"] for ch in item["id_number"][6:14])
    cursor = first["next_cursor"]
    nothing = (await partners.insurer.get("/v1/settlements/roster", params={"cursor": cursor})).json()
    assert nothing["items"] == []
    # The elderly household is removed: its two people show up as no longer covered.
    from tests.helpers import example
    removed = {**example("nankang-dibao-elderly")["household"], "status": "removed", "version": 99}
    await store(partners.app, removed)
    changes = (await partners.insurer.get("/v1/settlements/roster", params={"cursor": cursor})).json()
    assert {(i["id_number"], i["covered"]) for i in changes["items"]} == {
        ("360782********0013", False), ("360782********0021", False)}
    # A newly registered household appears.
    await store(partners.app, household("hh-new", numbers=["360782199001010011", "360782199202020021",
                                                           "360782201501010019", "360782201602020029"]))
    later = (await partners.insurer.get("/v1/settlements/roster", params={"cursor": changes["next_cursor"]})).json()
    assert len(later["items"]) == 4 and all(i["covered"] for i in later["items"])
    assert ELDERLY_ID not in str(later)


async def test_a_stay_before_every_policy_pack_is_not_covered(partners):
    """Found by the API fuzzer in CI: a 2010 admission asked for a pack that does not exist and answered
    500. Before the national pack (2014) there was no programme, so the stay is simply not covered."""
    result = await settle(partners.insurer, "INS-2010", admission_date="2010-01-01", discharge_date="2010-01-05")
    assert result["eligible"] is False and result["reasons"] == ["not_covered"]
    assert Decimal(result["patient_pays"]) == Decimal("20000.00")


async def test_a_settlement_does_not_wait_for_the_sequence_row(partners):
    """Issue 15: every one-stop used to lock the ``settlements`` sequence row until its commit, so the
    province's settlements went one at a time. Now the feed position is given after commit: a settlement
    completes while another transaction holds that row."""
    from sqlalchemy import select

    from services.benefits.partners.tables import partner_sequences
    async with partners.app.state.sessionmaker() as holder:
        async with holder.begin():
            query = select(partner_sequences.c.value).where(partner_sequences.c.name == "settlements")
            if holder.bind.dialect.name == "postgresql":
                query = query.with_for_update()
            await holder.execute(query)
            result = await asyncio.wait_for(settle(partners.insurer, "INS-NOWAIT"), timeout=20)
    assert result["eligible"] is True
    records = (await partners.insurer.get("/v1/settlements")).json()["items"]
    assert [(r["claim_id"], r["seq"]) for r in records] == [("INS-NOWAIT", 1)]


async def test_the_records_feed_never_skips_a_settlement_committed_while_it_is_read(partners):
    """Writers and a cursor-following reader at once: the reader ends with every settlement exactly once,
    and the positions are 1..N without a gap (a position is given only to committed rows, in turns)."""
    seen: list[dict] = []
    cursor: str | None = None
    writing = True

    async def read_feed() -> None:
        nonlocal cursor
        while True:
            params = {"limit": 7} | ({"cursor": cursor} if cursor else {})
            page = await partners.insurer.get("/v1/settlements", params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            seen.extend(body["items"])
            cursor = body["next_cursor"] or cursor
            if not writing and not body["more"] and not body["items"]:
                return
            await asyncio.sleep(0)

    async def write(index: int) -> None:
        await settle(partners.insurer, f"INS-F{index}", admission_date="2020-07-01", discharge_date="2020-07-02",
                     total_cost=str(100 + index), in_policy_cost="50")

    reader = asyncio.create_task(read_feed())
    for start in range(0, 60, 12):
        await asyncio.gather(*(write(index) for index in range(start, start + 12)))
    writing = False
    await asyncio.wait_for(reader, timeout=60)
    assert sorted(r["claim_id"] for r in seen) == sorted(f"INS-F{i}" for i in range(60))
    assert [r["seq"] for r in seen] == list(range(1, 61))


async def test_a_year_to_date_total_past_its_column_is_422_and_settles_nothing(partners):
    """Each bill is within range, a person's year-to-date out-of-pocket may not be: NUMERIC(14, 2) would
    overflow on PostgreSQL (a 500) at the update. Refused before any write."""
    import datetime as dt

    from sqlalchemy import insert, select

    from services.benefits.partners.lookup import id_hash
    from services.benefits.partners.tables import settlement_ytd, settlements
    from shared.db import transaction
    async with transaction(partners.app.state.sessionmaker) as session:
        await session.execute(insert(settlement_ytd).values(
            id_hash=id_hash(FARMER_ID), year=2020, out_of_pocket=Decimal("999999999000.00"), stays=40,
            updated_at=dt.datetime.now(dt.timezone.utc)))
    response = await partners.insurer.post("/v1/settlements/one-stop", json={
        "id_number": FARMER_ID, **BILL, "claim_id": "INS-YTD"})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["loc"] == ["body", "total_cost"]
    async with partners.app.state.sessionmaker() as session:
        assert (await session.execute(select(settlements.c.claim_id))).all() == []
        stays = await session.scalar(select(settlement_ytd.c.stays).where(settlement_ytd.c.year == 2020))
    assert stays == 40
