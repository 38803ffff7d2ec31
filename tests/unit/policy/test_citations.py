"""Citation truth (issue 11 item 3): every cited range holds every number its parameter holds.

For every parameter of every pack that has a `source`, the cited lines of the vendored seed
(shared/policy/seeds/) are read and each number of the value is looked for as the seed writes
it (8000 = 8,000 = 0.8万 = 8千; 0.5 = 50%; 0.005 = 5‰; Chinese numerals; 36 months = 3年; a year
range 2016-2020 names 2017). Chinese names in a value (townships, villages, schools) must appear
verbatim. A value of 0 stands for "the seed grants none" and holds no number to find. The same
check runs over `cite(...)` calls in the rules code, and over seed lines named in rule texts.

Run with `-s` or read the summary line printed at the end (printed even under capture): the
closing note of issue 11 quotes it.
"""
from __future__ import annotations

import ast
import re
from decimal import Decimal
from pathlib import Path

import pytest

from shared.policy import POLICIES_DIR, load_pack_file
from shared.policy.citations import (
    check_value, cited_text, format_lines, join_citations, merge_ranges, number_written, numbers_in_text, numbers_of,
    parse_lines, seed_lines,
)

RULES_DIR = Path(__file__).resolve().parents[3] / "services" / "benefits" / "rules"

# Values that are derived from seed numbers rather than written in the cited lines. Keep it small;
# each entry says how the value follows from what the lines do write.
DERIVED = {
    ("nankang-2020", "education.senior_grant.default_tier", "2"):
        "tier 2 is the 平均2000元 tier of the three (1500/2000/2500) that L619 lists",
    ("shaoguan-2016", "targets", "65500"):
        "cumulative exits: 3万 (2016) + 3.55万 (2017) on L37",
}


def pack_files() -> list[Path]:
    return sorted(POLICIES_DIR.glob("*.yaml"))


def cited_items():
    """(pack, name, value, source) for every cited parameter and every cited target block."""
    for path in pack_files():
        spec = load_pack_file(path)
        for name, parameter in sorted(spec.parameters.items()):
            if parameter.source is not None:
                yield spec.name, name, parameter.value, parameter.source.model_dump()
        targets = dict(spec.targets)
        source = targets.pop("source", None)
        if source and targets:
            yield spec.name, "targets", targets, source


