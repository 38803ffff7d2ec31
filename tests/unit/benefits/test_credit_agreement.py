"""The bank's answer and the office's `credit.microloan` come from one decision, for every status.

Before, the entitlement counted any exited household (monitored or not, window open or closed) as
eligible for 50,000 while the bank refused the same household `exited_household_new_loan`.
"""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from services.benefits.credit.purposes import BY_CODE, CODES, PURPOSES, canonical_purpose, purpose_key
from services.benefits.credit.service import decide
from services.benefits.engine import evaluate
from shared.policy import resolve_pack
from services.benefits.partners.lookup import FoundPerson
from services.benefits.rules.credit import LoanRequest

from .helpers import base_household

AS_OF = dt.date(2020, 6, 30)

# (name, region, household overrides): every status the registry knows, in two packs.
STATUSES = [
    ("registered", "360703", {"status": "registered"}),
    ("registered_no_labour", "360703", {"status": "registered",
                                         "members": [{"id": "a", "birth_date": "1940-01-01", "labour_capacity": "lost"}]}),
    ("returned", "360703", {"status": "returned", "exit_date": "2018-12-01"}),
    ("exited_nankang_window_open", "360703", {"status": "exited", "exit_date": "2019-12-20"}),
    ("monitored_exited_nankang", "360703", {"status": "monitored", "exit_date": "2019-12-20"}),
    ("monitored_marginal", "360703", {"status": "monitored", "categories": ["marginal"]}),
    ("candidate", "360703", {"status": "candidate"}),
    ("candidate_marginal", "360703", {"status": "candidate", "categories": ["marginal"]}),
    ("removed", "360703", {"status": "removed"}),
    ("registered_qinzhou", "450702", {"status": "registered"}),
    ("exited_qinzhou_within_window", "450702", {"status": "exited", "exit_date": "2019-03-01"}),
    ("exited_qinzhou_after_window", "450702", {"status": "exited", "exit_date": "2017-03-01"}),
    ("monitored_exited_qinzhou_after_window", "450702", {"status": "monitored", "exit_date": "2017-03-01"}),
]


def found_for(snapshot: dict) -> FoundPerson:
    return FoundPerson(snapshot["id"], snapshot["members"][0]["id"], snapshot, snapshot["members"][0])


@pytest.mark.parametrize(("name", "region", "overrides"), STATUSES, ids=[s[0] for s in STATUSES])
def test_bank_answer_and_entitlement_agree(name, region, overrides):
    snapshot = base_household(region_code=region, **overrides)
    policy = resolve_pack(region, AS_OF)
    ceiling = policy.param("credit.county_paid_max_amount", None) or policy.param("credit.max_amount")
    entitlement = evaluate(snapshot, AS_OF).entitlement("credit.microloan")
    bank = decide(found_for(snapshot), LoanRequest(Decimal(ceiling), int(policy.param("credit.max_term_months")),
                                                   "livestock"), "new", AS_OF)
    office_eligible = entitlement is not None and entitlement.eligible
    assert office_eligible is bank.eligible, (name, bank.reasons, entitlement)
    assert (entitlement.amount if entitlement else Decimal("0.00")) == bank.max_amount
    if entitlement is not None and not entitlement.eligible:
        failed = [c.condition for c in entitlement.explanation if not c.passed]
        assert failed and bank.reasons  # the office sees why, the bank gets the codes
    if entitlement is None:
        assert bank.reasons == ["not_registered"]


def test_monitored_exited_household_is_refused_a_new_loan_in_both_views():
    snapshot = base_household(status="monitored", exit_date="2019-12-20")
    entitlement = evaluate(snapshot, AS_OF).entitlement("credit.microloan")
    assert entitlement.eligible is False and entitlement.amount == Decimal("0.00")
    failed = [c.condition for c in entitlement.explanation if not c.passed]
    assert failed == ["a new loan: exited households only extend or renew (001 L733)"]
    bank = decide(found_for(snapshot), LoanRequest(Decimal(50000), 36, "livestock"), "new", AS_OF)
    assert bank.reasons == ["exited_household_new_loan"] and bank.max_amount == Decimal("0.00")
    renewal = decide(found_for(snapshot), LoanRequest(Decimal(50000), 36, "livestock"), "renewal", AS_OF)
    assert renewal.eligible and renewal.max_amount == Decimal("50000.00")


@pytest.mark.parametrize(("wording", "code"), [
    ("婚嫁", "wedding"), ("结婚", "wedding"), ("Wedding", "wedding"), ("WEDDING", "wedding"), ("Ｗｅｄｄｉｎｇ", "wedding"),
    ("建房", "house_building"), ("盖房", "house_building"), ("house building", "house_building"),
    ("House-Building", "house_building"), ("house_building", "house_building"), ("理财", "investment_products"),
    ("家电", "household_goods"), ("养猪", "livestock"), ("livestock", "livestock"), ("畜禽养殖", "livestock"),
    ("Livestock and poultry", "livestock"), ("养 鱼", "aquaculture"), ("e-commerce", "processing_and_sales"),
    ("委托经营", "cooperative_operation"), ("油茶", "fruit_and_forestry"),
])
def test_purpose_wordings_name_one_code(wording, code):
    assert canonical_purpose(wording) == code


@pytest.mark.parametrize("wording", ["xyz", "", "   ", "婚", "house", "for my business maybe"])
def test_unknown_purpose_names_no_code(wording):
    assert canonical_purpose(wording) is None


def test_vocabulary_is_unambiguous_and_covers_the_packs_refusals():
    keys: dict[str, str] = {}
    for purpose in PURPOSES:
        for word in (purpose.code, purpose.label_zh, purpose.label_en, *purpose.synonyms):
            assert keys.setdefault(purpose_key(word), purpose.code) == purpose.code, word
    for region in ("", "360703", "450702", "4402"):
        excluded = resolve_pack(region, AS_OF).param("credit.excluded_purposes")
        assert set(excluded) <= set(CODES)
    national = set(resolve_pack("", AS_OF).param("credit.excluded_purposes"))
    assert national == {p.code for p in PURPOSES if not p.productive}  # 001 L747
    assert all(BY_CODE[code].source for code in CODES)
