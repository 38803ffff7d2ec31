"""Person-level categories (issue 11 item 2) and the single-person 低保 correction (001 L665-L667, L681).

Amounts computed by hand from the Nankang seed (001): 低保 A class 470 元/月·人 (L665), dispersed 特困 510,
concentrated 615 (L669), care fee 70 for a person able to care for themselves (L671).
"""
from __future__ import annotations

import copy

import pytest

from services.benefits.engine import evaluate
from shared.person_categories import derive_person_categories
from tests.unit.benefits.helpers import AS_OF, amount_of, base_household, person


def entitlements(household: dict, program: str) -> list:
    return [e for e in evaluate(household, AS_OF).entitlements if e.program == program]


def conditions(entitlement) -> dict[str, bool]:
    return {c.condition: c.passed for c in entitlement.explanation}


# --- rules pay per eligible person ----------------------------------------------------

def test_two_person_household_with_one_tekun_person_gets_one_entitlement():
    household = base_household(categories=["tekun_dispersed"],
                               members=[person(id="a", tekun="dispersed"), person(id="b")])
    found = entitlements(household, "safety_net.tekun")
    # 510 dispersed (L669) + 70 care fee, able to care for self (L671)
    assert [(e.person_id, e.eligible, str(e.amount)) for e in found] == [("a", True, "580.00")]


def test_tekun_pays_each_person_by_their_own_support_kind():
    household = base_household(categories=["tekun_dispersed", "tekun_concentrated"], members=[
        person(id="a", tekun="dispersed"), person(id="b", tekun="concentrated")])
    found = {e.person_id: str(e.amount) for e in entitlements(household, "safety_net.tekun")}
    assert found == {"a": "580.00", "b": "685.00"}  # 510 + 70; 615 + 70


def test_old_snapshot_one_member_tekun_household_pays_that_member():
    household = base_household(categories=["tekun_concentrated"], members=[person(id="a")])
    assert amount_of(household, "safety_net.tekun", "a") == "685.00"


def test_old_snapshot_several_members_and_no_tekun_person_is_not_paid_and_says_why():
    household = base_household(categories=["tekun_dispersed"], members=[person(id="a"), person(id="b")])
    [found] = entitlements(household, "safety_net.tekun")
    assert (found.person_id, found.eligible, str(found.amount)) == (None, False, "0.00")
    [condition] = found.explanation
    assert "特困人员未标注 / tekun person not identified" in condition.condition
    assert condition.value == ["a", "b"] and condition.passed is False


def test_a_deceased_tekun_person_is_not_paid():
    household = base_household(categories=["tekun_dispersed"], members=[
        person(id="a", tekun="dispersed", deceased=True), person(id="b")])
    assert [e.person_id for e in entitlements(household, "safety_net.tekun") if e.eligible] == []


@pytest.mark.parametrize(("flags", "expected", "covered"), [
    ([True, True, False], "940.00", ["a", "b"]),   # 2 x 470 (A1, L665)
    ([True, None, None], "470.00", ["a"]),          # flagged members only
    ([None, None, None], "1410.00", ["a", "b", "c"]),  # old snapshot: whole household (整户保障)
    ([None, False, None], "940.00", ["a", "c"]),
])
def test_dibao_counts_covered_persons(flags, expected, covered):
    household = base_household(categories=["dibao"], dibao_class="A1", members=[
        person(id=pid, dibao_covered=flag) for pid, flag in zip("abc", flags)])
    [found] = entitlements(household, "safety_net.dibao")
    assert str(found.amount) == expected
    assert [c.value for c in found.explanation if c.condition.startswith("covered members")] == [covered]


# --- single-person 低保 (001 L665-L667, L681) ----------------------------------------------

def disabled(**fields) -> dict:
    return person(id="b", birth_date="1960-01-01", labour_capacity="lost", **fields)


