from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.idcard import (
    IdNumberInfo,
    InconsistentIdNumber,
    InvalidIdNumber,
    check_consistency,
    check_digit,
    make_id_number,
    mask_id_number,
    normalize_id_number,
    validate_id_number,
)

TODAY = date(2020, 6, 30)

# From shared/spec/examples (Nankang households) plus the GB 11643 textbook example.
VALID = [
    ("360782197803150018", "360782", date(1978, 3, 15), "M"),
    ("360782198001200022", "360782", date(1980, 1, 20), "F"),
    ("360782200705010016", "360782", date(2007, 5, 1), "M"),
    ("360782194806120013", "360782", date(1948, 6, 12), "M"),
    ("11010519491231002X", "110105", date(1949, 12, 31), "F"),
]


@pytest.mark.parametrize(("number", "region", "born", "sex"), VALID)
def test_valid_numbers_decode(number, region, born, sex):
    info = validate_id_number(number, today=TODAY)
    assert info == IdNumberInfo(number=number, region_code=region, birth_date=born, sex=sex)


def test_default_today_is_used_when_not_given():
    assert validate_id_number("360782197803150018").birth_date == date(1978, 3, 15)


@pytest.mark.parametrize(
    ("first17", "expected"),
    [("36078219780315001", "8"), ("11010519491231002", "X"), ("44052418800101001", "4")],
)
def test_check_digit(first17, expected):
    assert check_digit(first17) == expected


@pytest.mark.parametrize("bad", ["", "1234", "3607821978031500", "36078219780315001X", "3607821978031500a"])
def test_check_digit_needs_17_digits(bad):
    with pytest.raises(InvalidIdNumber):
        check_digit(bad)


def _code(s, **kw):
    with pytest.raises(InvalidIdNumber) as exc:
        validate_id_number(s, today=kw.get("today", TODAY))
    return exc.value


def test_wrong_check_digit():
    err = _code("360782197803150019")
    assert err.code == "check_digit"
    assert "check digit" in err.reason


@pytest.mark.parametrize("s", ["", "36078219780315001", "3607821978031500181", "360782780315001"])
def test_wrong_length(s):
    err = _code(s)
    assert err.code == "length"
    assert "18 characters" in str(err)


@pytest.mark.parametrize(
    "s",
    ["36078219780315001A", "3607821978031500X8", "36078219780315 018", "３６0782197803150018"],
)
def test_bad_characters(s):
    assert _code(s).code in ("format", "length")


def test_not_a_string():
    with pytest.raises(InvalidIdNumber) as exc:
        validate_id_number(360782197803150018)  # type: ignore[arg-type]
    assert exc.value.code == "type"


@pytest.mark.parametrize("yyyymmdd", ["19780230", "19781301", "19780000", "20190229", "18000101"])
def test_bad_birth_date(yyyymmdd):
    first17 = "360782" + yyyymmdd + "001"
    assert _code(first17 + check_digit(first17)).code == "birth_date"


def test_leap_day_is_a_date():
    number = make_id_number("360782", date(2000, 2, 29), 1)
    assert validate_id_number(number, today=TODAY).birth_date == date(2000, 2, 29)


def test_future_birth_date():
    number = make_id_number("360782", date(2020, 7, 1), 1)
    err = _code(number, today=TODAY)
    assert err.code == "birth_date" and "future" in err.reason
    # born today is not in the future
    assert validate_id_number(make_id_number("360782", TODAY, 1), today=TODAY).birth_date == TODAY


def test_region_code_starting_with_zero_rejected():
    first17 = "060782" + "19780315" + "001"
    assert _code(first17 + check_digit(first17)).code == "region_code"


def test_lowercase_x_normalised():
    info = validate_id_number("11010519491231002x", today=TODAY)
    assert info.number == "11010519491231002X"
    assert normalize_id_number("11010519491231002x", today=TODAY) == "11010519491231002X"


def test_x_only_allowed_last():
    assert _code("1101051949123100X2").code == "format"


def test_errors_do_not_leak_the_number():
    number = "360782197803150019"
    err = _code(number)
    assert number not in str(err)
    assert number[:17] not in str(err)


def test_repr_of_info_is_masked():
    info = validate_id_number("360782197803150018", today=TODAY)
    assert "197803150018" not in repr(info)
    assert info.masked == "360782********0018"


def test_age_on():
    info = validate_id_number("360782197803150018", today=TODAY)
    assert info.age_on(date(2020, 3, 14)) == 41
    assert info.age_on(date(2020, 3, 15)) == 42


# ---------------------------------------------------------------- masking


