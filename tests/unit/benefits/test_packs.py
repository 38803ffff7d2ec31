from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from shared.policy import POLICIES_DIR, PolicyPackError, describe_pack, list_packs, load_packs, resolve_pack

ALL_PACKS = {"cn-national", "jiangxi-2018", "ganzhou-2016", "nankang-2020", "shaoguan-2016", "qinzhou-2016"}


def copy_packs(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(POLICIES_DIR, folder)
    return folder


def test_all_packs_load():
    assert {pack["name"] for pack in list_packs()} == ALL_PACKS


@pytest.mark.parametrize(("region", "day", "pack"), [
    ("360703", dt.date(2020, 6, 30), "nankang-2020"),
    ("360703", dt.date(2019, 6, 30), "ganzhou-2016"),  # Nankang 2020 not yet valid
    ("360702", dt.date(2020, 6, 30), "ganzhou-2016"),
    ("360102", dt.date(2019, 1, 1), "jiangxi-2018"),
    ("360102", dt.date(2017, 1, 1), "cn-national"),  # Jiangxi pack starts 2018
    ("440203", dt.date(2017, 5, 1), "shaoguan-2016"),
    ("440203", dt.date(2019, 5, 1), "cn-national"),  # Shaoguan plan ended 2018
    ("450702", dt.date(2018, 5, 1), "qinzhou-2016"),
    ("110101", dt.date(2018, 5, 1), "cn-national"),
])
def test_resolution_picks_most_specific_valid_pack(region, day, pack):
    assert resolve_pack(region, day).pack == pack


def test_parameter_origin_and_source():
    policy = resolve_pack("360703", dt.date(2020, 6, 30))
    assert policy.chain == ["nankang-2020", "ganzhou-2016", "jiangxi-2018", "cn-national"]
    assert policy.origin("crop_livestock.household_cap") == "nankang-2020"
    assert policy.param("crop_livestock.household_cap") == Decimal(8000)
    assert policy.source("crop_livestock.household_cap") == {"seed": "001", "lines": "L236"}
    assert policy.origin("chronic_outpatient.annual_cap") == "ganzhou-2016"
    assert policy.origin("one_stop.target_ratio") == "nankang-2020"  # overrides Jiangxi's
    assert policy.origin("poverty_line") == "cn-national"
    assert policy.source("poverty_line") is None  # a documented default, not in the seeds
    assert policy.enabled("industry.crop_livestock") and policy.enabled("health.chronic_outpatient")
    assert not resolve_pack("360702", dt.date(2020, 6, 30)).enabled("industry.crop_livestock")


def test_describe_pack_reports_origin():
    described = describe_pack("nankang-2020")
    assert described["parameters"]["dibao.class_monthly"]["value"]["A1"] == "470"
    assert described["parameters"]["post_exit_policy_until"]["origin"] == "ganzhou-2016"
    assert described["parameters"]["poverty_line"]["default_not_in_seeds"] is True


def test_targets_present():
    shaoguan = load_packs().spec("shaoguan-2016")
    assert shaoguan.targets["exit_people"] == {2016: 30000, 2017: 35500, 2018: 30000}


def test_no_float_reaches_rules():
    policy = resolve_pack("360703", dt.date(2020, 6, 30))
    assert isinstance(policy.param("one_stop.critical_illness_ratio"), Decimal)


def test_broken_yaml_names_file_and_line(tmp_path):
    folder = copy_packs(tmp_path)
    (folder / "nankang-2020.yaml").write_text("name: nankang-2020\nparameters: [unclosed\n", encoding="utf-8")
    with pytest.raises(PolicyPackError) as error:
        load_packs(folder)
    assert "nankang-2020.yaml" in str(error.value) and "line" in str(error.value)


def test_invalid_parameter_names_file_and_key(tmp_path):
    folder = copy_packs(tmp_path)
    path = folder / "ganzhou-2016.yaml"
    text = path.read_text(encoding="utf-8").replace(
        "  chronic_outpatient.annual_cap:\n    value: 4000\n    source: {seed: \"000\", lines: \"L229\"}\n",
        "  chronic_outpatient.annual_cap:\n    value: 4000\n")
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyPackError) as error:
        load_packs(folder)
    message = str(error.value)
    assert "ganzhou-2016.yaml" in message and "parameters.chronic_outpatient.annual_cap" in message
    assert "source" in message


@pytest.mark.parametrize(("old", "new", "key"), [
    ("extends: ganzhou-2016", "extends: nowhere-2020", "extends"),
    ("  - industry.crop_livestock\n", "  - industry.crop_livestok\n", "programs"),
    ("valid_from: 2020-01-01", "valid_from: someday", "valid_from"),
    ("region: \"360703\"", "region: \"36x\"", "region"),
    ("name: nankang-2020", "name: nankang-2021", "name"),
])
def test_invalid_pack_errors_name_the_key(tmp_path, old, new, key):
    folder = copy_packs(tmp_path)
    path = folder / "nankang-2020.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    with pytest.raises(PolicyPackError) as error:
        load_packs(folder)
    assert "nankang-2020.yaml" in str(error.value)
    assert error.value.key.startswith(key)


def test_unknown_field_rejected(tmp_path):
    folder = copy_packs(tmp_path)
    path = folder / "qinzhou-2016.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "\nbogus: 1\n", encoding="utf-8")
    with pytest.raises(PolicyPackError, match="qinzhou-2016.yaml: key 'bogus'"):
        load_packs(folder)


def test_cycle_detected(tmp_path):
    folder = copy_packs(tmp_path)
    path = folder / "cn-national.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("extends: null", "extends: nankang-2020"), encoding="utf-8")
    with pytest.raises(PolicyPackError, match="cycle"):
        load_packs(folder)
