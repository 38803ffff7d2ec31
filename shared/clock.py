"""China time and the evaluation date.

Two different days matter. The *evaluation date* is the policy date rules are applied on: a
configured one (the demo runs on 2020-06-30, set by the launcher) or else today in China. The
*real day* is when something actually happens: a decision made today expires counted from today,
whatever policy date it was judged on.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any

CHINA = timezone(timedelta(hours=8))


def china_now() -> datetime:
    return datetime.now(CHINA)


def today_in_china() -> date:
    return china_now().date()


def evaluation_date(settings: Any) -> date:
    """The configured ``evaluation_date`` of a service's settings, else today in China."""
    return getattr(settings, "evaluation_date", None) or today_in_china()


def evaluation_date_setting(settings: Any) -> str:
    """The environment variable that configures the service's evaluation date (JZ_<SERVICE>_EVALUATION_DATE)."""
    return f"{settings.model_config['env_prefix']}EVALUATION_DATE"


def describe_evaluation_date(settings: Any) -> dict[str, Any] | None:
    """What `/readyz` says about the evaluation date; None for a service without one."""
    if "evaluation_date" not in type(settings).model_fields:
        return None
    configured = settings.evaluation_date
    return {"date": evaluation_date(settings).isoformat(), "configured": configured is not None,
            "setting": evaluation_date_setting(settings),
            "note": (f"fixed by {evaluation_date_setting(settings)} (the demo profile sets 2020-06-30); real "
                     "decisions still expire counted from today" if configured is not None
                     else "today in China (UTC+8)")}