def test_mask_example():
    assert mask_id_number("360782197803150018") == "360782********0018"


def test_mask_keeps_x_uppercased():
    assert mask_id_number("11010519491231002x") == "110105********002X"


@pytest.mark.parametrize("s", ["12345", "3607821978031500", "3607821978031500181", "36078219780315001A", "abc"])
def test_mask_invalid_hides_everything_keeps_length(s):
    masked = mask_id_number(s)
    assert masked == "*" * len(s)


def test_mask_empty_and_none():
    assert mask_id_number("") == ""
    assert mask_id_number(None) == ""


@given(st.text(max_size=40))
def test_mask_never_changes_length_and_reveals_at_most_ten(s):
    masked = mask_id_number(s)
    assert len(masked) == len(s)
    assert sum(ch != "*" for ch in masked) <= 10


# ---------------------------------------------------------------- consistency


def test_consistency_ok():
    info = check_consistency("360782197803150018", date(1978, 3, 15), "M", today=TODAY)
    assert info.sex == "M"


def test_consistency_accepts_none_to_skip():
    check_consistency("360782197803150018", None, None, today=TODAY)


def test_consistency_birth_date_mismatch():
    with pytest.raises(InconsistentIdNumber) as exc:
        check_consistency("360782197803150018", date(1978, 3, 16), "M", today=TODAY)
    assert exc.value.field == "birth_date"
    assert isinstance(exc.value, InvalidIdNumber)


def test_consistency_sex_mismatch():
    with pytest.raises(InconsistentIdNumber) as exc:
        check_consistency("360782198001200022", date(1980, 1, 20), "M", today=TODAY)
    assert exc.value.field == "sex"


def test_consistency_invalid_number_raises_invalid():
    with pytest.raises(InvalidIdNumber) as exc:
        check_consistency("360782198001200023", date(1980, 1, 20), "F", today=TODAY)
    assert not isinstance(exc.value, InconsistentIdNumber)


def test_consistency_unknown_sex_value():
    with pytest.raises(ValueError):
        check_consistency("360782198001200022", None, "unknown", today=TODAY)


# ---------------------------------------------------------------- make_id_number


def test_make_matches_known_number():
    assert make_id_number("360782", date(1978, 3, 15), 1) == "360782197803150018"
    assert make_id_number("110105", date(1949, 12, 31), "002") == "11010519491231002X"


@pytest.mark.parametrize(
    ("region", "seq"), [("36078", 1), ("36078a", 1), ("060782", 1), ("360782", 1000), ("360782", -1), ("360782", "01"), ("360782", True)]
)
def test_make_rejects_bad_parts(region, seq):
    with pytest.raises(InvalidIdNumber):
        make_id_number(region, date(1978, 3, 15), seq)


regions = st.from_regex(r"[1-9][0-9]{5}", fullmatch=True)
births = st.dates(min_value=date(1850, 1, 1), max_value=TODAY)
seqs = st.integers(min_value=0, max_value=999)


@given(regions, births, seqs)
def test_make_always_validates_and_round_trips(region, born, seq):
    number = make_id_number(region, born, seq)
    info = validate_id_number(number, today=TODAY)
    assert info.number == number
    assert info.region_code == region
    assert info.birth_date == born
    assert info.sex == ("M" if seq % 2 else "F")
    assert check_consistency(number, born, info.sex, today=TODAY) == info


@settings(max_examples=300)
@given(regions, births, seqs, st.integers(min_value=0, max_value=17), st.sampled_from("0123456789X"))
def test_any_single_character_change_is_detected(region, born, seq, position, replacement):
    number = make_id_number(region, born, seq)
    if number[position] == replacement or (replacement == "X" and position != 17):
        replacement = str((int(number[position]) + 1) % 10) if number[position] != "X" else "0"
    changed = number[:position] + replacement + number[position + 1 :]
    assert changed != number
    with pytest.raises(InvalidIdNumber):
        validate_id_number(changed, today=TODAY)


@given(regions, births, seqs, st.integers(min_value=0, max_value=16))
def test_adjacent_transposition_of_different_digits_is_detected(region, born, seq, i):
    number = make_id_number(region, born, seq)
    a, b = number[i], number[i + 1]
    if a == b or b == "X":
        return
    swapped = number[:i] + b + a + number[i + 2 :]
    with pytest.raises(InvalidIdNumber):
        validate_id_number(swapped, today=TODAY)


def test_masking_is_idempotent():
    from shared.idcard import mask_id_number
    masked = mask_id_number("360782197803150018")
    assert mask_id_number(masked) == masked == "360782********0018"
