"""Citations: line ranges of the seeds, and finding a parameter's numbers in the lines it cites.

A citation is `{seed: "001", lines: "L208-L214"}` or a list of ranges (`"L19, L32-L48"`).
`span` joins the citations of the parameters one entitlement uses into one citation, so an
entitlement cites every line its amount comes from (covid_unsold's cap on L208 and its
bamboo-rat rate on L214). The rest (reading the vendored seeds, spelling numbers the way the
seeds write them) serves the citation check (tests/unit/policy/test_citations.py) and anyone
who wants to quote a rule's source; rules never read files.
"""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

SEEDS_DIR = Path(__file__).parent / "seeds"

_RANGE = re.compile(r"^L(\d+)(?:-L(\d+))?$")


def parse_lines(lines: str) -> list[tuple[int, int]]:
    """"L19, L32-L48" -> [(19, 19), (32, 48)]; a malformed range raises ValueError naming it."""
    ranges = []
    for part in lines.split(","):
        match = _RANGE.match(part.strip())
        if not match:
            raise ValueError(f"not a line range: {part.strip()!r} (expected L12 or L12-L20)")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if last < first:
            raise ValueError(f"line range {part.strip()!r} ends before it starts")
        ranges.append((first, last))
    return ranges


def format_lines(ranges: Iterable[tuple[int, int]]) -> str:
    return ", ".join(f"L{first}" if first == last else f"L{first}-L{last}" for first, last in ranges)


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of ranges; ranges one blank line apart join (the seeds put a blank line between paragraphs,
    and a sentence may continue after it, e.g. 001 L673 -> L675)."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 2:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def join_citations(sources: Iterable[dict[str, str] | None]) -> dict[str, str] | None:
    """One citation covering several: the ranges of the first seed named, merged.

    Citations of another seed are left out of the join, not lost: the parameters keep them in the
    pack description. An entitlement's amount comes from one document in every pack so far.
    """
    present = [source for source in sources if source]
    if not present:
        return None
    seed = present[0]["seed"]
    ranges = [r for source in present if source["seed"] == seed for r in parse_lines(source["lines"])]
    return {"seed": seed, "lines": format_lines(merge_ranges(ranges))}


def span(policy, *parameters: str) -> dict[str, str] | None:
    """The joined citation of the named parameters of a resolved pack (those it has and cites)."""
    return join_citations(policy.source(name) for name in parameters if policy.has(name))


# --- reading the vendored seeds (tests and tools only) ------------------------------------

@lru_cache(maxsize=None)
def seed_lines(seed: str) -> tuple[str, ...]:
    matches = sorted(SEEDS_DIR.glob(f"{seed}_*.txt"))
    if len(matches) != 1:
        raise FileNotFoundError(f"seed {seed}: expected one file {seed}_*.txt in {SEEDS_DIR}, found {len(matches)}")
    return tuple(matches[0].read_text(encoding="utf-8").splitlines())


def cited_text(source: dict[str, str]) -> str:
    """The text of the cited lines, joined; a range past the end of the seed raises ValueError."""
    lines = seed_lines(source["seed"])
    parts = []
    for first, last in parse_lines(source["lines"]):
        if first < 1 or last > len(lines):
            raise ValueError(f"seed {source['seed']} has {len(lines)} lines; L{first}-L{last} is past its end")
        parts.extend(lines[first - 1:last])
    return "\n".join(parts)


# --- numbers as the seeds write them -------------------------------------------------------

