"""Value ranges every service applies at the door, so that nothing one service accepts can poison another.

A household the registry accepts is carried in events to benefits and audit; a value those cannot store
or compute with (a year of 10**20, a date in year 1, a NUL byte in a name) would dead-letter there and the
household would never reach the ledger. These annotated types refuse such values with a 422 instead:

* `Year`: 1900–2100 (identification, income, hiring, training years);
* `LedgerDate`: a calendar date 1900-01-01 .. 2100-12-31 (birth, exit, death, admission, loan dates);
* `QueryDate`: the same range for an ``as_of`` query parameter (0001-01-01 and 9999-12-31 overflow
  date arithmetic);
* `Name`: text without any control character (C0, DEL, C1);
* `FreeText`: text where tab, line feed and carriage return are allowed, other control characters not;
* `NonNegativeMoney` (prices, wages) and `PositiveMoney` (a loan, a repayment, a stay's cost).
"""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, WithJsonSchema

from shared.money import Money

YEAR_MIN, YEAR_MAX = 1900, 2100
DATE_MIN, DATE_MAX = date(YEAR_MIN, 1, 1), date(YEAR_MAX, 12, 31)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_EXCEPT_WHITESPACE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def check_date(value: date | None) -> date | None:
    if value is not None and not DATE_MIN <= value <= DATE_MAX:
        raise ValueError(f"日期须在 {DATE_MIN} 至 {DATE_MAX} 之间 / date must be between {DATE_MIN} and {DATE_MAX}")
    return value


def check_name(value: str | None) -> str | None:
    if value is not None and _CONTROL.search(value):
        raise ValueError("不得含控制字符 / must not contain control characters")
    return value


def check_free_text(value: str | None) -> str | None:
    if value is not None and _CONTROL_EXCEPT_WHITESPACE.search(value):
        raise ValueError("不得含控制字符（制表符、换行符除外）/ must not contain control characters "
                         "(other than tab and newline)")
    return value


Year = Annotated[int, Field(ge=YEAR_MIN, le=YEAR_MAX)]
LedgerDate = Annotated[date, AfterValidator(check_date)]
QueryDate = Annotated[date, AfterValidator(check_date)]
Name = Annotated[str, AfterValidator(check_name)]
FreeText = Annotated[str, AfterValidator(check_free_text)]

#: The largest amount the money columns hold (NUMERIC(14, 2)): about a trillion yuan, beyond any real loan,
#: bill or claim. A larger one is refused as input; PostgreSQL would otherwise refuse it at the insert (500)
#: and SQLite store it (found by the API fuzzer).
MONEY_MAX = Decimal("999999999999.99")
_UNSIGNED_AMOUNT = {"type": "string", "pattern": r"^\d{1,12}(\.\d{1,2})?$", "examples": ["450.00"]}
#: Prices, wages, costs: 0 or more. Paid amounts (loans, repayments, a stay's total cost): more than 0.
NonNegativeMoney = Annotated[Money, Field(ge=0, le=MONEY_MAX), WithJsonSchema(_UNSIGNED_AMOUNT)]
PositiveMoney = Annotated[Money, Field(gt=0, le=MONEY_MAX),
                          WithJsonSchema({**_UNSIGNED_AMOUNT, "description": "大于 0 / more than 0"})]
#: Either sign (a claimed amount the service judges itself), within the columns' range.
BoundedMoney = Annotated[Money, Field(ge=-MONEY_MAX, le=MONEY_MAX),
                         WithJsonSchema({"type": "string", "pattern": r"^-?\d{1,12}(\.\d{1,2})?$",
                                         "examples": ["450.00"]})]

__all__ = ["BoundedMoney", "DATE_MAX", "DATE_MIN", "FreeText", "LedgerDate", "MONEY_MAX", "Name", "NonNegativeMoney",
           "PositiveMoney", "QueryDate",
           "YEAR_MAX", "YEAR_MIN", "Year", "check_date", "check_free_text", "check_name"]


def _with_zone(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for timezone-aware columns; they were stored as UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


#: A timestamp in a response: always with its zone (RFC 3339 date-time), even when SQLite dropped it.
UtcDatetime = Annotated[datetime, AfterValidator(_with_zone)]
__all__ += ["UtcDatetime"]

#: Largest numeric cursor (a record id): a bigger integer cannot be bound as a database integer (500).
CURSOR_MAX = 2**63 - 1
__all__ += ["CURSOR_MAX"]


def _id_cursor():
    from fastapi import Query
    return Annotated[int | None, Query(ge=0, le=CURSOR_MAX, description="next_cursor of the previous page")]


#: A numeric ``cursor`` query parameter.
IdCursor = _id_cursor()
__all__ += ["IdCursor"]
