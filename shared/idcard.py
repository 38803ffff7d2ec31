"""Chinese resident identity numbers (居民身份证号码, GB 11643-1999).

An 18-character number is laid out as

    RRRRRR YYYYMMDD SSS C
    region birth    seq check

* region: the 6-digit administrative division code (GB/T 2260) where the number
  was issued;
* birth: the holder's birth date;
* seq: a sequence number; its last digit (the 17th character) is odd for men and
  even for women;
* check: ISO 7064 MOD 11-2 over the first 17 digits, ``0``-``9`` or ``X`` (= 10).

Everything here is pure (no I/O, no clock unless the caller omits ``today``).
Error messages never contain the number itself: they end up in logs and
problem+json responses, where ID numbers must not appear unmasked.
"""

from __future__ import annotations

import re

from dataclasses import dataclass
from datetime import date
from typing import Literal

__all__ = [
    "IdNumberInfo",
    "InvalidIdNumber",
    "InconsistentIdNumber",
    "validate_id_number",
    "normalize_id_number",
    "check_consistency",
    "check_digit",
    "mask_id_number",
    "make_id_number",
]

Sex = Literal["M", "F"]

ID_NUMBER_LENGTH = 18
# Weight of position i (0-based, left to right) is 2**(17 - i) mod 11.
_WEIGHTS: tuple[int, ...] = tuple(pow(2, 17 - i, 11) for i in range(17))
# Remainder (sum mod 11) -> check character.
_CHECK_CHARS = "10X98765432"
_DIGITS = frozenset("0123456789")
# No living person was born before this; a smaller year is a typo, not a birth date.
_EARLIEST_BIRTH_YEAR = 1850