_CN_DIGITS = {"〇": 0, "零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CN_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
_COUNTERS = set("个年月日级类档项岁周人户次倍台套头只亩元万千百、至到")
_CN_RUN = re.compile(f"[{''.join(_CN_DIGITS)}{''.join(_CN_UNITS)}]+")
# 8,000 and 8，000 are 8000; the comma must sit between a digit and exactly three digits.
_THOUSANDS = re.compile(r"(?<=\d)[,，](?=\d{3}(?!\d))")
_ARABIC = re.compile(r"(\d+(?:\.\d+)?)\s*(万|千|%|％|‰)?")
# "2016-2020年农村低保标准分别为..." names every year of the range.
_YEAR_RANGE = re.compile(r"((?:19|20)\d\d)\s*[-—–~至到]\s*((?:19|20)\d\d)")
_SCALE = {"万": Decimal(10000), "千": Decimal(1000), "%": Decimal("0.01"), "％": Decimal("0.01"), "‰": Decimal("0.001")}
# Words the seeds use for a whole share: 全额补助 (class 1 低保), 全额贴息 (interest).
_WHOLE = ("全额", "全部")


def chinese_numeral(text: str) -> int | None:
    """一 -> 1, 十一 -> 11, 三百五十 -> 350, 一万二千 -> 12000; None when it is not a numeral."""
    total, section, digit = 0, 0, None
    for char in text:
        if char in _CN_DIGITS:
            digit = _CN_DIGITS[char]
        elif char in _CN_UNITS:
            unit = _CN_UNITS[char]
            if unit == 10000:
                total += (section + (digit or 0)) * unit
                section = 0
            else:
                section += (1 if digit is None else digit) * unit
            digit = None
        else:
            return None
    return total + section + (digit or 0)


def numbers_in_text(text: str) -> set[Decimal]:
    """Every number the text writes: 8000, 8,000, 0.8万 (8000), 8千, 50% (0.5 and 50), 5‰, Chinese numerals."""
    plain = _THOUSANDS.sub("", text)
    found: set[Decimal] = set()
    for digits, unit in _ARABIC.findall(plain):
        number = Decimal(digits)
        found.add(number)
        if unit:
            found.add(number * _SCALE[unit])
    for first, last in _YEAR_RANGE.findall(plain):
        found.update(Decimal(year) for year in range(int(first), int(last) + 1))
    for match in _CN_RUN.finditer(plain):
        run = match.group()
        # A lone 一 or 三 is a numeral only before a counter (六个月, 一、二年级, 三类): 一站式 and 统一 are words.
        if len(run) == 1 and plain[match.end():match.end() + 1] not in _COUNTERS:
            continue
        value = chinese_numeral(run)
        if value is not None:
            found.add(Decimal(value))
    if any(word in plain for word in _WHOLE):
        found.add(Decimal(1))
    return found


def numbers_of(value: Any, name: str = "") -> list[Decimal]:
    """The numbers a parameter value holds, as the seed would state them.

    Booleans, None and 0 hold none (0 stands for "the seed grants none", which no line writes
    as a number). Mapping keys are labels (classes, hospital levels, tiers)
    except years, which the seeds write (2016年). A date holds its year (and month and day
    unless it is a year's first or last day, which the seeds write as "2020年" or "到2020年").
    A value counted in months may be written in years (36 months = 3年).
    """
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, dt.date):
        if (value.month, value.day) in ((1, 1), (12, 31)):
            return [Decimal(value.year)]
        return [Decimal(value.year), Decimal(value.month), Decimal(value.day)]
    if isinstance(value, (int, float, Decimal)):
        return [Decimal(str(value))] if value != 0 else []
    if isinstance(value, dict):
        numbers = []
        for key, item in value.items():
            if isinstance(key, (int, Decimal)) and not isinstance(key, bool) and 1900 <= key <= 2100:
                numbers.append(Decimal(key))
            numbers += numbers_of(item, name)
        return numbers
    if isinstance(value, (list, tuple)):
        return [number for item in value for number in numbers_of(item, name)]
    if isinstance(value, str):
        try:
            return [Decimal(value)] if re.fullmatch(r"\d+(\.\d+)?", value) else []
        except InvalidOperation:
            return []
    return []


_CJK = re.compile(r"[\u4e00-\u9fff]")


def names_of(value: Any) -> list[str]:
    """Chinese names a value holds (township, village and school names): the seed must write them verbatim."""
    if isinstance(value, str):
        return [value] if _CJK.search(value) else []
    if isinstance(value, dict):
        return [name for key, item in value.items() for name in names_of(key) + names_of(item)]
    if isinstance(value, (list, tuple)):
        return [name for item in value for name in names_of(item)]
    return []


def number_written(number: Decimal, found: set[Decimal], name: str = "") -> bool:
    if number in found:
        return True
    # Months stated in years: credit terms "3年以内" are 36 months.
    if "month" in name and number % 12 == 0 and number / 12 in found:
        return True
    return False


def check_value(value: Any, source: dict[str, str], name: str = "") -> tuple[list[str], list[str]]:
    """(found, missing) spellings of what the value holds, looked up in the cited lines."""
    text = cited_text(source)
    written = numbers_in_text(text)
    found: list[str] = []
    missing: list[str] = []
    for number in numbers_of(value, name):
        (found if number_written(number, written, name) else missing).append(str(number))
    for chinese in names_of(value):
        (found if chinese in text else missing).append(chinese)
    return found, missing
