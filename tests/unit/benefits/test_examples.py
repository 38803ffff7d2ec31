"""Every worked example in ../shared/spec/examples must evaluate to its `expected` block."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from services.benefits.engine import evaluate

from .conftest import EXAMPLES_DIR

EXAMPLE_FILES = sorted(EXAMPLES_DIR.glob("*.json"))


def expected_cases():
    for path in EXAMPLE_FILES:
        example = json.loads(path.read_text(encoding="utf-8"))
        for key, expected in example["expected"].items():
            yield pytest.param(path.name, key, expected, id=f"{path.stem}:{key}")


def test_examples_found():
    assert EXAMPLE_FILES, f"no examples in {EXAMPLES_DIR}"


@pytest.mark.parametrize(("file_name", "key", "expected"), list(expected_cases()))
def test_example_expectation(file_name, key, expected):
    example = json.loads((EXAMPLES_DIR / file_name).read_text(encoding="utf-8"))
    result = evaluate(example["household"], dt.date.fromisoformat(example["as_of"])).to_json()
    if key.startswith("assessment."):
        kind = key.removeprefix("assessment.")
        found = [a for a in result["assessments"] if a["kind"] == kind]
        assert len(found) == 1, result["assessments"]
        assert found[0]["result"] == expected["result"]
        if "unmet" in expected:
            assert found[0]["unmet"] == expected["unmet"]
        return
    person_id = expected.get("person_id")
    found = [e for e in result["entitlements"] if e["program"] == key and e["person_id"] == person_id]
    assert len(found) == 1, [(e["program"], e["person_id"]) for e in result["entitlements"]]
    entitlement = found[0]
    assert entitlement["eligible"] is True, entitlement["explanation"]
    assert entitlement["amount"] == expected["amount"]
    if "unit" in expected:
        assert entitlement["unit"] == expected["unit"]
    assert entitlement["source"]["seed"] and entitlement["source"]["lines"]


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_output_shape(path):
    example = json.loads(path.read_text(encoding="utf-8"))
    result = evaluate(example["household"], dt.date.fromisoformat(example["as_of"])).to_json()
    assert set(result) == {"as_of", "policy", "entitlements", "assessments"}
    assert set(result["policy"]) == {"pack", "version", "chain", "as_of", "coverage", "lapsed"}
    assert result["as_of"] == result["policy"]["as_of"] == example["as_of"]
    for e in result["entitlements"]:
        assert set(e) == {"program", "person_id", "eligible", "amount", "unit", "period", "explanation", "source"}
        assert isinstance(e["amount"], str) and len(e["amount"].split(".")[1]) == 2
        assert e["unit"] in {"once", "month", "year", "term", "claim"}
        for item in e["explanation"]:
            assert set(item) == {"condition", "value", "passed"}
    for a in result["assessments"]:
        assert set(a) == {"kind", "result", "unmet", "explanation", "source"}
    json.dumps(result)  # fully JSON-serialisable, no Decimal or date left
