"""The evaluation date is explicit: the launcher's startup lines and `/readyz` say which date and who set it."""
from __future__ import annotations

import datetime as dt

import pytest

from shared.clock import CHINA, describe_evaluation_date, evaluation_date, today_in_china
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings
from shared.launcher import LaunchConfig


@pytest.fixture(autouse=True)
def no_dates_in_the_environment(monkeypatch):
    for variable in ("JZ_BENEFITS_EVALUATION_DATE", "JZ_AUDIT_EVALUATION_DATE"):
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_the_demo_profile_line_names_the_date_and_the_variable():
    assert LaunchConfig().evaluation_date_lines() == [
        "evaluation date 2020-06-30 (demo profile: JZ_BENEFITS_EVALUATION_DATE), for benefits and audit; "
        "credit decisions expire counted from today"]


def test_a_date_set_by_the_operator_is_said_to_be_theirs(no_dates_in_the_environment):
    no_dates_in_the_environment.setenv("JZ_AUDIT_EVALUATION_DATE", "2021-03-31")
    assert LaunchConfig().evaluation_date_lines() == [
        "evaluation date 2020-06-30 (demo profile: JZ_BENEFITS_EVALUATION_DATE), for benefits",
        "evaluation date 2021-03-31 (set by JZ_AUDIT_EVALUATION_DATE), for audit"]


def test_without_a_fixed_date_the_line_says_today():
    assert LaunchConfig(evaluation_date=None).evaluation_date_lines()[0].startswith(
        "evaluation date: today in China (JZ_BENEFITS_EVALUATION_DATE unset)")


def test_evaluation_date_falls_back_to_today_in_china():
    assert today_in_china() == dt.datetime.now(CHINA).date()
    assert evaluation_date(BenefitsSettings(evaluation_date="2020-06-30")) == dt.date(2020, 6, 30)
    assert evaluation_date(BenefitsSettings()) == today_in_china()
    described = describe_evaluation_date(AuditSettings())
    assert described["configured"] is False and described["note"] == "today in China (UTC+8)"
    assert describe_evaluation_date(RegistrySettings()) is None  # the registry judges on no policy date