class InvalidIdNumber(ValueError):
    """The string is not a valid 18-character resident ID number.

    ``reason`` is a human-readable English message; ``code`` is a stable
    machine-readable tag (``type``, ``length``, ``format``, ``region_code``,
    ``birth_date``, ``check_digit``, ``sequence``, ``inconsistent``).
    Subclasses ``ValueError`` so pydantic validators turn it into a 422.
    """

    def __init__(self, reason: str, code: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class InconsistentIdNumber(InvalidIdNumber):
    """The number is valid but disagrees with a recorded birth date or sex."""

    def __init__(self, reason: str, *, field: str) -> None:
        super().__init__(reason, code="inconsistent")
        self.field = field


@dataclass(frozen=True, slots=True)
class IdNumberInfo:
    number: str  # normalised: uppercase X
    region_code: str
    birth_date: date
    sex: Sex

    @property
    def masked(self) -> str:
        return mask_id_number(self.number)

    def age_on(self, on: date) -> int:
        """Completed years of age on ``on`` (a person born on 29 Feb ages on 1 Mar)."""
        years = on.year - self.birth_date.year
        if (on.month, on.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years

    def __repr__(self) -> str:  # keep full numbers out of logs and tracebacks
        return (
            f"IdNumberInfo(number={self.masked!r}, region_code={self.region_code!r}, "
            f"birth_date={self.birth_date!r}, sex={self.sex!r})"
        )


def check_digit(first17: str) -> str:
    """The GB 11643 check character (``0``-``9`` or ``X``) for 17 leading digits."""
    if not isinstance(first17, str) or len(first17) != 17 or not set(first17) <= _DIGITS:
        raise InvalidIdNumber(
            "check digit is computed over exactly 17 digits", code="format"
        )
    total = sum(int(ch) * w for ch, w in zip(first17, _WEIGHTS))
    return _CHECK_CHARS[total % 11]


def _parse_birth_date(yyyymmdd: str) -> date:
    try:
        born = date(int(yyyymmdd[0:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        raise InvalidIdNumber(
            "characters 7-14 must be a real calendar date YYYYMMDD", code="birth_date"
        ) from None
    if born.year < _EARLIEST_BIRTH_YEAR:
        raise InvalidIdNumber(
            f"birth year must be {_EARLIEST_BIRTH_YEAR} or later", code="birth_date"
        )
    return born


def validate_id_number(s: str, *, today: date | None = None) -> IdNumberInfo:
    """Validate and decode an ID number; raise ``InvalidIdNumber`` with the first problem.

    Lower-case ``x`` is accepted and normalised to ``X``. Surrounding whitespace is
    *not* stripped: callers that import spreadsheets clean their cells first.
    ``today`` bounds the birth date (default: the local date now).
    """
    if not isinstance(s, str):
        raise InvalidIdNumber("ID number must be a string", code="type")
    if len(s) != ID_NUMBER_LENGTH:
        raise InvalidIdNumber(
            f"ID number must be {ID_NUMBER_LENGTH} characters long, got {len(s)}",
            code="length",
        )
    number = s[:17] + s[17].upper()
    if not set(number[:17]) <= _DIGITS or number[17] not in "0123456789X":
        raise InvalidIdNumber(
            "ID number must be 17 digits followed by a digit or X", code="format"
        )
    region_code = number[:6]
    # Every GB/T 2260 code starts with a province code 11-91; 0x is never issued.
    if region_code[0] == "0":
        raise InvalidIdNumber(
            "region code (first 6 digits) must not start with 0", code="region_code"
        )
    birth_date = _parse_birth_date(number[6:14])
    if birth_date > (today or date.today()):
        raise InvalidIdNumber("birth date must not be in the future", code="birth_date")
    expected = check_digit(number[:17])
    if number[17] != expected:
        raise InvalidIdNumber(
            "check digit does not match (GB 11643 / ISO 7064 MOD 11-2): "
            "a character was mistyped",
            code="check_digit",
        )
    sex: Sex = "M" if int(number[16]) % 2 == 1 else "F"
    return IdNumberInfo(number=number, region_code=region_code, birth_date=birth_date, sex=sex)


def normalize_id_number(s: str, *, today: date | None = None) -> str:
    """Validated, normalised number; convenient as a pydantic ``AfterValidator``."""
    return validate_id_number(s, today=today).number


def _normalize_sex(sex: str) -> Sex:
    value = sex.strip().upper() if isinstance(sex, str) else sex
    if value in ("M", "MALE"):
        return "M"
    if value in ("F", "FEMALE"):
        return "F"
    raise ValueError(f"sex must be 'M' or 'F', got {sex!r}")


def check_consistency(
    number: str,
    birth_date: date | None,
    sex: str | None,
    *,
    today: date | None = None,
) -> IdNumberInfo:
    """Validate ``number`` and check that it agrees with a recorded birth date and sex.

    ``None`` for ``birth_date`` or ``sex`` skips that comparison. Raises
    ``InvalidIdNumber`` if the number itself is invalid and
    ``InconsistentIdNumber`` (a subclass; ``.field`` names the field) if it disagrees.
    """
    info = validate_id_number(number, today=today)
    if birth_date is not None and info.birth_date != birth_date:
        raise InconsistentIdNumber(
            f"birth date {birth_date.isoformat()} does not match the ID number "
            f"({info.birth_date.isoformat()})",
            field="birth_date",
        )
    if sex is not None:
        recorded = _normalize_sex(sex)
        if recorded != info.sex:
            raise InconsistentIdNumber(
                f"sex {recorded} does not match the ID number ({info.sex})",
                field="sex",
            )
    return info


_MASKED = re.compile(r"^\d{6}\*{8}\d{3}[\dX]$")


def mask_id_number(s: str | None) -> str:
    """Show only the first 6 and last 4 characters: ``360782********0018``.

    The length is kept. Anything that is not shaped like an 18-character number
    (short, long, stray characters) is masked completely, because showing 10
    characters of a short string would reveal most of it.
    """
    if not s:
        return ""
    if not isinstance(s, str):
        s = str(s)
    if (
        len(s) == ID_NUMBER_LENGTH
        and set(s[:17]) <= _DIGITS
        and s[17] in "0123456789Xx"
    ):
        return s[:6] + "*" * 8 + s[14:17] + s[17].upper()
    if _MASKED.match(s):
        return s  # already masked: masking twice must not lose the visible part
    return "*" * len(s)


def make_id_number(region6: str, birth_date: date, seq3: int | str) -> str:
    """Build a valid number (for test data and generators).

    ``seq3`` is the 3-digit sequence (0-999 or a 3-digit string); its last digit
    decides the sex (odd = M). Does not check that ``birth_date`` is in the past.
    """
    if not (isinstance(region6, str) and len(region6) == 6 and set(region6) <= _DIGITS):
        raise InvalidIdNumber("region code must be 6 digits", code="region_code")
    if region6[0] == "0":
        raise InvalidIdNumber("region code must not start with 0", code="region_code")
    if not _EARLIEST_BIRTH_YEAR <= birth_date.year <= 9999:
        raise InvalidIdNumber(
            f"birth year must be between {_EARLIEST_BIRTH_YEAR} and 9999", code="birth_date"
        )
    if isinstance(seq3, str):
        if not (len(seq3) == 3 and set(seq3) <= _DIGITS):
            raise InvalidIdNumber("sequence must be 3 digits", code="sequence")
        seq = seq3
    elif isinstance(seq3, int) and not isinstance(seq3, bool) and 0 <= seq3 <= 999:
        seq = f"{seq3:03d}"
    else:
        raise InvalidIdNumber("sequence must be an integer 0-999", code="sequence")
    first17 = f"{region6}{birth_date:%Y%m%d}{seq}"
    return first17 + check_digit(first17)
