"""Area scoping and small helpers shared by the supervision queries."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import or_

from shared.auth import Principal
from shared.clock import today_in_china  # noqa: F401 - supervision modules import it from here
from shared.problems import Problem

CHINA = timezone(timedelta(hours=8))


def effective_area(principal: Principal, requested: str | None) -> str | None:
    """The area prefix a query runs under: the caller's own area, or a narrower one inside it."""
    if requested is not None and not requested.isdigit():
        raise Problem(422, "Invalid area", "area is an administrative code prefix (digits).",
                      type_="https://jingzhun.dev/problems/validation",
                      errors=[{"loc": ["query", "area"], "msg": "digits only"}])
    if principal.area is None or principal.is_admin:
        return requested or None
    if requested is None or requested.startswith(principal.area):
        return requested or principal.area
    raise Problem(403, "Outside your area", f"Your token is limited to area {principal.area}.",
                  type_="https://jingzhun.dev/problems/forbidden")


def in_area(table, area: str | None):
    """Rows whose village code (or, without one, region code) lies under the prefix."""
    if not area:
        return None
    return or_(table.c.village_code.startswith(area, autoescape=True),
               table.c.village_code.is_(None) & table.c.region_code.startswith(area, autoescape=True))


def default_as_of(settings) -> date:
    """The evaluation date a supervision query judges on when the caller gives none: the configured
    ``evaluation_date`` (the demo's 2020-06-30 under the launcher), else today in China."""
    return getattr(settings, "evaluation_date", None) or today_in_china()


def end_of_day_utc(day: date) -> datetime:
    """The instant a China calendar day ends, in UTC (the read models store UTC)."""
    return datetime.combine(day + timedelta(days=1), time.min, CHINA).astimezone(timezone.utc)


def as_naive_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.replace(tzinfo=timezone.utc)


def china_date(value: datetime | None) -> date | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(CHINA).date()