def rule_citations():
    """(module:function, seed, lines, literal numbers of the function) for each cite("seed", "lines") call."""
    for path in sorted(RULES_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            calls = [node for node in ast.walk(function) if isinstance(node, ast.Call)
                     and getattr(node.func, "id", None) == "cite" and len(node.args) == 2
                     and all(isinstance(arg, ast.Constant) for arg in node.args)]
            if not calls:
                continue
            literals = _amount_literals(function)
            for call in calls:
                yield f"{path.stem}:{function.name}", call.args[0].value, call.args[1].value, literals


def _amount_literals(function) -> list[Decimal]:
    """Numbers a rule function writes itself: int/float literals and Decimal("...") strings.

    0, 1, 12 (months in a year) and 100 (percent) are arithmetic, not policy; quantum strings
    ("0.01", "0.0001") are rounding. Anything else is a policy number that belongs in a pack, and
    while it is in the rule, the rule's citation must hold it.
    """
    found: list[Decimal] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            found.append(Decimal(str(node.value)))
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Decimal" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            text = node.args[0].value
            if not re.fullmatch(r"0\.0*1", text):
                found.append(Decimal(text))
    return [number for number in found if number not in (0, 1, 12, 100)]


# Seed lines named in rule texts and docstrings: "(001 L733)", "001 L367-L387".
_NAMED = re.compile(r"\b(\d{3}) (L\d+(?:-L\d+)?(?:, ?L\d+(?:-L\d+)?)*)")


def named_in_rule_texts():
    for path in sorted(RULES_DIR.glob("*.py")):
        for seed, lines in _NAMED.findall(path.read_text(encoding="utf-8")):
            yield path.stem, seed, lines


def _blank(source: dict[str, str]) -> bool:
    return not cited_text(source).strip()


def test_every_cited_parameter_holds_its_numbers_and_names(capsys):
    ranges = found = 0
    missing: list[str] = []
    allowed: list[str] = []
    for pack, name, value, source in cited_items():
        ranges += 1
        assert not _blank(source), f"{pack} {name}: {source} cites only blank lines"
        hits, misses = check_value(value, source, name)
        found += len(hits)
        for miss in misses:
            reason = DERIVED.get((pack, name, miss))
            (allowed if reason else missing).append(f"{pack} {name} {miss} ({source['seed']} {source['lines']})"
                                                    + (f": {reason}" if reason else ""))
    rule_ranges = rule_found = 0
    for where, seed, lines, literals in rule_citations():
        rule_ranges += 1
        source = {"seed": seed, "lines": lines}
        assert not _blank(source), f"{where}: cite({seed!r}, {lines!r}) cites only blank lines"
        written = numbers_in_text(cited_text(source))
        for number in literals:
            if number_written(number, written):
                rule_found += 1
            else:
                missing.append(f"rule {where} literal {number} not in cite({seed!r}, {lines!r})")
    named = sum(1 for _ in named_in_rule_texts())
    summary = (f"citation check: {ranges} pack ranges checked, {found} numbers/names found, "
               f"{len(missing)} missing, {len(allowed)} derived (allow-listed); "
               f"{rule_ranges} cite() calls in rules ({rule_found} literal numbers found); "
               f"{named} seed lines named in rule texts exist")
    with capsys.disabled():  # the summary is for the closing note: shown without -s too
        print("\n" + summary)
        for line in allowed:
            print("  derived:", line)
        for line in missing:
            print("  MISSING:", line)
    unused = {key for key in DERIVED} - {(p, n, m) for p, n, v, s in cited_items() for m in check_value(v, s, n)[1]}
    assert not unused, f"allow-list entries no longer needed: {sorted(unused)}"
    assert not missing, "numbers not in their cited lines:\n" + "\n".join(missing)


def test_every_cited_line_exists():
    for pack, name, _, source in cited_items():
        cited_text(source)  # raises past the end of the seed
    for where, seed, lines, _ in rule_citations():
        cited_text({"seed": seed, "lines": lines})
    for module, seed, lines in named_in_rule_texts():
        try:
            cited_text({"seed": seed, "lines": lines})
        except (ValueError, FileNotFoundError) as exc:
            pytest.fail(f"rules/{module}.py names {seed} {lines}: {exc}")


def test_uncited_parameters_are_marked_with_a_note():
    for path in pack_files():
        spec = load_pack_file(path)
        for name, parameter in spec.parameters.items():
            if parameter.source is None:
                assert parameter.default_not_in_seeds and parameter.note, f"{spec.name} {name}"


# --- the checker itself must be able to say no ---------------------------------------------------

@pytest.mark.parametrize(("text", "number"), [
    ("每户最高限额 8,000 元", "8000"), ("8000元", "8000"), ("0.8万元", "8000"), ("8千元", "8000"),
    ("按购置价格的50%", "0.5"), ("5‰", "0.005"), ("延长期不超过六个月", "6"), ("十一有一低于", "11"),
    ("2016-2020年农村低保标准", "2018"), ("1.5万元/户", "15000"), ("全额贴息", "1"),
])
def test_numbers_are_found_as_the_seed_writes_them(text, number):
    assert Decimal(number) in numbers_in_text(text)


@pytest.mark.parametrize(("text", "number"), [("8,001 元", "8000"), ("80万", "8000"), ("15%", "0.5"), ("七个月", "6"),
                                              ("一站式结算", "1"), ("统一标准", "1")])
def test_a_number_that_is_not_written_is_not_found(text, number):
    assert Decimal(number) not in numbers_in_text(text)


def test_check_value_reports_a_wrong_citation():
    # 60 (the living subsidy) is on L675, not L673: the old citation must fail.
    assert check_value(60, {"seed": "001", "lines": "L673"}) == ([], ["60"])
    assert check_value(60, {"seed": "001", "lines": "L673-L675"}) == (["60"], [])
    # 上洛村's 3000元/亩 and the village name are on L257, not on L254.
    assert check_value({"上洛村": 3000}, {"seed": "001", "lines": "L254"})[1] == ["3000", "上洛村"]
    assert check_value({"上洛村": 3000}, {"seed": "001", "lines": "L254-L260"}) == (["3000", "上洛村"], [])


def test_month_terms_and_years_and_labels():
    assert number_written(Decimal(36), {Decimal(3)}, "credit.max_term_months")
    assert not number_written(Decimal(36), {Decimal(3)}, "credit.max_amount")
    assert numbers_of({2016: 3240, 1: 0.9}) == [Decimal(2016), Decimal(3240), Decimal("0.9")]  # 1 is a class label


def test_a_range_past_the_end_of_a_seed_fails():
    end = len(seed_lines("002"))
    cited_text({"seed": "002", "lines": f"L{end}"})
    with pytest.raises(ValueError, match="past its end"):
        cited_text({"seed": "002", "lines": f"L{end - 1}-L{end + 1}"})
    with pytest.raises(ValueError, match="not a line range"):
        parse_lines("L12-13")


def test_joined_citations_merge_ranges_a_blank_line_apart():
    assert format_lines(merge_ranges([(208, 213), (214, 214), (208, 208)])) == "L208-L214"
    assert join_citations([{"seed": "001", "lines": "L673"}, {"seed": "001", "lines": "L675"}]) == {
        "seed": "001", "lines": "L673-L675"}
    assert join_citations([{"seed": "001", "lines": "L733"}, {"seed": "001", "lines": "L741"}, None]) == {
        "seed": "001", "lines": "L733, L741"}
