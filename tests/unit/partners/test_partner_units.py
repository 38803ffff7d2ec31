"""Pure parts of the partner APIs: token bucket, secret hashing, subsidy days, COVID window."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest

from services.benefits.credit.service import _add_months, _eligible_on, _periods, subsidised_until
from services.benefits.partners.lookup import person_rows, roster_relevant
from services.benefits.partners.ratelimit import TokenBuckets
from services.benefits.partners.secrets import hash_secret, verify_secret
from services.benefits.rules.credit import interest_subsidy
from tests.helpers import example


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_burst_then_refill_and_retry_after():
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=2, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = buckets.take("a")
    assert wait == pytest.approx(0.5)
    assert TokenBuckets.retry_after_header(wait) == "1"
    assert buckets.take("b") == 0.0  # per client
    clock.now = 0.5
    assert buckets.take("a") == 0.0
    clock.now = 100
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # never more than the burst


def test_secret_hash_is_salted_and_verifies():
    first, second = hash_secret("s3cret"), hash_secret("s3cret")
    assert first != second and "s3cret" not in first
    assert verify_secret("s3cret", first) and not verify_secret("other", first)
    assert not verify_secret("s3cret", None) and not verify_secret("s3cret", "garbage")


@dataclass
class Status:
    status: str
    exit_date: dt.date | None
    categories: list
    effective_on: dt.date | None


def test_eligible_on_follows_status_history_and_post_exit_window():
    history = [Status("registered", None, [], None),
               Status("exited", dt.date(2018, 5, 15), [], dt.date(2018, 5, 15))]
    # Qinzhou keeps policies two years after exit (003 L387).
    assert _eligible_on(dt.date(2018, 1, 1), history, "450702")
    assert _eligible_on(dt.date(2020, 5, 14), history, "450702")
    assert not _eligible_on(dt.date(2020, 5, 15), history, "450702")
    marginal = [Status("monitored", None, ["marginal"], None)]
    assert not _eligible_on(dt.date(2020, 1, 1), marginal, "450702")
    assert not _eligible_on(dt.date(2020, 1, 1), [], "450702")


def test_periods_merge_consecutive_days():
    days = [dt.date(2020, 1, d) for d in (1, 2, 3, 7, 8)]
    assert _periods(days) == [(dt.date(2020, 1, 1), dt.date(2020, 1, 3)), (dt.date(2020, 1, 7), dt.date(2020, 1, 8))]


def test_subsidy_across_a_quarter_boundary_splits_by_day():
    schedule = [(dt.date(2019, 12, 15), Decimal("40000"))]
    rate = Decimal("0.0475")
    q4 = interest_subsidy(schedule, rate, (2019, 4))
    q1 = interest_subsidy(schedule, rate, (2020, 1))
    assert q4 == (Decimal(40000) * rate / 360 * 17).quantize(Decimal("0.01"))  # 15-31 December
    assert q1 == (Decimal(40000) * rate / 360 * 91).quantize(Decimal("0.01"))  # leap-year Q1


@dataclass
class Loan:
    due_on: dt.date
    extended_to: dt.date | None
    covid_extension: bool
    region_code: str = "360703"


@pytest.mark.parametrize("loan, last", [
    (Loan(dt.date(2020, 5, 1), None, False), dt.date(2020, 4, 30)),
    (Loan(dt.date(2020, 5, 1), dt.date(2020, 8, 1), False), dt.date(2020, 4, 30)),  # plain extension: no subsidy
    (Loan(dt.date(2020, 5, 1), dt.date(2020, 8, 1), True), dt.date(2020, 7, 31)),
    (Loan(dt.date(2020, 5, 1), dt.date(2021, 5, 1), True), dt.date(2020, 10, 31)),  # capped at 6 months
])
def test_subsidised_until(loan, last):
    assert subsidised_until(loan) == last


def test_add_months_clamps_month_end():
    assert _add_months(dt.date(2020, 8, 31), 6) == dt.date(2021, 2, 28)


def test_person_rows_hold_no_clear_id_number():
    snapshot = example("nankang-farmer")["household"]
    rows = person_rows(snapshot)
    assert len(rows) == len(snapshot["members"])
    text = repr(rows)
    for member in snapshot["members"]:
        assert member["id_number"] not in text
    assert all(roster_relevant(row) for row in rows)
    assert not roster_relevant({**rows[0], "status": "candidate"})
