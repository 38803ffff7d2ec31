"""Money: Decimal yuan, quantized to fen (0.01) with ROUND_HALF_UP; never float.

`Money` is a pydantic-compatible annotated type:

* accepts ``str`` ("450", "450.5", "450.00"), ``int`` and ``Decimal``;
* accepts ``float`` only by converting through ``str(x)`` (the shortest repr, so
  ``0.1`` becomes ``Decimal("0.1")`` and not ``0.1000000000000000055...``). JSON
  parsed with ``json.loads`` yields floats for numbers, so rejecting floats
  would reject ordinary JSON numbers that the contract allows on input;
* rejects bool, NaN and infinities;
* serializes in ``mode="json"`` as a string with two decimals (``"450.00"``);
  in python mode it stays a ``Decimal``.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

FEN = Decimal("0.01")
ZERO = Decimal("0.00")
MAX_MAGNITUDE = Decimal(10) ** 15


def to_decimal(value: Any) -> Decimal:
    """Exact Decimal from str/int/Decimal; floats go through their shortest repr."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(str(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a decimal amount: {value!r}") from None
    else:
        raise ValueError(f"amount must be a string or number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError("amount must be finite")
    if abs(result) >= MAX_MAGNITUDE:
        # Beyond any real amount; also keeps quantize() within Decimal's 28-digit precision.
        raise ValueError(f"amount must be below {MAX_MAGNITUDE:,}")
    return result


def yuan(value: Any) -> Decimal:
    """Amount in yuan rounded to the fen, half up (the bank-counter convention)."""
    return to_decimal(value).quantize(FEN, rounding=ROUND_HALF_UP)


def format_yuan(value: Decimal) -> str:
    return str(yuan(value))


def _validate_money(value: Any) -> Decimal:
    return yuan(value)


Money = Annotated[
    Decimal,
    BeforeValidator(_validate_money),
    PlainSerializer(format_yuan, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d{1,2})?$", "examples": ["450.00"]}),
]
"""Decimal yuan; JSON in: string or number; JSON out: "450.00"."""


def _validate_quantity(value: Any) -> Decimal:
    result = to_decimal(value)
    if result < 0:
        raise ValueError("quantity must not be negative")
    return result


def _serialize_quantity(value: Decimal) -> int | float:
    # Areas and weights are not money; JSON numbers keep the snapshot shape of API.md.
    return int(value) if value == value.to_integral_value() else float(value)


Quantity = Annotated[
    Decimal,
    BeforeValidator(_validate_quantity),
    PlainSerializer(_serialize_quantity, when_used="json"),
    # What the validator takes: a JSON number or a decimal string ("1.5", as the contract's examples and ledger
    # imports send it); answers always carry a number, which the same schema admits.
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0},
                              {"type": "string", "pattern": r"^\d+(\.\d+)?$", "examples": ["1.5"]}]}),
]
"""Non-negative measured quantity (亩, kg, m²) held as Decimal so multiplying it by a rate stays exact."""


def sum_yuan(values) -> Decimal:
    total = ZERO
    for value in values:
        total += value
    return yuan(total)
