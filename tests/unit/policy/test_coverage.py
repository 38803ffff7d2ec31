"""Coverage: a region is `local` while one of its own packs is valid, else `national_only` naming the lapsed pack."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from services.benefits.engine import evaluate
from shared.policy import PackRegistry, PackSpec, default_registry
from shared.policy.coverage import coverage, coverage_of_pack, coverage_warning, lapsed_pack
from tests.helpers import EXAMPLES_DIR

NANKANG = "360703"
DEMO_DAY = dt.date(2020, 6, 30)
TODAY = dt.date(2026, 12, 3)


def registry_with(*extra: PackSpec, changed: dict[str, dict] | None = None) -> PackRegistry:
    base = default_registry()
    packs = {name: base.spec(name).model_copy(update=(changed or {}).get(name, {})) for name in base.names()}
    packs.update({spec.name: spec for spec in extra})
    return PackRegistry(packs)


@pytest.mark.parametrize(("region", "day", "expected"), [
    (NANKANG, DEMO_DAY, {"coverage": "local", "lapsed": None}),
    ("360703105201", DEMO_DAY, {"coverage": "local", "lapsed": None}),  # a village code is under its county
    (NANKANG, TODAY, {"coverage": "national_only",
                      "lapsed": {"pack": "nankang-2020", "valid_from": "2020-01-01", "valid_to": "2020-12-31"}}),
    # Shaoguan's pack ended in 2018: even the demo date is national-only there.
    ("440204", DEMO_DAY, {"coverage": "national_only",
                          "lapsed": {"pack": "shaoguan-2016", "valid_from": "2016-01-01", "valid_to": "2018-12-31"}}),
    ("110101", DEMO_DAY, {"coverage": "national_only", "lapsed": None}),  # never had a local pack
    ("", DEMO_DAY, {"coverage": "national_only", "lapsed": None}),
])
def test_coverage_of_the_shipped_packs(region, day, expected):
    assert coverage(default_registry(), region, day) == expected


def test_a_pack_not_yet_valid_is_named_with_its_start():
    # 2015: no Jiangxi pack is valid yet; the county's own pack (the most specific) starts in 2020.
    result = coverage(default_registry(), NANKANG, dt.date(2015, 6, 1))
    assert result == {"coverage": "national_only",
                      "lapsed": {"pack": "nankang-2020", "valid_from": "2020-01-01", "valid_to": "2020-12-31"}}
    assert "pack nankang-2020 starts on 2020-01-01" in coverage_warning(NANKANG, dt.date(2015, 6, 1), result["lapsed"])


def test_a_valid_provincial_pack_is_local_although_the_county_pack_lapsed():
    packs = registry_with(changed={"jiangxi-2018": {"valid_to": None}})
    assert coverage(packs, NANKANG, TODAY) == {"coverage": "local", "lapsed": None}
    assert packs.resolve(NANKANG, TODAY).pack == "jiangxi-2018"  # the same answer resolution gives


def test_of_two_lapsed_packs_of_the_region_the_latest_is_named():
    transition = PackSpec(name="nankang-2021", version="2021.1", region=NANKANG, valid_from=dt.date(2021, 1, 1),
                          valid_to=dt.date(2025, 12, 31), extends="nankang-2020")
    packs = registry_with(transition)
    assert coverage(packs, NANKANG, dt.date(2023, 5, 1)) == {"coverage": "local", "lapsed": None}
    assert coverage(packs, NANKANG, TODAY)["lapsed"] == {"pack": "nankang-2021", "valid_from": "2021-01-01",
                                                         "valid_to": "2025-12-31"}
    # Between two periods the nearer one is named: 2021-02 is 42 days after nankang-2020 ended.
    gap = registry_with(transition.model_copy(update={"valid_from": dt.date(2022, 1, 1)}))
    assert lapsed_pack(gap, NANKANG, dt.date(2021, 2, 11))["pack"] == "nankang-2020"


def test_coverage_of_a_stored_decision_follows_its_pack():
    packs = default_registry()
    assert coverage_of_pack(packs, "nankang-2020", NANKANG, TODAY) == {"coverage": "local", "lapsed": None}
    assert coverage_of_pack(packs, "cn-national", NANKANG, TODAY)["lapsed"]["pack"] == "nankang-2020"
    assert coverage_of_pack(packs, "cn-national", "110101", TODAY) == {"coverage": "national_only", "lapsed": None}
    # A pack published elsewhere that this registry does not know is not claimed to be national.
    assert coverage_of_pack(packs, "nankang-2026", NANKANG, TODAY) == {"coverage": "local", "lapsed": None}


def test_warning_names_region_date_pack_and_end_in_both_languages():
    lapsed = coverage(default_registry(), NANKANG, TODAY)["lapsed"]
    text = coverage_warning(NANKANG, TODAY, lapsed)
    assert "Region 360703 is evaluated national_only on 2026-12-03: pack nankang-2020 lapsed on 2020-12-31" in text
    assert "区域 360703" in text and "已于 2020-12-31 失效" in text
    assert "no local pack covers it" in coverage_warning("110101", TODAY, None)


def test_engine_evaluation_carries_coverage_and_the_drop_is_visible():
    example = json.loads((EXAMPLES_DIR / "nankang-farmer.json").read_text(encoding="utf-8"))
    demo = evaluate(example["household"], DEMO_DAY).to_json()
    today = evaluate(example["household"], TODAY).to_json()
    assert demo["as_of"] == "2020-06-30" and demo["policy"]["as_of"] == "2020-06-30"
    assert (demo["policy"]["pack"], demo["policy"]["coverage"], demo["policy"]["lapsed"]) == \
        ("nankang-2020", "local", None)
    assert (today["policy"]["pack"], today["policy"]["coverage"]) == ("cn-national", "national_only")
    assert today["policy"]["lapsed"] == {"pack": "nankang-2020", "valid_from": "2020-01-01", "valid_to": "2020-12-31"}
    assert (len(demo["entitlements"]), len(today["entitlements"])) == (15, 4)


def test_a_published_transition_pack_makes_the_region_local_from_its_effective_date():
    base = default_registry()
    transition = PackSpec(name="nankang-2021", version="2021.1", region=NANKANG, valid_from=dt.date(2021, 1, 1),
                          valid_to=dt.date(2025, 12, 31), extends="nankang-2020")
    published = base.with_publication(transition, dt.date(2023, 7, 1))
    assert coverage(published, NANKANG, dt.date(2023, 7, 1)) == {"coverage": "local", "lapsed": None}
    # Before its effective date the publication does not govern: 2023-06-30 is judged on the files alone.
    assert coverage(published, NANKANG, dt.date(2023, 6, 30))["lapsed"]["pack"] == "nankang-2020"
    assert coverage(published, NANKANG, TODAY)["lapsed"]["pack"] == "nankang-2021"
