"""One-stop settlement invariants for every bill (hypothesis): what the insurer endpoint relies on."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings, strategies as st

from shared.policy import resolve_pack
from services.benefits.rules.health import HospitalBill, PersonContext, one_stop_settlement

NANKANG = resolve_pack("360703", dt.date(2020, 6, 30))
JIANGXI_OTHER = resolve_pack("360102", dt.date(2020, 6, 30))
PACKS = st.sampled_from([NANKANG, JIANGXI_OTHER])

fen = st.integers(min_value=0, max_value=500_000_00).map(lambda n: Decimal(n) / 100)


@st.composite
def bills(draw):
    total = draw(fen)
    in_policy = draw(st.integers(min_value=0, max_value=int(total * 100))) / Decimal(100)
    return HospitalBill(hospital_level=draw(st.sampled_from([1, 2, 3])), in_district=draw(st.booleans()),
                        total_cost=total, in_policy_cost=in_policy)


@settings(max_examples=400, deadline=None)
@given(bill=bills(), ytd=fen, registered=st.booleans(), policy=PACKS)
def test_layers_plus_patient_share_is_total_and_nothing_negative(bill, ytd, registered, policy):
    result = one_stop_settlement(bill, PersonContext(registered=registered), policy, ytd)
    assert sum((layer.amount for layer in result.layers), Decimal(0)) + result.patient_pays == bill.total_cost
    assert all(layer.amount >= 0 for layer in result.layers)
    assert result.patient_pays >= 0
    assert all(layer.amount == layer.amount.quantize(Decimal("0.01")) for layer in result.layers)


@settings(max_examples=400, deadline=None)
@given(bill=bills(), ytd=fen, policy=PACKS)
def test_registered_poor_in_district_pay_at_most_ten_percent(bill, ytd, policy):
    bill = bill.model_copy(update={"in_district": True})
    result = one_stop_settlement(bill, PersonContext(registered=True), policy, ytd)
    assert result.eligible
    assert result.patient_pays <= bill.total_cost * Decimal("0.10")
    assert result.year_to_date_out_of_pocket == ytd + result.patient_pays


@settings(max_examples=200, deadline=None)
@given(stays=st.lists(bills(), min_size=1, max_size=6))
def test_year_to_date_across_stays_never_pays_relief_twice(stays):
    """Settling stays one after another: relief above 10,000 is 50% of the year's excess, at most."""
    ytd = Decimal(0)
    relief_total = Decimal(0)
    before_relief_total = Decimal(0)
    for bill in stays:
        bill = bill.model_copy(update={"in_district": True})
        result = one_stop_settlement(bill, PersonContext(registered=True), NANKANG, ytd)
        relief = next(layer.amount for layer in result.layers if layer.name == "high_out_of_pocket_relief")
        relief_total += relief
        before_relief_total += result.patient_pays + relief
        ytd = result.year_to_date_out_of_pocket
    excess = max(before_relief_total - Decimal(10000), Decimal(0))
    assert relief_total <= (excess * Decimal("0.5")).quantize(Decimal("0.01")) + Decimal("0.01") * len(stays)