@pytest.mark.parametrize("member", [
    disabled(disability={"grade": 2, "kind": "physical"}),        # 一级、二级重度残疾人 (L681)
    disabled(disability={"grade": 3, "kind": "intellectual"}),    # 三级智力残疾人
    disabled(disability={"grade": 3, "kind": "mental"}),          # 三级精神残疾人
    disabled(health="serious_illness") | {"labour_capacity": "weak"},  # 重病患者, 部分丧失劳动能力
])
def test_single_person_dibao_001_L681_at_the_full_standard_of_L665_L667(member):
    """001 L681: 未脱贫建档立卡贫困户中…重度残疾人…重病患者等完全丧失劳动能力和部分丧失劳动能力的贫困人口
    (不含已与其他家庭成员共同纳入低保范围的), 经个人申请, 可单人户纳入农村低保; L665-L667: 按单人户申请低保
    …按照农村最低生活保障标准全额救助, 即470元/月·人. By hand: 1 person x 470 = 470.00 a month."""
    household = base_household(members=[person(id="a"), member])  # registered, not in 低保
    [found] = entitlements(household, "safety_net.dibao")
    assert (found.person_id, found.eligible, str(found.amount), found.unit) == ("b", True, "470.00", "month")
    assert found.source.model_dump() == {"seed": "001", "lines": "L665, L681"}


@pytest.mark.parametrize(("member", "status"), [
    (disabled(disability={"grade": 3, "kind": "physical"}), "registered"),  # grade 3 physical: not severe
    (disabled(disability={"grade": 1, "kind": "physical"}), "exited"),      # only not-yet-exited households
    (disabled(disability={"grade": 1, "kind": "physical"}, tekun="dispersed"), "registered"),  # 特困 instead
])
def test_single_person_dibao_population(member, status):
    household = base_household(status=status, exit_date="2019-12-01", members=[person(id="a"), member])
    assert entitlements(household, "safety_net.dibao") == []


def test_single_person_dibao_needs_lost_labour_capacity():
    member = disabled(disability={"grade": 1, "kind": "physical"}) | {"labour_capacity": "full"}
    [found] = entitlements(base_household(members=[person(id="a"), member]), "safety_net.dibao")
    assert found.eligible is False and str(found.amount) == "0.00"
    assert conditions(found)["fully or partly lost labour capacity (完全/部分丧失劳动能力)"] is False


def test_single_person_dibao_excludes_members_already_covered_with_the_family():
    """L681 (不含已与其他家庭成员共同纳入低保范围的贫困人口): covered with the family -> household 低保 only;
    a member the family's cover leaves out may still be covered alone."""
    household = base_household(categories=["dibao"], dibao_class="B", members=[
        person(id="a", dibao_covered=True), disabled(disability={"grade": 1, "kind": "visual"}, dibao_covered=True)])
    assert [(e.person_id, str(e.amount)) for e in entitlements(household, "safety_net.dibao")] == [(None, "700.00")]
    household["members"][1]["dibao_covered"] = False
    found = [(e.person_id, str(e.amount)) for e in entitlements(household, "safety_net.dibao")]
    assert found == [(None, "350.00"), ("b", "470.00")]


def test_an_approved_single_person_cover_is_paid_once_by_the_household_entitlement():
    """As the registry records it: the person covered, class A1 (L665: 单人户 … 全额救助, 即470元/月·人)."""
    household = base_household(categories=["dibao"], dibao_class="A1", members=[
        person(id="a", dibao_covered=False), disabled(disability={"grade": 1, "kind": "physical"}, dibao_covered=True)])
    assert [(e.person_id, str(e.amount)) for e in entitlements(household, "safety_net.dibao")] == [(None, "470.00")]


def test_single_person_dibao_only_where_the_pack_has_it():
    # Ganzhou (000) has no single-person 低保 text: the same member gets nothing there.
    household = base_household(region_code="360702", members=[
        person(id="a"), disabled(disability={"grade": 1, "kind": "physical"})])
    assert entitlements(household, "safety_net.dibao") == []


# --- citations name the lines holding the numbers ----------------------------------------

def test_tekun_and_disability_cite_the_lines_with_their_amounts():
    household = base_household(categories=["tekun_dispersed"], members=[
        person(id="a", tekun="dispersed", disability={"grade": 1, "kind": "physical"})])
    [tekun] = entitlements(household, "safety_net.tekun")
    [disability] = entitlements(household, "safety_net.disability")
    assert tekun.source.model_dump() == {"seed": "001", "lines": "L669-L671"}  # 510/615/915/943; care fee L671
    assert disability.source.model_dump() == {"seed": "001", "lines": "L673-L675"}  # 70 on L673; 60, 100, 600 L675


# --- the household list follows the persons (shared/person_categories.py) ------------------

def members(*flags: dict) -> list[dict]:
    return [{"id": f"p{i + 1}", "name": f"成员{i + 1}", **f} for i, f in enumerate(flags)]


