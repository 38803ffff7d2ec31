"""Turning one spreadsheet cell into the text the ledger mapping reads, with a precise reason when it cannot.

XLSX cells arrive typed (openpyxl gives str, int, float, datetime); CSV cells arrive as text. Two
column kinds need the type: an ID number that Excel stored as a number has lost its last digits (a
float keeps 15 significant digits) or could never hold the final X, so the office must be told to
format the column as text rather than that "a character was mistyped"; a date may be a datetime, an
Excel serial number, or typed in one of the ways offices write dates.

Every message is bilingual, ``"中文 / English"`` (``bilingual``), like all ledger import messages.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from openpyxl.utils.datetime import from_excel

from shared.idcard import InvalidIdNumber
from shared.spreadsheet import unneutralised


def bilingual(zh: str, en: str) -> str:
    return f"{zh} / {en}"


class CellError(ValueError):
    """A cell that cannot be read; ``key`` is the ledger column it belongs to."""

    def __init__(self, key: str, zh: str, en: str) -> None:
        super().__init__(bilingual(zh, en))
        self.key = key


def plain_text(value) -> str:
    """Any cell as stripped text (a whole float without its ``.0``; a date as ISO)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    # Our CSV exports quote-prefix cells that look like formulas (shared.spreadsheet); read them back as written.
    return unneutralised(str(value).strip())


NUMBER_FORMATTED = ("身份证号列在 Excel 中是数字格式，末尾数字已丢失（18 位号码或末位 X 不能存为数字）；"
                    "请把该列设为文本格式后重新填写",
                    "the ID column is formatted as a number in Excel, which loses the last digits (an 18-digit "
                    "number, or one ending in X, cannot be stored as a number); format it as text (文本) and "
                    "enter the numbers again")
_SCIENTIFIC = re.compile(r"^\d+(\.\d+)?[eE]\+?\d+$")


def id_number_text(key: str, value) -> str:
    """An ID-number cell as text; a number-formatted cell is refused unless it kept all 18 digits."""
    if isinstance(value, bool):
        raise CellError(key, "身份证号不是文本", "the ID number is not text")
    if isinstance(value, int) and len(str(value)) == 18:
        return str(value)  # a writer that stored the exact integer lost nothing
    if isinstance(value, (int, float)):
        raise CellError(key, *NUMBER_FORMATTED)
    text = plain_text(value).replace(" ", "").upper()
    if _SCIENTIFIC.match(text) or (text.endswith(".0") and text[:-2].isdigit()):
        raise CellError(key, *NUMBER_FORMATTED)  # how a number-formatted column looks once saved as CSV
    return text


_ID_REASON_ZH = {
    "length": "身份证号应为 18 位",
    "format": "身份证号应为 17 位数字加 1 位数字或 X",
    "region_code": "身份证号前 6 位（地区码）不能以 0 开头",
    "birth_date": "身份证号第 7–14 位不是有效的出生日期",
    "check_digit": "身份证号校验位不符（GB 11643），有字符录错",
    "type": "身份证号不是文本",
}


def id_number_problem(key: str, exc: InvalidIdNumber, text: str) -> CellError:
    zh = _ID_REASON_ZH.get(exc.code, "身份证号无效")
    if exc.code == "length":
        zh += f"，实为 {len(text)} 位"
    return CellError(key, zh, exc.reason)


_DATE_PARTS = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
_EXCEL_SERIAL_RANGE = (1, 2958465)  # 1900-01-01 … 9999-12-31


def date_text(key: str, value) -> str:
    """A date cell as ISO ``YYYY-MM-DD``: datetime cells, Excel serial numbers, 1977-09-25, 1977/9/25,
    1977-9-25, 1977.9.25, 19770925 and 1977年9月25日 are all accepted."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if float(value).is_integer() and len(str(int(value))) == 8:
            value = str(int(value))  # 19770925 typed into a number-formatted cell
        else:
            return _from_serial(key, value)
    text = str(value).strip()
    if not text:
        return ""
    if match := _DATE_PARTS.match(text):
        return _checked_date(key, text, *(int(part) for part in match.groups()))
    if re.fullmatch(r"\d{8}", text):
        return _checked_date(key, text, int(text[:4]), int(text[4:6]), int(text[6:]))
    if re.fullmatch(r"\d{5}(\.\d+)?", text):
        return _from_serial(key, float(text))  # a date column saved as numbers (CSV from Excel)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}[T ][\d:.]+", text):
        return _checked_date(key, text, int(text[:4]), int(text[5:7]), int(text[8:10]))
    raise CellError(key, f"无法识别的日期 {text!r}，请写成 1977-09-25、1977/9/25、19770925 或 1977年9月25日",
                    f"not a date: {text!r}; write it as 1977-09-25, 1977/9/25, 19770925 or 1977年9月25日")


def _checked_date(key: str, text: str, year: int, month: int, day: int) -> str:
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        raise CellError(key, f"日期 {text!r} 不存在（月或日超出范围）",
                        f"{text!r} is not a calendar date (month or day out of range)") from None


def _from_serial(key: str, serial: float) -> str:
    if not _EXCEL_SERIAL_RANGE[0] <= serial <= _EXCEL_SERIAL_RANGE[1]:
        raise CellError(key, f"日期单元格的数值 {serial:g} 不是 Excel 日期", f"{serial:g} is not an Excel date")
    return from_excel(int(serial)).date().isoformat()  # knows Excel's phantom 1900-02-29


def decimal_text(key: str, text: str) -> str:
    """A number as typed (thousands separators and a trailing 元 allowed), checked to be one."""
    cleaned = text.replace(",", "").replace("，", "").removesuffix("元").strip()
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        raise CellError(key, f"应为数字，实为 {text!r}", f"expected a number, got {text!r}") from None
    if not number.is_finite():
        raise CellError(key, f"应为数字，实为 {text!r}", f"expected a number, got {text!r}")
    return cleaned


def int_value(key: str, text: str) -> int:
    cleaned = text.replace(",", "").strip()
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite() or number != number.to_integral_value():
        raise CellError(key, f"应为整数，实为 {text!r}", f"expected a whole number, got {text!r}")
    return int(number)
