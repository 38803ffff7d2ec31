from shared.policy.program_names import program_name, program_names
from shared.policy.programs import KNOWN_PROGRAMS


def test_every_known_programme_has_a_chinese_name():
    names = program_names()
    assert sorted(KNOWN_PROGRAMS - set(names)) == []
    assert sorted(set(names) - KNOWN_PROGRAMS) == []  # no name for a code no pack may enable
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in name) for name in names.values())


def test_names_and_fallback():
    assert program_name("credit.microloan") == "扶贫小额信贷"
    assert program_name("safety_net.dibao") == "最低生活保障（低保）"
    assert program_name("made.up") == "made.up" and program_name(None) == ""