def test_categories_follow_member_flags():
    body = {"categories": ["marginal"], "members": members({"tekun": "concentrated"}, {"dibao_covered": True},
                                                           {"tekun": "dispersed", "deceased": True})}
    assert derive_person_categories(body) == []
    assert body["categories"] == ["marginal", "dibao", "tekun_concentrated"]


def test_a_new_household_tekun_category_flags_the_only_living_member():
    body = {"categories": ["tekun_dispersed"], "members": members({}, {"deceased": True})}
    assert derive_person_categories(body) == []
    assert body["members"][0]["tekun"] == "dispersed" and body["members"][1].get("tekun") is None


def test_a_new_household_tekun_category_with_several_members_is_refused_naming_them():
    body = {"categories": ["tekun_dispersed"], "members": members({}, {})}
    [error] = derive_person_categories(body)
    assert error["loc"] == ["body", "categories"]
    assert "p1 成员1, p2 成员2" in error["msg_zh"] and "p1 成员1, p2 成员2" in error["msg_en"]
    assert "特困" in error["msg"] and "flag" in error["msg"]


def test_a_new_household_dibao_covers_the_whole_household_unless_every_member_says_no():
    body = {"categories": ["dibao"], "members": members({}, {"dibao_covered": False}, {})}
    assert derive_person_categories(body) == []
    assert [m["dibao_covered"] for m in body["members"]] == [True, False, True]
    refused = {"categories": ["dibao"], "members": members({"dibao_covered": False})}
    [error] = derive_person_categories(refused)
    assert "低保" in error["msg_zh"] and "no living member is covered" in error["msg_en"]


def test_stored_categories_are_kept_for_old_snapshots_and_dropped_once_no_member_carries_them():
    old = {"categories": ["tekun_dispersed"], "members": members({}, {})}
    again = copy.deepcopy(old)
    assert derive_person_categories(again, before=old) == [] and again["categories"] == ["tekun_dispersed"]
    carried = {"categories": ["tekun_dispersed"], "members": members({"tekun": "dispersed"}, {})}
    unflagged = {"categories": ["tekun_dispersed"], "members": members({}, {})}
    assert derive_person_categories(unflagged, before=carried) == [] and unflagged["categories"] == []


def test_removing_a_category_a_member_still_carries_is_refused():
    carried = {"categories": ["tekun_dispersed"], "members": members({"tekun": "dispersed"})}
    body = {"categories": [], "members": members({"tekun": "dispersed"})}
    [error] = derive_person_categories(body, before=carried)
    assert "p1 成员1" in error["msg_en"] and "change the members' flags" in error["msg_en"]


# --- one-stop settlement judges the patient, not the household ------------------------

@pytest.mark.parametrize("patient, expected", [("a", (False, True)), ("b", (True, False)), ("c", (False, False))])
def test_a_settlement_patient_is_tekun_or_dibao_only_in_person(patient, expected):
    """Before this, every member of a household with a 特困 category was settled as a 特困 person."""
    from services.benefits.rules.common import RuleContext
    from services.benefits.rules.safety_net import patient_safety_net
    from shared.policy import resolve_pack
    from shared.snapshot import Household
    household = Household.model_validate(base_household(
        categories=["tekun_dispersed", "dibao"], dibao_class="A1",
        members=[person(id="a", tekun="dispersed"), person(id="b", dibao_covered=True),
                 person(id="c", dibao_covered=False)]))
    ctx = RuleContext(household, resolve_pack(household.region_code, AS_OF), AS_OF)
    assert patient_safety_net(ctx, patient) == expected


def test_shaoguan_dibao_cites_the_class_shares_of_002_L61():
    """The Shaoguan 低保 had ``source: null``: its amount is a class share (002 L61) of the standard."""
    household = base_household(
        region_code="440203", categories=["dibao"], dibao_class="B", income={"year": 2017, "per_capita_net": "2000.00"},
        village={"code": "440203001201", "name": "村", "township_code": "440203001", "township_name": "镇",
                 "is_poor_village": False, "is_deep_poverty_village": False},
        members=[person(id="a", dibao_covered=True)])
    import datetime as dt
    [found] = [e for e in evaluate(household, dt.date(2018, 6, 30)).entitlements if e.program == "safety_net.dibao"]
    assert found.eligible and str(found.amount) == "360.00"  # class 2: 0.90 x 400
    assert found.source is not None and (found.source.seed, found.source.lines) == ("002", "L61")
